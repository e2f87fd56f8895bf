//! From App Registration to running (issue 14): `check-config --online`
//! against the mock Entra and a real Redis, each failure named; a sign-in
//! with the client secret read from a file.

use e2e::*;
use serde_json::json;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `check-config --online` with `options` wired to `h`'s mock and app:
/// the exit code and what it printed.
fn online_with(h: &Harness, options: &Options) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("gateway.yaml");
    let wiring = h.wiring(free_port(), free_port(), &h.portal_url);
    std::fs::write(&cfg, e2e::config::to_yaml(&options.config(&wiring))).unwrap();
    let out = std::process::Command::new(gateway_bin())
        .args(["check-config", "--online", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    (out.status.code(), stdout(&out))
}

fn line<'a>(text: &'a str, check: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with(&format!("online: {check} ")))
        .unwrap_or_else(|| panic!("no line for {check} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_online_proves_discovery_keys_store_and_credential() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        flow: Flow::Code,
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let out = h.command(&["check-config", "--online"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(line(&text, "discovery").contains(" ok: "), "{text}");
    assert!(line(&text, "signing keys").contains(" ok: "), "{text}");
    assert!(line(&text, "session store").contains(" ok: redis"), "{text}");
    assert!(line(&text, "client credential").contains(" ok: "), "{text}");
    assert!(!text.contains(CLIENT_SECRET), "the secret is never printed");

    // Without a credential the check is skipped, not failed.
    let h2 = Harness::start(Options::default()).await;
    let out = h2.command(&["check-config", "--online"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(line(&text, "client credential").contains(" skipped: "), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn check_config_online_names_each_failure_and_exits_1() {
    // A wrong secret, a store that is down.
    let mut dead = RedisServer::start();
    let dead_url = dead.url();
    dead.stop();
    let h = Harness::start(Options::default()).await;
    let bad = Options {
        redis_url: Some(dead_url),
        ..Options::default()
    }
    .patch(json!({ "entra": { "client_secret": "not-the-secret" } }));
    let (code, text) = online_with(&h, &bad);
    assert_eq!(code, Some(1), "{text}");
    assert!(line(&text, "discovery").contains(" ok: "), "{text}");
    assert!(line(&text, "session store").contains(" FAILED: redis"), "{text}");
    let cred = line(&text, "client credential");
    assert!(
        cred.contains(" FAILED: ") && cred.contains("HTTP 401") && cred.contains("invalid_client"),
        "{text}"
    );
    assert!(!text.contains("not-the-secret"));

    // Entra unreachable: discovery fails and the keys check says why it was skipped.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let unreachable = Options::default().patch(json!({ "entra": { "authority_host": nobody } }));
    let (code, text) = online_with(&h, &unreachable);
    assert_eq!(code, Some(1), "{text}");
    assert!(line(&text, "discovery").contains(" FAILED: "), "{text}");
    assert!(
        line(&text, "signing keys").contains(" skipped: discovery failed"),
        "{text}"
    );
    assert!(line(&text, "session store").contains(" ok: memory"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_secret_from_a_file_signs_in_with_the_code_flow() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("client-secret");
    // As `kubectl create secret` or `systemd-creds` leave it: a trailing newline.
    std::fs::write(&file, format!("{CLIENT_SECRET}\n")).unwrap();
    let h = Harness::start(Options::default().patch(json!({
        "entra": { "client_secret_file": file.display().to_string() }
    })))
    .await;
    let b = h.browser();
    let r = b.get(&h.url("/tickets")).await;
    let a = r.location().expect("to the authority").to_string();
    assert!(a.contains("response_type=code"), "a secret means the code flow: {a}");
    let landed = b.sign_in(&h.url("/"), "alice@contoso.example").await;
    assert_eq!(landed, "/");
    assert_eq!(b.whoami().await.json()["verified"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_redis_password_from_a_file_reaches_a_password_protected_redis() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret:p@ss"]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-password");
    std::fs::write(&file, "s3cret:p@ss\n").unwrap();
    let h = Harness::start(
        Options {
            redis_url: Some(redis.url()),
            ..Options::default()
        }
        .patch(json!({ "session": { "redis_password_file": file.display().to_string() } })),
    )
    .await;
    let b = h.signed_in("alice@contoso.example").await;
    assert_eq!(b.whoami().await.status, 200, "sessions kept in the protected Redis");
    let text = stdout(&h.command(&["check-config", "--online"]));
    assert!(line(&text, "session store").contains(" ok: redis"), "{text}");
    assert!(!text.contains("s3cret"), "the password is never printed");

    // Without the file the store refuses us, and the check says so.
    let plain = Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    };
    let (code, text) = online_with(&h, &plain);
    assert_eq!(code, Some(1), "{text}");
    assert!(line(&text, "session store").contains(" FAILED: redis"), "{text}");
}
