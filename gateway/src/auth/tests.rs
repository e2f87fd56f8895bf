//! The `/auth/*` routes in process: an [`App::for_tests`] (memory store, no
//! network), a request built by hand, the response read back. Cheap to write
//! and to run; the whole-system tests in `tests/` cover the same routes over
//! real HTTP with the mock Entra.

use super::*;
use crate::front::{Conn, Step};
use http::header::{COOKIE, LOCATION, SET_COOKIE};

const BASE: &str = r#"
server: { listen: "127.0.0.1:8080", insecure_dev_cookies: true }
upstream: { url: "http://127.0.0.1:9000" }
entra: { tenant_id: aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa, client_id: c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1 }
sso: { auto_redirect_agents: true, auto_redirect_users: false }
portals:
  - { name: agent, kind: agent, url: "http://halo.example.com" }
  - { name: portal, kind: user, url: "http://halo.example.com/portal" }
identity: { audience: halo }
"#;

fn app() -> App {
    App::for_tests(BASE)
}

/// Routes `method target` the way the proxy does and answers an `/auth/*` one.
async fn send(app: &App, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut b = http::Request::builder()
        .method(method)
        .uri(target)
        .header("host", "halo.example.com");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Bytes::from(body.to_string())).unwrap();
    let (parts, body) = req.into_parts();
    let conn = Conn {
        peer_ip: Some([203, 0, 113, 7].into()),
        client_ip: Some([203, 0, 113, 7].into()),
        trusted_peer: false,
        https: false,
    };
    match crate::front::route(app, &parts, target.as_bytes(), &conn).await {
        Step::Auth { cx, rel_path } => handle(app, http::Request::from_parts(parts, body), &cx, &rel_path).await,
        other => panic!("{target} is not an auth route: {other:?}"),
    }
}

