//! The gateway serving TLS itself (`server.tls`): SIGHUP reads the
//! certificate files again (cert-manager and certbot replace them in place),
//! new handshakes get the new certificate, open connections and sessions are
//! untouched; a bad pair fails the reload and keeps the running certificate,
//! and stops start-up with exit 2 and the reason (never pingora's panic).

use e2e::*;
use serde_json::json;
use std::path::{Path, PathBuf};

/// A throw-away CA (as `TlsRedis` makes one) that the test clients trust.
struct Ca {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).unwrap().pem();
        Ca {
            issuer: Issuer::new(params, key),
            pem,
        }
    }

    /// A certificate for 127.0.0.1 with a key of its own.
    fn issue(&self) -> Leaf {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        Leaf {
            der: cert.der().to_vec(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

struct Leaf {
    der: Vec<u8>,
    cert_pem: String,
    key_pem: String,
}

/// The two files `server.tls` names, rewritten in place as a renewal does.
struct TlsFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl TlsFiles {
    fn in_dir(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
        }
    }

    fn write(&self, cert_pem: &str, key_pem: &str) {
        std::fs::write(&self.cert, cert_pem).unwrap();
        std::fs::write(&self.key, key_pem).unwrap();
    }

    fn config(&self) -> serde_json::Value {
        json!({"cert": self.cert.display().to_string(), "key": self.key.display().to_string()})
    }
}

/// An app that answers every request with the `X-Auth-Email` it was sent
/// ("-" without one).
async fn echo_app() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let app = axum::Router::new().fallback(|h: axum::http::HeaderMap| async move {
        h.get("x-auth-email")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string()
    });
    tokio::spawn(async move { axum::serve(l, app).await });
    addr
}

fn tls_client(ca: &Ca) -> reqwest::Client {
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .tls_info(true)
        .build()
        .unwrap()
}

/// The certificate (DER) `client` was served on the connection this request
/// went over: a fresh client opens a new one, a used client reuses its own.
async fn served_certificate(client: &reqwest::Client, port: u16) -> Vec<u8> {
    let r = client
        .get(format!("https://127.0.0.1:{port}/.well-known/entra-gateway/healthz"))
        .send()
        .await
        .expect("a TLS connection the client trusts");
    assert_eq!(r.status(), 200);
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|t| t.peer_certificate())
        .expect("the peer certificate")
        .to_vec()
}

const RELOADS: &str = "entra_gateway_config_reload_total";

