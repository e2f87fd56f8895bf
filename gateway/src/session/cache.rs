//! The local session cache: the authenticated fast path reads sessions from
//! here without a Redis round trip. Bounded in size and in staleness: an
//! entry is trusted for `session.local_cache_ttl` at most, the revocation
//! bus drops entries as soon as any instance ends a session, and past its
//! capacity the cache evicts one cold entry at a time (quick_cache's
//! CLOCK-Pro), never everything at once.
//!
//! The same entry keeps the session's assertion signature (see
//! `identity::Assertions`, which makes and renews it): one map keyed by the
//! session instead of two, so a session costs one key, one slot and one
//! bucket (issue 13's "≤ 1 KiB per session"), and whatever drops a session
//! (an end, a revocation, eviction) drops its signature with it. With the
//! memory store (no cached sessions: the store is read in place) entries
//! hold only the signature.

use super::{Session, SessionKey};
use crate::identity::signer::Signed;
use crate::metrics::METRICS;
use policy::two_factor::Mfa;
use quick_cache::sync::{Cache, EntryAction, EntryResult};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct LocalCache {
    ttl: Duration,
    map: Cache<SessionKey, Entry>,
}

#[derive(Clone)]
struct Entry {
    /// Shared, not copied: a hit costs a reference count. When it was put.
    session: Option<(Arc<Session>, Instant)>,
    /// Signed for the session in this second-factor state (`mfa` is the one
    /// claim that changes while a session lives: a signature made before the
    /// 2FA step is never paired with the claims after it).
    signed: Option<(Mfa, Signed)>,
}

