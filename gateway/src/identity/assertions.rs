//! The assertion of each session, signed at most once per lifetime: the
//! signature is kept with the session's entry in the local session cache
//! (the JWT itself is rebuilt from the session, see
//! [`AssertionSigner::render`]), so it goes wherever the session goes (ended,
//! revoked, evicted). It is kept for the session's second-factor state:
//! `mfa` is the one claim that changes while a session lives (`pending` →
//! `totp`), and a signature made before the change can never be paired with
//! the claims after it, on this instance or any other.
//!
//! The sessions in use right now also keep their rendered headers (the JWT
//! and the convenience values, ~1.5 KB) in a small cache of their own, so
//! their requests copy reference counts instead of serialising, encoding and
//! validating the same bytes again. It is bounded apart from the session
//! cache: ~1.5 KB for each of 100,000 cached sessions would be more than a
//! session itself (issue 13's "≤ 1 KiB per session").

use super::headers::IdentityHeaders;
use super::signer::{AssertionSigner, Signed, SignerError};
use crate::metrics::METRICS;
use crate::session::cache::LocalCache;
use crate::session::{Session, SessionKey, now_unix};
use std::sync::Arc;

/// Re-sign an assertion when less than this is left of its lifetime.
const RESIGN_MARGIN_SECS: i64 = 60;

/// How many sessions keep their rendered headers: the ones making requests
/// now (CLOCK-Pro keeps the frequently used, one cold entry goes at a time).
/// ~3 MB at most.
const RENDERED_CAPACITY: usize = 2048;

pub struct Assertions {
    pub signer: AssertionSigner,
    /// The sessions' cache, whose entries keep the signatures. Bounded: past
    /// its capacity one cold entry goes at a time (a signature is re-signable
    /// on demand), never all at once.
    cache: Arc<LocalCache>,
    rendered: quick_cache::sync::Cache<SessionKey, Rendered>,
}

/// Headers rendered from one session (as it was, `last_seen` included, so a
/// touched or changed session renders afresh) with one signature.
#[derive(Clone)]
struct Rendered {
    session: Arc<Session>,
    signed: Signed,
    headers: Arc<IdentityHeaders>,
}

impl Assertions {
    pub fn new(signer: AssertionSigner, cache: Arc<LocalCache>) -> Self {
        Assertions {
            signer,
            cache,
            rendered: quick_cache::sync::Cache::new(RENDERED_CAPACITY),
        }
    }

    /// The identity headers for a session, signed at most once per lifetime.
    pub fn for_session(&self, id: &SessionKey, s: &Arc<Session>) -> Option<Arc<IdentityHeaders>> {
        let signed = self.signed(id, s)?;
        if let Some(r) = self.rendered.get(id)
            && r.signed == signed
            && (Arc::ptr_eq(&r.session, s) || *r.session == **s)
        {
            return Some(r.headers);
        }
        let headers = self.render(s, &signed)?;
        self.rendered.insert(
            *id,
            Rendered {
                session: s.clone(),
                signed,
                headers: headers.clone(),
            },
        );
        Some(headers)
    }

    /// The signature for the session in its second-factor state: the
    /// cached one unless it is about to expire.
    fn signed(&self, id: &SessionKey, s: &Session) -> Option<Signed> {
        let now = now_unix();
        let cached = self
            .cache
            .signed(id, s.mfa)
            .filter(|a| a.exp - now > RESIGN_MARGIN_SECS);
        if let Some(a) = cached {
            METRICS.assertion_cache.hit.inc();
            return Some(a);
        }
        METRICS.assertion_cache.miss.inc();
        let a = logged(self.signer.sign(s, now))?;
        self.cache.keep_signed(id, s.mfa, a);
        Some(a)
    }

    fn render(&self, s: &Session, signed: &Signed) -> Option<Arc<IdentityHeaders>> {
        let jwt = logged(self.signer.render(s, signed))?;
        // The JWT's own buffer becomes the value: base64url and dots only.
        let mut value = http::HeaderValue::from_maybe_shared(bytes::Bytes::from(jwt)).ok()?;
        // A bearer credential for the app: `Debug` prints it as "Sensitive",
        // and HTTP/2 never indexes it.
        value.set_sensitive(true);
        Some(Arc::new(IdentityHeaders::new(s, value)))
    }

