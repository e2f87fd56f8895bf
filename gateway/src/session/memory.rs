//! The embedded store of a single instance.

use super::*;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionId, (Session, Instant)>,
    logins: HashMap<String, (LoginRecord, Instant)>,
    values: HashMap<String, String>,
    writes: u64,
}

impl Inner {
    /// Expired entries are dropped now and then on write, so memory stays
    /// bounded by what is live.
    fn sweep(&mut self) {
        self.writes += 1;
        if self.writes.is_multiple_of(1024) {
            let now = Instant::now();
            self.sessions.retain(|_, (_, exp)| *exp > now);
            self.logins.retain(|_, (_, exp)| *exp > now);
        }
    }
}

#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps half-written
        // (every operation is a single insert/remove), so poison is harmless.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn session_count(&self) -> usize {
        self.lock().sessions.len()
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn put_session(
        &self,
        id: &SessionId,
        s: &Session,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        g.sweep();
        g.sessions
            .insert(id.clone(), (s.clone(), Instant::now() + ttl));
        Ok(())
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let mut g = self.lock();
        match g.sessions.get(id) {
            Some((s, exp)) if *exp > Instant::now() => Ok(Some(s.clone())),
            Some(_) => {
                g.sessions.remove(id);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn delete_session(&self, id: &SessionId) -> Result<(), StoreError> {
        self.lock().sessions.remove(id);
        Ok(())
    }

    async fn put_login(
        &self,
        state: &str,
        r: &LoginRecord,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let mut g = self.lock();
        g.sweep();
        g.logins
            .insert(state.to_string(), (r.clone(), Instant::now() + ttl));
        Ok(())
    }

    async fn take_login(&self, state: &str) -> Result<Option<LoginRecord>, StoreError> {
        Ok(self
            .lock()
            .logins
            .remove(state)
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(r, _)| r))
    }

    async fn get_or_init(&self, key: &str, candidate: &str) -> Result<String, StoreError> {
        Ok(self
            .lock()
            .values
            .entry(key.to_string())
            .or_insert_with(|| candidate.to_string())
            .clone())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}