impl LocalCache {
    /// `ttl` zero: no sessions are cached (signatures still are).
    pub fn new(ttl: Duration, max: usize) -> Self {
        LocalCache {
            ttl,
            map: Cache::new(max.max(1)),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn get(&self, id: &SessionKey) -> Option<Arc<Session>> {
        if !self.enabled() {
            return None;
        }
        let found = self
            .map
            .get(id)
            .and_then(|e| e.session)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(s, _)| s);
        let counter = if found.is_some() {
            &METRICS.session_cache.hit
        } else {
            &METRICS.session_cache.miss
        };
        counter.inc();
        found
    }

    /// With Redis, what this instance can know of the sessions in use (see
    /// `entra_gateway_sessions_active`); a disabled cache leaves the gauge
    /// to the memory store, which holds every session.
    fn report_size(&self) {
        if self.enabled() {
            METRICS.sessions_active.set(self.map.len() as i64);
        }
    }

    /// Changes an entry in place, under the map's lock (so a concurrent
    /// change of the entry's other half is never lost), or makes it.
    fn update(&self, id: &SessionKey, change: impl FnOnce(&mut Entry)) {
        let mut change = Some(change);
        let result = self.map.entry(id, None, |_, e| {
            if let Some(change) = change.take() {
                change(e);
            }
            EntryAction::Retain(())
        });
        if let EntryResult::Vacant(guard) = result {
            let mut e = Entry {
                session: None,
                signed: None,
            };
            if let Some(change) = change.take() {
                change(&mut e);
            }
            let _ = guard.insert(e);
        }
    }

    pub fn put(&self, id: &SessionKey, s: &Arc<Session>) {
        if self.enabled() {
            let s = s.clone();
            self.update(id, |e| e.session = Some((s, Instant::now())));
            self.report_size();
        }
    }

    /// The signature kept for this session in this second-factor state.
    pub fn signed(&self, id: &SessionKey, mfa: Mfa) -> Option<Signed> {
        self.map
            .get(id)
            .and_then(|e| e.signed)
            .filter(|(for_mfa, _)| *for_mfa == mfa)
            .map(|(_, signed)| signed)
    }

    /// Keeps a signature made for this session in this second-factor state
    /// (replacing the one before, of this state or another).
    pub fn keep_signed(&self, id: &SessionKey, mfa: Mfa, signed: Signed) {
        self.update(id, |e| e.signed = Some((mfa, signed)));
    }

    /// The session and its signature.
    pub fn remove(&self, id: &SessionKey) {
        self.map.remove(id);
        self.report_size();
    }

    pub fn clear(&self) {
        self.map.clear();
        self.report_size();
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

    fn session() -> Arc<Session> {
        let raw = r#"{"portal":"agent","portal_kind":"agent","tid":"aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa","oid":"o1","sub":"s1","issuer":"i","name":null,"email":null,"sid":null,"login_hint":null,"user_key":"ann","client":null,"created_at":1,"last_seen":1,"absolute_expiry":2,"idle_timeout_secs":1,"remember_me":false,"csrf":"c","new_user":false}"#;
        Arc::new(serde_json::from_str(raw).unwrap())
    }

    #[test]
    fn past_capacity_one_entry_goes_not_all() {
        let cache = LocalCache::new(Duration::from_secs(60), 1000);
        let s = session();
        let ids: Vec<SessionKey> = (0..5000).map(|_| SessionId::generate().key()).collect();
        for id in &ids {
            cache.put(id, &s);
            // Never emptied in one go: what was just put is there.
            assert!(cache.get(id).is_some());
            assert!(cache.len() <= 1000);
        }
        // Most of the capacity stays in use after the churn.
        assert!(cache.len() > 500, "{}", cache.len());
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_caches_nothing() {
        let s = session();
        let id = SessionId::generate().key();
        let off = LocalCache::new(Duration::ZERO, 1000);
        off.put(&id, &s);
        assert!(off.get(&id).is_none() && off.is_empty());
        // Long enough that a preempted test thread still reads it in time.
        let short = LocalCache::new(Duration::from_millis(500), 1000);
        short.put(&id, &s);
        assert!(short.get(&id).is_some());
        std::thread::sleep(Duration::from_millis(600));
        assert!(short.get(&id).is_none());
    }

    fn signer() -> crate::identity::AssertionSigner {
        crate::identity::AssertionSigner::for_tests()
    }

    /// One entry holds a session and its signature: neither half's update
    /// loses the other, the signature is only ever handed out for the
    /// second-factor state it was made in, and removing the session
    /// removes its signature.
    #[test]
    fn a_signature_is_kept_with_its_session_for_its_mfa_only() {
        let (signer, s) = (signer(), session());
        let jwt = |signed: Signed| signer.render(&s, &signed).unwrap();
        let cache = LocalCache::new(Duration::from_secs(60), 10);
        let (id, other) = (SessionId::generate().key(), SessionId::generate().key());
        cache.put(&id, &s);
        let before = signer.sign(&s, 1000).unwrap();
        cache.keep_signed(&id, Mfa::None, before);
        assert!(cache.get(&id).is_some(), "the session stays");
        assert_eq!(cache.signed(&id, Mfa::None).map(jwt), Some(jwt(before)));
        assert!(cache.signed(&id, Mfa::Totp).is_none(), "not for another state");
        assert!(cache.signed(&other, Mfa::None).is_none(), "nor another session");
        // A touch puts the session again: the signature stays.
        cache.put(&id, &s);
        assert_eq!(cache.signed(&id, Mfa::None).map(jwt), Some(jwt(before)));
        // The second factor done: the new state's signature replaces it.
        let after = signer.sign(&s, 1001).unwrap();
        cache.keep_signed(&id, Mfa::Totp, after);
        assert!(cache.signed(&id, Mfa::None).is_none());
        assert_eq!(cache.signed(&id, Mfa::Totp).map(jwt), Some(jwt(after)));
        assert_eq!(cache.len(), 1, "one entry per session");
        cache.remove(&id);
        assert!(cache.get(&id).is_none() && cache.signed(&id, Mfa::Totp).is_none());
        // Cleared (revocations missed): nothing signed survives either.
        cache.keep_signed(&id, Mfa::None, before);
        cache.clear();
        assert!(cache.signed(&id, Mfa::None).is_none());
    }

    /// The memory store caches no sessions (it is read in place), but
    /// signatures are still kept.
    #[test]
    fn with_sessions_uncached_signatures_are_still_kept() {
        let (signer, s) = (signer(), session());
        let cache = LocalCache::new(Duration::ZERO, 10);
        let id = SessionId::generate().key();
        cache.put(&id, &s);
        assert!(cache.get(&id).is_none());
        cache.keep_signed(&id, Mfa::None, signer.sign(&s, 1000).unwrap());
        assert!(cache.signed(&id, Mfa::None).is_some());
        assert!(cache.get(&id).is_none(), "a signature is not a cached session");
    }

    /// Counters are process-wide and tests run in parallel: only growth is
    /// asserted, never exact values.
    #[test]
    fn lookups_are_counted_as_hits_and_misses() {
        let cache = LocalCache::new(Duration::from_secs(60), 10);
        let (id, other) = (SessionId::generate().key(), SessionId::generate().key());
        cache.put(&id, &session());
        let (hits, misses) = (METRICS.session_cache.hit.get(), METRICS.session_cache.miss.get());
        assert!(cache.get(&id).is_some());
        assert!(cache.get(&other).is_none());
        assert!(METRICS.session_cache.hit.get() > hits);
        assert!(METRICS.session_cache.miss.get() > misses);
        cache.remove(&id);
        assert!(cache.get(&id).is_none());
        assert!(cache.is_empty());
    }
}
