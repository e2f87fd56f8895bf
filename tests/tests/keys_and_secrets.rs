//! Issue 9: what anonymous callbacks naming random tenants can make the JWKS
//! cache do (§2), and secrets at rest (§4): no session id or login state in
//! Redis key names, index sets or on the revocation bus; the assertion
//! signing key file must be private.

use e2e::*;
use entra_gateway::session::{SessionId, state_digest};
use futures_util::StreamExt;
use mock_entra::TokenSpec;
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn set(spec: &mut TokenSpec, k: &str, v: Value) {
    spec.claims.insert(k.into(), v);
}

/// A token for `tenant` (issuer and tid agree, as Entra's would), signed by
/// a key that tenant never published: what anyone can post to the callback.
async fn forged_for(h: &Harness, tenant: &str) -> browser::Resp {
    let b = h.browser();
    attempt(h, &b, |s| {
        set(s, "tid", json!(tenant));
        set(s, "iss", json!(h.entra.issuer(tenant)));
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn callbacks_naming_random_tenants_fetch_once_each_cache_nothing_and_get_a_4xx() {
    let h = Harness::start(Options {
        entra_extra: "tenant_type: multi\n  sign_in_scope: all".into(),
        // 500 forged logins from one address: the rate limit is not under test here.
        server_extra: vec!["login_rate: { per_ip: \"1000/s\", burst: 1000 }".into()],
        ..Options::default()
    })
    .await;
    let tenants: Vec<String> = (0..500).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    let started = Instant::now();
    let flood = futures_util::stream::iter(tenants.iter())
        .map(|t| async { forged_for(&h, t).await })
        .buffer_unordered(8)
        .collect::<Vec<_>>();
    // Meanwhile, people of the home tenant and of a real (unlisted) tenant
    // sign in: neither waits on the strangers' fetches.
    let people = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        let alice = h.signed_in("alice@contoso.example").await;
        let mallory = h.signed_in("mallory@fabrikam.example").await;
        (alice.whoami().await, mallory.whoami().await, t.elapsed())
    };
    let (answers, (alice, mallory, took)) = tokio::join!(flood, people);
    eprintln!(
        "500 forged callbacks in {:?}; two real sign-ins meanwhile in {took:?}",
        started.elapsed()
    );
    assert_eq!(alice.status, 200);
    assert_eq!(alice.json()["claims"]["tid"], TENANT);
    assert_eq!(mallory.status, 200, "a real tenant that nobody listed signs in");
    assert_eq!(mallory.json()["claims"]["tid"], OTHER_TENANT);

    for r in &answers {
        assert_eq!(r.status, 400, "a refusal, not an outage: {}", r.body);
        assert!(
            r.body.contains("<span id=\"reason\">tenant_keys_unavailable</span>"),
            "{}",
            r.body
        );
    }
    let per_tenant: Vec<usize> = tenants.iter().map(|t| h.entra.jwks_fetch_count(t)).collect();
    assert!(
        per_tenant.iter().all(|&n| n == 1),
        "one fetch per tenant: {per_tenant:?}"
    );
    let fetches = h.metric("entra_gateway_jwks_refreshes_total", &[]).await;
    let failed = h
        .metric("entra_gateway_jwks_refreshes_total", &[("result", "error")])
        .await;
    eprintln!(
        "JWKS fetches: {fetches} ({failed} failed); at the mock: {} for the strangers",
        per_tenant.iter().sum::<usize>()
    );
    assert_eq!(failed, 500.0);
    assert!(
        fetches <= 502.0,
        "the strangers' 500 and the two real tenants': {fetches}"
    );
    assert_eq!(
        h.metric("entra_gateway_jwks_key_sets", &[]).await,
        2.0,
        "only fetched key sets are cached"
    );

    // The same stranger again within 5 minutes: no new fetch.
    let again = &tenants[7];
    for _ in 0..3 {
        let r = forged_for(&h, again).await;
        assert_eq!(r.status, 400);
    }
    assert_eq!(h.entra.jwks_fetch_count(again), 1);
    assert_eq!(
        h.metric(
            "entra_gateway_jwks_fetches_skipped_total",
            &[("why", "recently_failed")]
        )
        .await,
        3.0
    );
    assert_eq!(
        h.metric("entra_gateway_signins_total", &[("result", "error")]).await,
        0.0,
        "no 5xx"
    );
    assert_eq!(
        h.metric("entra_gateway_signins_total", &[("reason", "tenant_keys_unavailable")])
            .await,
        503.0
    );
}

/// Everything a subscriber of every channel receives, in order.
async fn subscribe_all(url: &str) -> Arc<Mutex<Vec<(String, String)>>> {
    let client = redis::Client::open(url).expect("redis url");
    let mut ps = client.get_async_pubsub().await.expect("pubsub");
    ps.psubscribe("*").await.expect("psubscribe");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    tokio::spawn(async move {
        let mut messages = ps.into_on_message();
        while let Some(m) = messages.next().await {
            let payload: String = m.get_payload().unwrap_or_default();
            out.lock().unwrap().push((m.get_channel_name().to_string(), payload));
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn no_session_id_or_login_state_reaches_redis_key_names_or_the_bus() {
    let redis = RedisServer::start();
    // What an eavesdropper on Redis sees: every command, and the bus.
    let monitor_log = tempfile::NamedTempFile::new().unwrap();
    let mut monitor = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "monitor"])
        .stdout(monitor_log.reopen().unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-cli monitor");
    let bus = subscribe_all(&redis.url()).await;
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let (_second, other) = h.another_instance().await;
    let keys = || redis.cli(&["--scan"]).lines().map(str::to_string).collect::<Vec<_>>();

    let b = h.browser();
    let a = b.begin_login("/").await;
    let state = a.param("state").unwrap().to_string();
    let pending = keys();
    assert!(
        pending.contains(&format!("egtest:l:{{{}}}", state_digest(&state))),
        "{pending:?}"
    );
    assert!(pending.iter().all(|k| !k.contains(&state)), "{pending:?}");
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    assert_eq!(b.deliver(&fp).await.status, 303);

    let cookie = b.cookie("entra_gw_agent").expect("session cookie");
    let digest = SessionId::parse(&cookie).unwrap().key().to_hex();
    let signed_in = keys();
    assert!(signed_in.contains(&format!("egtest:s:{{{digest}}}")), "{signed_in:?}");
    assert!(signed_in.iter().all(|k| !k.contains(&cookie)), "{signed_in:?}");
    assert!(
        !signed_in.iter().any(|k| k.starts_with("egtest:l:")),
        "the state is used up"
    );
    for index in signed_in
        .iter()
        .filter(|k| k.starts_with("egtest:user:") || k.starts_with("egtest:sid:"))
    {
        assert_eq!(redis.cli(&["smembers", index]), digest, "{index}");
    }

    // One session on both instances; a logout on one ends it on the other.
    copy_session(&b, &other);
    assert_eq!(other.whoami().await.status, 200);
    assert_eq!(b.whoami().await.status, 200);
    assert_eq!(b.get("/auth/logout").await.status, 303);
    let took = until_refused(&[&other], Duration::from_secs(5)).await;
    assert!(
        took < Duration::from_secs(1),
        "revoked on the other instance in {took:?}"
    );
    assert!(!keys().iter().any(|k| k.starts_with("egtest:s:")), "deleted");

    let revoked = bus.lock().unwrap().clone();
    assert!(
        revoked.contains(&("egtest:revoked".to_string(), digest.clone())),
        "the bus carries the digest: {revoked:?}"
    );
    assert!(revoked.iter().all(|(_, m)| !m.contains(&cookie)), "{revoked:?}");

    let _ = monitor.kill();
    let _ = monitor.wait();
    let seen = std::fs::read_to_string(monitor_log.path()).unwrap();
    assert!(seen.contains(&digest), "MONITOR saw the session's traffic");
    assert!(!seen.contains(&cookie), "no command carried the session id");
    assert!(!seen.contains(&state), "no command carried the login state");
}

fn example_with_key(dir: &std::path::Path, mode: u32) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let key = dir.join("assertion-key.pem");
    std::fs::write(&key, entra_gateway::identity::signer::generate_pem().unwrap()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.yaml");
    let text = std::fs::read_to_string(example).unwrap();
    let replaced = text.replacen(
        "signing_key: \"\"",
        &format!("signing_key: {:?}", key.display().to_string()),
        1,
    );
    assert_ne!(replaced, text, "the example names identity.signing_key");
    let cfg = dir.join("gateway.yaml");
    std::fs::write(&cfg, replaced).unwrap();
    (cfg, key)
}

#[test]
fn a_signing_key_readable_by_group_or_others_stops_check_config_and_run() {
    for mode in [0o644, 0o640, 0o604] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, key) = example_with_key(dir.path(), mode);
        for cmd in ["check-config", "run"] {
            let out = Command::new(gateway_bin())
                .args([cmd, "--config"])
                .arg(&cfg)
                .env_remove("ENTRA_CLIENT_SECRET")
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd} with {mode:o}: {err}");
            assert!(err.contains("identity.signing_key"), "{err}");
            assert!(err.contains(&key.display().to_string()), "names the file: {err}");
            assert!(err.contains("chmod 600"), "says the fix: {err}");
        }
    }
    for mode in [0o600, 0o400] {
        let dir = tempfile::tempdir().unwrap();
        let (cfg, _) = example_with_key(dir.path(), mode);
        let out = Command::new(gateway_bin())
            .args(["check-config", "--config"])
            .arg(&cfg)
            .env_remove("ENTRA_CLIENT_SECRET")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{mode:o}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_key_file_runs_and_a_generated_key_is_warned_about() {
    // Without a key file: the generated key lives in the store; said at start.
    let h = Harness::start(Options::default()).await;
    h.signed_in("alice@contoso.example").await;
    assert!(
        h.gateway.logs().contains("signing_key_in_store"),
        "{}",
        h.gateway.logs()
    );

    // With a 0600 key file: it starts, signs with that key, and says nothing.
    let dir = tempfile::tempdir().unwrap();
    let (_, key) = example_with_key(dir.path(), 0o600);
    let port = free_port();
    let portal = format!("http://127.0.0.1:{port}");
    let entra = mock_entra::MockEntra::start(mock_config(&portal), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let app = mock_entra::app::start(
        mock_entra::app::DemoAppConfig {
            jwks_url: format!("{portal}/.well-known/entra-gateway/jwks.json"),
            audience: AUDIENCE.into(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let plain = format!("identity: {{ audience: \"{AUDIENCE}\" }}");
    let mport = free_port();
    let yaml = Harness::config_yaml(&Options::default(), port, mport, &portal, entra.base_url(), app);
    assert!(yaml.contains(&plain));
    let yaml = yaml.replace(
        &plain,
        &format!(
            "identity: {{ audience: \"{AUDIENCE}\", signing_key: {:?} }}",
            key.display().to_string()
        ),
    );
    let g = GatewayProcess::start(&yaml, port, mport).await;
    let b = Browser::new(&portal, false);
    assert_eq!(b.sign_in("/", "alice@contoso.example").await, "/");
    assert_eq!(b.whoami().await.status, 200, "the app verified the assertion");
    assert!(!g.logs().contains("signing_key_in_store"), "{}", g.logs());
}
