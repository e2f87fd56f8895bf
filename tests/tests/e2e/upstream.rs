//! The upstream (issue 10): reached by host name (resolved off the request
//! path), its failures answered as 502/504 pages or JSON with a reason code
//! and a metric, an https upstream with a private CA.

use e2e::browser::Kind;
use e2e::*;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// A gateway whose `upstream` section is `upstream` (merged onto the app's URL).
async fn gateway(upstream: serde_json::Value) -> Harness {
    Harness::start(Options::default().patch(json!({ "upstream": upstream }))).await
}

/// Asserts `r` is the failure answer for `reason`: JSON for an XHR, a page
/// for a navigation; both carry the reason.
fn assert_failure(r: &browser::Resp, status: u16, reason: &str, navigation: bool) {
    assert_eq!(r.status, status, "{reason}: {}", r.body);
    assert_eq!(
        r.headers.get("connection").and_then(|v| v.to_str().ok()),
        Some("close"),
        "the client is told the connection ends"
    );
    let ct = r
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if navigation {
        assert!(ct.starts_with("text/html"), "{ct}");
        assert!(r.body.contains(reason), "page names {reason}: {}", r.body);
    } else {
        assert!(ct.starts_with("application/json"), "{ct}");
        assert_eq!(r.json()["error"], reason, "{}", r.body);
    }
}

async fn errors(h: &Harness, reason: &str) -> f64 {
    h.metric("entra_gateway_upstream_errors_total", &[("reason", reason)])
        .await
}

/// Both answers (page and JSON) for `path`, asserted; the metric counts both.
async fn assert_both(h: &Harness, path: &str, status: u16, reason: &str) {
    let b = h.browser();
    let before = errors(h, reason).await;
    assert_failure(
        &b.request(reqwest::Method::GET, path, Kind::Xhr, None, &[]).await,
        status,
        reason,
        false,
    );
    assert_failure(&b.get(path).await, status, reason, true);
    assert_eq!(
        errors(h, reason).await - before,
        2.0,
        "{reason} counted once per request"
    );
}

