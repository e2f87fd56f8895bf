//! Resolving `upstream.url`'s host name for pingora's load balancer, in its
//! background service (never on a request's path).
//!
//! A failed resolution keeps the last good answer (the balancer keeps its
//! backends when discovery errs). Until a first answer, a failure is retried
//! within the same round with backoff, so a name that appears a little after
//! start (a container started alongside) is picked up in seconds rather than
//! at the next 30 s round.

use crate::metrics::METRICS;
use async_trait::async_trait;
use pingora::lb::Backend;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::watch;

/// One lookup may take this long before it counts as failed.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Backoff between attempts while nothing has resolved yet.
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(8);
/// How long one round keeps retrying before reporting failure.
const ROUND_BUDGET: Duration = Duration::from_secs(25);

/// The name service; a trait so tests can answer with chosen addresses.
#[async_trait]
pub trait Resolve: Send + Sync {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system resolver (getaddrinfo on tokio's blocking pool).
pub struct SystemResolver;

#[async_trait]
impl Resolve for SystemResolver {
    async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok(tokio::net::lookup_host((host, port)).await?.collect())
    }
}

/// [`ServiceDiscovery`] of a host name: every address it resolves to is a
/// backend.
pub struct NameDiscovery {
    host: String,
    port: u16,
    resolver: Box<dyn Resolve>,
    ever_resolved: AtomicBool,
    /// Set to true once the first round has finished, successful or not:
    /// requests that arrive before wait for it instead of failing at once.
    first_round: watch::Sender<bool>,
}

impl NameDiscovery {
    pub fn new(host: String, port: u16, resolver: Box<dyn Resolve>) -> (Self, watch::Receiver<bool>) {
        let (tx, rx) = watch::channel(false);
        (
            NameDiscovery {
                host,
                port,
                resolver,
                ever_resolved: AtomicBool::new(false),
                first_round: tx,
            },
            rx,
        )
    }

    async fn lookup(&self) -> Result<Vec<SocketAddr>, String> {
        match tokio::time::timeout(LOOKUP_TIMEOUT, self.resolver.resolve(&self.host, self.port)).await {
            Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
            Ok(Ok(_)) => Err("no addresses".into()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {}s", LOOKUP_TIMEOUT.as_secs())),
        }
    }

    /// One round: a lookup, retried with backoff while nothing ever resolved.
    async fn round(&self) -> Result<Vec<SocketAddr>, String> {
        let started = tokio::time::Instant::now();
        let mut delay = FIRST_RETRY;
        loop {
            let result = self.lookup().await;
            // Whatever the first lookup says, waiting requests may now decide.
            self.first_round.send_replace(true);
            match result {
                Ok(addrs) => return Ok(addrs),
                Err(e) if self.ever_resolved.load(Ordering::Relaxed) => return Err(e),
                Err(e) if started.elapsed() + delay > ROUND_BUDGET => return Err(e),
                Err(e) => {
                    tracing::warn!(event = "upstream_resolve_retry", host = %self.host, error = %e, retry_in_ms = delay.as_millis() as u64);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY);
                }
            }
        }
    }
}

#[async_trait]
impl ServiceDiscovery for NameDiscovery {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        match self.round().await {
            Ok(addrs) => {
                METRICS.upstream_resolutions.with_label_values(&["ok"]).inc();
                METRICS.upstream_addresses.set(addrs.len() as i64);
                if !self.ever_resolved.swap(true, Ordering::Relaxed) {
                    tracing::info!(event = "upstream_resolved", host = %self.host, addresses = ?addrs);
                }
                Ok((backends(&addrs), HashMap::new()))
            }
            Err(e) => {
                METRICS.upstream_resolutions.with_label_values(&["error"]).inc();
                let kept = if self.ever_resolved.load(Ordering::Relaxed) {
                    "the last resolved addresses"
                } else {
                    "none (requests answer 502 upstream_unresolved)"
                };
                tracing::warn!(event = "upstream_resolve_failed", host = %self.host, error = %e, kept);
                pingora::Error::e_explain(pingora::ErrorType::Custom(super::UNRESOLVED), e)
            }
        }
    }
}

pub fn backends(addrs: &[SocketAddr]) -> BTreeSet<Backend> {
    addrs
        .iter()
        .map(|a| Backend {
            addr: PingoraAddr::Inet(*a),
            weight: 1,
            ext: http::Extensions::new(),
        })
        .collect()
}
