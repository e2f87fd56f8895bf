//! Sessions in Redis, shared by every instance.
//!
//! Keys: `<prefix>s:{<key>}` (session), `<prefix>l:{<state digest>}`
//! (pending login), `<prefix>v:<name>` (shared values such as the assertion
//! signing key). A session is named by its [`SessionKey`] (SHA-256 of the
//! cookie's id, hex) in its key, in the `sid:`/`user:` index sets and on the
//! revocation bus, and a login by the SHA-256 of its state: neither a cookie
//! value nor a pending state is ever sent to Redis, so reading Redis (a
//! replica, a backup, `MONITOR`, the bus) hands out nothing that signs in.
//! The braces are Cluster hash tags: a key's slot is decided by the digest
//! alone, so the prefix never moves keys between slots. No command or pipeline touches
//! two slots (Cluster would refuse it): a session and its `sid:`/`user:`
//! indexes are written by one small pipeline per key.

use super::codec::{self, Kind, encode};
use super::redis_conn::{RedisConn, Subscriber};
use super::*;
use crate::config::RedisTarget;
use crate::metrics::METRICS;
use async_trait::async_trait;
use redis::AsyncCommands;
use std::sync::Arc;
use std::time::Duration;

pub struct RedisStore {
    conn: RedisConn,
    subscriber: Subscriber,
    prefix: String,
}

fn unavailable(e: redis::RedisError) -> StoreError {
    // The error text of the redis crate never contains values we sent.
    StoreError::Unavailable(e.to_string())
}

impl RedisStore {
    /// Connects (with a bounded wait) to a standalone server, a Sentinel
    /// group's master or a Cluster.
    pub async fn connect(target: &RedisTarget, prefix: &str) -> Result<Self, StoreError> {
        let (conn, subscriber) = tokio::time::timeout(Duration::from_secs(10), RedisConn::connect(target))
            .await
            .map_err(|_| StoreError::Unavailable(format!("timed out connecting to Redis ({})", target.kind())))?
            .map_err(unavailable)?;
        Ok(RedisStore {
            conn,
            subscriber,
            prefix: prefix.to_string(),
        })
    }

    /// The builtin directory's records, on this store's connection.
    pub fn directory_records(&self) -> crate::directory::redis_records::RedisRecords {
        crate::directory::redis_records::RedisRecords::new(self.conn.clone(), &self.prefix)
    }

    fn session_key(&self, id: &SessionKey) -> String {
        format!("{}s:{{{id}}}", self.prefix)
    }

    fn sid_key(&self, sid: &str) -> String {
        format!("{}sid:{{{sid}}}", self.prefix)
    }

    fn user_key(&self, user: &str) -> String {
        format!("{}user:{{{user}}}", self.prefix)
    }

    fn channel(&self) -> String {
        format!("{}revoked", self.prefix)
    }

    /// Members of an index set that still exist; dead ones are pruned.
    async fn live_members(&self, key: &str) -> Result<Vec<SessionKey>, StoreError> {
        let mut c = self.conn.clone();
        let members: Vec<String> = c.smembers(key).await.map_err(unavailable)?;
        // Members written before ids were hashed do not parse: they name no
        // session this version can find, and expire with their set.
        let ids: Vec<SessionKey> = members.iter().filter_map(|m| SessionKey::parse_hex(m)).collect();
        // Each session key may live on another node: ask them all at once.
        let exists = futures_util::future::try_join_all(ids.iter().map(|id| {
            let mut c = self.conn.clone();
            let key = self.session_key(id);
            async move { c.exists::<_, bool>(key).await }
        }))
        .await
        .map_err(unavailable)?;
        let mut live = Vec::new();
        for (id, exists) in ids.into_iter().zip(exists) {
            if exists {
                live.push(id);
            } else {
                let _: Result<(), _> = c.srem(key, id.to_hex()).await;
            }
        }
        Ok(live)
    }

    fn login_key(&self, state: &str) -> String {
        format!("{}l:{{{}}}", self.prefix, state_digest(state))
    }
}

fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn put_session(&self, id: &SessionKey, s: &Session, ttl: Duration) -> Result<(), StoreError> {
        let ttl = ttl_secs(ttl);
        let mut writes = Vec::with_capacity(3);
        let mut session = redis::pipe();
        session.set_ex(self.session_key(id), encode(s)?, ttl).ignore();
        writes.push(session);
        let mut indexes = vec![self.user_key(s.user_key())];
        if let Some(sid) = s.sid() {
            indexes.push(self.sid_key(sid));
        }
        for k in &indexes {
            // An index lives as long as its longest-lived session: NX gives a
            // new set its expiry, GT only ever extends it.
            let mut p = redis::pipe();
            p.sadd(k, id.to_hex()).ignore();
            p.cmd("EXPIRE").arg(k).arg(ttl).arg("NX").ignore();
            p.cmd("EXPIRE").arg(k).arg(ttl).arg("GT").ignore();
            writes.push(p);
        }
        // One pipeline per slot, all in flight together. If one fails the
        // sign-in fails: no cookie is issued for a session that might be
        // missing from an index (an index entry without a session is pruned).
        futures_util::future::try_join_all(writes.iter().map(|p| {
            let mut c = self.conn.clone();
            async move { p.query_async::<()>(&mut c).await }
        }))
        .await
        .map(|_| ())
        .map_err(unavailable)
    }

    async fn get_session(&self, id: &SessionKey) -> Result<Option<Arc<Session>>, StoreError> {
        let mut c = self.conn.clone();
        let raw = c.get(self.session_key(id)).await.map_err(unavailable)?;
        Ok(codec::decode(raw, Kind::Session).map(Arc::new))
    }

    async fn delete_session(&self, id: &SessionKey) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        // GETDEL: the record names the indexes that list this session.
        let raw: Option<String> = redis::cmd("GETDEL")
            .arg(self.session_key(id))
            .query_async(&mut c)
            .await
            .map_err(unavailable)?;
        let Some(s) = codec::decode::<Session>(raw, Kind::Session) else {
            return Ok(());
        };
        // Out of its indexes too, so a set (one per ID-token sid: one per
        // sign-in) does not outlive its last session by the session
        // lifetime. Best effort: a member left behind is pruned on read and
        // goes with the set's expiry. Redis drops a set emptied this way.
        let member = id.to_hex();
        let mut indexes = vec![self.user_key(s.user_key())];
        if let Some(sid) = s.sid() {
            indexes.push(self.sid_key(sid));
        }
        for k in indexes {
            let _: Result<(), _> = c.srem(k, &member).await;
        }
        Ok(())
    }

    async fn sessions_by_sid(&self, sid: &str) -> Result<Vec<SessionKey>, StoreError> {
        self.live_members(&self.sid_key(sid)).await
    }

    async fn sessions_by_user(&self, user: &str) -> Result<Vec<SessionKey>, StoreError> {
        self.live_members(&self.user_key(user)).await
    }
}

#[async_trait]
impl LoginStates for RedisStore {
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
        Ok(codec::decode(raw, Kind::Login))
    }
}

#[async_trait]
impl SharedValues for RedisStore {
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
}

#[async_trait]
impl RevocationBus for RedisStore {
    async fn publish_revocation(&self, id: &SessionKey) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        c.publish::<_, _, ()>(self.channel(), id.to_hex())
            .await
            .map_err(unavailable)
    }

    fn revocations(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Revocation>> {
        use futures_util::StreamExt;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let subscriber = self.subscriber.clone();
        let channel = self.channel();
        tokio::spawn(async move {
            loop {
                if let Ok(mut ps) = subscriber.pubsub().await
                    && ps.subscribe(&channel).await.is_ok()
                {
                    // Anything revoked while we were away is unknown: start clean.
                    if tx.send(Revocation::Flush).is_err() {
                        return;
                    }
                    tracing::info!(event = "revocation_bus", state = "subscribed");
                    METRICS.revocation_bus_subscribed.set(1);
                    let mut messages = ps.on_message();
                    while let Some(msg) = messages.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else {
                            continue;
                        };
                        if let Some(id) = SessionKey::parse_hex(&payload)
                            && tx.send(Revocation::Session(id)).is_err()
                        {
                            return;
                        }
                    }
                    tracing::warn!(event = "revocation_bus", state = "disconnected");
                    METRICS.revocation_bus_subscribed.set(0);
                }
                // Resubscribe by itself; meanwhile the cache TTL bounds staleness.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
        Some(rx)
    }
}

#[async_trait]
impl Store for RedisStore {
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
