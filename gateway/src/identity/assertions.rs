//! The assertion of each session, signed at most once per lifetime: the
//! signature is kept with the session's entry in the local session cache
//! (the JWT itself is rebuilt from the session, see
//! [`AssertionSigner::render`]), so it goes wherever the session goes (ended,
//! revoked, evicted). It is kept for the session's second-factor state:
//! `mfa` is the one claim that changes while a session lives (`pending` →
//! `totp`), and a signature made before the change can never be paired with
//! the claims after it, on this instance or any other.

use super::signer::AssertionSigner;
use crate::metrics::METRICS;
use crate::session::cache::LocalCache;
use crate::session::{Session, SessionKey, now_unix};
use std::sync::Arc;

/// Re-sign an assertion when less than this is left of its lifetime.
const RESIGN_MARGIN_SECS: i64 = 60;

pub struct Assertions {
    pub signer: AssertionSigner,
    /// The sessions' cache, whose entries keep the signatures. Bounded: past
    /// its capacity one cold entry goes at a time (a signature is re-signable
    /// on demand), never all at once.
    cache: Arc<LocalCache>,
}

impl Assertions {
    pub fn new(signer: AssertionSigner, cache: Arc<LocalCache>) -> Self {
        Assertions { signer, cache }
    }

    /// The assertion for a session, signed at most once per lifetime.
    pub fn for_session(&self, id: &SessionKey, s: &Session) -> Option<String> {
        let now = now_unix();
        let cached = self
            .cache
            .signed(id, s.mfa)
            .filter(|a| a.exp - now > RESIGN_MARGIN_SECS);
        let signed = match cached {
            Some(a) => {
                METRICS.assertion_cache.hit.inc();
                a
            }
            None => {
                METRICS.assertion_cache.miss.inc();
                let a = match self.signer.sign(s, now) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!(event = "assertion_sign_failed", error = %e);
                        return None;
                    }
                };
                self.cache.keep_signed(id, s.mfa, a);
                a
            }
        };
        self.signer
            .render(s, &signed)
            .inspect_err(|e| tracing::error!(event = "assertion_sign_failed", error = %e))
            .ok()
    }

    /// Signed for this request only, not cached: the assertion that carries
    /// `new_user: true` once.
    pub fn uncached(&self, s: &Session) -> Option<String> {
        self.signer
            .sign(s, now_unix())
            .and_then(|a| self.signer.render(s, &a))
            .ok()
    }
}
