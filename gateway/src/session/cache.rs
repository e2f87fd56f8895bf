//! The local session cache: the authenticated fast path reads sessions from
//! here without a Redis round trip. Bounded in size and in staleness: an
//! entry is trusted for `session.local_cache_ttl` at most, and the revocation
//! bus drops entries as soon as any instance ends a session.

use super::{Session, SessionKey};
use crate::metrics::METRICS;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct LocalCache {
    ttl: Duration,
    max: usize,
    /// Shared, not copied: a hit costs a reference count, and a map bucket
    /// holds a pointer instead of a whole `Session`.
    map: Mutex<HashMap<SessionKey, (Arc<Session>, Instant)>>,
}

impl LocalCache {
    pub fn new(ttl: Duration, max: usize) -> Self {
        LocalCache {
            ttl,
            max,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SessionKey, (Arc<Session>, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn get(&self, id: &SessionKey) -> Option<Arc<Session>> {
        if !self.enabled() {
            return None;
        }
        let found = self
            .lock()
            .get(id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(s, _)| s.clone());
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
    fn report_size(&self, len: usize) {
        if self.enabled() {
            METRICS.sessions_active.set(len as i64);
        }
    }

    pub fn put(&self, id: &SessionKey, s: &Arc<Session>) {
        if !self.enabled() {
            return;
        }
        let mut g = self.lock();
        if g.len() >= self.max {
            let ttl = self.ttl;
            g.retain(|_, (_, at)| at.elapsed() < ttl);
            if g.len() >= self.max {
                // Everything here can be re-read from the store.
                g.clear();
            }
        }
        g.insert(*id, (s.clone(), Instant::now()));
        self.report_size(g.len());
    }

    pub fn remove(&self, id: &SessionKey) {
        let mut g = self.lock();
        g.remove(id);
        self.report_size(g.len());
    }

    pub fn clear(&self) {
        let mut g = self.lock();
        g.clear();
        self.report_size(0);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
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
        Arc::new(Session {
            portal: "agent".into(),
            portal_kind: policy::PortalKind::Agent,
            tid: "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa".parse().unwrap(),
            oid: "o".into(),
            sub: "s".into(),
            issuer: "i".into(),
            name: None,
            email: None,
            sid: None,
            login_hint: None,
            user_key: "t:o".into(),
            client: None,
            created_at: 0,
            last_seen: 0,
            absolute_expiry: 100,
            idle_timeout_secs: 30,
            remember_me: false,
            csrf: "c".into(),
            new_user: false,
        })
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
