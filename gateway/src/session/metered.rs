//! Every store call counted: `store_ops{op}` per call, `store_errors{op}`
//! and a `store_error` log line per failure. A decorator over the backend,
//! so a call site cannot forget it.

use super::store::{LoginStates, Revocation, RevocationBus, SessionStore, SharedValues, Store, StoreError};
use super::{LoginRecord, Session, SessionKey};
use crate::metrics::METRICS;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    pub fn wrap(inner: Arc<dyn Store>) -> Arc<dyn Store> {
        Arc::new(MeteredStore { inner })
    }
}

/// `op` is the metric label: dashboards and tests read these names.
async fn metered<T>(op: &'static str, fut: impl Future<Output = Result<T, StoreError>>) -> Result<T, StoreError> {
    METRICS.store_ops.with_label_values(&[op]).inc();
    let r = fut.await;
    if let Err(e) = &r {
        METRICS.store_errors.with_label_values(&[op]).inc();
        tracing::warn!(event = "store_error", op, error = %e);
    }
    r
}

#[async_trait]
impl SessionStore for MeteredStore {
    async fn put_session(&self, id: &SessionKey, s: &Session, ttl: Duration) -> Result<(), StoreError> {
        metered("put_session", self.inner.put_session(id, s, ttl)).await
    }

    async fn touch_session(&self, id: &SessionKey, s: &Session, ttl: Duration) -> Result<(), StoreError> {
        metered("touch_session", self.inner.touch_session(id, s, ttl)).await
    }

    async fn get_session(&self, id: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        metered("get_session", self.inner.get_session(id)).await
    }

    async fn delete_session(&self, id: &SessionKey) -> Result<(), StoreError> {
        metered("delete_session", self.inner.delete_session(id)).await
    }

    async fn sessions_by_sid(&self, sid: &str) -> Result<Vec<SessionKey>, StoreError> {
        metered("sessions_by_sid", self.inner.sessions_by_sid(sid)).await
    }

    async fn sessions_by_user(&self, user: &str) -> Result<Vec<SessionKey>, StoreError> {
        metered("sessions_by_user", self.inner.sessions_by_user(user)).await
    }
}

#[async_trait]
impl LoginStates for MeteredStore {
    async fn put_login(&self, state: &str, r: &LoginRecord, ttl: Duration) -> Result<(), StoreError> {
        metered("put_login", self.inner.put_login(state, r, ttl)).await
    }

    async fn take_login(&self, state: &str) -> Result<Option<LoginRecord>, StoreError> {
        metered("take_login", self.inner.take_login(state)).await
    }
}

#[async_trait]
impl SharedValues for MeteredStore {
    async fn get_or_init(&self, key: &str, candidate: &str) -> Result<String, StoreError> {
        metered("get_or_init", self.inner.get_or_init(key, candidate)).await
    }

    async fn put_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        metered("put_value", self.inner.put_value(key, value)).await
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        metered("get_value", self.inner.get_value(key)).await
    }

    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        metered("try_lease", self.inner.try_lease(key, ttl)).await
    }
}

#[async_trait]
impl RevocationBus for MeteredStore {
    async fn publish_revocation(&self, id: &SessionKey) -> Result<(), StoreError> {
        metered("publish_revocation", self.inner.publish_revocation(id)).await
    }

    fn revocations(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Revocation>> {
        self.inner.revocations()
    }
}

#[async_trait]
impl Store for MeteredStore {
    /// Not counted: readiness probes ping, and a probe is not a store
    /// operation of the gateway's (its failure shows as "not ready").
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{MemoryStore, SessionId};

    #[tokio::test]
    async fn every_call_is_counted_under_its_op() {
        let store = MeteredStore::wrap(Arc::new(MemoryStore::new()));
        let count = |op: &str| METRICS.store_ops.with_label_values(&[op]).get();
        let (get, take) = (count("get_session"), count("take_login"));
        store.get_session(&SessionId::generate().key()).await.unwrap();
        store.take_login("nope").await.unwrap();
        // Counters are process-wide and tests run in parallel: at least ours.
        assert!(count("get_session") > get);
        assert!(count("take_login") > take);
        assert_eq!(store.kind(), "memory");
    }
}