fn location(r: &Resp) -> &str {
    r.headers().get(LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn set_cookies(r: &Resp) -> Vec<String> {
    r.headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn an_agent_login_goes_straight_to_entra_with_a_bound_state() {
    let app = app();
    let r = send(&app, "GET", "/auth/login?rd=/tickets/42", &[], "").await;
    assert_eq!(r.status(), 302);
    let to = url::Url::parse(location(&r)).unwrap();
    assert!(
        to.as_str()
            .starts_with("https://login.microsoftonline.com/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa/")
    );
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(
        q["response_type"], "id_token",
        "no client credential: the id_token flow"
    );
    assert_eq!(q["response_mode"], "form_post");
    assert_eq!(q["redirect_uri"], "http://halo.example.com/auth/account/azureresponse");
    let state = &q["state"];
    let cookies = set_cookies(&r);
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with(&format!("entra_gw_login_{}=", &state[..10]))),
        "the login cookie names the state: {cookies:?}"
    );
}

#[tokio::test]
async fn a_user_portal_without_auto_redirect_shows_the_login_page() {
    let app = app();
    let r = send(&app, "GET", "/portal/auth/login?rd=/portal/x", &[], "").await;
    assert_eq!(r.status(), 200);
    let page = String::from_utf8_lossy(r.body());
    // Attribute values are HTML-escaped, `/` included.
    assert!(page.contains("action=\"&#x2f;portal&#x2f;auth&#x2f;login\""), "{page}");
    assert!(
        page.contains("name=\"rd\" value=\"&#x2f;portal&#x2f;x\""),
        "the return path is carried: {page}"
    );
}

#[tokio::test]
async fn cross_site_login_posts_are_refused_and_same_origin_ones_start() {
    let app = app();
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let r = send(
        &app,
        "POST",
        "/portal/auth/login",
        &[form[0], ("sec-fetch-site", "cross-site")],
        "rd=/portal/",
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(String::from_utf8_lossy(r.body()).contains("cross_site"));
    let r = send(
        &app,
        "POST",
        "/portal/auth/login",
        &[form[0], ("origin", "http://halo.example.com")],
        "rd=/portal/",
    )
    .await;
    assert_eq!(r.status(), 302, "{:?}", r.body());
}

#[tokio::test]
async fn use_a_local_account_sets_its_cookie_and_returns() {
    let app = app();
    let r = send(
        &app,
        "POST",
        "/portal/auth/local",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("sec-fetch-site", "same-origin"),
        ],
        "rd=/portal/tickets",
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/portal/tickets");
    assert!(set_cookies(&r).iter().any(|c| c.starts_with("entra_gw_local_portal=1")));
}

#[tokio::test]
async fn tokens_in_the_query_are_refused_and_unknown_states_are_not_a_session() {
    let app = app();
    // A real pending sign-in, whose token then comes back in a URL.
    let start = send(&app, "GET", "/auth/login?rd=/x", &[], "").await;
    let to = url::Url::parse(location(&start)).unwrap();
    let state = to.query_pairs().find(|(k, _)| k == "state").unwrap().1.into_owned();
    let login_cookie = set_cookies(&start)[0].split(';').next().unwrap().to_string();
    let leaked = format!("/auth/account/azureresponse?id_token=eyJ.x.y&state={state}");
    let r = send(&app, "GET", &leaked, &[(COOKIE.as_str(), &login_cookie)], "").await;
    assert_eq!(r.status(), 400);
    assert!(String::from_utf8_lossy(r.body()).contains("token_in_query"));
    // The state was consumed: the same URL does not work a second time either.
    let again = send(&app, "GET", &leaked, &[(COOKIE.as_str(), &login_cookie)], "").await;
    assert_eq!(again.status(), 400);
    assert!(!String::from_utf8_lossy(again.body()).contains("token_in_query"));
    let r = send(
        &app,
        "POST",
        "/auth/account/azureresponse",
        &[("content-type", "application/x-www-form-urlencoded")],
        "id_token=eyJ.x.y&state=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    )
    .await;
    assert_eq!(r.status(), 400, "a state this gateway never issued");
    assert!(set_cookies(&r).iter().all(|c| !c.starts_with("entra_gw_agent=")));
}

#[tokio::test]
async fn logout_without_a_session_just_says_signed_out() {
    let app = app();
    let r = send(
        &app,
        "GET",
        "/auth/logout",
        &[(COOKIE.as_str(), "entra_gw_agent=not-a-session")],
        "",
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/auth/logged-out");
    assert!(set_cookies(&r).iter().any(|c| c.starts_with("entra_gw_agent=;")));
    let r = send(&app, "GET", "/auth/nothing-here", &[], "").await;
    assert_eq!(r.status(), 404);
}

#[test]
fn cookie_names_built_once_are_the_policy_names() {
    let app = app();
    for (i, p) in app.config.portals.iter().enumerate() {
        for secure in [false, true] {
            assert_eq!(
                app.cookie_names(i, secure),
                (
                    policy::cookies::session_cookie_name("entra_gw", &p.name, secure).as_str(),
                    policy::cookies::local_cookie_name("entra_gw", &p.name, secure).as_str()
                )
            );
        }
    }
}

#[tokio::test]
async fn before_discovery_a_sign_in_gets_503_with_retry_after_and_readiness_is_degraded() {
    let app = App::for_tests_pending(BASE);
    let r = send(&app, "GET", "/auth/login?rd=/tickets/42", &[], "").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(String::from_utf8_lossy(r.body()).contains("metadata_unavailable"));
    assert!(set_cookies(&r).is_empty(), "no login state is started");

    let ready = crate::front::ready(&app).await;
    assert_eq!(ready.status(), 200, "degraded stays in rotation");
    let body: serde_json::Value = serde_json::from_slice(ready.body()).unwrap();
    assert_eq!(body["status"], "degraded");
    assert_eq!(body["entra_metadata"], "pending");

    // Discovery arrives (the background retry): sign-ins open.
    let ready_app = App::for_tests(BASE);
    let doc = ready_app.tenants.metadata().unwrap().clone();
    app.tenants.set_metadata(doc);
    let r = send(&app, "GET", "/auth/login?rd=/tickets/42", &[], "").await;
    assert_eq!(r.status(), 302);
    let body: serde_json::Value = serde_json::from_slice(crate::front::ready(&app).await.body()).unwrap();
    assert_eq!(body["status"], "ready");
}

#[tokio::test]
async fn draining_readiness_is_503_and_says_only_so() {
    let app = app();
    app.lifecycle.start_draining();
    let ready = crate::front::ready(&app).await;
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.body().as_ref(), br#"{"status":"draining"}"#);
}

#[tokio::test]
async fn a_reconfigured_app_keeps_the_running_parts_and_applies_the_new_portals() {
    let app = app();
    let mut config = crate::config::Config::from_yaml(BASE).unwrap();
    config.portals[0].branding.title = Some("Reloaded agent".into());
    let new = app.reconfigured(config, None);
    assert!(
        std::sync::Arc::ptr_eq(&app.sessions, &new.sessions),
        "sessions and their cache are shared"
    );
    assert!(std::sync::Arc::ptr_eq(&app.assertions, &new.assertions));
    assert!(std::sync::Arc::ptr_eq(&app.lifecycle, &new.lifecycle));
    assert!(std::sync::Arc::ptr_eq(&app.tenants.jwks, &new.tenants.jwks));
    assert!(new.tenants.metadata().is_some(), "discovery is shared");
    let r = send(&new, "GET", "/auth/login?local=1", &[], "").await;
    assert!(String::from_utf8_lossy(r.body()).contains("Reloaded agent"));
}

fn session(mfa: policy::two_factor::Mfa) -> crate::session::Session {
    crate::session::SessionRecord::<String> {
        portal: "agent".into(),
        portal_kind: policy::PortalKind::Agent,
        tid: "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa".parse().unwrap(),
        oid: "o1".into(),
        sub: "s1".into(),
        issuer: "i".into(),
        name: None,
        email: None,
        sid: None,
        login_hint: None,
        user_key: "ann".into(),
        client: None,
        created_at: 0,
        last_seen: crate::session::now_unix(),
        absolute_expiry: crate::session::now_unix() + 3600,
        idle_timeout_secs: 3600,
        remember_me: false,
        csrf: "c".into(),
        new_user: false,
        mfa,
    }
    .try_into()
    .unwrap()
}

/// `mfa` changes mid-session (the second factor done): the assertion after
/// the change is signed afresh, never the cached signature of the claims
/// before it (which would not verify, or worse, say the old state).
#[tokio::test]
async fn an_assertion_is_never_served_from_before_its_mfa_changed() {
    use policy::two_factor::Mfa;
    let app = app();
    let id = crate::session::SessionId::generate().key();
    let jwt = |s: crate::session::Session| {
        let h = app.assertions.for_session(&id, &std::sync::Arc::new(s)).unwrap();
        h.assertion().to_str().unwrap().to_string()
    };
    let before = jwt(session(Mfa::None));
    let after = jwt(session(Mfa::Totp));
    let sig = |jwt: &str| jwt.rsplit('.').next().unwrap().to_string();
    assert_ne!(sig(&before), sig(&after), "signed afresh");
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&app.assertions.signer.jwks_json()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["halo"]);
    let claims = jsonwebtoken::decode::<serde_json::Value>(&after, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["mfa"], "totp");
    let claims = jsonwebtoken::decode::<serde_json::Value>(&before, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(claims["mfa"], "none");
    // The state after the change stays cached.
    assert_eq!(jwt(session(Mfa::Totp)), after);
}

#[tokio::test]
async fn the_2fa_page_without_a_session_or_without_2fa() {
    // 2FA off: nothing owed, on to where the browser was going.
    let r = send(&app(), "GET", "/auth/2fa?rd=%2Fx", &[], "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/x");
    let on = App::for_tests(&format!(
        "{BASE}two_factor: {{ required_for: everyone, encryption_key: 0123456789abcdef0123456789abcdef }}\n"
    ));
    // No session: sign in first, then back here.
    let r = send(&on, "GET", "/auth/2fa?rd=%2Fx", &[], "").await;
    assert_eq!(r.status(), 302);
    assert_eq!(location(&r), "/auth/login?rd=%2Fx");
    // A cross-site POST is refused before anything is judged.
    let r = send(
        &on,
        "POST",
        "/auth/2fa",
        &[("sec-fetch-site", "cross-site")],
        "code=123456",
    )
    .await;
    assert_eq!(r.status(), 403);
    // Other methods: 405.
    let r = send(&on, "PUT", "/auth/2fa", &[], "").await;
    assert_eq!(r.status(), 405);
}
