//! Full sign-ins over HTTP, both flows, memory and Redis stores; the app
//! verifies the assertion with the gateway's JWKS and echoes the claims.

use e2e::*;

async fn full_sign_in(h: &Harness) {
    let b = h.browser();
    let a = b.begin_login(&h.url("/tickets/42?view=full")).await;
    // The authorize request (SPEC §1, issue 2 §5).
    assert!(
        a.url
            .starts_with(&format!("{}/{TENANT}/oauth2/v2.0/authorize?", h.entra.base_url())),
        "{}",
        a.url
    );
    assert_eq!(a.param("client_id"), Some(CLIENT_ID));
    assert_eq!(
        a.param("redirect_uri").map(str::to_string),
        Some(format!("{}/auth/account/azureresponse", h.portal_url))
    );
    assert_eq!(a.param("response_mode"), Some("form_post"));
    let scope: Vec<&str> = a.param("scope").unwrap().split(' ').collect();
    assert!(scope.contains(&"openid") && scope.contains(&"profile"));
    let state = a.param("state").unwrap();
    assert!(state.len() <= 64 && !state.contains('/'), "state is opaque: {state}");
    assert!(a.param("nonce").is_some_and(|n| n.len() >= 32));
    match h.options.flow {
        Flow::IdToken => {
            assert_eq!(a.param("response_type"), Some("id_token"));
            assert!(a.param("code_challenge").is_none());
        }
        Flow::Code => {
            assert_eq!(a.param("response_type"), Some("code"));
            assert_eq!(a.param("code_challenge_method"), Some("S256"));
            assert_eq!(a.param("code_challenge").map(str::len), Some(43));
        }
    }
    assert_eq!(a.param("domain_hint"), h.options.federated_domain.as_deref());

    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    match h.options.flow {
        Flow::IdToken => assert!(fp.get("id_token").is_some()),
        Flow::Code => assert!(fp.get("code").is_some() && fp.get("id_token").is_none()),
    }
    let r = b.deliver(&fp).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), Some("/tickets/42?view=full"));
    let sc = r.cookie("entra_gw_agent").expect("session cookie");
    assert!(sc.has("httponly") && sc.attr("samesite") == Some("lax") && sc.attr("path") == Some("/"));
    assert!(!sc.has("secure"), "insecure_dev_cookies: no Secure");
    assert!(sc.max_age().is_none(), "no remember-me: a browser-session cookie");
    assert_eq!(sc.value.len(), 43, "an opaque 256-bit id");

    let who = b.whoami().await;
    assert_eq!(who.status, 200);
    let j = who.json();
    assert_eq!(j["verified"], true, "the app verified X-Auth-Assertion: {j}");
    let c = &j["claims"];
    assert_eq!(c["sub"], format!("{TENANT}:a11ce000-0000-4000-8000-000000000001"));
    assert_eq!(c["tid"], TENANT);
    assert_eq!(c["oid"], "a11ce000-0000-4000-8000-000000000001");
    assert_eq!(c["email"], "alice@contoso.example");
    assert_eq!(c["name"], "Alice Agent");
    assert_eq!(c["portal"], "agent");
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(c["mfa"], "none");
    assert!(c["sid"].is_string());
    let lifetime = c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap();
    assert!(lifetime > 0 && lifetime <= 300, "assertion lifetime {lifetime}");
    let hd = &j["headers"];
    assert_eq!(
        hd["x-auth-user"],
        format!("{TENANT}:a11ce000-0000-4000-8000-000000000001")
    );
    assert_eq!(hd["x-auth-email"], "alice@contoso.example");
    assert_eq!(hd["x-auth-name"], "Alice Agent");
    assert_eq!(hd["x-auth-tid"], TENANT);
    assert_eq!(hd["x-auth-portal"], "agent");
    assert!(hd.get("cookie").is_none(), "gateway cookies are never forwarded: {hd}");
}

