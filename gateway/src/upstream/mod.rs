//! The application behind the gateway (`upstream.*`): where requests go and
//! with which connection settings.
//!
//! The addresses come from pingora's own load balancer, run as a background
//! service: an IP literal is its one backend; a host name is resolved there
//! ([`discovery`]) at start and every [`RESOLVE_EVERY`], and all its
//! addresses are balanced round robin with a TCP health check. A request
//! only picks an address (no DNS, no blocking). See docs/upstream.md.

pub mod discovery;
pub mod failure;
pub mod request;
pub mod tls;

use crate::config::Upstream as UpstreamConfig;
use discovery::{NameDiscovery, Resolve, SystemResolver};
use pingora::lb::discovery::Static;
use pingora::lb::health_check::TcpHealthCheck;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backends, LoadBalancer};
use pingora::upstreams::peer::{HttpPeer, PeerOptions};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

pub use failure::Failure;

/// The pingora error type of "the name has not resolved" (see [`Failure`]).
pub const UNRESOLVED: &str = "upstream_unresolved";
/// How often a host name is resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);
/// How often each address of a host name is probed (TCP connect).
pub const HEALTH_EVERY: Duration = Duration::from_secs(5);
/// Bounds the balancer's search for a healthy address.
const MAX_PICKS: usize = 256;
/// After the first round: how long (polls × interval) a waiting request
/// gives the balancer to take the round's answer.
const STORE_POLLS: u32 = 20;
const STORE_POLL: Duration = Duration::from_millis(5);

pub type Balancer = LoadBalancer<RoundRobin>;

/// The upstream as requests see it: the balancer (shared with its
/// background service) and the settings every connection gets.
pub struct Upstreams {
    balancer: Arc<Balancer>,
    /// True once the first resolution round has finished (always for an IP).
    first_round: watch::Receiver<bool>,
    tls: bool,
    sni: String,
    options: PeerOptions,
    /// How long a request that arrives before the first resolution waits for it.
    first_wait: Duration,
}

impl Upstreams {
    /// The balancer for `cfg` (to run as a background service, see
    /// [`Upstreams::balancer`]) and the view requests use.
    pub fn new(cfg: &UpstreamConfig) -> Upstreams {
        Self::with_resolver(cfg, Box::new(SystemResolver))
    }

    pub fn with_resolver(cfg: &UpstreamConfig, resolver: Box<dyn Resolve>) -> Upstreams {
        let (balancer, first_round) = match cfg.host.parse::<IpAddr>() {
            Ok(ip) => {
                // One address forever: nothing to resolve, nothing to steer
                // around (a health check could only turn a clear connect
                // error into the same error later).
                let addrs = [SocketAddr::new(ip, cfg.port)];
                let mut lb = LoadBalancer::from_backends(Backends::new(Static::new(discovery::backends(&addrs))));
                lb.update_frequency = None;
                lb.health_check_frequency = None;
                crate::metrics::METRICS.upstream_addresses.set(1);
                let (_tx, rx) = watch::channel(true);
                (lb, rx)
            }
            Err(_) => {
                let (disc, rx) = NameDiscovery::new(cfg.host.clone(), cfg.port, resolver);
                let mut lb = LoadBalancer::from_backends(Backends::new(Box::new(disc)));
                let mut hc = TcpHealthCheck::new();
                hc.peer_template.options.connection_timeout = Some(cfg.connect_timeout.min(Duration::from_secs(2)));
                lb.set_health_check(hc);
                lb.update_frequency = Some(RESOLVE_EVERY);
                lb.health_check_frequency = Some(HEALTH_EVERY);
                lb.parallel_health_check = true;
                (lb, rx)
            }
        };
        let balancer = Arc::new(balancer);
        if cfg.host.parse::<IpAddr>().is_ok() {
            // Static discovery answers at once: the backend is there before
            // the background service first runs.
            use futures_util::FutureExt;
            let _ = balancer.update().now_or_never();
        }
        Upstreams {
            balancer,
            first_round,
            tls: cfg.tls,
            sni: cfg.sni.clone(),
            options: peer_options(cfg),
            first_wait: cfg.connect_timeout,
        }
    }

    /// The balancer, for `background_service` (resolution, health checks).
    pub fn balancer(&self) -> Arc<Balancer> {
        self.balancer.clone()
    }

    /// How many addresses the upstream has now (connect failures are retried
    /// on the next one, up to this many tries).
    pub fn address_count(&self) -> usize {
        self.balancer.backends().get_backend().len()
    }

    /// The next address, round robin over the healthy ones; when none is
    /// healthy, any (the connect error then says why). A request arriving
    /// before the first resolution finished waits for it (bounded).
    pub async fn pick(&self) -> Result<SocketAddr, Failure> {
        if let Some(a) = self.pick_now() {
            return Ok(a);
        }
        if !*self.first_round.borrow() {
            let mut rx = self.first_round.clone();
            let _ = tokio::time::timeout(self.first_wait, rx.wait_for(|done| *done)).await;
            // The round's end is signalled just before pingora stores its
            // answer in the balancer: give that store a moment.
            for _ in 0..STORE_POLLS {
                if let Some(a) = self.pick_now() {
                    return Ok(a);
                }
                tokio::time::sleep(STORE_POLL).await;
            }
        }
        Err(Failure::Unresolved)
    }

    fn pick_now(&self) -> Option<SocketAddr> {
        let b = self
            .balancer
            .select(b"", MAX_PICKS)
            .or_else(|| self.balancer.select_with(b"", MAX_PICKS, |_, _| true))?;
        b.addr.as_inet().copied()
    }

    /// The peer for `addr` with the configured timeouts and TLS settings.
    pub fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let mut p = HttpPeer::new(addr, self.tls, self.sni.clone());
        p.options = self.options.clone();
        p
    }
}

fn peer_options(cfg: &UpstreamConfig) -> PeerOptions {
    let mut o = PeerOptions::new();
    // connect_timeout bounds the whole connection, TLS handshake included.
    o.connection_timeout = Some(cfg.connect_timeout);
    o.total_connection_timeout = Some(cfg.connect_timeout);
    o.read_timeout = Some(cfg.read_timeout);
    o.write_timeout = Some(cfg.write_timeout);
    o.idle_timeout = Some(cfg.idle_timeout);
    o.verify_cert = cfg.tls_verify;
    o.verify_hostname = cfg.tls_verify;
    o.ca = tls::peer_ca(&cfg.ca_certs);
    o
}

#[cfg(test)]
mod tests;
