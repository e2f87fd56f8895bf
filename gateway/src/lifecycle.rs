//! Stopping without dropping anyone: SIGTERM first drains (readiness says
//! 503 "draining" so the load balancer moves traffic away, requests are
//! still served for `server.drain_timeout`), then Pingora closes the
//! listener and in-flight requests get up to `server.shutdown_timeout`.
//!
//! Pingora's own SIGTERM handling closes the listener at once and then
//! sleeps a fixed grace period; [`Signals`] runs the drain before handing
//! the signal to Pingora, and a watcher ends the process as soon as the
//! last in-flight request is done (Pingora's grace period is only the cap).

use crate::app::App;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::server::{ShutdownSignal, ShutdownSignalWatch};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The running app, replaced as a whole by a reload; each request loads it
/// once and keeps that copy to its end.
pub type SharedApp = Arc<ArcSwap<App>>;

/// Process-wide state of a running gateway (shared by every configuration
/// a reload builds).
#[derive(Debug, Default)]
pub struct Lifecycle {
    draining: AtomicBool,
    in_flight: AtomicUsize,
}

impl Lifecycle {
    /// SIGTERM was received: readiness answers 503 from now on.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
    }

    /// Counts a request until the guard is dropped (with Pingora's context).
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }
}

/// One request being handled (see [`Lifecycle::request`]).
#[derive(Debug)]
pub struct InFlight(Arc<Lifecycle>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

type SignalFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A signal stream, or one that never fires if it cannot be registered
/// (logged: the process still stops on the others).
fn listen(kind: SignalKind, name: &'static str) -> Option<Signal> {
    match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::error!(event = "signal_handler_failed", signal = name, error = %e);
            None
        }
    }
}

fn next(s: &mut Option<Signal>) -> SignalFuture<'_> {
    Box::pin(async move {
        match s {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    })
}

/// Pingora's shutdown signals with the drain in front of SIGTERM.
pub struct Signals {
    pub app: SharedApp,
    /// `server.shutdown_timeout` as started (Pingora's cap is set from it).
    pub shutdown_timeout: Duration,
}

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        let mut term = listen(SignalKind::terminate(), "SIGTERM");
        let mut quit = listen(SignalKind::quit(), "SIGQUIT");
        let mut int = listen(SignalKind::interrupt(), "SIGINT");
        tokio::select! {
            _ = next(&mut term) => {}
            _ = next(&mut quit) => return ShutdownSignal::GracefulUpgrade,
            _ = next(&mut int) => return ShutdownSignal::FastShutdown,
        }
        let app = self.app.load_full();
        let drain = app.config.server.drain_timeout;
        app.lifecycle.start_draining();
        tracing::info!(
            event = "draining",
            drain_timeout_s = drain.as_secs_f64(),
            "SIGTERM: readiness answers 503, requests are still served"
        );
        // SIGINT during the drain still means "now".
        tokio::select! {
            _ = tokio::time::sleep(drain) => {}
            _ = next(&mut int) => return ShutdownSignal::FastShutdown,
        }
        tracing::info!(
            event = "stopping",
            in_flight = app.lifecycle.in_flight(),
            shutdown_timeout_s = self.shutdown_timeout.as_secs_f64(),
            "closing the listener"
        );
        let lifecycle = app.lifecycle.clone();
        let limit = self.shutdown_timeout;
        // A plain thread: Pingora's runtimes are being shut down around it.
        let spawned = std::thread::Builder::new()
            .name("gateway-exit".into())
            .spawn(move || exit_when_idle(&lifecycle, limit));
        if let Err(e) = spawned {
            tracing::warn!(event = "exit_watcher_failed", error = %e, "waiting the whole shutdown_timeout");
        }
        ShutdownSignal::GracefulTerminate
    }
}

/// Ends the process once no request is in flight, or at `limit`.
fn exit_when_idle(lifecycle: &Lifecycle, limit: Duration) {
    let start = Instant::now();
    // Let Pingora close the listener first: a connection accepted just
    // before has not created its request context yet.
    std::thread::sleep(Duration::from_millis(200));
    while lifecycle.in_flight() > 0 && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(20));
    }
    tracing::info!(
        event = "stopped",
        in_flight = lifecycle.in_flight(),
        after_ms = start.elapsed().as_millis() as u64
    );
    std::process::exit(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_counts_live_guards_only() {
        let l = Arc::new(Lifecycle::default());
        let a = l.request();
        let b = l.request();
        assert_eq!(l.in_flight(), 2);
        drop(a);
        assert_eq!(l.in_flight(), 1);
        drop(b);
        assert_eq!(l.in_flight(), 0);
        assert!(!l.draining());
        l.start_draining();
        assert!(l.draining());
    }
}
