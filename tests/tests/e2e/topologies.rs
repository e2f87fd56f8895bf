//! Several gateway instances sharing a real Redis Cluster (3 masters + 3
//! replicas) or a Sentinel group (master, replica, 3 sentinels): sessions,
//! single logout and revocation work across instances, and a master failover
//! in the middle loses no session that Redis kept.

use e2e::*;
use std::time::{Duration, Instant};

const AGENT_COOKIE: &str = "entra_gw_agent";

async fn sid_of(b: &Browser) -> String {
    b.whoami().await.json()["claims"]["sid"].as_str().unwrap().to_string()
}

/// Sign in on A, use on B and C; front-channel logout on C ends it on all
/// three within a second; revoke by user likewise. Returns the harness' two
/// extra instances for the failover part.
async fn shared_sessions_and_single_logout(h: &Harness) -> [(GatewayProcess, Browser); 2] {
    let (b_proc, b) = h.another_instance().await;
    let (c_proc, c) = h.another_instance().await;
    let a = h.signed_in("alice@contoso.example").await;
    copy_session(&a, &b);
    copy_session(&a, &c);
    for x in [&a, &b, &c] {
        assert_eq!(x.whoami().await.status, 200, "a session made on A works everywhere");
    }
    let sid = sid_of(&a).await;
    let r = reqwest::get(format!(
        "{}/auth/account/frontchannel-logout?sid={sid}&iss={}",
        c.base,
        h.entra.issuer(TENANT)
    ))
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let took = until_refused(&[&a, &b, &c], Duration::from_secs(1)).await;
    eprintln!("front-channel logout on C ended the session on A, B, C in {took:?}");

    let first = h.signed_in("alice@contoso.example").await;
    let second = h.signed_in("alice@contoso.example").await;
    let other = h.signed_in("zoe@contoso.example").await;
    let on_c = Browser::new(&c.base, false);
    copy_session(&first, &on_c);
    assert_eq!(on_c.whoami().await.status, 200);
    let alice = format!("{TENANT}:a11ce000-0000-4000-8000-000000000001");
    let out = h.command(&["sessions", "revoke", "--user", &alice]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "revoked 2 session(s)");
    let took = until_refused(&[&first, &second, &on_c], Duration::from_secs(1)).await;
    eprintln!("revoke by user ended 2 sessions on two instances in {took:?}");
    assert_eq!(other.whoami().await.status, 200, "other users are untouched");
    [(b_proc, b), (c_proc, c)]
}

