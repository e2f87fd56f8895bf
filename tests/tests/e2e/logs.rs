//! What an operator reads: one access line per request (JSON with
//! `--log-format json`), the request id that reaches the app, sign-in and
//! logout events with who and from where, and never a secret.

use e2e::browser::Kind;
use e2e::*;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn json_logs(options: Options) -> Options {
    Options {
        env: vec![("ENTRA_GATEWAY_LOG_FORMAT".into(), "json".into())],
        ..options
    }
}

/// The gateway's JSON log lines of `target`.
fn lines(h: &Harness, target: &str) -> Vec<Value> {
    h.gateway
        .logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == target)
        .collect()
}

/// Access lines are written once the response is sent: wait for `n` of them
/// that match.
async fn access_lines(h: &Harness, n: usize, matching: impl Fn(&Value) -> bool) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let found: Vec<Value> = lines(h, "access").into_iter().filter(&matching).collect();
        if found.len() >= n || start.elapsed() > Duration::from_secs(5) {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn get_with(b: &Browser, path: &str, headers: &[(&str, &str)]) -> browser::Resp {
    b.request(reqwest::Method::GET, path, Kind::Xhr, None, headers).await
}

#[tokio::test(flavor = "multi_thread")]
async fn one_access_line_per_request_with_its_request_id() {
    let h = Harness::start(json_logs(Options::default())).await;
    let b = h.signed_in("alice@contoso.example").await;
    let session = b.cookie("entra_gw_agent").expect("session");

    // A client's own X-Request-Id (the peer is not a trusted proxy) is
    // replaced; the query string stays out of the log.
    let r = get_with(
        &b,
        "/api/whoami?code=SECRET-QUERY-VALUE",
        &[("x-request-id", "spoofed-request-id")],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    let id = seen["headers"]["x-request-id"]
        .as_str()
        .expect("the app gets a request id");
    assert_ne!(id, "spoofed-request-id");
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{id}");
    let user = seen["headers"]["x-auth-user"].as_str().expect("signed in").to_string();

    let line = access_lines(&h, 1, |l| l["request_id"] == id).await;
    assert_eq!(line.len(), 1, "one line for the request: {line:?}");
    let l = &line[0];
    assert_eq!(l["level"], "INFO");
    assert_eq!(l["method"], "GET");
    assert_eq!(l["path"], "/api/whoami", "no query string");
    assert_eq!(l["status"], 200);
    assert_eq!(l["portal"], "agent");
    assert_eq!(l["outcome"], "forwarded");
    assert_eq!(l["client_ip"], "127.0.0.1");
    assert_eq!(l["user"], json!(user));
    assert!(l["duration_ms"].as_f64().is_some_and(|d| d >= 0.0), "{l}");

    // Every request gets exactly one line, answered here or by the app;
    // anonymous ones carry no user.
    let anon = h.browser();
    let paths = ["/tickets/1", "/public/page", "/portal/requests"];
    let mut ids = Vec::new();
    for p in paths {
        let r = get_with(&anon, p, &[]).await;
        ids.push((p, r.status));
    }
    for (p, status) in ids {
        let found = access_lines(&h, 1, |l| l["path"] == p).await;
        assert_eq!(found.len(), 1, "{p}: {found:?}");
        assert_eq!(found[0]["status"], status, "{p}");
        assert!(found[0].get("user").is_none(), "{p}: {}", found[0]);
        let rid = found[0]["request_id"].as_str().unwrap_or("");
        assert_eq!(rid.len(), 32, "{p}: {}", found[0]);
    }
    // Nothing replayable in the log, and the spoofed id is nowhere.
    let log = h.gateway.logs();
    for secret in ["SECRET-QUERY-VALUE", session.as_str(), "spoofed-request-id"] {
        assert!(!log.contains(secret), "{secret:?} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_proxys_request_id_is_kept() {
    // Not insecure_dev_cookies: the test is a TLS terminator on 127.0.0.1,
    // one of server.trusted_proxies.
    let h = Harness::start(json_logs(Options {
        insecure_dev_cookies: false,
        ..Options::default()
    }))
    .await;
    let b = h.browser();
    let r = get_with(&b, "/public/api/whoami", &[("x-request-id", "edge-7f3a-42")]).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-request-id"], "edge-7f3a-42");
    let found = access_lines(&h, 1, |l| l["request_id"] == "edge-7f3a-42").await;
    assert_eq!(found.len(), 1, "{found:?}");
    // One that could break a log line is replaced even from a trusted proxy.
    let r = get_with(&b, "/public/x/api/whoami", &[("x-request-id", "a b \"c\"")]).await;
    let id = r.json()["headers"]["x-request-id"].as_str().unwrap_or("").to_string();
    assert_eq!(id.len(), 32, "{id}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_in_and_logout_lines_say_who_and_from_where() {
    let h = Harness::start(json_logs(Options::default())).await;
    let b = h.signed_in("alice@contoso.example").await;
    let user = b.whoami().await.json()["headers"]["x-auth-user"]
        .as_str()
        .expect("signed in")
        .to_string();
    b.get("/auth/logout").await;
    let events = lines(&h, "entra_gateway::auth::callback")
        .into_iter()
        .chain(lines(&h, "entra_gateway::auth::logout"))
        .collect::<Vec<_>>();
    for event in ["signin", "logout"] {
        let e = events
            .iter()
            .find(|l| l["event"] == event)
            .unwrap_or_else(|| panic!("no {event} line in {events:?}"));
        assert_eq!(e["user"], json!(user), "{e}");
        assert_eq!(e["client_ip"], "127.0.0.1", "{e}");
        assert_eq!(e["user_agent"], browser::USER_AGENT, "{e}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_access_log_can_be_turned_off() {
    let h = Harness::start(json_logs(
        Options::default().patch(json!({"server": {"access_log": false}})),
    ))
    .await;
    let b = h.browser();
    assert_eq!(get_with(&b, "/public/x", &[]).await.status, 200);
    // The line would have been written by now (the response came after it
    // was decided, the next request's line would follow it).
    assert_eq!(get_with(&b, "/public/y", &[]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lines(&h, "access").is_empty(), "{}", h.gateway.logs());
}
