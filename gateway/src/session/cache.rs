//! The local session cache: the authenticated fast path reads sessions from
//! here without a Redis round trip. Bounded in size and in staleness: an
//! entry is trusted for `session.local_cache_ttl` at most, and the revocation
//! bus drops entries as soon as any instance ends a session.

use super::{Session, SessionKey};
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
        let g = self.lock();
        g.get(id)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(s, _)| s.clone())
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
    }

    pub fn remove(&self, id: &SessionKey) {
        self.lock().remove(id);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
