//! Several instances as one (issue 5, part): shared sessions, front-channel
//! logout and revocation ending a session on every instance within a second,
//! and Redis going away and coming back.

use e2e::*;
use std::time::Duration;

/// A gateway on a throw-away Redis (the Redis is dropped with the test).
async fn with_redis() -> (RedisServer, Harness) {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    (redis, h)
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_sessions_and_frontchannel_logout_ends_them_everywhere() {
    let (_redis, h) = with_redis().await;
    let (_b_proc, b) = h.another_instance().await;
    let (_c_proc, c) = h.another_instance().await;
    let a = h.signed_in("alice@contoso.example").await;
    copy_session(&a, &b);
    copy_session(&a, &c);
    let sid = a.whoami().await.json()["claims"]["sid"].as_str().unwrap().to_string();
    for x in [&a, &b, &c] {
        assert_eq!(
            x.whoami().await.status,
            200,
            "the session made on A works on every instance (and is cached)"
        );
    }
    // Entra's front-channel request lands on C: no cookies, only sid (+iss).
    let url = format!(
        "{}/auth/account/frontchannel-logout?sid={sid}&iss={}",
        c.base,
        h.entra.issuer(TENANT)
    );
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["cache-control"], "no-cache, no-store");
    assert!(r.headers().get("x-frame-options").is_none());
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(
        csp.contains(&format!("frame-ancestors {}", h.entra.base_url())),
        "{csp}"
    );
    let took = until_refused(&[&a, &b, &c], Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "ended everywhere in {took:?}");
    eprintln!("front-channel logout ended the session on 3 instances in {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn revoke_by_user_ends_every_session_of_that_user_everywhere() {
    let (_redis, h) = with_redis().await;
    let (_b_proc, b) = h.another_instance().await;
    let first = h.signed_in("alice@contoso.example").await;
    let second = h.signed_in("alice@contoso.example").await;
    let other = h.signed_in("zoe@contoso.example").await;
    copy_session(&first, &b);
    assert_eq!(b.whoami().await.status, 200);
    let user = format!("{TENANT}:a11ce000-0000-4000-8000-000000000001");
    let out = h.command(&["sessions", "revoke", "--user", &user]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "revoked 2 session(s)");
    let took = until_refused(&[&first, &second, &b], Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "revoked everywhere in {took:?}");
    assert_eq!(other.whoami().await.status, 200, "other users are untouched");

    // A sid or key is opaque: one that begins with '-' is still the value.
    for by in ["--sid", "--user"] {
        let out = h.command(&["sessions", "revoke", by, "-pX"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "revoked 0 session(s)");
    }
    // But a flag where the value belongs is refused, not taken as the value.
    let out = h.command(&["sessions", "revoke", "--user", "--sid=x"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a value"));
    assert_eq!(other.whoami().await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn frontchannel_logout_that_must_end_nothing() {
    let (_redis, h) = with_redis().await;
    let a = h.signed_in("alice@contoso.example").await;
    let sid = a.whoami().await.json()["claims"]["sid"].as_str().unwrap().to_string();
    for query in [
        String::new(),
        "?sid=".into(),
        "?sid=an-unknown-sid".into(),
        format!("?sid={sid}&iss={}", h.entra.issuer(OTHER_TENANT)),
        format!("?sid={sid}&iss=https://login.microsoftonline.com/{TENANT}/v2.0"),
    ] {
        let r = reqwest::get(format!("{}/auth/account/frontchannel-logout{query}", h.base))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{query}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(a.whoami().await.status, 200, "{query} must end nothing");
    }

    // With single logout off, even the right sid ends nothing.
    let redis2 = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis2.url()),
        single_logout: false,
        ..Options::default()
    })
    .await;
    let a = h.signed_in("alice@contoso.example").await;
    let sid = a.whoami().await.json()["claims"]["sid"].as_str().unwrap().to_string();
    let r = reqwest::get(format!("{}/auth/account/frontchannel-logout?sid={sid}", h.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        a.whoami().await.status,
        200,
        "SLO off: front-channel logout ends nothing"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn frontchannel_logout_with_the_memory_store() {
    let h = Harness::start(Options::default()).await;
    let a = h.signed_in("alice@contoso.example").await;
    let sid = a.whoami().await.json()["claims"]["sid"].as_str().unwrap().to_string();
    let r = reqwest::get(format!("{}/auth/account/frontchannel-logout?sid={sid}", h.base))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(a.whoami().await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_going_away_and_coming_back() {
    let mut redis = RedisServer::start();
    let port = redis.port;
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let a = h.signed_in("alice@contoso.example").await;
    assert_eq!(a.whoami().await.status, 200); // now cached
    redis.stop();
    assert_eq!(
        a.whoami().await.status,
        200,
        "a cached session keeps working while Redis is down"
    );
    let r = h.browser().get("/").await;
    assert_eq!(r.status, 503, "a new sign-in gets a clear 503 page: {}", r.body);
    assert!(r.body.contains("store_unavailable"));
    let ready = reqwest::get(h.url("/.well-known/entra-gateway/readyz")).await.unwrap();
    assert_eq!(ready.status(), 503);
    // The cache entry ages out (local_cache_ttl 5 s): then the session cannot
    // be confirmed and the gateway says so (503), without panicking.
    tokio::time::sleep(Duration::from_millis(5200)).await;
    assert_eq!(a.whoami().await.status, 503);

    // Redis back (empty: no persistence): the gateway reconnects by itself.
    let _redis = RedisServer::start_on(port);
    let mut recovered = false;
    for _ in 0..100 {
        if reqwest::get(h.url("/.well-known/entra-gateway/readyz"))
            .await
            .unwrap()
            .status()
            == 200
        {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "readiness recovers without a restart:\n{}", h.gateway.logs());
    let b = h.signed_in("alice@contoso.example").await;
    assert_eq!(b.whoami().await.status, 200, "new sign-ins work again");
    assert!(h.metric("entra_gateway_session_store_errors_total", &[]).await >= 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_by_policy_is_published_like_any_other_end() {
    let (redis, h) = with_redis().await;
    let (_b_proc, b) = h.another_instance().await;
    let a = h.signed_in("alice@contoso.example").await;
    copy_session(&a, &b);
    assert_eq!(a.whoami().await.status, 200);
    assert_eq!(b.whoami().await.status, 200, "cached on A and on B now");

    // The absolute timeout arrives (the record says so; A and B still hold
    // their cached copies, valid for local_cache_ttl = 5 s).
    let id = a.cookie("entra_gw_agent").unwrap();
    // The store knows a session by the SHA-256 of its id (docs/security.md).
    let digest = entra_gateway::session::SessionId::parse(&id).unwrap().key();
    let key = format!("egtest:s:{{{digest}}}");
    // Records are `v1:` then JSON (gateway/src/session/codec.rs).
    let stored = redis.cli(&["get", &key]);
    let json = stored.strip_prefix("v1:").expect("a versioned record");
    let mut record: serde_json::Value = serde_json::from_str(json).unwrap();
    record["absolute_expiry"] = serde_json::json!(record["created_at"].as_i64().unwrap() - 1);
    assert_eq!(redis.cli(&["set", &key, &format!("v1:{record}"), "KEEPTTL"]), "OK");

    // A third instance, with nothing cached, meets the expired record: it
    // ends the session everywhere, so A and B let go well before their TTL.
    let (_c_proc, c) = h.another_instance().await;
    copy_session(&a, &c);
    assert_eq!(c.whoami().await.status, 401);
    let took = until_refused(&[&a, &b], Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(1), "refused everywhere in {took:?}");
    assert_eq!(redis.cli(&["exists", &key]), "0", "the record is gone");
}

/// Commands Redis has processed so far (`INFO stats`).
fn commands_processed(redis: &RedisServer) -> u64 {
    redis
        .cli(&["info", "stats"])
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("total_commands_processed")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cached_path_makes_no_redis_round_trip_and_signs_nothing_new() {
    let (redis, h) = with_redis().await;
    let a = h.signed_in("alice@contoso.example").await;
    let first = a.whoami().await.json();
    // What asking Redis itself costs (each INFO is a command).
    let idle = {
        let x = commands_processed(&redis);
        commands_processed(&redis) - x
    };
    let before = commands_processed(&redis);
    for _ in 0..20 {
        let r = a.whoami().await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json()["claims"]["iat"],
            first["claims"]["iat"],
            "the same assertion, not a new signature"
        );
    }
    let used = commands_processed(&redis) - before;
    assert_eq!(used, idle, "20 cached requests sent nothing to Redis");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stored_session_that_cannot_be_read_means_sign_in_again_not_503() {
    // A record written by another version (a rolling upgrade) or damaged:
    // treated as no session, counted, never a 503.
    let (redis, h) = with_redis().await;
    let unreadable = ["v9:{\"portal\":\"agent\"}", "v1:{\"portal\":", "\u{1}garbage"];
    for (i, record) in unreadable.iter().enumerate() {
        let b = h.signed_in("alice@contoso.example").await;
        assert_eq!(b.whoami().await.status, 200);
        let keys = redis.cli(&["--scan", "--pattern", "*s:{*}"]);
        let keys: Vec<&str> = keys.lines().filter(|k| !k.is_empty()).collect();
        assert_eq!(keys.len(), i + 1, "one session key per sign-in: {keys:?}");
        for k in keys {
            redis.cli(&["SET", k, record]);
        }
        // A fresh instance (no local copy) reads the store.
        let (fresh_proc, fresh) = h.another_instance().await;
        copy_session(&b, &fresh);
        let r = fresh.xhr("/api/whoami").await;
        assert_eq!(r.status, 401, "{record:?}: {}", r.body);
        let nav = fresh.get("/").await;
        assert_eq!(nav.status, 302, "a navigation is sent to sign in: {}", nav.body);
        assert!(nav.location().unwrap_or("").contains("/authorize"), "{:?}", nav.headers);
        let metrics = reqwest::get(format!("http://127.0.0.1:{}/metrics", fresh_proc.metrics_port))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("entra_gateway_store_records_unreadable_total{kind=\"session\"}")),
            "counted"
        );
        assert!(
            !fresh_proc.logs().contains(record.trim_start_matches('\u{1}')),
            "never logged"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_logout_leaves_no_index_behind_in_redis() {
    // One sid index per sign-in: left behind, they would pile up for the
    // session lifetime (bench/soak showed one per logout).
    let (redis, h) = with_redis().await;
    let keys = |pattern: &str| {
        redis
            .cli(&["--scan", "--pattern", pattern])
            .lines()
            .filter(|l| !l.is_empty())
            .count()
    };
    for _ in 0..3 {
        let b = h.signed_in("alice@contoso.example").await;
        assert_eq!(keys("*sid:*"), 1, "indexed while signed in");
        assert_eq!(keys("*user:*"), 1);
        assert_eq!(b.get("/auth/logout").await.status, 303);
        assert_eq!(keys("*s:{*}"), 0, "the session is gone");
        assert_eq!(keys("*sid:*"), 0, "and so is its sid index");
        assert_eq!(keys("*user:*"), 0, "and the user's");
    }
}
