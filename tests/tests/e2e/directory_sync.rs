//! `entra-gateway directory sync` and `directory.sync` (issue 12 B): Entra's
//! users from the mock's Graph `/v1.0/users` into the builtin directory in
//! a real Redis: paging, a rename, a disabled user, `--dry-run`, `--prune`,
//! throttling, CSP customers that did not consent, email matches refused
//! across tenants, sign-in by unique id of an imported user, and the
//! periodic sync running once per interval among two instances.

use e2e::*;
use mock_entra::{MockEntraConfig, MockUser};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

const ALICE_OID: &str = "a11ce000-0000-4000-8000-000000000001";
const ZOE_OID: &str = "20e00000-0000-4000-8000-000000000003";
const BOB_OID: &str = "b0b00000-0000-4000-8000-000000000007";
const DANA_OID: &str = "da2a0000-0000-4000-8000-000000000008";

/// Bob of the home tenant (who can sign in) and Dana of the other tenant;
/// two users per Graph page, so three home users take two pages.
fn more_users(c: &mut MockEntraConfig) {
    c.users.push(MockUser {
        username: "bob@contoso.example".into(),
        name: "Bob Builder".into(),
        email: Some("bob@contoso.example".into()),
        oid: BOB_OID.into(),
        tenant: TENANT.into(),
    });
    c.users.push(MockUser {
        username: "dana@fabrikam.example".into(),
        name: "Dana Other".into(),
        email: Some("dana@contoso.example".into()),
        oid: DANA_OID.into(),
        tenant: OTHER_TENANT.into(),
    });
    c.users_page_size = 2;
}

fn single(redis: &RedisServer) -> Options {
    Options {
        redis_url: Some(redis.url()),
        flow: Flow::Code,
        mock: more_users,
        ..Options::default()
    }
    .patch(json!({"sso": {"match_by": "unique_id"}, "directory": {"kind": "builtin"}}))
    .patch_wired(|w| json!({"entra": {"graph_host": w.entra}}))
}

