//! Every metric in one place, registered in the default Prometheus registry
//! (which `health` serves at `/metrics` on `server.metrics_listen`).

use policy::access::Outcome;
use prometheus::{
    HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, register_histogram_vec, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec,
};
use std::sync::{LazyLock, OnceLock};

pub struct Metrics {
    pub requests: IntCounterVec,
    pub signins: IntCounterVec,
    pub signin_duration: HistogramVec,
    pub logouts: IntCounterVec,
    pub sessions_active: IntGauge,
    pub store_ops: IntCounterVec,
    pub store_errors: IntCounterVec,
    pub jwks_refreshes: IntCounterVec,
    pub jwks_skipped: IntCounterVec,
    pub jwks_key_sets: IntGauge,
    pub upstream_latency: HistogramVec,
    pub upstream_errors: IntCounterVec,
    pub upstream_resolutions: IntCounterVec,
    pub upstream_addresses: IntGauge,
    pub bad_requests: IntCounterVec,
    pub csp_syncs: IntCounterVec,
    pub csp_tenants: IntGauge,
    pub records_unreadable: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_last_reload_success: IntGauge,
    pub directory_syncs: IntCounterVec,
    pub directory_sync_users: IntCounterVec,
    pub directory_sync_last_success: IntGauge,
    pub two_factor: IntCounterVec,
    pub build_info: IntGaugeVec,
    /// Pre-resolved: the authenticated path counts every lookup, and a
    /// label lookup per request would cost a hash and a lock.
    pub session_cache: HitMiss,
    pub assertion_cache: HitMiss,
    pub revocations_received: RevocationsReceived,
    pub revocation_bus_subscribed: IntGauge,
}

/// One cache's lookups, by result.
pub struct HitMiss {
    pub hit: IntCounter,
    pub miss: IntCounter,
}

/// What the revocation bus delivered, by kind.
pub struct RevocationsReceived {
    pub session: IntCounter,
    pub flush: IntCounter,
}

