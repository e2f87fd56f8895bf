//! The floor of this stack for `bench/run`: Pingora proxying to one upstream
//! with no filters, set up like the gateway's server (one worker thread, the
//! same short shutdown), so the gateway's rows can be read against what
//! Pingora alone costs on this machine.
//!
//! Optionally with a fixed set of headers inserted into every upstream
//! request, the way the gateway inserts its own (Pingora's `insert_header`
//! with a static name, a value made per request): the floor for doing the
//! same header work, without any of the gateway's decisions.
//!
//! Optionally with the gateway's default upstream timeouts on every peer
//! (SPEC §3 has them; Pingora arms a timer for each read and write), so
//! the floor can include what every gateway request pays for them.

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::time::Duration;

struct PlainProxy {
    upstream: String,
    headers: Vec<(&'static str, String)>,
    timeouts: bool,
}

#[async_trait]
impl ProxyHttp for PlainProxy {
    type CTX = ();

    fn new_ctx(&self) {}

    // A peer per request, as the gateway builds it: Pingora's connection pool
    // keys on the peer, so upstream connections are still reused.
    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream.as_str(), false, String::new());
        if self.timeouts {
            // The gateway's defaults (`upstream.*_timeout`).
            let o = &mut peer.options;
            o.connection_timeout = Some(Duration::from_secs(5));
            o.total_connection_timeout = Some(Duration::from_secs(5));
            o.read_timeout = Some(Duration::from_secs(60));
            o.write_timeout = Some(Duration::from_secs(60));
            o.idle_timeout = Some(Duration::from_secs(60));
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _s: &mut Session,
        up: &mut pingora::http::RequestHeader,
        _ctx: &mut (),
    ) -> Result<()> {
        for (name, value) in &self.headers {
            up.insert_header(*name, value.clone())?;
        }
        Ok(())
    }
}

/// `name: value` lines (the names kept for the process's life, like the
/// gateway's static ones).
pub fn headers(text: &str) -> Vec<(&'static str, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (&*Box::leak(n.trim().to_string().into_boxed_str()), v.trim().to_string()))
        .collect()
}

/// Serves `listen` → `upstream` (both `host:port`) until SIGTERM/SIGINT.
///
/// Pingora builds its own runtimes and refuses to start inside another one,
/// so the caller runs this on a thread of its own, outside `#[tokio::main]`'s.
pub fn run(listen: &str, upstream: &str, headers: Vec<(&'static str, String)>, timeouts: bool) -> ! {
    let tmp = std::env::temp_dir();
    let pid = std::process::id();
    let conf = ServerConf {
        threads: 1,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: tmp.join(format!("bench-plain-proxy-{pid}.pid")).display().to_string(),
        upgrade_sock: tmp.join(format!("bench-plain-proxy-{pid}.sock")).display().to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        PlainProxy {
            upstream: upstream.to_string(),
            headers,
            timeouts,
        },
    );
    proxy.add_tcp(listen);
    server.add_service(proxy);
    server.run_forever()
}
