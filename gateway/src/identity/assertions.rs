//! The assertion of each session, signed at most once per lifetime: the
//! signature is cached per session and second-factor state (the JWT itself
//! is rebuilt from the session, see [`AssertionSigner::render`]). `mfa` is
//! the one claim that changes while a session lives (`pending` → `totp`):
//! keyed by it, a signature made before the change can never be paired with
//! the claims after it, on this instance or any other.

use super::signer::{AssertionSigner, Signed};
use crate::metrics::METRICS;
use crate::session::sessions::SessionDerived;
use crate::session::{Session, SessionKey, now_unix};
use policy::two_factor::Mfa;
use quick_cache::sync::Cache;

/// Re-sign an assertion when less than this is left of its lifetime.
const RESIGN_MARGIN_SECS: i64 = 60;
const ASSERTION_CACHE_MAX: usize = 100_000;

pub struct Assertions {
    pub signer: AssertionSigner,
    /// Bounded: past its capacity one cold signature goes at a time (each
    /// is re-signable on demand), never all at once.
    cache: Cache<(SessionKey, Mfa), Signed>,
}

impl Assertions {
    pub fn new(signer: AssertionSigner) -> Self {
        Assertions {
            signer,
            cache: Cache::new(ASSERTION_CACHE_MAX),
        }
    }

    /// The assertion for a session, signed at most once per lifetime.
    pub fn for_session(&self, id: &SessionKey, s: &Session) -> Option<String> {
        let now = now_unix();
        let key = (*id, s.mfa);
        let cached = self.cache.get(&key).filter(|a| a.exp - now > RESIGN_MARGIN_SECS);
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
                self.cache.insert(key, a);
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

impl SessionDerived for Assertions {
    fn forget(&self, id: &SessionKey) {
        for mfa in [Mfa::None, Mfa::Pending, Mfa::Totp, Mfa::Remembered, Mfa::Bypassed] {
            self.cache.remove(&(*id, mfa));
        }
    }

    fn forget_all(&self) {
        self.cache.clear();
    }
}