fn out(o: &std::process::Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `directory sync ARGS`, asserts the exit code, returns stdout.
fn sync(h: &Harness, args: &[&str], code: i32) -> String {
    let mut all = vec!["directory", "sync"];
    all.extend_from_slice(args);
    let o = h.command(&all);
    assert_eq!(o.status.code(), Some(code), "{}", out(&o));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `directory list`, without its header.
fn list(h: &Harness) -> Vec<String> {
    let o = h.command(&["directory", "list"]);
    assert!(o.status.success(), "{}", out(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn import(h: &Harness, csv: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(&file, csv).unwrap();
    let o = h.command(&["directory", "import", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", out(&o));
}

fn home_calls(h: &Harness) -> usize {
    h.entra.users_calls().iter().filter(|(t, _)| t == TENANT).count()
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_pages_binds_renames_disables_prunes_and_the_user_signs_in_by_unique_id() {
    let redis = RedisServer::start();
    let h = Harness::start(single(&redis)).await;
    // Bob is already known to the app, by email only: the home tenant's
    // address is evidence, so the sync binds his record.
    import(&h, "key,kind,email,name\nagent-bob,agent,BOB@contoso.example,Bob\n");
    let before = list(&h);

    let dry = sync(&h, &["--dry-run"], 0);
    assert!(
        dry.contains(&format!(
            "{TENANT} (home tenant): 2 created, 1 updated, 0 disabled, 0 unchanged, 0 skipped, 0 pruned"
        )),
        "{dry}"
    );
    assert!(
        dry.contains("would be (dry run, nothing written): 2 created, 1 updated"),
        "{dry}"
    );
    assert_eq!(list(&h), before, "--dry-run writes nothing");
    assert_eq!(home_calls(&h), 2, "three users, two per page: two pages");

    let real = sync(&h, &[], 0);
    assert!(
        real.contains("total: 2 created, 1 updated, 0 disabled, 0 unchanged, 0 skipped, 0 pruned"),
        "{real}"
    );
    assert_eq!(home_calls(&h), 4);
    let alice_key = format!("{TENANT}:{ALICE_OID}");
    assert_eq!(
        list(&h),
        [
            // Sorted by key. No mail in Graph: no email (the UPN is never one).
            format!("{TENANT}:{ZOE_OID}\tuser\t-\t{TENANT}\t{ZOE_OID}\tZoë Ünicode\t-\tfalse\tfalse"),
            format!("{alice_key}\tuser\talice@contoso.example\t{TENANT}\t{ALICE_OID}\tAlice Agent\t-\tfalse\tfalse"),
            format!("agent-bob\tagent\tbob@contoso.example\t{TENANT}\t{BOB_OID}\tBob Builder\t-\tfalse\tfalse"),
        ]
    );
    // Again: nothing to do.
    assert!(sync(&h, &[], 0).contains("total: 0 created, 0 updated, 0 disabled, 3 unchanged"));

    // The imported user signs in by (tid, oid), and the app sees the record's key.
    let b = h.browser();
    assert_eq!(b.sign_in("/portal/", "alice@contoso.example").await, "/portal/");
    assert_eq!(
        b.xhr("/portal/api/whoami").await.json()["headers"]["x-auth-user"],
        alice_key.as_str()
    );
    // Bob's record kept its key and kind.
    let b = h.signed_in("bob@contoso.example").await;
    assert_eq!(b.whoami().await.json()["headers"]["x-auth-user"], "agent-bob");

    // In Entra: Zoë renamed, Bob disabled, Alice deleted.
    h.entra.graph_rename("zoe@contoso.example", "Zoë Renamed");
    h.entra.graph_set_enabled("bob@contoso.example", false);
    h.entra.graph_remove("alice@contoso.example");
    let s = sync(&h, &[], 0);
    assert!(
        s.contains("total: 0 created, 1 updated, 1 disabled, 0 unchanged, 0 skipped, 0 pruned"),
        "{s}"
    );
    let rows = list(&h);
    assert!(
        rows[1].ends_with("\tfalse\tfalse"),
        "without --prune nothing goes: {rows:?}"
    );
    assert!(rows[0].contains("\tZoë Renamed\t"), "{rows:?}");
    assert!(rows[2].ends_with("\ttrue\tfalse"), "{rows:?}");
    // Entra itself refuses the disabled account...
    let b = h.browser();
    let a = b.begin_login("/").await;
    let refusal = b.idp_refusal(&a, "bob@contoso.example").await;
    assert!(refusal.starts_with("AADSTS50057"), "{refusal}");
    // ...and the gateway's record stays disabled until a sync says otherwise:
    // re-enabled in Entra, Bob is still refused by the gateway.
    h.entra.graph_set_enabled("bob@contoso.example", true);
    let a = b.begin_login("/").await;
    let fp = b.idp_sign_in(&a, "bob@contoso.example").await;
    let r = b.deliver(&fp).await;
    assert_refused(&b, &r, "account_disabled").await;
    h.entra.graph_set_enabled("bob@contoso.example", false);

    let s = sync(&h, &["--prune", "--dry-run"], 0);
    assert!(s.contains("0 skipped, 1 pruned"), "{s}");
    assert!(list(&h)[1].ends_with("\tfalse\tfalse"), "dry run");
    let s = sync(&h, &["--prune"], 0);
    assert!(
        s.contains("total: 0 created, 0 updated, 0 disabled, 2 unchanged, 0 skipped, 1 pruned"),
        "{s}"
    );
    let rows = list(&h);
    assert!(
        rows[1].starts_with(&alice_key) && rows[1].ends_with("\ttrue\tfalse"),
        "pruned = disabled: {rows:?}"
    );
    assert_eq!(rows.len(), 3, "nothing is deleted");
    // Deleted in Entra, Alice cannot sign in there; restored there, she is
    // refused by her pruned (disabled) record until a sync.
    let b = h.browser();
    let a = b.begin_login("/portal/").await;
    let refusal = b.idp_refusal(&a, "alice@contoso.example").await;
    assert!(refusal.starts_with("AADSTS50034"), "{refusal}");
    h.entra.graph_restore("alice@contoso.example");
    let a = b.begin_login("/portal/").await;
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    let r = b.deliver(&fp).await;
    assert_refused(&b, &r, "account_disabled").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_after_retry_after_and_gives_up_when_it_persists() {
    let redis = RedisServer::start();
    let h = Harness::start(single(&redis)).await;
    h.entra.throttle_users(2, 1);
    let started = Instant::now();
    let s = sync(&h, &[], 0);
    assert!(s.contains("total: 3 created"), "{s}");
    assert!(started.elapsed() >= Duration::from_secs(2), "waited Retry-After twice");
    let calls = h.entra.users_calls();
    assert_eq!(calls.len(), 4, "two 429s, then two pages: {calls:?}");
    assert!(calls[1].1 - calls[0].1 >= 1000, "{calls:?}");

    // Throttled past the retries: the tenant fails, the run exits 1, and
    // what the last good run wrote stays.
    h.entra.graph_rename("zoe@contoso.example", "Not Applied");
    h.entra.throttle_users(100, 0);
    let o = h.command(&["directory", "sync"]);
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(&format!(
            "{TENANT} (home tenant): failed: Graph is still throttling after 5 retries"
        )),
        "{stdout}"
    );
    let rows = list(&h);
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| !r.contains("Not Applied")), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn csp_customers_without_consent_are_skipped_and_emails_never_cross_tenants() {
    let redis = RedisServer::start();
    let options = Options {
        redis_url: Some(redis.url()),
        flow: Flow::Code,
        mock: |c| {
            more_users(c);
            c.contracts = vec![CUSTOMER_TENANT.into(), OTHER_TENANT.into(), STRANGER_TENANT.into()];
            // The customer consented without User.Read.All; the stranger never did.
            c.users_forbidden_tenants = vec![CUSTOMER_TENANT.into()];
            c.unconsented_tenants = vec![STRANGER_TENANT.into()];
        },
        ..Options::default()
    }
    .patch(json!({
        "entra": {"tenant_type": "multi", "csp_sync": {"enabled": true}},
        "directory": {"kind": "builtin"},
    }))
    .patch_wired(|w| json!({"entra": {"graph_host": w.entra}}));
    let h = Harness::start(options).await;
    // Dana's address is on a record that names no tenant: a customer's user
    // with that mail is no proof (SPEC §6), the record is not taken.
    import(&h, "key,kind,email,name\ndana,user,dana@contoso.example,Dana\n");
    let s = sync(&h, &[], 0);
    assert!(
        s.contains(&format!(
            "{TENANT} (home tenant): 3 created, 0 updated, 0 disabled, 0 unchanged, 0 skipped, 0 pruned"
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "{CUSTOMER_TENANT} (CSP customer): skipped, not consented: Graph answered 403 Authorization_RequestDenied"
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "{STRANGER_TENANT} (CSP customer): skipped, not consented: token endpoint answered HTTP 400: unauthorized_client (AADSTS700016"
        )),
        "{s}"
    );
    assert!(
        s.contains(&format!(
            "{OTHER_TENANT} (CSP customer): 0 created, 0 updated, 0 disabled, 0 unchanged, 2 skipped, 0 pruned"
        )),
        "{s}"
    );
    // Mallory's mail is Alice's, whose record is bound to Alice.
    assert!(
        s.contains("skipped mallory@fabrikam.example (3a110000-0000-4000-8000-000000000004): email \"alice@contoso.example\" belongs to record"),
        "{s}"
    );
    assert!(s.contains("bound to another identity"), "{s}");
    assert!(
        s.contains("skipped dana@fabrikam.example (da2a0000-0000-4000-8000-000000000008): email \"dana@contoso.example\" belongs to record \"dana\", which names no tenant"),
        "{s}"
    );
    let rows = list(&h);
    assert!(
        rows.contains(&"dana\tuser\tdana@contoso.example\t-\t-\tDana\t-\tfalse\tfalse".to_string()),
        "{rows:?}"
    );
    assert!(!rows.iter().any(|r| r.contains(OTHER_TENANT)), "{rows:?}");

    // Pinned to the customer's tenant, the record is the customer's to bind.
    import(
        &h,
        &format!("key,kind,email,tid,name\ndana,user,dana@contoso.example,{OTHER_TENANT},Dana\n"),
    );
    let s = sync(&h, &[], 0);
    assert!(
        s.contains(&format!("{OTHER_TENANT} (CSP customer): 0 created, 1 updated")),
        "{s}"
    );
    assert!(list(&h).contains(&format!(
        "dana\tuser\tdana@contoso.example\t{OTHER_TENANT}\t{DANA_OID}\tDana Other\t-\tfalse\tfalse"
    )));
}

#[tokio::test(flavor = "multi_thread")]
async fn configuration_errors_exit_2() {
    let redis = RedisServer::start();
    // No client credential: nothing to read Graph with.
    let h = Harness::start(
        Options {
            redis_url: Some(redis.url()),
            ..Options::default()
        }
        .patch(json!({"directory": {"kind": "builtin"}})),
    )
    .await;
    let o = h.command(&["directory", "sync"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("entra.client_secret"),
        "{}",
        out(&o)
    );
    // Not the builtin directory.
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        flow: Flow::Code,
        ..Options::default()
    })
    .await;
    let o = h.command(&["directory", "sync", "--dry-run"]);
    assert_eq!(o.status.code(), Some(2), "{}", out(&o));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("directory.kind"),
        "{}",
        out(&o)
    );
}

/// The readiness answer (SPEC §4's path; `/readyz` where this build still
/// serves it there).
async fn readyz(port: u16) -> serde_json::Value {
    for path in ["/.well-known/entra-gateway/readyz", "/readyz"] {
        let r = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        if let Ok(j) = r.json::<serde_json::Value>().await
            && j.get("status").is_some_and(|s| s.is_string())
        {
            return j;
        }
    }
    panic!("no readiness answer on port {port}")
}

async fn metric_at(metrics_port: u16, name: &str, label: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn periodic_sync_runs_once_per_interval_among_instances_and_degrades_readiness_on_failure() {
    let redis = RedisServer::start();
    let mut options = single(&redis).patch(json!({"directory": {"sync": {"enabled": true, "interval": "5s"}}}));
    options.mock = |c| {
        more_users(c);
        c.users_page_size = 0;
    };
    let h = Harness::start(options).await;
    let (other, _) = h.another_instance().await;
    tokio::time::sleep(Duration::from_secs(15)).await;

    // One page per sync: every call is one sync, and each is counted once it
    // is done (a sync in flight is logged by the mock, not yet counted).
    let synced_ok = || async {
        metric_at(
            h.gateway.metrics_port,
            "entra_gateway_directory_sync_total",
            "result=\"ok\"",
        )
        .await
            + metric_at(
                other.metrics_port,
                "entra_gateway_directory_sync_total",
                "result=\"ok\"",
            )
            .await
    };
    let (mut calls, mut ok): (Vec<u128>, usize) = (Vec::new(), 0);
    for _ in 0..30 {
        calls = h.entra.users_calls().into_iter().map(|(_, t)| t).collect();
        ok = synced_ok().await as usize;
        if ok == calls.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ok, calls.len(), "{calls:?}");
    // At most one per 5 s window. The first sync runs at start, at any point
    // of its window, and its Graph call may arrive after the window's edge;
    // the ones after start at an edge.
    assert!(calls.len() >= 3, "{calls:?}");
    let first_edge = (calls[0] / 5000 + 1) * 5000;
    let steady: Vec<u128> = calls.iter().copied().filter(|t| *t >= first_edge).collect();
    assert!(steady.len() >= 2, "{calls:?}");
    let windows: HashSet<u128> = steady.iter().map(|t| t / 5000).collect();
    assert_eq!(windows.len(), steady.len(), "two syncs in one interval: {calls:?}");
    assert_eq!(list(&h).len(), 3);
    assert_eq!(readyz(h.gateway.port).await["status"], "ready");
    let created = metric_at(
        h.gateway.metrics_port,
        "entra_gateway_directory_sync_users_total",
        "change=\"created\"",
    )
    .await
        + metric_at(
            other.metrics_port,
            "entra_gateway_directory_sync_users_total",
            "change=\"created\"",
        )
        .await;
    assert_eq!(created, 3.0);

    // Graph fails: the instance that ran the sync is degraded, not out of
    // rotation, and the records stay.
    h.entra.throttle_users(1000, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    let degraded = loop {
        let a = readyz(h.gateway.port).await;
        let b = readyz(other.port).await;
        if let Some(j) = [a, b].into_iter().find(|j| j["status"] == "degraded") {
            break j;
        }
        assert!(Instant::now() < deadline, "no instance became degraded");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(degraded["directory_sync"], "failing");
    assert_eq!(list(&h).len(), 3);
    let errors = metric_at(
        h.gateway.metrics_port,
        "entra_gateway_directory_sync_total",
        "result=\"error\"",
    )
    .await
        + metric_at(
            other.metrics_port,
            "entra_gateway_directory_sync_total",
            "result=\"error\"",
        )
        .await;
    assert!(errors >= 1.0);
    // Graph recovers: the next interval's sync clears it.
    h.entra.throttle_users(0, 0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while readyz(h.gateway.port).await["status"] != "ready" || readyz(other.port).await["status"] != "ready" {
        assert!(Instant::now() < deadline, "still degraded after Graph recovered");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
