//! Every metric in one place, registered in the default Prometheus registry
//! (which `pingora-prometheus` serves on `server.metrics_listen`).

use prometheus::{
    HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, register_histogram_vec, register_int_counter_vec,
    register_int_gauge, register_int_gauge_vec,
};
use std::sync::LazyLock;

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
    pub bad_requests: IntCounterVec,
    pub csp_syncs: IntCounterVec,
    pub csp_tenants: IntGauge,
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
            "Time from the request to the upstream's response header",
            &["portal"],
            vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0
            ]
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
    }
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(build);