    /// Signed for this request only, not cached: the assertion that carries
    /// `new_user: true` once.
    pub fn uncached(&self, s: &Session) -> Option<Arc<IdentityHeaders>> {
        let signed = logged(self.signer.sign(s, now_unix()))?;
        self.render(s, &signed)
    }
}

/// A signing failure is logged (never the claims) and the request goes
/// without an identity.
fn logged<T>(r: Result<T, SignerError>) -> Option<T> {
    r.inspect_err(|e| tracing::error!(event = "assertion_sign_failed", error = %e))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;
    use std::time::Duration;

    fn assertions() -> Assertions {
        let cache = Arc::new(LocalCache::new(Duration::from_secs(60), 100));
        Assertions::new(AssertionSigner::for_tests(), cache)
    }

    fn session(email: &str, last_seen: i64) -> Arc<Session> {
        let record = serde_json::json!({
            "portal": "agent", "portal_kind": "agent",
            "tid": "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa", "oid": "o1", "sub": "s1", "issuer": "i",
            "name": null, "email": email, "sid": null, "login_hint": null, "user_key": "ann",
            "client": null, "created_at": 1, "last_seen": last_seen, "absolute_expiry": 2,
            "idle_timeout_secs": 1, "remember_me": false, "csrf": "c", "new_user": false
        });
        Arc::new(serde_json::from_value(record).unwrap())
    }

    fn header<'a>(h: &'a IdentityHeaders, name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_str().unwrap())
    }

    fn claims(a: &Assertions, h: &IdentityHeaders) -> serde_json::Value {
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&a.signer.jwks_json()).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        v.set_audience(&["app"]);
        let jwt = h.assertion().to_str().unwrap();
        jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &v).unwrap().claims
    }

    /// A session's later requests share the headers rendered for its first,
    /// until anything they are made of changes: the session (a copy with
    /// other claims, or touched) or its signature (ended, evicted, renewed).
    #[test]
    fn rendered_headers_are_reused_only_for_the_same_session_and_signature() {
        let a = assertions();
        let id = SessionId::generate().key();
        let s = session("ann@contoso.example", 10);
        let first = a.for_session(&id, &s).unwrap();
        assert!(first.assertion().is_sensitive(), "never printed by Debug");
        assert!(!format!("{first:?}").contains(first.assertion().to_str().unwrap()));
        assert_eq!(
            header(&first, super::super::headers::EMAIL),
            Some("ann@contoso.example")
        );
        assert_eq!(claims(&a, &first)["email"], "ann@contoso.example");
        let again = a.for_session(&id, &s).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "shared, not rendered again");
        // An equal copy (as a store without a local cache hands out) too.
        let copy = a.for_session(&id, &session("ann@contoso.example", 10)).unwrap();
        assert!(Arc::ptr_eq(&first, &copy));
        // Other claims under the same key: rendered from them, never the old bytes.
        let other = session("bob@contoso.example", 10);
        let changed = a.for_session(&id, &other).unwrap();
        assert_eq!(
            header(&changed, super::super::headers::EMAIL),
            Some("bob@contoso.example")
        );
        // Touched: rendered afresh (the signature is the session's still).
        let later = session("bob@contoso.example", 70);
        let touched = a.for_session(&id, &later).unwrap();
        assert!(!Arc::ptr_eq(&changed, &touched));
        assert_eq!(touched.assertion(), changed.assertion());
        // The session's entry dropped (ended, revoked, evicted): its
        // signature went with it, and the headers are not served again.
        a.cache.remove(&id);
        let after = a.for_session(&id, &later).unwrap();
        assert_ne!(after.assertion(), changed.assertion(), "signed afresh");
        assert_eq!(claims(&a, &after)["email"], "bob@contoso.example");
    }
}
