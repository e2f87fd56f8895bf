//! deploy/grafana and deploy/prometheus against a real Prometheus: it scrapes
//! a running gateway under a little traffic, and every dashboard panel's and
//! every alert's expression must evaluate; the panels that traffic feeds must
//! return series. Catches renamed metrics and PromQL that only looks right.

use e2e::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn deploy_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(rel)
}

/// Debian's `prometheus`, scraping `target` every second, with the alert
/// rules loaded; throw-away storage, loopback only, killed on drop.
struct Prometheus {
    child: Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = format!(
            "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\n\
             rule_files: [{:?}]\n\
             scrape_configs:\n  - job_name: entra-gateway\n    static_configs: [ {{ targets: [{target:?}] }} ]\n",
            deploy_file("prometheus/alerts.yml").display().to_string()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).expect("write config");
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus on PATH (apt-get install prometheus; .ci/run does)");
        let p = Prometheus {
            child,
            base: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        };
        p.until("the first scrape", |r| !r.is_empty(), "up{job=\"entra-gateway\"} == 1")
            .await;
        p
    }

    /// An instant query: the API's `data` on success, its error text otherwise.
    async fn query(&self, expr: &str) -> Result<Value, String> {
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", expr)])
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let body: Value = r.json().await.map_err(|e| e.to_string())?;
        match body["status"].as_str() {
            Some("success") => Ok(body["data"].clone()),
            _ => Err(format!("{}: {}", body["errorType"], body["error"])),
        }
    }

    /// Polls `expr` until `done` holds for its result vector (15 s at most).
    async fn until(&self, what: &str, done: impl Fn(&[Value]) -> bool, expr: &str) -> Vec<Value> {
        let start = Instant::now();
        loop {
            if let Ok(d) = self.query(expr).await
                && let Some(r) = d["result"].as_array()
                && done(r)
            {
                return r.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "Prometheus: no {what} ({expr})"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every (panel title, expression) of the dashboard, with Grafana's
/// variables replaced as Grafana would for "All instances".
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy_file("grafana/entra-gateway.json")).expect("dashboard");
    let d: Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().expect("target expr");
            let expr = expr.replace("$__rate_interval", "10s").replace("$instance", ".*");
            out.push((p["title"].as_str().expect("title").to_string(), expr));
        }
    }
    out
}

fn alert_rules() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(deploy_file("prometheus/alerts.yml")).expect("alerts");
    let rules: Value = serde_saphyr::from_str(&text).expect("alerts are YAML");
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .map(|r| {
            (
                r["alert"].as_str().expect("alert name").to_string(),
                r["expr"].as_str().expect("expr").to_string(),
            )
        })
        .collect()
}

/// Panels the traffic below must fill (the others need failures, reloads,
/// logouts or a CSP sync, which this test does not cause).
const FILLED: &[&str] = &[
    "Sign-ins by result",
    "Failed sign-ins by reason",
    "Sign-in callback latency",
    "Logouts by kind",
    "Requests by outcome",
    "Requests by portal",
    "Upstream latency (to response header)",
    "Sessions held (memory store: all; Redis: local cache)",
    "Session-store operations",
    "Cache hit ratio",
    "Revocation bus",
    "JWKS fetches by result",
    "Instances up",
    "CPU",
    "Resident memory",
    "Open file descriptors",
];