fn build() -> Metrics {
    // Names are constants; registration can only fail on a duplicate, which
    // a single LazyLock rules out.
    let cache_lookups = register_int_counter_vec!(
        "entra_gateway_cache_lookups_total",
        "Local cache lookups by cache (session: sessions read without the store; assertion: \
         assertion signatures reused) and result (hit|miss)",
        &["cache", "result"]
    )
    .expect("register");
    let hit_miss = |cache: &str| HitMiss {
        hit: cache_lookups.with_label_values(&[cache, "hit"]),
        miss: cache_lookups.with_label_values(&[cache, "miss"]),
    };
    let revocations = register_int_counter_vec!(
        "entra_gateway_revocations_received_total",
        "Revocation-bus messages applied to this instance's caches, by kind (session: a session \
         ended by any instance, this one included; flush: (re)subscribed, every cached session dropped)",
        &["kind"]
    )
    .expect("register");
    let build_info = register_int_gauge_vec!(
        "entra_gateway_build_info",
        "Always 1; the version of the running binary",
        &["version"]
    )
    .expect("register");
    build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    Metrics {
        session_cache: hit_miss("session"),
        assertion_cache: hit_miss("assertion"),
        revocations_received: RevocationsReceived {
            session: revocations.with_label_values(&["session"]),
            flush: revocations.with_label_values(&["flush"]),
        },
        revocation_bus_subscribed: register_int_gauge!(
            "entra_gateway_revocation_bus_subscribed",
            "1 while this instance is subscribed to the revocation bus (Redis), else 0"
        )
        .expect("register"),
        build_info,
        requests: register_int_counter_vec!(
            "entra_gateway_requests_total",
            "Requests by portal and outcome",
            &["portal", "outcome"]
        )
        .expect("register"),
        signins: register_int_counter_vec!(
            "entra_gateway_signins_total",
            "Sign-ins by result (ok|refused|error) and reason code",
            &["result", "reason"]
        )
        .expect("register"),
        signin_duration: register_histogram_vec!(
            "entra_gateway_signin_duration_seconds",
            "Time spent handling the sign-in callback",
            &["result"],
            vec![0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]
        )
        .expect("register"),
        logouts: register_int_counter_vec!(
            "entra_gateway_logouts_total",
            "Logouts by kind (local|single_logout|frontchannel|revoke)",
            &["kind"]
        )
        .expect("register"),
        sessions_active: register_int_gauge!(
            "entra_gateway_sessions_active",
            "Sessions this instance holds: with the memory store every session; with Redis the \
             sessions in its local cache (those used within session.local_cache_ttl)"
        )
        .expect("register"),
        store_ops: register_int_counter_vec!(
            "entra_gateway_session_store_operations_total",
            "Session-store operations",
            &["op"]
        )
        .expect("register"),
        store_errors: register_int_counter_vec!(
            "entra_gateway_session_store_errors_total",
            "Session-store operations that failed",
            &["op"]
        )
        .expect("register"),
        jwks_refreshes: register_int_counter_vec!(
            "entra_gateway_jwks_refreshes_total",
            "JWKS fetches by result",
            &["result"]
        )
        .expect("register"),
        jwks_skipped: register_int_counter_vec!(
            "entra_gateway_jwks_fetches_skipped_total",
            "JWKS fetches not made, by why (recently_failed: a key set that failed within 5 minutes; \
             refetch_limited: an unknown kid within 5 minutes of the last forced refetch)",
            &["why"]
        )
        .expect("register"),
        jwks_key_sets: register_int_gauge!(
            "entra_gateway_jwks_key_sets",
            "Key sets (tenants) held in the JWKS cache"
        )
        .expect("register"),
        upstream_latency: register_histogram_vec!(
            "entra_gateway_upstream_latency_seconds",
            "Time from sending the request upstream to the upstream's response header (connecting excluded)",
            &["portal"],
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0
            ]
        )
        .expect("register"),
        upstream_errors: register_int_counter_vec!(
            "entra_gateway_upstream_errors_total",
            "Requests the upstream failed (502/504), by portal and reason",
            &["portal", "reason"]
        )
        .expect("register"),
        upstream_resolutions: register_int_counter_vec!(
            "entra_gateway_upstream_resolutions_total",
            "Resolution rounds of upstream.url's host name, by result",
            &["result"]
        )
        .expect("register"),
        upstream_addresses: register_int_gauge!(
            "entra_gateway_upstream_addresses",
            "Addresses upstream.url's host name resolved to last"
        )
        .expect("register"),
        bad_requests: register_int_counter_vec!(
            "entra_gateway_bad_requests_total",
            "Requests refused for bad input, by reason",
            &["reason"]
        )
        .expect("register"),
        csp_syncs: register_int_counter_vec!(
            "entra_gateway_csp_syncs_total",
            "CSP tenant syncs by result",
            &["result"]
        )
        .expect("register"),
        csp_tenants: register_int_gauge!("entra_gateway_csp_tenants", "Tenants allowed through the CSP sync")
            .expect("register"),
        records_unreadable: register_int_counter_vec!(
            "entra_gateway_store_records_unreadable_total",
            "Stored records treated as absent because they do not decode or carry an unknown version \
             (e.g. written by a newer version during a rolling upgrade), by kind (session|login)",
            &["kind"]
        )
        .expect("register"),
        config_reloads: register_int_counter_vec!(
            "entra_gateway_config_reload_total",
            "Configuration reloads (SIGHUP) by result (ok|failed)",
            &["result"]
        )
        .expect("register"),
        config_last_reload_success: register_int_gauge!(
            "entra_gateway_config_last_reload_success_timestamp_seconds",
            "When the configuration in force was loaded (start or the last good reload), Unix seconds"
        )
        .expect("register"),
        directory_syncs: register_int_counter_vec!(
            "entra_gateway_directory_sync_total",
            "Directory syncs from Graph by result (ok|error)",
            &["result"]
        )
        .expect("register"),
        directory_sync_users: register_int_counter_vec!(
            "entra_gateway_directory_sync_users_total",
            "Users handled by directory syncs, by change (created|updated|disabled|skipped|pruned)",
            &["change"]
        )
        .expect("register"),
        directory_sync_last_success: register_int_gauge!(
            "entra_gateway_directory_sync_last_success_timestamp_seconds",
            "Unix time of this instance's last successful directory sync"
        )
        .expect("register"),
        two_factor: register_int_counter_vec!(
            "entra_gateway_two_factor_total",
            "Second-factor outcomes (enrolled, verified, recovery_code, remembered, bypassed, wrong_code, \
             replayed_code, locked_out, bad_csrf)",
            &["result"]
        )
        .expect("register"),
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(build);

/// `entra_gateway_requests_total` resolved once per (portal, outcome): a
/// request then costs an atomic add, not a hash of its label strings and a
/// lock on the vector. Cells fill on first use, so only combinations that
/// occur appear in `/metrics`.
pub struct RequestCounters {
    /// `[portal + 1][outcome]`; row 0 is "no portal".
    rows: Vec<(String, Box<[OnceLock<IntCounter>]>)>,
    /// `[portal + 1]`: the upstream latency histogram of each row, likewise.
    latency: Box<[OnceLock<prometheus::Histogram>]>,
}

impl RequestCounters {
    pub fn new<'a>(portals: impl IntoIterator<Item = &'a str>) -> Self {
        let row = |name: &str| {
            let cells = (0..Outcome::ALL.len()).map(|_| OnceLock::new()).collect();
            (name.to_string(), cells)
        };
        let rows: Vec<_> = std::iter::once(row("")).chain(portals.into_iter().map(row)).collect();
        RequestCounters {
            latency: rows.iter().map(|_| OnceLock::new()).collect(),
            rows,
        }
    }

    /// `upstream_latency_seconds{portal}`: from sending upstream to its response header.
    pub fn observe_upstream(&self, portal: Option<usize>, secs: f64) {
        let row = portal.map_or(0, |p| p + 1);
        if let (Some((name, _)), Some(cell)) = (self.rows.get(row), self.latency.get(row)) {
            cell.get_or_init(|| METRICS.upstream_latency.with_label_values(&[name.as_str()]))
                .observe(secs);
        }
    }

    pub fn inc(&self, portal: Option<usize>, outcome: Outcome) {
        let Some((name, cells)) = self.rows.get(portal.map_or(0, |p| p + 1)) else {
            return;
        };
        match cells.get(outcome as usize) {
            Some(cell) => cell
                .get_or_init(|| METRICS.requests.with_label_values(&[name.as_str(), outcome.label()]))
                .inc(),
            None => METRICS
                .requests
                .with_label_values(&[name.as_str(), outcome.label()])
                .inc(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_counts_into_the_labelled_series() {
        let t = RequestCounters::new(["t-agent", "t-portal"]);
        let get = |p: &str, o: Outcome| METRICS.requests.with_label_values(&[p, o.label()]).get();
        let before = (get("t-portal", Outcome::Forwarded), get("", Outcome::NoPortal));
        t.inc(Some(1), Outcome::Forwarded);
        t.inc(Some(1), Outcome::Forwarded);
        t.inc(None, Outcome::NoPortal);
        t.inc(Some(7), Outcome::Forwarded); // no such portal: ignored, no panic
        assert_eq!(get("t-portal", Outcome::Forwarded), before.0 + 2);
        assert_eq!(get("", Outcome::NoPortal), before.1 + 1);
        let count = |p: &str| METRICS.upstream_latency.with_label_values(&[p]).get_sample_count();
        let before = count("t-agent");
        t.observe_upstream(Some(0), 0.01);
        t.observe_upstream(Some(9), 0.01); // ignored, no panic
        assert_eq!(count("t-agent"), before + 1);
    }
}