/// The gateway answers its own endpoints: it did not crash.
async fn assert_alive(h: &Harness) {
    let r = h.browser().xhr("/.well-known/entra-gateway/jwks.json").await;
    assert_eq!(r.status, 200, "the gateway still serves: {}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_by_host_name() {
    let h = Harness::start(
        Options::default().patch_wired(|w| json!({"upstream": {"url": format!("http://localhost:{}", w.app.port())}})),
    )
    .await;
    let r = h.browser().xhr("/public/api/whoami").await;
    assert_eq!(r.status, 200, "{}", r.body);
    let b = h.signed_in("alice@contoso.example").await;
    let r = b.whoami().await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["verified"], true);
    assert!(h.metric("entra_gateway_upstream_addresses", &[]).await >= 1.0);
    assert!(
        h.metric("entra_gateway_upstream_resolutions_total", &[("result", "ok")])
            .await
            >= 1.0
    );
    // One latency observation per forwarded request.
    assert!(h.metric("entra_gateway_upstream_latency_seconds_count", &[]).await >= 2.0);
    assert_eq!(errors(&h, "upstream_unresolved").await, 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_that_does_not_resolve_is_502_and_the_gateway_stays_up() {
    let h = gateway(json!({"url": "http://no-such-host.invalid:8080", "connect_timeout": "1s"})).await;
    let started = Instant::now();
    assert_both(&h, "/public/api/whoami", 502, "upstream_unresolved").await;
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_alive(&h).await;
    // Still answering (and still trying) afterwards.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_both(&h, "/public/x", 502, "upstream_unresolved").await;
    assert!(
        h.gateway.logs().contains("upstream_resolve"),
        "resolution failures are logged"
    );
    assert!(!h.gateway.logs().contains("panicked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_is_down_is_502() {
    let port = free_port();
    let h = gateway(json!({"url": format!("http://127.0.0.1:{port}")})).await;
    assert_both(
        &h,
        "/public/api/whoami?code=secret-value",
        502,
        "upstream_connect_failed",
    )
    .await;
    let logs = h.gateway.logs();
    assert!(logs.contains("upstream_error"), "one log line: {logs}");
    assert!(!logs.contains("secret-value"), "no query string in the logs");
    assert_alive(&h).await;
}

/// Accepts connections and reads requests, never answering.
async fn hanging_upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_hanging_past_read_timeout_is_504() {
    let port = hanging_upstream().await;
    let h = gateway(json!({"url": format!("http://127.0.0.1:{port}"), "read_timeout": "1s"})).await;
    let started = Instant::now();
    assert_both(&h, "/public/api/whoami", 504, "upstream_timeout").await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(8),
        "two requests of ~1 s: {took:?}"
    );
    assert_alive(&h).await;
}

/// Reads a request, then resets the connection (RST, SO_LINGER 0).
async fn resetting_upstream() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s.set_zero_linger();
            drop(s);
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_resetting_connections_is_502() {
    let port = resetting_upstream().await;
    let h = gateway(json!({"url": format!("http://127.0.0.1:{port}")})).await;
    assert_both(&h, "/public/api/whoami", 502, "upstream_reset").await;
    assert_alive(&h).await;
}

/// `openssl s_server` serving files over https with a certificate for
/// `localhost` from a throw-away CA; killed on drop.
struct HttpsApp {
    port: u16,
    ca_file: std::path::PathBuf,
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl HttpsApp {
    async fn start() -> HttpsApp {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(path("server.pem"), cert.pem()).unwrap();
        std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
        std::fs::create_dir(path("public")).unwrap();
        std::fs::write(path("public/hello.txt"), "hello over tls").unwrap();
        let port = free_port();
        let child = std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-WWW", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(path("server.pem"))
            .arg("-key")
            .arg(path("server.key"))
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("openssl s_server starts");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(10), "s_server listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        HttpsApp {
            port,
            ca_file: path("ca.pem"),
            child,
            _dir: dir,
        }
    }
}

impl Drop for HttpsApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_https_upstream_with_a_private_ca() {
    let app = HttpsApp::start().await;
    let url = format!("https://localhost:{}", app.port);

    // Trusted through ca_file.
    let h = gateway(json!({"url": url, "ca_file": app.ca_file.display().to_string()})).await;
    let r = h.browser().xhr("/public/hello.txt").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("hello over tls"), "{}", r.body);
    drop(h);

    // Not trusted without it: verification stays on by default.
    let h = gateway(json!({"url": url})).await;
    assert_both(&h, "/public/hello.txt", 502, "upstream_tls_failed").await;
    drop(h);

    // Verification off, as asked.
    let h = gateway(json!({"url": url, "tls_verify": false})).await;
    let r = h.browser().xhr("/public/hello.txt").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("hello over tls"), "{}", r.body);
}

/// A listener that never accepts, its one-slot queue (backlog 0) filled:
/// Linux drops every further SYN, so a connect hangs until its timeout
/// (what a firewall that drops packets does). The returned connection keeps
/// the slot taken.
async fn syn_dropping_upstream() -> (u16, tokio::net::TcpListener, tokio::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let port = listener.local_addr().unwrap().port();
    let filler = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    // The premise: another connect now gets no answer at all.
    let probe = tokio::time::timeout(
        Duration::from_millis(500),
        tokio::net::TcpStream::connect(("127.0.0.1", port)),
    )
    .await;
    assert!(probe.is_err(), "a full backlog-0 queue drops SYNs: {probe:?}");
    (port, listener, filler)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_never_accepts_is_504_after_connect_timeout() {
    let (port, _listener, _filler) = syn_dropping_upstream().await;
    let h = gateway(json!({"url": format!("http://127.0.0.1:{port}"), "connect_timeout": "1s"})).await;
    let b = h.browser();
    let before = errors(&h, "upstream_connect_timeout").await;
    for navigation in [false, true] {
        let started = Instant::now();
        let r = if navigation {
            b.get("/public/api/whoami").await
        } else {
            b.request(reqwest::Method::GET, "/public/api/whoami", Kind::Xhr, None, &[])
                .await
        };
        let took = started.elapsed();
        assert_failure(&r, 504, "upstream_connect_timeout", navigation);
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(3),
            "answered after connect_timeout (1 s): {took:?}"
        );
    }
    assert_eq!(errors(&h, "upstream_connect_timeout").await - before, 2.0);
    assert_alive(&h).await;
    assert!(!h.gateway.logs().contains("panicked"));
}

/// A tiny app at `ip:port` that answers every request with `name` (and
/// closes the connection, so stopping it leaves nothing pooled); stopped
/// when the handle is aborted or dropped.
struct NamedApp(tokio::task::JoinHandle<()>);

impl NamedApp {
    async fn start(ip: &str, port: u16, name: &'static str) -> NamedApp {
        let l = TcpListener::bind((ip, port)).await.unwrap();
        NamedApp(tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else { return };
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{name}",
                        name.len()
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        }))
    }

    /// Stops answering before it returns: `abort` alone only schedules the
    /// cancellation, and the listener would take a connection meanwhile.
    async fn stop(mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

impl Drop for NamedApp {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A port free on both 127.0.0.1 and 127.0.0.2.
async fn port_on_both() -> u16 {
    for _ in 0..100 {
        let port = free_port();
        if std::net::TcpListener::bind(("127.0.0.2", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free on 127.0.0.1 and 127.0.0.2");
}

/// `count` navigations-free GETs in a row; the app names that answered, and
/// every status that was not 200.
async fn who_answers(h: &Harness, count: usize) -> (Vec<String>, Vec<u16>) {
    let b = h.browser();
    let mut names = Vec::new();
    let mut bad = Vec::new();
    for _ in 0..count {
        let r = b.xhr("/public/which").await;
        if r.status == 200 {
            names.push(r.body);
        } else {
            bad.push(r.status);
        }
    }
    (names, bad)
}

/// One host name with two addresses: `app-pool` is 127.0.0.1 and 127.0.0.2
/// in an `/etc/hosts` of the gateway's own (a private mount namespace,
/// `unshare -rm`; the network is the test's).
#[tokio::test(flavor = "multi_thread")]
async fn two_addresses_of_one_name_are_balanced_and_a_dead_one_is_skipped() {
    let usable = std::process::Command::new("unshare")
        .args(["-rm", "true"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        usable,
        "this test needs `unshare -rm` (util-linux, unprivileged user namespaces) to give the gateway its own /etc/hosts"
    );
    let dir = tempfile::tempdir().unwrap();
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 localhost\n127.0.0.1 app-pool\n127.0.0.2 app-pool\n").unwrap();
    let port = port_on_both().await;
    let one = NamedApp::start("127.0.0.1", port, "one").await;
    let two = NamedApp::start("127.0.0.2", port, "two").await;
    let wrap = [
        "unshare",
        "-rm",
        "sh",
        "-c",
        &format!("mount --bind {} /etc/hosts && exec \"$@\"", hosts.display()),
        "sh",
    ];
    let h = Harness::start(
        Options {
            wrap: Some(wrap.iter().map(|s| s.to_string()).collect()),
            ..Options::default()
        }
        .patch(json!({"upstream": {"url": format!("http://app-pool:{port}")}})),
    )
    .await;

    // Resolved in the background: the first request may come before.
    let started = Instant::now();
    while h.browser().xhr("/public/which").await.status != 200 {
        assert!(started.elapsed() < Duration::from_secs(10), "{}", h.gateway.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (names, bad) = who_answers(&h, 10).await;
    assert!(bad.is_empty(), "{bad:?}");
    assert!(
        names.windows(2).all(|w| w[0] != w[1]),
        "round robin over both addresses: {names:?}"
    );
    assert_eq!(h.metric("entra_gateway_upstream_addresses", &[]).await, 2.0);

    // One address goes away: a connect refused there moves on to the other
    // at once, before the health check (every 5 s) has noticed.
    two.stop().await;
    let (names, bad) = who_answers(&h, 10).await;
    assert!(bad.is_empty(), "no request fails for the dead address: {bad:?}");
    assert!(names.iter().all(|n| n == "one"), "{names:?}");
    // And after it has noticed (no connect to the dead address at all).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let (names, bad) = who_answers(&h, 6).await;
    assert!(bad.is_empty() && names.iter().all(|n| n == "one"), "{names:?} {bad:?}");

    // Back: the health check returns it to the rotation.
    let _two = NamedApp::start("127.0.0.2", port, "two").await;
    let started = Instant::now();
    loop {
        let (names, bad) = who_answers(&h, 4).await;
        assert!(bad.is_empty(), "{bad:?}");
        if names.iter().any(|n| n == "two") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the address is back in the rotation within two health checks"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(errors(&h, "upstream_connect_failed").await, 0.0);
    drop(one);
    assert!(!h.gateway.logs().contains("panicked"));
}

/// Answers every request `200 ok` on one kept-alive connection each, and
/// hands over each request's head as received.
async fn capturing_upstream() -> (u16, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::AsyncWriteExt;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else { return };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                while let Ok(n) = s.read(&mut chunk).await {
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head: Vec<u8> = buf.drain(..end + 4).collect();
                        let _ = tx.send(String::from_utf8_lossy(&head).into_owned());
                        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                    }
                }
            });
        }
    });
    (port, rx)
}

/// One request written by hand (clients like reqwest lower-case names),
/// with `headers` as given; returns the status line.
async fn raw_get(h: &Harness, path: &str, headers: &str) -> String {
    use tokio::io::AsyncWriteExt;
    let addr = h.base.trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    answer.lines().next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn header_names_go_in_lower_case_unless_preserve_header_case_is_on() {
    for preserve in [None, Some(false), Some(true)] {
        let (port, mut heads) = capturing_upstream().await;
        let mut upstream = json!({ "url": format!("http://127.0.0.1:{port}") });
        if let Some(p) = preserve {
            upstream["preserve_header_case"] = json!(p);
        }
        let h = gateway(upstream).await;

        // Anonymous, on a public route.
        let status = raw_get(&h, "/public/a%20b?q=1", "X-Custom-Thing: 1\r\nX-Auth-User: spoofed\r\n").await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{preserve:?}");
        let head = heads.recv().await.unwrap();
        assert!(head.starts_with("GET /public/a%20b?q=1 HTTP/1.1\r\n"), "{head}");
        let custom = if preserve == Some(true) {
            "X-Custom-Thing: 1\r\n"
        } else {
            "x-custom-thing: 1\r\n"
        };
        assert!(head.contains(custom), "{preserve:?}: {head}");
        let lower = head.to_ascii_lowercase();
        assert!(!lower.contains("spoofed"), "{head}");
        assert!(lower.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"), "{head}");

        // Signed in: the gateway's cookie stays out, the identity goes in.
        let b = h.signed_in("alice@contoso.example").await;
        let name = b.session_cookie_name("agent");
        let cookie = b.cookie(&name).expect("session cookie");
        let status = raw_get(
            &h,
            "/x",
            &format!("Cookie: app=1; {name}={cookie}\r\nX-Custom-Thing: 2\r\n"),
        )
        .await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{preserve:?}");
        let head = heads.recv().await.unwrap();
        let cookie_line = if preserve == Some(true) {
            "Cookie: app=1\r\n"
        } else {
            "cookie: app=1\r\n"
        };
        assert!(head.contains(cookie_line), "{preserve:?}: {head}");
        assert!(!head.contains(&cookie), "the session cookie never reaches the app");
        assert!(head.contains("\r\nx-auth-assertion: ey"), "{head}");
        assert!(head.contains("\r\nx-auth-email: alice@contoso.example\r\n"), "{head}");
        let lower = head.to_ascii_lowercase();
        assert_eq!(lower.matches("\r\nx-custom-thing: 2\r\n").count(), 1, "{head}");
    }
}