#[tokio::test(flavor = "multi_thread")]
async fn sighup_serves_renewed_certificate_files_to_new_connections_and_keeps_sessions() {
    let ca = Ca::new();
    let (a, b) = (ca.issue(), ca.issue());
    assert_ne!(a.der, b.der);
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles::in_dir(dir.path());
    files.write(&a.cert_pem, &a.key_pem);
    let app = echo_app().await;
    let h = Harness::start(
        Options {
            insecure_dev_cookies: false,
            ..Options::default()
        }
        .patch(json!({"server": {"tls": files.config()}, "upstream": {"url": format!("http://{app}")}})),
    )
    .await;
    let port = h.gateway.port;
    let base = format!("https://127.0.0.1:{port}");

    assert_eq!(served_certificate(&tls_client(&ca), port).await, a.der);
    // Signed in over TLS (the portal URL is https://127.0.0.1:PORT).
    let alice = Browser::trusting(&base, ca.pem.as_bytes());
    assert_eq!(alice.sign_in("/", "alice@contoso.example").await, "/");
    let r = alice.xhr("/api/me").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body == "alice@contoso.example", "the app sees the user: {}", r.body);
    // A connection open across the reload.
    let open = tls_client(&ca);
    assert_eq!(served_certificate(&open, port).await, a.der);

    // Renewed in place, same file names.
    files.write(&b.cert_pem, &b.key_pem);
    h.gateway.signal("-HUP");
    h.wait_for_metric(RELOADS, &[("result", "ok")], 1.0).await;
    assert_eq!(
        served_certificate(&tls_client(&ca), port).await,
        b.der,
        "a new connection gets the renewed certificate"
    );
    assert_eq!(
        served_certificate(&open, port).await,
        a.der,
        "the connection open before keeps its handshake"
    );
    let r = alice.xhr("/api/me").await;
    assert_eq!(r.status, 200, "the session outlives the reload: {}", r.body);
    // The same session on a connection made with the new certificate.
    let again = Browser::trusting(&base, ca.pem.as_bytes());
    let name = alice.session_cookie_name("agent");
    again.set_cookie(&name, &alice.cookie(&name).expect("a session cookie"));
    let r = again.xhr("/api/me").await;
    assert_eq!((r.status, r.body == "alice@contoso.example"), (200, true), "{}", r.body);
    let stranger = Browser::trusting(&base, ca.pem.as_bytes());
    assert_eq!(stranger.xhr("/api/me").await.status, 401, "still guarded");
    let logs = h.gateway.logs();
    assert!(logs.contains("tls_certificate_reloaded"), "{logs}");

    // A broken key, then a key of another certificate: each reload fails,
    // the renewed certificate stays.
    let body: Vec<&str> = b.key_pem.lines().collect();
    let broken = body[..body.len() - 2].join("\n");
    for (n, (cert, key)) in [(&b.cert_pem, &broken), (&b.cert_pem, &a.key_pem)]
        .into_iter()
        .enumerate()
    {
        files.write(cert, key);
        h.gateway.signal("-HUP");
        h.wait_for_metric(RELOADS, &[("result", "failed")], n as f64 + 1.0)
            .await;
        assert_eq!(served_certificate(&tls_client(&ca), port).await, b.der);
        assert_eq!(alice.xhr("/api/me").await.status, 200);
    }
    assert_eq!(h.metric(RELOADS, &[("result", "ok")]).await, 1.0);
    let logs = h.gateway.logs();
    assert!(
        logs.contains("server.tls.key") && logs.contains("the private key is not valid PEM"),
        "{logs}"
    );
    assert!(logs.contains("does not belong to the certificate"), "{logs}");
    for line in a.key_pem.lines().chain(b.key_pem.lines()) {
        assert!(
            line.starts_with("-----") || !logs.contains(line),
            "key material logged: {line}"
        );
    }
    assert!(!logs.contains("panicked"), "{logs}");
}

/// The configuration of a gateway whose `server.tls` names `files`, written
/// to `dir/gateway.yaml` (nothing listens: these runs stop at the configuration).
fn config_file(dir: &Path, files: &TlsFiles) -> PathBuf {
    let wiring = Wiring {
        port: free_port(),
        metrics_port: free_port(),
        portal_url: "http://127.0.0.1:1".into(),
        entra: "http://127.0.0.1:1".into(),
        app: "127.0.0.1:1".parse().unwrap(),
    };
    let config = Options::default()
        .patch(json!({"server": {"tls": files.config()}}))
        .config(&wiring);
    let path = dir.join("gateway.yaml");
    std::fs::write(&path, config::to_yaml(&config)).unwrap();
    path
}

#[test]
fn a_pair_that_cannot_be_served_stops_start_up_and_check_config_names_it() {
    let ca = Ca::new();
    let (a, b) = (ca.issue(), ca.issue());
    let dir = tempfile::tempdir().unwrap();
    let files = TlsFiles::in_dir(dir.path());
    let config = config_file(dir.path(), &files);
    let truncated: String = a.key_pem.lines().take(3).collect::<Vec<_>>().join("\n");
    let cases = [
        (&a.cert_pem, &b.key_pem, "server.tls: the private key"),
        (&a.cert_pem, &truncated, "server.tls.key: "),
        (&a.key_pem, &a.key_pem, "server.tls.cert: "),
    ];
    for (cert, key, says) in cases {
        files.write(cert, key);
        for command in ["run", "check-config"] {
            let out = std::process::Command::new(gateway_bin())
                .args([command, "--config"])
                .arg(&config)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
            assert!(stderr.contains(says), "{command} says {says:?}: {stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
            for line in key.lines().filter(|l| !l.starts_with("-----")) {
                assert!(!stderr.contains(line), "key material printed: {stderr}");
            }
        }
    }
    // The good pair passes the check.
    files.write(&a.cert_pem, &a.key_pem);
    let out = std::process::Command::new(gateway_bin())
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
