//! Where the builtin directory keeps its records: a map of records by key
//! and two index maps (identity → key, email → key), with real deletes.
//! [`MemoryRecords`] for a single instance, [`RedisRecords`](super::redis_records::RedisRecords)
//! (Redis hashes) when instances share a store.
//!
//! Indexes are hints the directory verifies against the record on every
//! read (see `builtin`), so a backend needs no transactions: each call is
//! one atomic step.

use super::DirectoryError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// The two lookups a record is indexed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Index {
    /// `<tid>:<oid>`, both lower-case.
    Identity,
    /// The email, lower-case.
    Email,
}

#[async_trait]
pub trait RecordStore: Send + Sync + 'static {
    /// The record (JSON) under this key.
    async fn record(&self, key: &str) -> Result<Option<String>, DirectoryError>;
    async fn put_record(&self, key: &str, json: &str) -> Result<(), DirectoryError>;
    /// Every record key, in no particular order.
    async fn keys(&self) -> Result<Vec<String>, DirectoryError>;
    /// The key an index entry points at.
    async fn lookup(&self, index: Index, entry: &str) -> Result<Option<String>, DirectoryError>;
    async fn point(&self, index: Index, entry: &str, key: &str) -> Result<(), DirectoryError>;
    /// Removes the entry if it still points at `key` (and not at a record
    /// that took it over meanwhile).
    async fn release(&self, index: Index, entry: &str, key: &str) -> Result<(), DirectoryError>;
}

#[derive(Default)]
pub struct MemoryRecords {
    inner: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    records: HashMap<String, String>,
    indexes: HashMap<(Index, String), String>,
}

impl MemoryRecords {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Maps> {
        // Every operation is one insert/remove: poison is harmless.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl RecordStore for MemoryRecords {
    async fn record(&self, key: &str) -> Result<Option<String>, DirectoryError> {
        Ok(self.lock().records.get(key).cloned())
    }

    async fn put_record(&self, key: &str, json: &str) -> Result<(), DirectoryError> {
        self.lock().records.insert(key.to_string(), json.to_string());
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<String>, DirectoryError> {
        Ok(self.lock().records.keys().cloned().collect())
    }

    async fn lookup(&self, index: Index, entry: &str) -> Result<Option<String>, DirectoryError> {
        Ok(self.lock().indexes.get(&(index, entry.to_string())).cloned())
    }

    async fn point(&self, index: Index, entry: &str, key: &str) -> Result<(), DirectoryError> {
        self.lock().indexes.insert((index, entry.to_string()), key.to_string());
        Ok(())
    }

    async fn release(&self, index: Index, entry: &str, key: &str) -> Result<(), DirectoryError> {
        let mut g = self.lock();
        let slot = (index, entry.to_string());
        if g.indexes.get(&slot).map(String::as_str) == Some(key) {
            g.indexes.remove(&slot);
        }
        Ok(())
    }
}
