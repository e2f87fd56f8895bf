//! Portals (issue 4): agent and user portals with their own callbacks and
//! sessions, the published/agents/users switches, the login page with
//! auto-redirect per portal and per client, remember-me, local accounts.

use e2e::browser::Kind;
use e2e::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn agent_and_user_portals_have_their_own_callbacks_and_sessions() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let a = b.begin_login("/portal/tickets").await;
    assert_eq!(
        a.param("redirect_uri").map(str::to_string),
        Some(format!("{}/portal/auth/account/azureresponse", h.portal_url))
    );
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    assert_eq!(fp.action, format!("{}/portal/auth/account/azureresponse", h.portal_url));
    let r = b.deliver(&fp).await;
    assert_eq!((r.status, r.location()), (303, Some("/portal/tickets")));
    assert!(r.cookie("entra_gw_portal").is_some(), "the user portal's own cookie");
    let j = b.xhr("/portal/api/whoami").await.json();
    assert_eq!(j["claims"]["portal"], "user");
    assert_eq!(j["headers"]["x-auth-portal"], "user");
    // Not a session at the agent portal, even with the cookie renamed.
    assert_eq!(b.whoami().await.status, 401);
    let value = b.cookie("entra_gw_portal").unwrap();
    b.set_cookie("entra_gw_agent", &value);
    assert_eq!(
        b.whoami().await.status,
        401,
        "a user-portal session is not valid at the agent portal"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn published_off_makes_every_portal_transparent() {
    let h = Harness::start(Options::default().patch(json!({"sso": {"published": false}}))).await;
    let b = h.browser();
    for path in ["/api/whoami", "/portal/api/whoami"] {
        let r = b
            .request(reqwest::Method::GET, path, Kind::Xhr, None, &[("x-auth-user", "admin")])
            .await;
        assert_eq!(r.status, 200, "{path}");
        let j = r.json();
        assert!(
            j["headers"].get("x-auth-user").is_none(),
            "identity still stripped: {j}"
        );
        assert_eq!(j["verified"], false);
    }
    assert_eq!(b.get("/").await.status, 200, "no redirect to sign-in");
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_only_leaves_the_user_portal_to_the_apps_own_login() {
    let h = Harness::start(Options::default().patch(json!({"sso": {"users": false}}))).await;
    let b = h.browser();
    let r = b
        .request(
            reqwest::Method::GET,
            "/portal/api/whoami",
            Kind::Xhr,
            None,
            &[("x-auth-email", "x@y")],
        )
        .await;
    assert_eq!(r.status, 200, "users: false → the user portal is proxied as is");
    assert!(r.json()["headers"].get("x-auth-email").is_none());
    assert_eq!(
        b.xhr("/api/whoami").await.status,
        401,
        "the agent portal still requires SSO"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_login_page_and_the_operators_escape_hatch() {
    let h = Harness::start(Options {
        auto_redirect: false,
        ..Options::default()
    })
    .await;
    let b = h.browser();
    let r = b.get("/tickets?x=1").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.location(), Some("/auth/login?rd=%2Ftickets%3Fx%3D1"));
    let page = b.get(r.location().unwrap()).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in with Microsoft") && page.body.contains("Use a local account"));
    assert!(
        page.body.contains("name=\"remember_me\""),
        "remember_me: true shows the box"
    );
    assert!(
        page.body.contains("tickets?x=1\""),
        "the return path rides along (escaped)"
    );
    // The button: POST /auth/login → Entra; then back to the original page.
    let r = b
        .post_form("/auth/login", &[("rd".into(), "/tickets?x=1".into())])
        .await;
    assert_eq!(r.status, 302);
    assert!(r.location().unwrap().contains("/oauth2/v2.0/authorize?"));

    // With auto-redirect on, `local=1` still shows the page.
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    assert_eq!(b.get("/auth/login").await.status, 302);
    let page = b.get("/auth/login?local=1").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("Sign in with Microsoft"));
}

#[tokio::test(flavor = "multi_thread")]
async fn per_client_auto_redirect_and_branding() {
    let port = free_port();
    let o = Options {
        auto_redirect: false,
        ..Options::default()
    }
    .patch(json!({
        "clients": [{
            "name": "contoso",
            "hosts": [format!("localhost:{port}")],
            "auto_redirect_users": true,
            "branding": {"title": "Contoso support", "color": "#aa0000"},
        }],
    }));
    let h = Harness::start_on(o, port).await;
    // The client's users go straight to Entra at the user portal...
    let at_client = Browser::new(&format!("http://localhost:{port}"), false);
    let r = at_client.get("/portal/").await;
    assert_eq!(r.status, 302);
    assert!(
        r.location().unwrap().contains("/oauth2/v2.0/authorize?"),
        "{:?}",
        r.location()
    );
    // ...but its agents (agent portal) and everyone else see the page.
    let r = at_client.get("/").await;
    assert_eq!(r.location(), Some("/auth/login?rd=%2F"));
    let page = at_client.get("/auth/login?local=1").await;
    assert!(
        page.body.contains("Contoso support") && page.body.contains("#aa0000"),
        "client branding"
    );
    let elsewhere = h.browser();
    assert_eq!(
        elsewhere.get("/portal/").await.location(),
        Some("/portal/auth/login?rd=%2Fportal%2F")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn remember_me_checked_and_not() {
    let h = Harness::start(Options {
        auto_redirect: false,
        ..Options::default()
    })
    .await;
    for (remember, fields) in [
        (
            true,
            vec![("rd".to_string(), "/".to_string()), ("remember_me".into(), "on".into())],
        ),
        (false, vec![("rd".to_string(), "/".to_string())]),
    ] {
        let b = h.browser();
        let r = b.post_form("/auth/login", &fields).await;
        let loc = r.location().unwrap().to_string();
        let params = url::Url::parse(&loc).unwrap().query_pairs().into_owned().collect();
        let fp = b
            .idp_sign_in(&e2e::browser::Authorize { url: loc, params }, "alice@contoso.example")
            .await;
        let done = b.deliver(&fp).await;
        assert_eq!(done.status, 303);
        let c = done.cookie("entra_gw_agent").unwrap();
        if remember {
            assert_eq!(c.max_age(), Some(30 * 86400), "persistent for remember_me_days");
        } else {
            assert_eq!(c.max_age(), None, "a browser-session cookie");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_account_goes_to_the_apps_own_login_until_sso() {
    let h = Harness::start(Options {
        auto_redirect: false,
        ..Options::default()
    })
    .await;
    let b = h.browser();
    let r = b.post_form("/auth/local", &[("rd".into(), "/app/login".into())]).await;
    assert_eq!((r.status, r.location()), (303, Some("/app/login")));
    let r = b
        .request(
            reqwest::Method::GET,
            "/api/whoami",
            Kind::Xhr,
            None,
            &[("x-auth-user", "admin")],
        )
        .await;
    assert_eq!(r.status, 200, "transparent for this browser");
    let j = r.json();
    assert!(
        j["headers"].get("x-auth-user").is_none() && j["headers"].get("cookie").is_none(),
        "{j}"
    );
    assert_eq!(b.get("/").await.status, 200, "no login page either");
    assert_eq!(h.browser().get("/").await.status, 302, "other browsers still sign in");
    // Signing in with SSO ends local mode.
    let r = b.post_form("/auth/login", &[("rd".into(), "/".into())]).await;
    let loc = r.location().unwrap().to_string();
    let params = url::Url::parse(&loc).unwrap().query_pairs().into_owned().collect();
    let fp = b
        .idp_sign_in(&e2e::browser::Authorize { url: loc, params }, "alice@contoso.example")
        .await;
    let done = b.deliver(&fp).await;
    assert!(done.cookie("entra_gw_local_agent").is_some_and(|c| c.is_deletion()));
    assert_eq!(b.whoami().await.json()["verified"], true);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auto_redirect_the_configured_remember_me_default_applies() {
    for (default, want) in [(true, Some(30 * 86400)), (false, None)] {
        let h = Harness::start(Options::default().patch(json!({"sso": {"remember_me_default": default}}))).await;
        let b = h.browser();
        let a = b.begin_login("/").await;
        let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
        let done = b.deliver(&fp).await;
        assert_eq!(
            done.cookie("entra_gw_agent").unwrap().max_age(),
            want,
            "remember_me_default: {default}"
        );
    }
}
