//! The local session cache: the authenticated fast path reads sessions from
//! here without a Redis round trip. Bounded in size and in staleness: an
//! entry is trusted for `session.local_cache_ttl` at most, the revocation
//! bus drops entries as soon as any instance ends a session, and past its
//! capacity the cache evicts one cold entry at a time (quick_cache's
//! CLOCK-Pro), never everything at once.

use super::{Session, SessionKey};
use crate::metrics::METRICS;
use quick_cache::sync::Cache;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct LocalCache {
    ttl: Duration,
    /// Shared, not copied: a hit costs a reference count, and an entry
    /// holds a pointer instead of a whole `Session`.
    map: Cache<SessionKey, (Arc<Session>, Instant)>,
}

impl LocalCache {
    pub fn new(ttl: Duration, max: usize) -> Self {
        LocalCache {
            ttl,
            // A disabled cache still needs a (tiny) map to hold nothing in.
            map: Cache::new(if ttl.is_zero() { 1 } else { max.max(1) }),
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

    pub fn put(&self, id: &SessionKey, s: &Arc<Session>) {
        if self.enabled() {
            self.map.insert(*id, (s.clone(), Instant::now()));
            self.report_size();
        }
    }

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
        let short = LocalCache::new(Duration::from_millis(20), 1000);
        short.put(&id, &s);
        assert!(short.get(&id).is_some());
        std::thread::sleep(Duration::from_millis(30));
        assert!(short.get(&id).is_none());
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
