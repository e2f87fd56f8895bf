//! Sessions in Redis, shared by every instance.
//!
//! Keys: `<prefix>s:{<id>}` (session), `<prefix>l:{<state>}` (pending login),
//! `<prefix>v:<name>` (shared values such as the assertion signing key). The
//! braces are Cluster hash tags, so keys that later move together (a session
//! and its indexes) can share a slot.

use super::*;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

pub struct RedisStore {
    conn: ConnectionManager,
    prefix: String,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    // The error text of the redis crate never contains values we sent.
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Connects (with a bounded wait) to a standalone Redis.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        let client =
            redis::Client::open(url).map_err(|e| StoreError::Unavailable(format!("bad redis_url: {:?}", e.kind())))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2);
        let conn = tokio::time::timeout(
            Duration::from_secs(10),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| StoreError::Unavailable("timed out connecting to Redis".into()))?
        .map_err(unavailable)?;
        Ok(RedisStore {
            conn,
            prefix: prefix.to_string(),
        })
    }

    fn session_key(&self, id: &SessionId) -> String {
        format!("{}s:{{{}}}", self.prefix, id.as_str())
    }

    fn login_key(&self, state: &str) -> String {
        format!("{}l:{{{state}}}", self.prefix)
    }
}

fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

fn decode<T: serde::de::DeserializeOwned>(raw: Option<String>) -> Result<Option<T>, StoreError> {
    raw.map(|s| serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

fn encode<T: Serialize>(v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl Store for RedisStore {
    async fn put_session(&self, id: &SessionId, s: &Session, ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        c.set_ex::<_, _, ()>(self.session_key(id), encode(s)?, ttl_secs(ttl))
            .await
            .map_err(unavailable)
    }

    async fn get_session(&self, id: &SessionId) -> Result<Option<Session>, StoreError> {
        let mut c = self.conn.clone();
        decode(c.get(self.session_key(id)).await.map_err(unavailable)?)
    }

    async fn delete_session(&self, id: &SessionId) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        c.del::<_, ()>(self.session_key(id)).await.map_err(unavailable)
    }

    async fn put_login(&self, state: &str, r: &LoginRecord, ttl: Duration) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        c.set_ex::<_, _, ()>(self.login_key(state), encode(r)?, ttl_secs(ttl))
            .await
            .map_err(unavailable)
    }

    async fn take_login(&self, state: &str) -> Result<Option<LoginRecord>, StoreError> {
        let mut c = self.conn.clone();
        // GETDEL is atomic: two instances racing on one callback, one wins.
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(self.login_key(state))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        decode(raw)
    }

    async fn get_or_init(&self, key: &str, candidate: &str) -> Result<String, StoreError> {
        let mut c = self.conn.clone();
        let k = format!("{}v:{key}", self.prefix);
        let _: bool = c.set_nx(&k, candidate).await.map_err(unavailable)?;
        let v: Option<String> = c.get(&k).await.map_err(unavailable)?;
        v.ok_or_else(|| StoreError::Unavailable("value vanished right after SETNX".into()))
    }

    async fn put_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        c.set::<_, _, ()>(format!("{}v:{key}", self.prefix), value)
            .await
            .map_err(unavailable)
    }

    async fn get_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let mut c = self.conn.clone();
        c.get(format!("{}v:{key}", self.prefix)).await.map_err(unavailable)
    }

    async fn try_lease(&self, key: &str, ttl: Duration) -> Result<bool, StoreError> {
        let mut c = self.conn.clone();
        let taken: Option<String> = redis::cmd("SET")
            .arg(format!("{}lease:{key}", self.prefix))
            .arg(std::process::id())
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        Ok(taken.is_some())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    fn kind(&self) -> &'static str {
        "redis"
    }
}
