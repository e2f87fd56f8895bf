//! The assertion of each session, signed at most once per lifetime: the
//! signature is cached per session (the JWT itself is rebuilt from the
//! session, see [`AssertionSigner::render`]).

use super::signer::{AssertionSigner, Signed};
use crate::metrics::METRICS;
use crate::session::sessions::SessionDerived;
use crate::session::{Session, SessionKey, now_unix};
use std::collections::HashMap;
use std::sync::Mutex;

/// Re-sign an assertion when less than this is left of its lifetime.
const RESIGN_MARGIN_SECS: i64 = 60;
const ASSERTION_CACHE_MAX: usize = 100_000;

pub struct Assertions {
    pub signer: AssertionSigner,
    cache: Mutex<HashMap<SessionKey, Signed>>,
}

impl Assertions {
    pub fn new(signer: AssertionSigner) -> Self {
        Assertions {
            signer,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, Signed>> {
        // Every operation is a single insert/remove/clear: poison is harmless.
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The assertion for a session, signed at most once per lifetime.
    pub fn for_session(&self, id: &SessionKey, s: &Session) -> Option<String> {
        let now = now_unix();
        let cached = self
            .lock()
            .get(id)
            .filter(|a| a.exp - now > RESIGN_MARGIN_SECS)
            .copied();
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
                let mut cache = self.lock();
                if cache.len() >= ASSERTION_CACHE_MAX {
                    // Crude but bounded: everything is re-signable on demand.
                    cache.clear();
                }
                cache.insert(*id, a);
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
        self.lock().remove(id);
    }

    fn forget_all(&self) {
        self.lock().clear();
    }
}