/// Requests keep flowing through `b` while a failover happens; counts answers.
fn traffic(b: Browser, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> tokio::task::JoinHandle<Vec<u16>> {
    tokio::spawn(async move {
        let mut statuses = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            statuses.push(b.whoami().await.status);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        statuses
    })
}

fn report_traffic(statuses: Vec<u16>) {
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "during the failover only 200 or a clear 503: {statuses:?}"
    );
    let ok = statuses.iter().filter(|s| **s == 200).count();
    eprintln!(
        "requests during the failover: {ok} x 200, {} x 503",
        statuses.len() - ok
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_on_a_redis_cluster_with_a_master_failover() {
    let mut cluster = RedisCluster::start();
    let h = Harness::start(Options {
        redis_cluster: cluster.urls(),
        ..Options::default()
    })
    .await;
    let [(_b_proc, b), (_c_proc, _c)] = shared_sessions_and_single_logout(&h).await;

    // Sessions land on all three masters (hash tags spread them by id).
    let mut users = Vec::new();
    for i in 0..12 {
        let who = if i % 2 == 0 {
            "alice@contoso.example"
        } else {
            "zoe@contoso.example"
        };
        users.push(h.signed_in(who).await);
    }
    let session_keys = cluster.keys("egtest:s:");
    let masters: std::collections::HashSet<u16> = session_keys.iter().map(|k| cluster.master_of(k)).collect();
    assert!(masters.len() >= 2, "sessions spread over the masters: {masters:?}");

    // Kill the master holding one user's session while traffic flows.
    let watched = users.pop().unwrap();
    copy_session(&watched, &b);
    assert_eq!(b.whoami().await.status, 200);
    let key = session_keys
        .iter()
        .find(|k| k.contains(&session_digest(&watched)))
        .cloned()
        .expect("the session is a key named by its id");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let during = traffic(b, stop.clone());
    let took = cluster.fail_over_master_of(&key);
    eprintln!("cluster failover of {key}'s master took {took:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    report_traffic(during.await.unwrap());

    // A fresh instance has nothing cached: what it sees is what Redis kept.
    let (_d_proc, d) = h.another_instance().await;
    for u in users.iter().chain([&watched]) {
        copy_session(u, &d);
        assert_eq!(d.whoami().await.status, 200, "no session lost in the failover");
    }
    let after = h.signed_in("alice@contoso.example").await;
    assert_eq!(after.whoami().await.status, 200, "sign-ins work after the failover");
    let sid = sid_of(&after).await;
    let r = reqwest::get(format!("{}/auth/account/frontchannel-logout?sid={sid}", d.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    until_refused(&[&after], Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_on_sentinel_with_a_master_failover() {
    let mut group = RedisSentinels::start();
    let h = Harness::start(Options {
        redis_url: Some(group.url()),
        ..Options::default()
    })
    .await;
    let [(_b_proc, b), (_c_proc, c)] = shared_sessions_and_single_logout(&h).await;

    let kept = h.signed_in("zoe@contoso.example").await;
    copy_session(&kept, &b);
    assert_eq!(b.whoami().await.status, 200);
    assert!(!group.keys("egtest:s:").is_empty());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let during = traffic(b, stop.clone());
    let took = group.kill_master();
    eprintln!("sentinel promoted the replica {took:?} after the master was killed");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    report_traffic(during.await.unwrap());

    // The instances find the new master by themselves.
    let start = Instant::now();
    let again = loop {
        let b = h.browser();
        let r = b.get("/").await;
        if r.status != 503 {
            break b;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "still 503 after the failover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    drop(again);
    let (_d_proc, d) = h.another_instance().await;
    copy_session(&kept, &d);
    assert_eq!(d.whoami().await.status, 200, "the session survived the failover");
    let after = h.signed_in("alice@contoso.example").await;
    copy_session(&after, &c);
    assert_eq!(c.whoami().await.status, 200);
    // The revocation bus follows the new master too.
    let sid = sid_of(&after).await;
    let r = reqwest::get(format!("{}/auth/account/frontchannel-logout?sid={sid}", d.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let took = until_refused(&[&after, &c], Duration::from_secs(1)).await;
    eprintln!("after the failover, front-channel logout on D ended it on A and C in {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_with_a_private_ca() {
    let redis = TlsRedis::start();
    let trust = vec![("SSL_CERT_FILE".to_string(), redis.ca_file.display().to_string())];
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        env: trust,
        ..Options::default()
    })
    .await;
    let (_b_proc, b) = h.another_instance().await;
    let a = h.signed_in("alice@contoso.example").await;
    copy_session(&a, &b);
    assert_eq!(b.whoami().await.status, 200, "sessions shared over TLS");
    let out = h.command(&["sessions", "revoke", "--sid", &sid_of(&a).await]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "revoked 1 session(s)",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    until_refused(&[&a, &b], Duration::from_secs(1)).await;

    // With only the system's roots the private CA is not trusted: the
    // connection is refused and the command says why (no plain-text fallback).
    let out = h.command_with_env(&["sessions", "revoke", "--sid", "x"], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("session store"), "{err}");
    eprintln!("untrusted certificate: {err}");
}

/// How the store names a browser's agent-portal session (SHA-256 of its id).
fn session_digest(b: &Browser) -> String {
    let id = b.cookie(AGENT_COOKIE).expect("a session cookie");
    entra_gateway::session::SessionId::parse(&id)
        .expect("an id")
        .key()
        .to_hex()
}
