//! The request the app receives: every client header that could pose as
//! identity or as a proxy removed, the gateway's cookies kept from it,
//! `X-Forwarded-*` set, and the identity headers added.

use crate::front::Identity;
use crate::header_names::{X_FORWARDED_FOR, X_FORWARDED_HOST, X_FORWARDED_PROTO, text};
use crate::session::Session;
use http::{HeaderMap, HeaderName, HeaderValue};
use policy::cookies::is_gateway_cookie;
use policy::headers::{HeaderRules, must_drop};
use std::net::IpAddr;

pub const ASSERTION: &str = "x-auth-assertion";
pub const USER: &str = "x-auth-user";
pub const EMAIL: &str = "x-auth-email";
pub const NAME: &str = "x-auth-name";
pub const OID: &str = "x-auth-oid";
pub const TID: &str = "x-auth-tid";
pub const PORTAL: &str = "x-auth-portal";
pub const REQUEST_ID: &str = crate::access_log::REQUEST_ID;

/// Names of every client-sent header that must not reach the app (see
/// `policy::headers`): identity headers in any spelling, names with `_`
/// unless listed, the forwarding family from untrusted peers, and
/// `Authorization` when the operator asked for it.
pub fn headers_to_drop(headers: &HeaderMap, rules: &HeaderRules<'_>) -> Vec<http::HeaderName> {
    headers
        .keys()
        .filter(|k| must_drop(k.as_str(), rules))
        .cloned()
        .collect()
}

/// One change to the upstream request (applied in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    Remove(HeaderName),
    /// The name as written on the wire to the app. A static string, not a
    /// `HeaderName`: Pingora keeps each header's spelling beside the map and
    /// copies a `HeaderName` into a new buffer to get it, per header and request.
    Set(&'static str, HeaderValue),
}

/// What the upstream request's headers depend on besides the request's own.
#[derive(Debug, Clone, Copy)]
pub struct Upstream<'a> {
    pub rules: HeaderRules<'a>,
    /// `session.cookie_name`: the gateway's cookies stay between browser and gateway.
    pub cookie_base: &'a str,
    /// The TCP peer (appended to `X-Forwarded-For`).
    pub peer_ip: Option<IpAddr>,
    pub https: bool,
    /// The Host the client asked for.
    pub host: Option<&'a str>,
    /// `identity.convenience_headers`.
    pub convenience: bool,
    /// This request's id (see `access_log::request_id`): replaces whatever
    /// `X-Request-Id` the client sent.
    pub request_id: Option<&'a HeaderValue>,
}

/// Every change that turns the client's headers into the app's.
pub fn upstream_edits(headers: &HeaderMap, u: &Upstream<'_>, identity: Option<&Identity>) -> Vec<Edit> {
    // Room for every edit of a usual request: one allocation, no regrowth.
    let mut edits: Vec<Edit> = Vec::with_capacity(16);
    edits.extend(headers_to_drop(headers, &u.rules).into_iter().map(Edit::Remove));
    // The gateway's own cookies stay between the browser and us; a Cookie
    // header without any is left as it is (most requests to the app).
    let cookies = headers.get_all(http::header::COOKIE);
    let is_ours = |pair: &&str| {
        let name = pair.split_once('=').map(|(n, _)| n).unwrap_or(pair);
        is_gateway_cookie(name.trim(), u.cookie_base)
    };
    let pairs = || {
        cookies
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| !pair.is_empty())
    };
    let unreadable = cookies.iter().any(|v| v.to_str().is_err());
    if unreadable || pairs().any(|p| is_ours(&p)) {
        // Allocated only if some cookie is the app's (often none is).
        let mut kept = String::new();
        for pair in pairs().filter(|p| !is_ours(p)) {
            if kept.is_empty() {
                kept.reserve(cookies.iter().map(|v| v.len()).sum());
            } else {
                kept.push_str("; ");
            }
            kept.push_str(pair);
        }
        edits.push(Edit::Remove(http::header::COOKIE));
        if let Some(v) = (!kept.is_empty())
            .then_some(kept)
            .and_then(|k| HeaderValue::try_from(k).ok())
        {
            // Spelled as Pingora spells the standard name (what the app got before).
            edits.push(Edit::Set("Cookie", v));
        }
    }
    // X-Forwarded-*: trusted proxies' values are extended, others replaced.
    let trusted = u.rules.trusted_peer;
    let mut xff = String::new();
    if let (true, Some(prev)) = (trusted, text(headers, &X_FORWARDED_FOR)) {
        xff.push_str(prev);
    }
    if let Some(ip) = u.peer_ip {
        use std::fmt::Write;
        if !xff.is_empty() {
            xff.push_str(", ");
        }
        let _ = write!(xff, "{ip}");
    }
    set(&mut edits, X_FORWARDED_FOR.as_str(), xff);
    edits.push(Edit::Set(
        X_FORWARDED_PROTO.as_str(),
        HeaderValue::from_static(if u.https { "https" } else { "http" }),
    ));
    let fwd_host = match (trusted, text(headers, &X_FORWARDED_HOST)) {
        (true, Some(h)) => Some(h),
        _ => u.host,
    };
    match fwd_host.and_then(value) {
        Some(h) => edits.push(Edit::Set(X_FORWARDED_HOST.as_str(), h)),
        None => edits.push(Edit::Remove(X_FORWARDED_HOST.clone())),
    }
    if let Some(id) = u.request_id {
        edits.push(Edit::Set(REQUEST_ID, id.clone()));
    }
    if let Some(id) = identity {
        let all = id.headers.iter();
        // The assertion comes first; without convenience headers it is all.
        let n = if u.convenience { usize::MAX } else { 1 };
        edits.extend(all.take(n).map(|(name, v)| Edit::Set(name, v.clone())));
    }
    edits
}

