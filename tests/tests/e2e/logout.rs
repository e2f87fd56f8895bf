//! Logout: local and single logout, CSRF-safe, and the old cookie is dead.

use e2e::browser::Kind;
use e2e::*;

#[tokio::test(flavor = "multi_thread")]
async fn single_logout_sends_the_browser_to_entra_end_session() {
    let h = Harness::start(Options::default()).await;
    let b = h.signed_in("alice@contoso.example").await;
    let old = b.cookie("entra_gw_agent").unwrap();
    let r = b.get("/auth/logout").await;
    assert_eq!(r.status, 303, "{}", r.body);
    let loc = url::Url::parse(r.location().unwrap()).unwrap();
    assert!(
        loc.as_str()
            .starts_with(&format!("{}/{TENANT}/oauth2/v2.0/logout?", h.entra.base_url())),
        "{loc}"
    );
    let q: std::collections::HashMap<_, _> = loc.query_pairs().into_owned().collect();
    assert_eq!(q["client_id"], CLIENT_ID);
    assert_eq!(
        q["post_logout_redirect_uri"],
        format!("{}/auth/logged-out", h.portal_url)
    );
    let user = h.entra.user("alice@contoso.example").unwrap();
    assert!(
        !q["logout_hint"].contains('@'),
        "logout_hint is the login_hint claim, never an email"
    );
    assert!(q["logout_hint"].len() > 10 && user.email.is_some());
    assert!(r.cookie("entra_gw_agent").is_some_and(|c| c.is_deletion()));

    // Entra ends its session: its page frames the app's front-channel
    // logout URL with the session's sid, then goes back to the signed-out page.
    let sid_page = b.get(loc.as_str()).await;
    assert_eq!(sid_page.status, 200);
    assert!(
        sid_page
            .body
            .contains(&format!("src=\"{}/auth/account/frontchannel-logout?sid=", h.portal_url)),
        "{}",
        sid_page.body
    );
    assert!(
        sid_page
            .body
            .contains(&format!("location.replace(\"{}/auth/logged-out\")", h.portal_url)),
        "{}",
        sid_page.body
    );
    assert_eq!(h.entra.logout_calls().len(), 1);
    let page = b.get("/auth/logged-out").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("You are signed out"));

    // The old cookie is refused, even replayed by hand.
    b.set_cookie("entra_gw_agent", &old);
    assert_eq!(b.whoami().await.status, 401);
    assert_eq!(b.get("/").await.status, 302, "a navigation goes to sign-in again");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_single_logout_the_logout_is_local() {
    let h = Harness::start(Options {
        single_logout: false,
        flow: Flow::Code,
        ..Options::default()
    })
    .await;
    let b = h.signed_in("alice@contoso.example").await;
    let old = b.cookie("entra_gw_agent").unwrap();
    let r = b.get("/auth/logout").await;
    assert_eq!((r.status, r.location()), (303, Some("/auth/logged-out")));
    assert!(h.entra.logout_calls().is_empty());
    b.set_cookie("entra_gw_agent", &old);
    assert_eq!(b.whoami().await.status, 401);
    assert_eq!(h.metric("entra_gateway_logouts_total", &[("kind", "local")]).await, 1.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cross_site_get_does_not_log_out_it_asks() {
    let h = Harness::start(Options::default()).await;
    let b = h.signed_in("alice@contoso.example").await;
    let r = b
        .request(
            reqwest::Method::GET,
            "/auth/logout",
            Kind::Navigate,
            None,
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains("Sign out?") && r.body.contains("name=\"csrf\""));
    assert_eq!(b.whoami().await.status, 200, "still signed in");

    // No Fetch Metadata and a foreign Origin: also just the question.
    let r = b
        .request(
            reqwest::Method::GET,
            "/auth/logout",
            Kind::Plain,
            None,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(b.whoami().await.status, 200);

    // A forged POST without the token is refused.
    let r = b.post_form("/auth/logout", &[("csrf".into(), "guess".into())]).await;
    assert_eq!(r.status, 403);
    assert_eq!(b.whoami().await.status, 200);

    // The confirmation form's POST logs out.
    let csrf = r#"name="csrf" value=""#;
    let page = b
        .request(
            reqwest::Method::GET,
            "/auth/logout",
            Kind::Navigate,
            None,
            &[("sec-fetch-site", "cross-site")],
        )
        .await
        .body;
    let start = page.find(csrf).unwrap() + csrf.len();
    let token = &page[start..start + page[start..].find('"').unwrap()];
    let r = b.post_form("/auth/logout", &[("csrf".into(), token.into())]).await;
    assert_eq!(r.status, 303);
    assert_eq!(b.whoami().await.status, 401);
}