#[tokio::test(flavor = "multi_thread")]
async fn dashboard_and_alerts_evaluate_against_a_scraped_gateway() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let prom = Prometheus::start(&format!("127.0.0.1:{}", h.gateway.metrics_port)).await;

    // A little traffic: a sign-in and its requests, a sign-in and its
    // logout, a refused sign-in, an anonymous API call.
    let alice = h.signed_in("alice@contoso.example").await;
    for _ in 0..5 {
        assert_eq!(alice.whoami().await.status, 200);
    }
    let zoe = h.signed_in("zoe@contoso.example").await;
    assert_eq!(zoe.whoami().await.status, 200);
    assert_eq!(zoe.get("/auth/logout").await.status, 303);
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        s.claims.insert("aud".into(), json!("another-app"));
    })
    .await;
    assert_refused(&b, &r, "wrong_audience").await;
    assert_eq!(h.browser().whoami().await.status, 401);

    // Scraped after the traffic, and a second time so rates have two points.
    prom.until(
        "scrape of the refusal",
        |r| !r.is_empty(),
        "entra_gateway_signins_total{reason=\"wrong_audience\"} > 0",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let mut broken = Vec::new();
    // A panel is filled when any of its queries returns a series.
    let mut filled = std::collections::HashSet::new();
    let queries = dashboard_queries();
    assert!(queries.len() >= 20, "the dashboard has its panels: {}", queries.len());
    for (title, expr) in &queries {
        match prom.query(expr).await {
            Err(e) => broken.push(format!("panel {title:?}: {expr}: {e}")),
            Ok(d) if d["result"].as_array().is_some_and(|r| !r.is_empty()) => {
                filled.insert(title.as_str());
            }
            Ok(_) => {}
        }
    }
    let alerts = alert_rules();
    assert!(alerts.len() >= 10, "the alert rules: {}", alerts.len());
    for (name, expr) in &alerts {
        if let Err(e) = prom.query(expr).await {
            broken.push(format!("alert {name}: {e}"));
        }
    }
    assert!(
        broken.is_empty(),
        "expressions that do not evaluate:\n{}",
        broken.join("\n")
    );
    // Every panel of FILLED exists (a renamed panel would pass silently).
    for f in FILLED {
        assert!(queries.iter().any(|(t, _)| t == f), "no panel {f:?}");
    }
    let empty: Vec<&&str> = FILLED.iter().filter(|f| !filled.contains(**f)).collect();
    assert!(empty.is_empty(), "panels the traffic should fill are empty: {empty:?}");

    // What the traffic did shows with its labels.
    let by_result = prom
        .query("sum by (result, reason) (entra_gateway_signins_total)")
        .await
        .expect("sign-ins");
    let has = |result: &str, reason: &str| {
        by_result["result"].as_array().is_some_and(|v| {
            v.iter()
                .any(|s| s["metric"]["result"] == result && s["metric"]["reason"] == reason)
        })
    };
    assert!(has("ok", "ok") && has("refused", "wrong_audience"), "{by_result}");
    let hits = prom
        .query("sum(entra_gateway_cache_lookups_total{cache=\"session\", result=\"hit\"})")
        .await
        .expect("cache hits");
    let hits: f64 = hits["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        hits >= 4.0,
        "requests after the sign-in hit the local session cache: {hits}"
    );
    let value = |expr: &'static str| {
        let prom = &prom;
        async move {
            let d = prom.query(expr).await.expect(expr);
            d["result"][0]["value"][1]
                .as_str()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{expr}: {d}"))
        }
    };
    // With Redis: what this instance holds is its local cache (alice's session).
    assert!(value("entra_gateway_sessions_active").await >= 1.0);
    // The bus: subscribed, the flush on subscribing, and zoe's logout (an
    // instance receives its own revocations too).
    assert_eq!(value("entra_gateway_revocation_bus_subscribed").await, 1.0);
    assert!(value("entra_gateway_revocations_received_total{kind=\"flush\"}").await >= 1.0);
    assert!(value("entra_gateway_revocations_received_total{kind=\"session\"}").await >= 1.0);
    assert!(value("sum(entra_gateway_cache_lookups_total{cache=\"assertion\", result=\"hit\"})").await >= 4.0);
    let version = prom.query("entra_gateway_build_info").await.expect("build info");
    assert_eq!(
        version["result"][0]["metric"]["version"],
        env!("CARGO_PKG_VERSION"),
        "{version}"
    );

    // Prometheus evaluated every rule itself (every second) without error.
    let r: Value = reqwest::get(format!("{}/api/v1/rules", prom.base))
        .await
        .expect("rules API")
        .json()
        .await
        .expect("rules JSON");
    let loaded: Vec<&Value> = r["data"]["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules").iter())
        .collect();
    assert_eq!(loaded.len(), alerts.len(), "Prometheus loaded every rule");
    for rule in loaded {
        assert_ne!(rule["health"], "err", "{}: {}", rule["name"], rule["lastError"]);
    }
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "bounded in time: {:?}",
        started.elapsed()
    );
}