#[tokio::test(flavor = "multi_thread")]
async fn id_token_flow_memory_store() {
    let h = Harness::start(Options {
        federated_domain: Some("contoso.example".into()),
        ..Options::default()
    })
    .await;
    full_sign_in(&h).await;
    assert_eq!(h.metric("entra_gateway_signins_total", &[("result", "ok")]).await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn code_pkce_flow_memory_store() {
    let h = Harness::start(Options {
        flow: Flow::Code,
        ..Options::default()
    })
    .await;
    full_sign_in(&h).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn id_token_flow_redis_store() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    full_sign_in(&h).await;
    let keys = redis.cli(&["--scan", "--pattern", "egtest:s:*"]);
    assert_eq!(keys.lines().count(), 1, "one session in Redis: {keys}");
    let ttl: i64 = redis.cli(&["ttl", keys.lines().next().unwrap()]).parse().unwrap();
    assert!(ttl > 0 && ttl <= 8 * 3600, "session key has a TTL ({ttl})");
    assert_eq!(
        redis.cli(&["--scan", "--pattern", "egtest:l:*"]),
        "",
        "login record consumed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn code_pkce_flow_redis_store() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        flow: Flow::Code,
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    full_sign_in(&h).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_in_redis_survive_a_gateway_restart_and_work_on_a_second_instance() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let b = h.signed_in("alice@contoso.example").await;
    // A second gateway process on another port, same Redis.
    let (_second, b2) = h.another_instance().await;
    b2.set_cookie("entra_gw_agent", &b.cookie("entra_gw_agent").unwrap());
    let j = b2.whoami().await.json();
    assert_eq!(j["claims"]["oid"], "a11ce000-0000-4000-8000-000000000001", "{j}");
    // The app fetches keys from the first gateway: both sign with the one
    // key kept in Redis, so the second's assertion verifies too.
    assert_eq!(j["verified"], true, "{j}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secure_cookies_behind_a_trusted_tls_terminator() {
    let h = Harness::start(Options {
        insecure_dev_cookies: false,
        ..Options::default()
    })
    .await;
    let b = h.browser();
    let r = b.get("/").await;
    assert_eq!(r.status, 302);
    let login = r
        .set_cookies
        .iter()
        .find(|c| c.name.starts_with("__Host-entra_gw_login_"))
        .expect("login cookie");
    assert!(login.has("secure") && login.has("httponly"));
    assert_eq!(
        login.attr("samesite"),
        Some("none"),
        "form_post is cross-site: SameSite=None; Secure"
    );
    assert_eq!(login.attr("path"), Some("/"));
    assert!(login.attr("domain").is_none());
    let a = url::Url::parse(r.location().unwrap()).unwrap();
    let params: std::collections::HashMap<_, _> = a.query_pairs().into_owned().collect();
    assert_eq!(
        params["redirect_uri"],
        format!("{}/auth/account/azureresponse", h.portal_url)
    );
    assert!(h.portal_url.starts_with("https://"));
    let auth = e2e::browser::Authorize {
        url: r.location().unwrap().to_string(),
        params,
    };
    let fp = b.idp_sign_in(&auth, "alice@contoso.example").await;
    let done = b.deliver(&fp).await;
    assert_eq!(done.status, 303, "{}", done.body);
    let sc = done.cookie("__Host-entra_gw_agent").expect("__Host- session cookie");
    assert!(sc.has("secure") && sc.has("httponly") && sc.attr("samesite") == Some("lax"));
    assert_eq!(b.whoami().await.json()["claims"]["name"], "Alice Agent");

    // The same gateway reached over plain http by an untrusted client would
    // still set Secure cookies (fail closed): the browser drops them.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = plain
        .get(h.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let set: Vec<_> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert!(set.iter().all(|c| c.to_ascii_lowercase().contains("secure")), "{set:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_logins_in_one_browser_each_complete_and_login_cookies_are_bounded() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let first = b.begin_login("/one").await;
    let second = b.begin_login("/two").await;
    let logins = |b: &Browser| {
        b.cookie_names()
            .into_iter()
            .filter(|n| n.starts_with("entra_gw_login_"))
            .count()
    };
    assert_eq!(logins(&b), 2);
    // The second tab completes first, then the first one.
    let fp2 = b.idp_sign_in(&second, "alice@contoso.example").await;
    let r2 = b.deliver(&fp2).await;
    assert_eq!((r2.status, r2.location()), (303, Some("/two")));
    let fp1 = b.idp_sign_in(&first, "alice@contoso.example").await;
    let r1 = b.deliver(&fp1).await;
    assert_eq!((r1.status, r1.location()), (303, Some("/one")), "{}", r1.body);
    assert_eq!(logins(&b), 0, "completed logins clear their cookies");

    // Eight tabs opened within a second all stay pending; a ninth evicts
    // the one opened first (ordered by microseconds, not by cookie order).
    let b = h.browser();
    let mut tabs = Vec::new();
    for i in 0..9 {
        tabs.push(b.begin_login(&format!("/tab{i}")).await);
        assert!(
            logins(&b) <= 8,
            "at most 8 pending logins per browser, got {}",
            logins(&b)
        );
    }
    assert_eq!(logins(&b), 8);
    for i in [8, 1, 5] {
        let fp = b.idp_sign_in(&tabs[i], "alice@contoso.example").await;
        let r = b.deliver(&fp).await;
        let want = format!("/tab{i}");
        assert_eq!(
            (r.status, r.location()),
            (303, Some(want.as_str())),
            "tab {i}: {}",
            r.body
        );
    }
    let fp = b.idp_sign_in(&tabs[0], "alice@contoso.example").await;
    let r = b.deliver(&fp).await;
    assert_eq!(r.status, 400, "the oldest tab was evicted: {}", r.body);
    assert!(r.body.contains("state_cookie_missing"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_secret_reaches_the_log() {
    let h = Harness::start(Options {
        flow: Flow::Code,
        ..Options::default()
    })
    .await;
    let b = h.browser();
    let a = b.begin_login("/").await;
    let login_cookie = b
        .cookie_names()
        .into_iter()
        .find(|n| n.starts_with("entra_gw_login_"))
        .and_then(|n| b.cookie(&n))
        .unwrap();
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    assert_eq!(b.deliver(&fp).await.status, 303);
    let session = b.cookie("entra_gw_agent").unwrap();
    // A refused attempt is logged too.
    let b2 = h.browser();
    let a2 = b2.begin_login("/").await;
    let bad = FormPost {
        action: a2.param("redirect_uri").unwrap().into(),
        fields: vec![
            ("state".into(), a2.param("state").unwrap().into()),
            ("code".into(), "forged-code-value-123".into()),
        ],
    };
    assert_eq!(b2.deliver(&bad).await.status, 400);
    b.get("/auth/logout").await;

    let log = h.gateway.logs();
    assert!(log.contains("signin"), "sign-ins are logged:\n{log}");
    assert!(
        log.contains("code_exchange_failed"),
        "the refusal is logged with its reason:\n{log}"
    );
    assert!(
        log.contains("AADSTS70008"),
        "with Entra's error code (the troubleshooting key):\n{log}"
    );
    let login_secret = login_cookie.split_once('.').unwrap().1.to_string();
    for (what, secret) in [
        ("session id", session.as_str()),
        ("state", a.param("state").unwrap()),
        ("nonce", a.param("nonce").unwrap()),
        ("login binding", login_secret.as_str()),
        ("code", fp.get("code").unwrap()),
        ("forged code", "forged-code-value-123"),
        ("client secret", CLIENT_SECRET),
    ] {
        assert!(!log.contains(secret), "the {what} was logged:\n{log}");
    }
    assert!(!log.contains("eyJ"), "no JWT was logged");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_sign_in_issues_a_new_session_id() {
    let h = Harness::start(Options::default()).await;
    let b = h.signed_in("alice@contoso.example").await;
    let first = b.cookie("entra_gw_agent").unwrap();
    let landed = b.sign_in("/auth/login?rd=%2Fagain", "alice@contoso.example").await;
    assert_eq!(landed, "/again");
    let second = b.cookie("entra_gw_agent").unwrap();
    assert_ne!(first, second, "fresh id at every sign-in");
    assert_eq!(b.whoami().await.status, 200);
    let old = h.browser();
    old.set_cookie("entra_gw_agent", &first);
    assert_eq!(
        old.whoami().await.status,
        401,
        "the previous session of that browser ended"
    );
}
