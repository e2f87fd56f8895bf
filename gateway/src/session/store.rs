//! What the gateway keeps between requests, as four small traits: each
//! caller names the one it needs. [`MemoryStore`](super::MemoryStore) and
//! [`RedisStore`](super::RedisStore) implement them all ([`Store`]), and
//! [`MeteredStore`](super::MeteredStore) counts every call.
//!
//! Implementations must be safe to share between instances: a login state
//! is taken atomically (single use), a value initialised once.

use super::{LoginRecord, Session, SessionKey};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// A message on the revocation bus.
#[derive(Debug, Clone, PartialEq)]
pub enum Revocation {
    Session(SessionKey),
    /// The bus was disconnected: messages may have been missed, drop all.
    Flush,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("corrupt record in session store: {0}")]
    Corrupt(String),
}

/// Signed-in sessions, by key, with the indexes logout needs.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn put_session(&self, id: &SessionKey, s: &Session, ttl: Duration) -> Result<(), StoreError>;
    /// The write that keeps a used session alive (`last_seen` moved on). A
    /// write like any other today; its own name so that it is counted apart.
    async fn touch_session(&self, id: &SessionKey, s: &Session, ttl: Duration) -> Result<(), StoreError> {
        self.put_session(id, s, ttl).await
    }
    /// Shared, not copied: the memory store hands out the record it holds.
    async fn get_session(&self, id: &SessionKey) -> Result<Option<Arc<Session>>, StoreError>;
    async fn delete_session(&self, id: &SessionKey) -> Result<(), StoreError>;
    /// Live sessions indexed under an ID token `sid` (front-channel logout).
    async fn sessions_by_sid(&self, sid: &str) -> Result<Vec<SessionKey>, StoreError>;
    /// Live sessions of a user (directory key).
    async fn sessions_by_user(&self, user: &str) -> Result<Vec<SessionKey>, StoreError>;
}

/// Sign-ins under way: what the callback needs to finish one.
#[async_trait]
pub trait LoginStates: Send + Sync + 'static {
    async fn put_login(&self, state: &str, r: &LoginRecord, ttl: Duration) -> Result<(), StoreError>;
    /// Returns the record and removes it, atomically: a state works once.
    async fn take_login(&self, state: &str) -> Result<Option<LoginRecord>, StoreError>;
}

/// Values every instance shares (the signing key, the CSP tenant list) and
/// leases for jobs only one instance should run.
#[async_trait]
pub trait SharedValues: Send + Sync + 'static {
    /// Stores `candidate` unless a value exists; returns the value in force.
    async fn get_or_init(&self, key: &str, candidate: &str) -> Result<String, StoreError>;
    /// Without expiry.
    async fn put_value(&self, key: &str, value: &str) -> Result<(), StoreError>;
    async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Takes a lease for `ttl` unless another holder has it: one instance
    /// does a periodic job, the others skip it.
    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, StoreError>;
}

/// How every instance learns that a session ended somewhere.
#[async_trait]
pub trait RevocationBus: Send + Sync + 'static {
    /// Tells every instance that a session ended.
    async fn publish_revocation(&self, id: &SessionKey) -> Result<(), StoreError>;
    /// Revocations published by any instance, for this instance's cache; None
    /// when the store has no bus (a single in-memory instance needs none).
    fn revocations(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Revocation>>;
}

/// One backend that is all four, as configured by `session.store`.
#[async_trait]
pub trait Store: SessionStore + LoginStates + SharedValues + RevocationBus {
    async fn ping(&self) -> Result<(), StoreError>;
    fn kind(&self) -> &'static str;
}
