//! What reaches the app, and what unauthenticated requests get.

use e2e::browser::Kind;
use e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn client_sent_identity_headers_never_reach_the_app() {
    let h = Harness::start(Options::default()).await;
    let spoof = [
        ("x-auth-email", "ceo@contoso.example"),
        ("X-Auth-User", "admin"),
        ("x-auth-assertion", "eyJhbGciOiJub25lIn0.e30."),
        ("x-auth-anything-new", "1"),
    ];
    // Signed out, on a public route (forwarded without SSO).
    let b = h.browser();
    let r = b
        .request(reqwest::Method::GET, "/public/api/whoami", Kind::Xhr, None, &spoof)
        .await;
    assert_eq!(r.status, 200);
    let hd = &r.json()["headers"];
    for (k, _) in spoof {
        assert!(hd.get(k.to_ascii_lowercase()).is_none(), "{k} leaked: {hd}");
    }
    // Signed in: the app sees the gateway's values only.
    let b = h.signed_in("alice@contoso.example").await;
    let r = b
        .request(reqwest::Method::GET, "/api/whoami", Kind::Xhr, None, &spoof)
        .await;
    let j = r.json();
    assert_eq!(j["headers"]["x-auth-email"], "alice@contoso.example");
    assert_eq!(
        j["headers"]["x-auth-user"],
        format!("{TENANT}:a11ce000-0000-4000-8000-000000000001")
    );
    assert!(j["headers"].get("x-auth-anything-new").is_none());
    assert_eq!(j["verified"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn unauthenticated_xhr_and_api_calls_get_401_json_not_a_redirect() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    for (method, kind) in [
        (reqwest::Method::GET, Kind::Xhr),
        (reqwest::Method::GET, Kind::Plain),
        (reqwest::Method::POST, Kind::Navigate),
        (reqwest::Method::DELETE, Kind::Xhr),
    ] {
        let r = b.request(method.clone(), "/api/tickets", kind, None, &[]).await;
        assert_eq!(r.status, 401, "{method}");
        assert!(r.location().is_none());
        assert_eq!(r.json()["error"], "no_session");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
    }
    // A navigation is redirected instead.
    assert_eq!(b.get("/api/tickets").await.status, 302);
}

#[tokio::test(flavor = "multi_thread")]
async fn forwarding_headers_cookies_and_streamed_bodies() {
    let h = Harness::start(Options::default()).await;
    let b = h.signed_in("zoe@contoso.example").await;
    b.set_cookie("app_session", "keep-me");
    let big = vec![("blob".to_string(), "x".repeat(3 * 1024 * 1024))];
    let r = b
        .request(
            reqwest::Method::POST,
            "/api/upload",
            Kind::Xhr,
            Some(&big),
            &[("x-forwarded-for", "6.6.6.6"), ("x-forwarded-host", "evil.example")],
        )
        .await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert!(
        j["body_len"].as_u64().unwrap() > 3 * 1024 * 1024,
        "the whole body arrived: {}",
        j["body_len"]
    );
    let hd = &j["headers"];
    assert_eq!(
        hd["cookie"], "app_session=keep-me",
        "app cookies pass, gateway cookies do not"
    );
    assert_eq!(
        hd["x-forwarded-for"], "127.0.0.1",
        "an untrusted client's X-Forwarded-For is replaced"
    );
    assert_eq!(hd["x-forwarded-proto"], "http");
    assert_eq!(hd["x-forwarded-host"], format!("127.0.0.1:{}", h.gateway.port));
    // Non-ASCII names travel percent-encoded in headers, exact in the assertion.
    assert_eq!(j["claims"]["name"], "Zoë Ünicode");
    assert_eq!(hd["x-auth-name"], "Zo%C3%AB %C3%9Cnicode");
    assert!(hd.get("x-auth-email").is_none(), "zoe has no email claim");
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_and_truncated_session_cookies_are_just_signed_out() {
    let h = Harness::start(Options::default()).await;
    let b = h.signed_in("alice@contoso.example").await;
    let real = b.cookie("entra_gw_agent").unwrap();
    for forged in [
        &real[..20],
        "",
        "%%%%",
        &"A".repeat(43),
        &format!("{real}x"),
        "\u{fc}ber",
    ] {
        b.set_cookie("entra_gw_agent", forged);
        let r = b.whoami().await;
        assert_eq!(r.status, 401, "forged cookie {forged:?}");
    }
    // A session cookie of one portal is not a session at the other.
    b.remove_cookie("entra_gw_agent");
    b.set_cookie("entra_gw_portal", &real);
    assert_eq!(b.xhr("/portal/api/whoami").await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_hosts_and_oversized_auth_bodies_get_clear_4xx() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let r = b
        .request(
            reqwest::Method::GET,
            "/",
            Kind::Navigate,
            None,
            &[("host", "other.example")],
        )
        .await;
    assert_eq!(r.status, 421);
    assert!(r.body.contains("no_portal"));
    // A path the app would normalise into another portal is refused.
    // (Sent raw: HTTP clients normalise such URLs themselves.)
    for path in ["/portal/../api/whoami", "/portal/%2e%2e/api/whoami", "/portal/..%2fapi"] {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", h.gateway.port))
            .await
            .unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            h.gateway.port
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(
            out.starts_with("HTTP/1.1 400"),
            "{path}: {}",
            out.lines().next().unwrap_or("")
        );
    }
    let big = vec![("state".to_string(), "y".repeat(200 * 1024))];
    let r = b.post_form("/auth/account/azureresponse", &big).await;
    assert_eq!(r.status, 413);
}

#[tokio::test(flavor = "multi_thread")]
async fn health_readiness_jwks_and_metrics() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let b = h.browser();
    assert_eq!(
        b.request(
            reqwest::Method::GET,
            "/.well-known/entra-gateway/healthz",
            Kind::Plain,
            None,
            &[]
        )
        .await
        .status,
        200
    );
    let r = b
        .request(
            reqwest::Method::GET,
            "/.well-known/entra-gateway/readyz",
            Kind::Plain,
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ready");
    // The operator's listener answers the same, and /metrics beside them.
    let ops = |p: &str| format!("http://127.0.0.1:{}{p}", h.gateway.metrics_port);
    assert_eq!(reqwest::get(ops("/healthz")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(ops("/readyz")).await.unwrap().status(), 200);
    let m = reqwest::get(ops("/metrics")).await.unwrap();
    assert!(
        m.headers()["content-type"].to_str().unwrap().starts_with("text/plain"),
        "Prometheus text format"
    );
    assert!(m.text().await.unwrap().contains("entra_gateway_"));
    assert_eq!(reqwest::get(ops("/other")).await.unwrap().status(), 404);
    let jwks = b
        .request(
            reqwest::Method::GET,
            "/.well-known/entra-gateway/jwks.json",
            Kind::Plain,
            None,
            &[],
        )
        .await
        .json();
    let key = &jwks["keys"][0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("EC"), Some("P-256"), Some("ES256"))
    );
    assert!(key["kid"].is_string() && key.get("d").is_none(), "public key only");

    let _b = h.signed_in("alice@contoso.example").await;
    assert!(
        h.metric(
            "entra_gateway_requests_total",
            &[("portal", "agent"), ("outcome", "forwarded")]
        )
        .await
            >= 0.0
    );
    assert_eq!(
        h.metric("entra_gateway_signins_total", &[("result", "ok"), ("reason", "ok")])
            .await,
        1.0
    );
    assert!(h.metric("entra_gateway_requests_total", &[("outcome", "login")]).await >= 1.0);

    let mut redis = redis;
    redis.stop();
    let r = b
        .request(
            reqwest::Method::GET,
            "/.well-known/entra-gateway/readyz",
            Kind::Plain,
            None,
            &[],
        )
        .await;
    assert_eq!(r.status, 503, "readiness fails without the store: {}", r.body);
    assert_eq!(
        reqwest::get(format!("http://127.0.0.1:{}/readyz", h.gateway.metrics_port))
            .await
            .unwrap()
            .status(),
        503
    );
    let r = b.get("/somewhere").await;
    assert_eq!(r.status, 503, "a new sign-in gets a clear 503 page");
    assert!(r.body.contains("store_unavailable"));
    assert!(h.metric("entra_gateway_session_store_errors_total", &[]).await >= 1.0);
}

/// SPEC §4: on the main listener `/healthz` and `/readyz` are the app's
/// paths like any other (the gateway's are under `/.well-known/`).
#[tokio::test(flavor = "multi_thread")]
async fn the_apps_own_healthz_is_reached_through_the_gateway() {
    let h = Harness::start(Options::default().patch(serde_json::json!({"routes": {"public": ["/healthz"]}}))).await;
    let b = h.browser();
    let r = b
        .request(reqwest::Method::GET, "/healthz", Kind::Plain, None, &[])
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("Demo app"),
        "the app answered, not the gateway: {}",
        r.body
    );
    // Not public here: a protected path like any other (401 to a non-navigation).
    let r = b.request(reqwest::Method::GET, "/readyz", Kind::Xhr, None, &[]).await;
    assert_eq!(r.status, 401, "{}", r.body);
    let signed_in = h.signed_in("alice@contoso.example").await;
    let r = signed_in.xhr("/readyz").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Demo app"), "the app's page, with identity: {}", r.body);
}
