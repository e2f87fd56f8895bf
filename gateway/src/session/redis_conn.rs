//! One connection type over the three Redis topologies, so the store's
//! commands are written once.
//!
//! - Standalone: the crate's `ConnectionManager` (reconnects by itself).
//! - Cluster: the crate's async cluster connection (follows MOVED/ASK,
//!   refreshes slots after a failover). Every command and every pipeline must
//!   stay within one slot; the store is written that way.
//! - Sentinel: the crate has no self-healing connection, so this keeps one
//!   multiplexed connection to the master the sentinels name, drops it on a
//!   connection error or `READONLY` (the master was demoted), asks the
//!   sentinels again and retries the command once.

use crate::config::RedisTarget;
use crate::config::redis_target::SentinelTarget;
use futures_util::FutureExt;
use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection, PubSub};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Cmd, ConnectionAddr, ErrorKind, Pipeline, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};
use std::sync::{Arc, RwLock};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub enum RedisConn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(Arc<SentinelConn>),
}

/// What the revocation bus subscribes through.
#[derive(Clone)]
pub enum Subscriber {
    /// The standalone server, or any node of a cluster: classic PUBLISH
    /// reaches every node of a cluster, so any one serves; the next one is
    /// tried when it is gone.
    AnyNode(Vec<redis::Client>),
    Sentinel(Arc<SentinelConn>),
}

impl RedisConn {
    pub async fn connect(target: &RedisTarget) -> RedisResult<(RedisConn, Subscriber)> {
        match target {
            RedisTarget::Standalone { url } => {
                let client = redis::Client::open(url.as_str())?;
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(CONNECT_TIMEOUT))
                    .set_response_timeout(Some(RESPONSE_TIMEOUT))
                    .set_number_of_retries(2);
                let conn = ConnectionManager::new_with_config(client.clone(), config).await?;
                Ok((RedisConn::Standalone(conn), Subscriber::AnyNode(vec![client])))
            }
            RedisTarget::Cluster { nodes } => {
                let client = redis::cluster::ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                    .connection_timeout(CONNECT_TIMEOUT)
                    .response_timeout(RESPONSE_TIMEOUT)
                    // A failover takes node-timeout plus an election: keep
                    // retrying (with backoff) for several seconds, not forever.
                    .retries(6)
                    .build()?;
                let conn = client.get_async_connection().await?;
                let subscribers = nodes
                    .iter()
                    .map(|n| redis::Client::open(n.as_str()))
                    .collect::<RedisResult<Vec<_>>>()?;
                Ok((RedisConn::Cluster(conn), Subscriber::AnyNode(subscribers)))
            }
            RedisTarget::Sentinel(s) => {
                let conn = Arc::new(SentinelConn::new(s)?);
                conn.current().await?;
                Ok((RedisConn::Sentinel(conn.clone()), Subscriber::Sentinel(conn)))
            }
        }
    }
}

impl Subscriber {
    /// A fresh pub/sub connection to a node that receives every PUBLISH.
    pub async fn pubsub(&self) -> RedisResult<PubSub> {
        match self {
            Subscriber::AnyNode(clients) => {
                let mut last = None;
                for c in clients {
                    match c.get_async_pubsub().await {
                        Ok(p) => return Ok(p),
                        Err(e) => last = Some(e),
                    }
                }
                Err(last.unwrap_or_else(|| RedisError::from((ErrorKind::Client, "no cluster node"))))
            }
            Subscriber::Sentinel(s) => s.master_client().await?.get_async_pubsub().await,
        }
    }
}

pub struct SentinelConn {
    sentinels: tokio::sync::Mutex<SentinelClient>,
    current: RwLock<Option<MultiplexedConnection>>,
    config: redis::AsyncConnectionConfig,
}

impl SentinelConn {
    fn new(t: &SentinelTarget) -> RedisResult<SentinelConn> {
        let addrs = t.sentinels.iter().map(|(host, port)| {
            if t.tls {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: false,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        });
        let mut b =
            SentinelClientBuilder::new(addrs, &t.master_name, SentinelServerType::Master)?.set_client_to_redis_db(t.db);
        if t.tls {
            b = b
                .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
        }
        if let Some(u) = &t.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &t.password {
            b = b.set_client_to_redis_password(p);
        }
        if let Some(u) = &t.sentinel_username {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &t.sentinel_password {
            b = b.set_client_to_sentinel_password(p);
        }
        Ok(SentinelConn {
            sentinels: tokio::sync::Mutex::new(b.build()?),
            current: RwLock::new(None),
            config: redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT)),
        })
    }

    /// A client for the master the sentinels name now (its role checked).
    async fn master_client(&self) -> RedisResult<redis::Client> {
        let mut s = tokio::time::timeout(CONNECT_TIMEOUT * 2, self.sentinels.lock())
            .await
            .map_err(|_| RedisError::from((ErrorKind::Io, "waiting for the sentinels")))?;
        s.async_get_client().await
    }

    async fn current(&self) -> RedisResult<MultiplexedConnection> {
        if let Some(c) = self.cached() {
            return Ok(c);
        }
        let client = self.master_client().await?;
        let conn = client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
        tracing::info!(event = "redis_master", state = "connected");
        Ok(conn)
    }

    fn cached(&self) -> Option<MultiplexedConnection> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn forget(&self) {
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs `op` on the master; after a failover (connection lost, or the
    /// old master answering READONLY) finds the new master and tries once more.
    async fn run<'a, T, F>(&self, op: F) -> RedisResult<T>
    where
        F: Fn(MultiplexedConnection) -> RedisFuture<'a, T>,
    {
        match op(self.current().await?).await {
            Err(e) if master_gone(&e) => {
                tracing::warn!(event = "redis_master", state = "lost", error = %e);
                self.forget();
                op(self.current().await?).await
            }
            other => other,
        }
    }
}

fn master_gone(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly)
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Standalone(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
            RedisConn::Sentinel(s) => async move {
                s.run(|mut c| async move { c.req_packed_command(cmd).await }.boxed())
                    .await
            }
            .boxed(),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Standalone(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Sentinel(s) => async move {
                s.run(|mut c| async move { c.req_packed_commands(pipeline, offset, count).await }.boxed())
                    .await
            }
            .boxed(),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Standalone(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
            RedisConn::Sentinel(_) => 0,
        }
    }
}
