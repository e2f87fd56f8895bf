//! The embedded store of a single instance. Keyed like the Redis store
//! (session digests, login-state digests), so a memory dump holds no cookie
//! value or pending state either.

use super::*;
use crate::metrics::METRICS;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::Instant;

#[derive(Default)]
struct Inner {
    sessions: HashMap<SessionKey, (Arc<Session>, Instant)>,
    logins: HashMap<String, (LoginRecord, Instant)>,
    values: HashMap<String, String>,
    leases: HashMap<String, Instant>,
    by_sid: HashMap<String, Vec<SessionKey>>,
    by_user: HashMap<String, Vec<SessionKey>>,
    writes: u64,
}

#[derive(Clone, Copy)]
enum Index {
    Sid,
    User,
}

impl Inner {
    /// Live members of an index entry; dead ones are pruned on the way.
    fn live(&mut self, which: Index, key: &str) -> Vec<SessionKey> {
        let now = Instant::now();
        let sessions = &self.sessions;
        let index = match which {
            Index::Sid => &mut self.by_sid,
            Index::User => &mut self.by_user,
        };
        let Some(ids) = index.get_mut(key) else {
            return Vec::new();
        };
        ids.retain(|id| sessions.get(id).is_some_and(|(_, e)| *e > now));
        ids.clone()
    }

    /// Expired entries are dropped now and then on write, so memory stays
    /// bounded by what is live.
    fn sweep(&mut self) {
        self.writes += 1;
        if self.writes.is_multiple_of(1024) {
            let now = Instant::now();
            self.sessions.retain(|_, (_, exp)| *exp > now);
            self.logins.retain(|_, (_, exp)| *exp > now);
            let sessions = &self.sessions;
            for index in [&mut self.by_sid, &mut self.by_user] {
                index.retain(|_, ids| {
                    ids.retain(|id| sessions.contains_key(id));
                    !ids.is_empty()
                });
            }
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
impl SessionStore for MemoryStore {
    async fn put_session(&self, id: &SessionKey, s: &Session, ttl: Duration) -> Result<(), StoreError> {
        let mut g = self.lock();
        g.sweep();
        g.sessions.insert(*id, (Arc::new(s.clone()), Instant::now() + ttl));
        if let Some(sid) = s.sid() {
            let v = g.by_sid.entry(sid.to_string()).or_default();
            if !v.contains(id) {
                v.push(*id);
            }
        }
        let v = g.by_user.entry(s.user_key().to_string()).or_default();
        if !v.contains(id) {
            v.push(*id);
        }
        METRICS.sessions_active.set(g.sessions.len() as i64);
        Ok(())
    }

    async fn get_session(&self, id: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
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

    async fn delete_session(&self, id: &SessionKey) -> Result<(), StoreError> {
        let mut g = self.lock();
        g.sessions.remove(id);
        METRICS.sessions_active.set(g.sessions.len() as i64);
        Ok(())
    }

    async fn sessions_by_sid(&self, sid: &str) -> Result<Vec<SessionKey>, StoreError> {
        Ok(self.lock().live(Index::Sid, sid))
    }

    async fn sessions_by_user(&self, user: &str) -> Result<Vec<SessionKey>, StoreError> {
        Ok(self.lock().live(Index::User, user))
    }
}

#[async_trait]
impl LoginStates for MemoryStore {
    async fn put_login(&self, state: &str, r: &LoginRecord, ttl: Duration) -> Result<(), StoreError> {
        let mut g = self.lock();
        g.sweep();
        g.logins.insert(state_digest(state), (r.clone(), Instant::now() + ttl));
        Ok(())
    }

    async fn take_login(&self, state: &str) -> Result<Option<LoginRecord>, StoreError> {
        Ok(self
            .lock()
            .logins
            .remove(&state_digest(state))
            .filter(|(_, exp)| *exp > Instant::now())
            .map(|(r, _)| r))
    }
}

#[async_trait]
impl SharedValues for MemoryStore {
    async fn get_or_init(&self, key: &str, candidate: &str) -> Result<String, StoreError> {
        Ok(self
            .lock()
            .values
            .entry(key.to_string())
            .or_insert_with(|| candidate.to_string())
            .clone())
    }

    async fn put_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.lock().values.insert(key.to_string(), value.to_string());
        Ok(())
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.lock().values.get(key).cloned())
    }

    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut g = self.lock();
        let now = Instant::now();
        match g.leases.get(key) {
            Some(until) if *until > now => Ok(false),
            _ => {
                g.leases.insert(key.to_string(), now + ttl);
                Ok(true)
            }
        }
    }
}

#[async_trait]
impl RevocationBus for MemoryStore {
    async fn publish_revocation(&self, _id: &SessionKey) -> Result<(), StoreError> {
        Ok(())
    }

    fn revocations(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Revocation>> {
        None
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(now: i64) -> Session {
        SessionRecord::<String> {
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
            created_at: now,
            last_seen: now,
            absolute_expiry: now + 100,
            idle_timeout_secs: 30,
            remember_me: false,
            csrf: "c".into(),
            new_user: false,
            mfa: Default::default(),
        }
        .try_into()
        .unwrap()
    }

    #[test]
    fn idle_and_absolute_timeouts() {
        let s = session(1000);
        assert_eq!(s.ttl_at(1000), 30, "idle bound first");
        assert!(s.is_live(1029) && !s.is_live(1030));
        let mut used = s.clone();
        used.last_seen = 1090;
        assert_eq!(used.ttl_at(1090), 10, "absolute bound wins near the end");
        assert!(!used.is_live(1100));
    }

    #[tokio::test]
    async fn entries_expire_and_logins_work_once() {
        let store = MemoryStore::new();
        let id = SessionId::generate().key();
        store
            .put_session(&id, &session(0), Duration::from_millis(500))
            .await
            .unwrap();
        assert!(store.get_session(&id).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(store.get_session(&id).await.unwrap().is_none(), "expired by TTL");

        let rec = LoginRecord {
            portal: "agent".into(),
            nonce: "n".into(),
            binding: "b".into(),
            pkce_verifier: None,
            return_to: "/".into(),
            remember_me: false,
            tenant: None,
            client: None,
            redirect_uri: "https://x/auth/account/azureresponse".into(),
            started_at: 0,
        };
        store.put_login("st", &rec, Duration::from_secs(60)).await.unwrap();
        assert_eq!(store.take_login("st").await.unwrap(), Some(rec));
        assert_eq!(store.take_login("st").await.unwrap(), None, "single use");
        assert_eq!(store.get_or_init("k", "first").await.unwrap(), "first");
        assert_eq!(store.get_or_init("k", "second").await.unwrap(), "first");
    }
}