/// The identity headers of one session with one signature, in the order
/// they are set, the assertion first: built once and shared by the session's
/// requests (see `identity::Assertions`), each of which then copies reference
/// counts, not bytes.
#[derive(Debug)]
pub struct IdentityHeaders(Vec<(&'static str, HeaderValue)>);

impl IdentityHeaders {
    /// Every header, convenience ones included (whether the app gets them is
    /// decided per request, see [`Upstream::convenience`]).
    pub fn new(s: &Session, assertion: HeaderValue) -> Self {
        let mut set = Vec::with_capacity(7);
        set.push((ASSERTION, assertion));
        let mut push = |name, v: Option<&str>| {
            if let Some(v) = v.and_then(safe_value) {
                set.push((name, v));
            }
        };
        push(USER, Some(s.user_key()));
        push(EMAIL, s.email());
        push(NAME, s.name());
        push(OID, Some(s.oid()));
        push(TID, Some(s.tid.as_str()));
        set.push((PORTAL, HeaderValue::from_static(s.portal_kind.as_str())));
        IdentityHeaders(set)
    }

    /// `X-Auth-Assertion`.
    pub fn assertion(&self) -> &HeaderValue {
        &self.0[0].1
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &HeaderValue)> {
        self.0.iter().map(|(name, v)| (*name, v))
    }
}

/// `v` as a header value, percent-encoded by [`header_safe`] where needed.
/// Most values need nothing: they are copied once, with no `String` between.
fn safe_value(v: &str) -> Option<HeaderValue> {
    if v.bytes().all(is_header_safe)
        && let Ok(h) = HeaderValue::from_str(v)
    {
        Some(h)
    } else {
        HeaderValue::try_from(header_safe(v)).ok()
    }
}

fn is_header_safe(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'%'
}

fn value(v: impl AsRef<str>) -> Option<HeaderValue> {
    HeaderValue::from_str(v.as_ref()).ok()
}

fn set(edits: &mut Vec<Edit>, name: &'static str, v: String) {
    if let Ok(v) = HeaderValue::try_from(v) {
        edits.push(Edit::Set(name, v));
    }
}

/// Header values must be visible ASCII; names with other characters are
/// carried in the signed assertion only, and percent-encoded here.
pub fn header_safe(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if is_header_safe(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_x_auth_header() {
        let mut h = HeaderMap::new();
        h.insert("x-auth-email", "evil@example.com".parse().unwrap());
        h.insert("X-Auth-Whatever", "1".parse().unwrap());
        h.insert("x_auth_user", "victim".parse().unwrap());
        h.insert("authorization", "Bearer x".parse().unwrap());
        h.insert("x-authority", "keep".parse().unwrap());
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        let mut rules = HeaderRules {
            trusted_peer: true,
            strip_authorization: false,
            allow_underscore: &[],
        };
        let mut s: Vec<_> = headers_to_drop(&h, &rules).iter().map(|n| n.to_string()).collect();
        s.sort();
        assert_eq!(s, ["x-auth-email", "x-auth-whatever", "x_auth_user"]);
        rules.strip_authorization = true;
        rules.trusted_peer = false;
        assert_eq!(headers_to_drop(&h, &rules).len(), 5);
    }

    proptest::proptest! {
        /// The copy-once path gives what percent-encoding always gave.
        #[test]
        fn identity_values_are_header_safes_for_any_string(v in "\\PC{0,40}|[ -~]{0,40}") {
            let want = HeaderValue::try_from(header_safe(&v)).unwrap();
            proptest::prop_assert_eq!(safe_value(&v), Some(want));
        }
    }

    #[test]
    fn header_values_are_ascii() {
        assert_eq!(header_safe("Zoë 100%"), "Zo%C3%AB 100%25");
        assert_eq!(header_safe("a\r\nb"), "a%0D%0Ab");
    }

    fn names(edits: &[Edit]) -> Vec<String> {
        edits
            .iter()
            .map(|e| match e {
                Edit::Remove(n) => format!("-{n}"),
                Edit::Set(n, v) => format!("{}: {}", n.to_ascii_lowercase(), v.to_str().unwrap()),
            })
            .collect()
    }

    fn facts(trusted_peer: bool) -> Upstream<'static> {
        Upstream {
            rules: HeaderRules {
                trusted_peer,
                strip_authorization: false,
                allow_underscore: &[],
            },
            cookie_base: "egw",
            peer_ip: Some("10.0.0.9".parse().unwrap()),
            https: true,
            host: Some("halo.example.com"),
            convenience: true,
            request_id: None,
        }
    }

    #[test]
    fn gateway_cookies_and_spoofed_forwarding_never_reach_the_app() {
        let mut h = HeaderMap::new();
        h.append("cookie", "app=1; egw_agent=secret".parse().unwrap());
        h.append("cookie", "__Host-egw_login_abc=x; other=2".parse().unwrap());
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        h.insert("x-forwarded-host", "evil.example".parse().unwrap());
        h.insert("x-auth-user", "victim".parse().unwrap());
        let untrusted = names(&upstream_edits(&h, &facts(false), None));
        // Removals come before anything is set (a set name may be one removed).
        let first_set = untrusted.iter().position(|e| !e.starts_with('-')).unwrap();
        assert!(
            untrusted[first_set..]
                .iter()
                .all(|e| !e.starts_with('-') || e == "-x-forwarded-host")
        );
        assert!(
            untrusted.contains(&"cookie: app=1; other=2".to_string()),
            "{untrusted:?}"
        );
        assert!(untrusted.contains(&"x-forwarded-for: 10.0.0.9".to_string()));
        assert!(untrusted.contains(&"x-forwarded-host: halo.example.com".to_string()));
        assert!(untrusted.contains(&"-x-auth-user".to_string()));
        // A trusted proxy's forwarding headers are extended, not replaced.
        let trusted = names(&upstream_edits(&h, &facts(true), None));
        assert!(
            trusted.contains(&"x-forwarded-for: 6.6.6.6, 10.0.0.9".to_string()),
            "{trusted:?}"
        );
        assert!(trusted.contains(&"x-forwarded-host: evil.example".to_string()));
        assert!(!trusted.contains(&"-x-forwarded-for".to_string()));
        // Only gateway cookies: the header goes entirely.
        let mut only = HeaderMap::new();
        only.insert("cookie", "egw_agent=secret".parse().unwrap());
        let e = names(&upstream_edits(&only, &facts(false), None));
        assert!(
            e.contains(&"-cookie".to_string()) && !e.iter().any(|x| x.starts_with("cookie:")),
            "{e:?}"
        );
    }

    #[test]
    fn the_gateways_request_id_replaces_the_clients() {
        let mut h = HeaderMap::new();
        h.insert("x-request-id", "spoofed".parse().unwrap());
        let id = HeaderValue::from_static("0123456789abcdef0123456789abcdef");
        let with = Upstream {
            request_id: Some(&id),
            ..facts(false)
        };
        let e = names(&upstream_edits(&h, &with, None));
        assert!(
            e.contains(&"x-request-id: 0123456789abcdef0123456789abcdef".to_string()),
            "{e:?}"
        );
        assert!(!e.iter().any(|x| x.contains("spoofed")), "{e:?}");
    }

    #[test]
    fn identity_headers_and_the_assertion_only_option() {
        // Through the stored JSON form, as the store hands sessions over.
        let session = serde_json::from_value(serde_json::json!({
            "portal": "agent", "portal_kind": "agent",
            "tid": "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa", "oid": "a11ce000-0000-4000-8000-000000000001",
            "sub": "s", "issuer": "https://login.example/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa/v2.0",
            "name": "Zoë Ünicode", "email": "zoe@contoso.example", "sid": null, "login_hint": null,
            "user_key": "zoe", "client": null, "created_at": 0, "last_seen": 0, "absolute_expiry": 0,
            "idle_timeout_secs": 0, "remember_me": false, "csrf": "c", "new_user": false
        }))
        .unwrap();
        let id = Identity {
            headers: std::sync::Arc::new(IdentityHeaders::new(&session, HeaderValue::from_static("eyJ.a.b"))),
            session: std::sync::Arc::new(session),
        };
        let all = names(&upstream_edits(&HeaderMap::new(), &facts(false), Some(&id)));
        for want in [
            "x-auth-assertion: eyJ.a.b",
            "x-auth-user: zoe",
            "x-auth-email: zoe@contoso.example",
            "x-auth-name: Zo%C3%AB %C3%9Cnicode",
            "x-auth-oid: a11ce000-0000-4000-8000-000000000001",
            "x-auth-tid: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa",
            "x-auth-portal: agent",
        ] {
            assert!(all.contains(&want.to_string()), "{want} missing from {all:?}");
        }
        let lean = Upstream {
            convenience: false,
            ..facts(false)
        };
        let only = names(&upstream_edits(&HeaderMap::new(), &lean, Some(&id)));
        let auth: Vec<_> = only.iter().filter(|e| e.starts_with("x-auth-")).collect();
        assert_eq!(auth, ["x-auth-assertion: eyJ.a.b"]);
    }
}
