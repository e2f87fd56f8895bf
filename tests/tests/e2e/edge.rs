//! The edge (issue 9): nothing a client sends poses as identity or as a
//! proxy, anonymous clients cannot grow the gateway's state, sessions and
//! callbacks hold to their portal, client and method.

use e2e::browser::Kind;
use e2e::*;
use serde_json::json;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn headers_seen(r: &browser::Resp) -> serde_json::Map<String, serde_json::Value> {
    r.json()["headers"].as_object().expect("headers").clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn spoofed_identity_and_forwarding_headers_never_reach_the_app() {
    let spoof = [
        ("X_Auth_User", "victim"),
        ("x_auth_email", "ceo@contoso.example"),
        ("X-Auth_Name", "Mallory"),
        ("X_Forwarded_For", "6.6.6.6"),
        ("Forwarded", "for=6.6.6.6;host=evil.example"),
        ("X-Real-IP", "6.6.6.6"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-Forwarded-For", "6.6.6.6"),
        ("X-Forwarded-Host", "evil.example"),
        ("X_Custom", "dropped"),
        ("X_Legacy_Token", "kept"),
    ];
    // From an untrusted peer: only the operator's listed name survives, and
    // the forwarding headers are the gateway's own.
    let h =
        Harness::start(Options::default().patch(json!({"upstream": {"allow_underscore_headers": ["X_Legacy_Token"]}})))
            .await;
    for path in ["/public/api/whoami", "/api/whoami"] {
        let b = if path == "/api/whoami" {
            h.signed_in("alice@contoso.example").await
        } else {
            h.browser()
        };
        let r = b.request(reqwest::Method::GET, path, Kind::Xhr, None, &spoof).await;
        assert_eq!(r.status, 200, "{path}");
        let seen = headers_seen(&r);
        for gone in [
            "x_auth_user",
            "x_auth_email",
            "x-auth_name",
            "x_forwarded_for",
            "forwarded",
            "x-real-ip",
            "x-original-url",
            "x-rewrite-url",
            "x_custom",
        ] {
            assert!(seen.get(gone).is_none(), "{gone} reached the app at {path}: {seen:?}");
        }
        assert_eq!(seen["x_legacy_token"], "kept", "listed underscore header passes");
        assert_eq!(seen["x-forwarded-for"], "127.0.0.1", "{path}");
        assert_ne!(seen["x-forwarded-host"], "evil.example");
        if path == "/api/whoami" {
            assert_eq!(
                seen["x-auth-user"],
                format!("{TENANT}:a11ce000-0000-4000-8000-000000000001")
            );
            assert!(seen.get("x-auth-name").is_some_and(|n| n != "Mallory"));
        } else {
            assert!(seen.keys().all(|k| !k.starts_with("x-auth")), "{seen:?}");
        }
    }

    // From a trusted proxy: its forwarding headers are kept and extended;
    // underscore spellings and identity headers still never pass.
    let h = Harness::start(Options {
        insecure_dev_cookies: false,
        ..Options::default()
    })
    .await;
    let b = h.browser();
    let r = b
        .request(reqwest::Method::GET, "/public/api/whoami", Kind::Xhr, None, &spoof)
        .await;
    let seen = headers_seen(&r);
    assert_eq!(seen["x-forwarded-for"], "6.6.6.6, 127.0.0.1");
    assert_eq!(seen["x-real-ip"], "6.6.6.6");
    assert_eq!(seen["forwarded"], "for=6.6.6.6;host=evil.example");
    for gone in [
        "x_auth_user",
        "x_auth_email",
        "x-auth_name",
        "x_forwarded_for",
        "x_legacy_token",
    ] {
        assert!(seen.get(gone).is_none(), "{gone} reached the app: {seen:?}");
    }
}

async fn raw_request(port: u16, head: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    s.write_all(head.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn request_targets_other_than_a_path_are_refused() {
    let h = Harness::start(Options::default()).await;
    let port = h.gateway.port;
    for target in ["http://evil.example/public/api/whoami", "public/api/whoami", "*"] {
        let r = raw_request(
            port,
            &format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(r.starts_with("HTTP/1.1 400"), "{target}: {r}");
        assert!(!r.contains("\"path\""), "{target} reached the app: {r}");
    }
    let ok = raw_request(
        port,
        &format!("GET /public/api/whoami HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    let options = raw_request(
        port,
        &format!("OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(
        !options.starts_with("HTTP/1.1 400"),
        "OPTIONS * is not a bad target: {options}"
    );
}

/// `n` anonymous navigations to `/` (each one a login start) from this
/// machine's 127.0.0.1, 32 at a time; returns (302s, 429s, others).
async fn flood(base: &str, n: usize) -> (usize, usize, usize) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let next = Arc::new(AtomicUsize::new(0));
    let counts: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (client, next, counts, url) = (client.clone(), next.clone(), counts.clone(), format!("{base}/"));
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < n {
                    let status = client
                        .get(&url)
                        .header("accept", "text/html")
                        .header("sec-fetch-mode", "navigate")
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    let i = match status {
                        302 => 0,
                        429 => 1,
                        _ => 2,
                    };
                    counts[i].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("flood task");
    }
    (
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
        counts[2].load(Ordering::Relaxed),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_thousand_login_starts_from_one_address_stay_bounded() {
    let redis = RedisServer::start();
    let with_redis = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let in_memory = Harness::start(Options::default()).await;
    let rss_before = in_memory.gateway.rss_kib();
    let n = 50_000;
    let started = Instant::now();

    // Meanwhile a person at another address signs in, at both gateways.
    let other = "127.0.0.2".parse::<IpAddr>().ok();
    let person = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for h in [&with_redis, &in_memory] {
            let b = Browser::new_from(&h.base, false, other);
            assert_eq!(b.sign_in(&h.url("/tickets"), "alice@contoso.example").await, "/tickets");
            assert_eq!(b.whoami().await.status, 200);
        }
    };
    let ((ok_r, limited_r, other_r), (ok_m, limited_m, other_m), ()) =
        tokio::join!(flood(&with_redis.base, n), flood(&in_memory.base, n), person);
    let secs = started.elapsed().as_secs_f64();
    println!(
        "flood: {n}+{n} starts in {secs:.1} s; redis {ok_r}/{limited_r}/{other_r}, memory {ok_m}/{limited_m}/{other_m}"
    );
    assert_eq!((other_r, other_m), (0, 0), "every answer is a redirect or a 429");
    // Burst 50, then 10 a second.
    let allowed = 50 + (10.0 * secs).ceil() as usize + 10;
    assert!(
        ok_r <= allowed && ok_m <= allowed,
        "{ok_r} / {ok_m} starts admitted, at most {allowed}"
    );
    assert!(limited_r >= n - allowed && limited_m >= n - allowed);

    let keys: usize = redis.cli(&["DBSIZE"]).trim().parse().expect("DBSIZE");
    assert!(keys <= allowed + 20, "Redis holds {keys} keys after the flood");
    let grown = in_memory.gateway.rss_kib().saturating_sub(rss_before);
    assert!(grown < 16 * 1024, "memory store grew by {grown} KiB");

    // The limited answer says when to come back, and why.
    let b = Browser::new(&in_memory.base, false);
    let mut limited = None;
    for _ in 0..200 {
        let r = b.get("/").await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("a 429 once the bucket is empty");
    assert_eq!(r.headers["retry-after"], "10");
    assert!(r.body.contains("login_rate_limited"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_valid_only_at_the_client_it_was_made_for() {
    let port = free_port();
    let o = Options::default().patch(json!({
        "clients": [{"name": "contoso", "hosts": [format!("localhost:{port}")], "tenant_id": TENANT}],
    }));
    let h = Harness::start_on(o, port).await;
    let at_client = || Browser::new(&format!("http://localhost:{port}"), false);
    let shared = h.signed_in("alice@contoso.example").await;
    let client = at_client();
    assert_eq!(client.sign_in("/", "alice@contoso.example").await, "/");
    assert_eq!(shared.whoami().await.status, 200);
    assert_eq!(client.whoami().await.json()["claims"]["client"], "contoso");

    // The same cookie values, carried to the other host.
    let cookie = "entra_gw_agent";
    let moved_to_client = at_client();
    moved_to_client.set_cookie(cookie, &shared.cookie(cookie).expect("session"));
    assert_eq!(
        moved_to_client.whoami().await.status,
        401,
        "shared-host session at a client host"
    );
    let moved_to_shared = h.browser();
    moved_to_shared.set_cookie(cookie, &client.cookie(cookie).expect("session"));
    assert_eq!(
        moved_to_shared.whoami().await.status,
        401,
        "client session at the shared host"
    );
    // Still valid where they were made.
    assert_eq!(shared.whoami().await.status, 200);
    assert_eq!(client.whoami().await.status, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_paths_are_the_apps_where_sso_is_off() {
    let h = Harness::start(Options::default().patch(json!({"sso": {"users": false}}))).await;
    let b = h.browser();
    // User portal: SSO off, so /portal/auth/* is the app's.
    let r = b.xhr("/portal/auth/api/whoami").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["path"], "/portal/auth/api/whoami");
    let r = b.get("/portal/auth/login").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("protected demo application"), "{}", r.body);
    // Agent portal: SSO on, so /auth/* is the gateway's.
    let r = b.xhr("/auth/api/whoami").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "bad_request");
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_tokens_only_by_post() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let a = b.begin_login("/").await;
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    let token = fp.get("id_token").expect("id_token").to_string();
    let state = fp.get("state").expect("state").to_string();
    let login_cookie = b
        .cookie_names()
        .into_iter()
        .find(|n| n.starts_with("entra_gw_login_"))
        .expect("login cookie");
    let login_value = b.cookie(&login_cookie).expect("login cookie value");
    // The same token in the URL: refused, and the state is spent.
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("state", &state)
        .append_pair("id_token", &token)
        .finish();
    let r = b.get(&format!("/auth/account/azureresponse?{q}")).await;
    assert_refused(&b, &r, "token_in_query").await;
    // Even with the browser's binding restored, the state is gone.
    b.set_cookie(&login_cookie, &login_value);
    let r = b.deliver(&fp).await;
    assert_refused(&b, &r, "state_unknown").await;

    // A code or access token in the query of a POST is refused too.
    for field in ["code", "access_token"] {
        let a = b.begin_login("/").await;
        let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
        let r = b
            .request(
                reqwest::Method::POST,
                &format!("{}?{field}=x", fp.action),
                Kind::Navigate,
                Some(&fp.fields),
                &[("sec-fetch-site", "cross-site")],
            )
            .await;
        assert_refused(&b, &r, "token_in_query").await;
    }

    // A GET may carry the IdP's error, shown as such.
    let a = b.begin_login("/").await;
    let q: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("state", a.param("state").expect("state"))
        .append_pair("error", "access_denied")
        .append_pair("error_description", "AADSTS50105: not assigned")
        .finish();
    let r = b.get(&format!("/auth/account/azureresponse?{q}")).await;
    assert_refused(&b, &r, "idp_error").await;
    assert!(r.body.contains("AADSTS50105"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_site_login_and_local_account_posts_are_refused() {
    let h = Harness::start(Options {
        auto_redirect: false,
        ..Options::default()
    })
    .await;
    let fields = vec![("rd".to_string(), "/".to_string())];
    for path in ["/auth/login", "/auth/local"] {
        for headers in [
            vec![("sec-fetch-site", "cross-site")],
            vec![("sec-fetch-site", "same-site")],
            vec![("sec-fetch-site", "none"), ("origin", "https://evil.example")],
        ] {
            let b = h.browser();
            let r = b
                .request(reqwest::Method::POST, path, Kind::Navigate, Some(&fields), &headers)
                .await;
            assert_eq!(r.status, 403, "{path} {headers:?}: {}", r.body);
            assert!(r.body.contains("cross_site"), "{}", r.body);
            assert!(
                r.set_cookies.is_empty(),
                "nothing set by a refused POST: {:?}",
                r.set_cookies
            );
        }
        // Without Fetch Metadata, a foreign Origin is refused too...
        let b = h.browser();
        let r = b
            .request(
                reqwest::Method::POST,
                path,
                Kind::Plain,
                Some(&fields),
                &[("origin", "http://evil.example")],
            )
            .await;
        assert_eq!(r.status, 403, "{path} foreign origin");
        // ...and the portal's own form goes through.
        let r = h.browser().post_form(path, &fields).await;
        assert!(
            matches!(r.status, 302 | 303),
            "{path} same-origin: {} {}",
            r.status,
            r.body
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn single_logout_ends_the_other_portals_session_of_the_same_sign_in() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..Options::default()
    })
    .await;
    let b = h.signed_in("alice@contoso.example").await;
    // The user portal: Entra's browser session signs in silently (same sid).
    assert_eq!(b.sign_in("/portal/", "alice@contoso.example").await, "/portal/");
    assert_eq!(b.xhr("/portal/api/whoami").await.status, 200);
    // The same session seen through another instance (cached there).
    let (_other, b2) = h.another_instance().await;
    for name in ["entra_gw_agent", "entra_gw_portal"] {
        b2.set_cookie(name, &b.cookie(name).expect("session cookie"));
    }
    assert_eq!(b2.xhr("/portal/api/whoami").await.status, 200);

    let r = b.get("/auth/logout").await;
    assert_eq!(r.status, 303);
    assert!(r.location().unwrap_or("").contains("logout"), "{:?}", r.location());
    assert_eq!(
        b.xhr("/portal/api/whoami").await.status,
        401,
        "user portal session ended"
    );
    assert_eq!(b.whoami().await.status, 401);
    let started = Instant::now();
    while b2.xhr("/portal/api/whoami").await.status != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "still valid on the other instance"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upper_case_tenant_guids_are_accepted_and_stored_lower_case() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let upper = TENANT.to_ascii_uppercase();
    let issuer = h.entra.issuer(TENANT).replace(TENANT, &upper);
    let r = attempt(&h, &b, |spec| {
        spec.claims.insert("tid".into(), upper.clone().into());
        spec.claims.insert("iss".into(), issuer.clone().into());
    })
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let who = b.whoami().await.json();
    assert_eq!(who["headers"]["x-auth-tid"], TENANT);
    assert_eq!(who["claims"]["tid"], TENANT);
}
