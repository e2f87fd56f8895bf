//! The builtin directory in Redis, as three hashes sharing one Cluster hash
//! tag (one slot, so a node holds the whole directory):
//!
//! | key | field → value |
//! |---|---|
//! | `<prefix>dir:{d}:users` | record key → record JSON |
//! | `<prefix>dir:{d}:ids` | `<tid>:<oid>` (lower-case) → record key |
//! | `<prefix>dir:{d}:emails` | email (lower-case) → record key |
//!
//! Listing is `HKEYS` of the records: no key list to rewrite. Directories
//! written by earlier versions (JSON values under `<prefix>v:dir:*`) are
//! moved in by `BuiltinDirectory::migrate_legacy`.

use super::DirectoryError;
use super::records::{Index, RecordStore};
use crate::session::redis_conn::RedisConn;
use async_trait::async_trait;
use redis::AsyncCommands;

pub struct RedisRecords {
    conn: RedisConn,
    users: String,
    ids: String,
    emails: String,
}

fn unavailable(e: redis::RedisError) -> DirectoryError {
    DirectoryError::Unavailable(format!("directory store: {e}"))
}

/// Deletes a field only while it still holds the expected value: a release
/// never removes an entry another record has just claimed.
const RELEASE: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
";

impl RedisRecords {
    pub fn new(conn: RedisConn, prefix: &str) -> Self {
        RedisRecords {
            conn,
            users: format!("{prefix}dir:{{d}}:users"),
            ids: format!("{prefix}dir:{{d}}:ids"),
            emails: format!("{prefix}dir:{{d}}:emails"),
        }
    }

    fn hash(&self, index: Index) -> &str {
        match index {
            Index::Identity => &self.ids,
            Index::Email => &self.emails,
        }
    }
}

#[async_trait]
impl RecordStore for RedisRecords {
    async fn record(&self, key: &str) -> Result<Option<String>, DirectoryError> {
        let mut c = self.conn.clone();
        c.hget(&self.users, key).await.map_err(unavailable)
    }

    async fn put_record(&self, key: &str, json: &str) -> Result<(), DirectoryError> {
        let mut c = self.conn.clone();
        c.hset::<_, _, _, ()>(&self.users, key, json).await.map_err(unavailable)
    }

    async fn keys(&self) -> Result<Vec<String>, DirectoryError> {
        let mut c = self.conn.clone();
        c.hkeys(&self.users).await.map_err(unavailable)
    }

    async fn lookup(&self, index: Index, entry: &str) -> Result<Option<String>, DirectoryError> {
        let mut c = self.conn.clone();
        c.hget(self.hash(index), entry).await.map_err(unavailable)
    }

    async fn point(&self, index: Index, entry: &str, key: &str) -> Result<(), DirectoryError> {
        let mut c = self.conn.clone();
        c.hset::<_, _, _, ()>(self.hash(index), entry, key)
            .await
            .map_err(unavailable)
    }

    async fn release(&self, index: Index, entry: &str, key: &str) -> Result<(), DirectoryError> {
        let mut c = self.conn.clone();
        // EVAL rather than a cached script: a release is rare (a record
        // changing its email or identity), and EVAL needs no SCRIPT LOAD.
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.hash(index))
            .arg(entry)
            .arg(key)
            .query_async::<i64>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }
}
