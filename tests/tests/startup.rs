//! SPEC §6 "Discovery": the gateway refuses to start on a discovery document
//! it must not trust.

use e2e::*;
use mock_entra::MockEntra;
use serde_json::json;
use std::process::Command;

async fn start_against(
    overrides: serde_json::Map<String, serde_json::Value>,
    issuer_host: Option<&str>,
) -> (i32, String) {
    let port = free_port();
    let portal = format!("http://127.0.0.1:{port}");
    let mut cfg = mock_config(&portal);
    cfg.discovery_overrides = overrides;
    let entra = MockEntra::start(cfg, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut yaml = Harness::config_yaml(
        &Options::default(),
        port,
        free_port(),
        &portal,
        entra.base_url(),
        "127.0.0.1:9".parse().unwrap(),
    );
    if let Some(h) = issuer_host {
        yaml = yaml.replace(
            "  authority_host:",
            &format!("  issuer_host: \"{h}\"\n  authority_host:"),
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("g.yaml");
    std::fs::write(&f, yaml).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(gateway_bin())
            .arg("run")
            .arg("--config")
            .arg(&f)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_discovery_document_with_another_issuer() {
    let mut o = serde_json::Map::new();
    o.insert(
        "issuer".into(),
        json!(format!("https://login.microsoftonline.com/{OTHER_TENANT}/v2.0")),
    );
    let (code, err) = start_against(o, None).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("discovery issuer"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_when_the_expected_issuer_host_differs() {
    let (code, err) = start_against(serde_json::Map::new(), Some("http://127.0.0.2:1")).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("expected \"http://127.0.0.2:1/"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_a_jwks_uri_off_the_clouds_hosts() {
    for uri in ["https://evil.example/keys", "http://127.0.0.1:1/keys"] {
        let mut o = serde_json::Map::new();
        o.insert("jwks_uri".into(), json!(uri));
        let (code, err) = start_against(o, None).await;
        assert_eq!(code, 1, "{uri}: {err}");
        assert!(err.contains("jwks_uri"), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn refuses_an_authorize_endpoint_elsewhere() {
    let mut o = serde_json::Map::new();
    o.insert(
        "authorization_endpoint".into(),
        json!("https://phish.example/authorize"),
    );
    let (code, err) = start_against(o, None).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("authorization_endpoint"), "{err}");
}
