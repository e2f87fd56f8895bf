//! SPEC §6, tried and refused one by one: every forged or wrong token the
//! callback can receive. Each test also proves the same path accepts a good
//! token, so a refusal is the rule's doing and not a broken harness.

use e2e::*;
use mock_entra::{Signing, TokenSpec};
use serde_json::{Value, json};

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn refused_with(mutate: impl FnOnce(&mut TokenSpec), reason: &str) {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let ok = attempt(&h, &b, |_| {}).await;
    assert_eq!(ok.status, 303, "control: an unmodified token is accepted: {}", ok.body);
    let b = h.browser();
    let r = attempt(&h, &b, mutate).await;
    assert_refused(&b, &r, reason).await;
    assert_eq!(
        h.metric(
            "entra_gateway_signins_total",
            &[("result", "refused"), ("reason", reason)]
        )
        .await,
        1.0
    );
}

fn set(spec: &mut TokenSpec, k: &str, v: Value) {
    spec.claims.insert(k.into(), v);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signature() {
    refused_with(|s| s.signing = Signing::WrongKey, "bad_signature").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn alg_none() {
    refused_with(|s| s.signing = Signing::None, "alg_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hs256_signed_with_anything() {
    refused_with(
        |s| s.signing = Signing::Hs256(b"the JWKS modulus, or anything else".to_vec()),
        "alg_not_allowed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crit_header() {
    refused_with(|s| s.signing = Signing::Crit, "crit_header").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_audience() {
    refused_with(
        |s| set(s, "aud", json!("99999999-9999-4999-8999-999999999999")),
        "wrong_audience",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn audience_array_with_another_app() {
    refused_with(
        |s| set(s, "aud", json!([CLIENT_ID, "99999999-9999-4999-8999-999999999999"])),
        "wrong_audience",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_azp() {
    refused_with(
        |s| set(s, "azp", json!("99999999-9999-4999-8999-999999999999")),
        "wrong_azp",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_issuer() {
    refused_with(
        |s| {
            set(
                s,
                "iss",
                json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0")),
            )
        },
        "wrong_issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn issuer_with_trailing_slash() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let iss = format!("{}/", h.entra.issuer(TENANT));
    let r = attempt(&h, &b, |s| set(s, "iss", json!(iss))).await;
    assert_refused(&b, &r, "wrong_issuer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_issuer() {
    refused_with(
        |s| set(s, "iss", json!(format!("https://sts.windows.net/{TENANT}/"))),
        "wrong_issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tid_of_another_tenant() {
    // Signed by the configured tenant's key, issuer consistent with the tid:
    // only the tenant rule can refuse it.
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let iss = h.entra.issuer(OTHER_TENANT);
    let r = attempt(&h, &b, |s| {
        set(s, "tid", json!(OTHER_TENANT));
        set(s, "iss", json!(iss));
    })
    .await;
    assert_refused(&b, &r, "tenant_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tid_not_matching_issuer() {
    refused_with(|s| set(s, "tid", json!(OTHER_TENANT)), "wrong_issuer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_of_another_tenant_signed_by_its_own_tenant() {
    // mallory's token is genuine, from her own tenant's key and issuer.
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let r = attempt(&h, &b, |s| s.user = "mallory@fabrikam.example".into()).await;
    assert!((400..500).contains(&r.status), "{}", r.body);
    assert_eq!(b.whoami().await.status, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn version_1_token() {
    refused_with(|s| set(s, "ver", json!("1.0")), "wrong_version").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn expired() {
    refused_with(|s| set(s, "exp", json!(now() - 3600)), "expired").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn not_yet_valid() {
    refused_with(|s| set(s, "nbf", json!(now() + 3600)), "not_yet_valid").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn issued_in_the_future() {
    refused_with(|s| set(s, "iat", json!(now() + 3600)), "iat_in_future").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_iat() {
    refused_with(|s| set(s, "iat", Value::Null), "iat_missing").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_nonce() {
    refused_with(|s| s.nonce = None, "nonce_missing").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_nonce() {
    refused_with(
        |s| s.nonce = Some("a-nonce-from-another-login".into()),
        "nonce_mismatch",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clock_skew_is_tolerated_within_the_configured_window() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        set(s, "exp", json!(now() - 120));
        set(s, "nbf", json!(now() + 120));
    })
    .await;
    assert_eq!(r.status, 303, "2 minutes off is inside the default 5m skew: {}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn replayed_callback() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let a = b.begin_login("/").await;
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    // Keep the login cookie to replay with it.
    let login_cookie: Vec<(String, String)> = b
        .cookie_names()
        .into_iter()
        .filter(|n| n.starts_with("entra_gw_login_"))
        .map(|n| (n.clone(), b.cookie(&n).unwrap()))
        .collect();
    assert_eq!(b.deliver(&fp).await.status, 303);
    let attacker = h.browser();
    for (n, v) in &login_cookie {
        attacker.set_cookie(n, v);
    }
    let r = attacker.deliver(&fp).await;
    assert_refused(&attacker, &r, "state_unknown").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_without_the_state_cookie() {
    let h = Harness::start(Options::default()).await;
    let victim = h.browser();
    let a = victim.begin_login("/").await;
    let fp = victim.idp_sign_in(&a, "alice@contoso.example").await;
    // Login CSRF: the form_post lands in a browser that never started it.
    let other = h.browser();
    let r = other.deliver(&fp).await;
    assert_refused(&other, &r, "state_cookie_missing").await;
    // ... and did not burn the victim's login.
    assert_eq!(victim.deliver(&fp).await.status, 303);
}

#[tokio::test(flavor = "multi_thread")]
async fn callback_with_another_logins_cookie_value() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let a = b.begin_login("/").await;
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    let name = b
        .cookie_names()
        .into_iter()
        .find(|n| n.starts_with("entra_gw_login_"))
        .unwrap();
    b.set_cookie(&name, "1700000000.forged-binding-value");
    let r = b.deliver(&fp).await;
    assert_refused(&b, &r, "state_cookie_mismatch").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_kid_triggers_exactly_one_refetch() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    assert_eq!(attempt(&h, &b, |_| {}).await.status, 303);
    let before = h.entra.jwks_fetch_count(TENANT);
    let b = h.browser();
    let r = attempt(&h, &b, |s| s.signing = Signing::UnknownKid).await;
    assert_refused(&b, &r, "unknown_kid").await;
    assert_eq!(
        h.entra.jwks_fetch_count(TENANT),
        before + 1,
        "one refetch for an unknown kid"
    );
    // A second unknown kid within 5 minutes: no more fetches.
    let b = h.browser();
    let r = attempt(&h, &b, |s| s.signing = Signing::UnknownKid).await;
    assert_refused(&b, &r, "unknown_kid").await;
    assert_eq!(
        h.entra.jwks_fetch_count(TENANT),
        before + 1,
        "rate-limited: no second refetch"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_is_picked_up_with_one_refetch() {
    let h = Harness::start(Options::default()).await;
    let before = h.entra.jwks_fetch_count(TENANT);
    h.entra.rotate_keys(TENANT);
    h.entra.retire_old_keys(TENANT);
    let b = h.browser();
    let r = attempt(&h, &b, |_| {}).await;
    assert_eq!(r.status, 303, "a token signed with the new key is accepted: {}", r.body);
    assert_eq!(h.entra.jwks_fetch_count(TENANT), before + 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn token_without_kid_is_accepted_only_with_a_single_key() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    assert_eq!(
        attempt(&h, &b, |s| s.signing = Signing::NoKid).await.status,
        303,
        "one key: no doubt which"
    );
    // With two keys published (a rollover), a kid-less token is ambiguous.
    let fresh = Harness::start(Options::default()).await;
    fresh.entra.rotate_keys(TENANT);
    let b = fresh.browser();
    // A token under the new kid makes the gateway load the two-key set.
    assert_eq!(attempt(&fresh, &b, |_| {}).await.status, 303);
    let b = fresh.browser();
    let r = attempt(&fresh, &b, |s| s.signing = Signing::NoKid).await;
    assert_refused(&b, &r, "ambiguous_key").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn return_path_to_another_origin_lands_on_root() {
    let h = Harness::start(Options::default()).await;
    for rd in [
        "//evil.example",
        "//evil.example/x",
        "https://evil.example/",
        "/\\evil.example",
    ] {
        let b = h.browser();
        let enc: String = url::form_urlencoded::byte_serialize(rd.as_bytes()).collect();
        let landed = b
            .sign_in(&format!("/auth/login?rd={enc}"), "alice@contoso.example")
            .await;
        assert_eq!(landed, "/", "rd={rd}");
    }
    let b = h.browser();
    let landed = b
        .sign_in("/auth/login?rd=%2Freports%3Fq%3D1", "alice@contoso.example")
        .await;
    assert_eq!(landed, "/reports?q=1");
}

#[tokio::test(flavor = "multi_thread")]
async fn idp_error_is_shown_escaped() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let a = b.begin_login("/").await;
    let fp = FormPost {
        action: a.param("redirect_uri").unwrap().into(),
        fields: vec![
            ("error".into(), "access_denied".into()),
            (
                "error_description".into(),
                "AADSTS50105: <script>alert(1)</script>".into(),
            ),
            ("state".into(), a.param("state").unwrap().into()),
        ],
    };
    let r = b.deliver(&fp).await;
    assert_refused(&b, &r, "idp_error").await;
    assert!(r.body.contains("&lt;script&gt;") && !r.body.contains("<script>alert"));
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_callbacks_get_4xx_never_5xx() {
    let h = Harness::start(Options::default()).await;
    let b = h.browser();
    let long_state = "a".repeat(5000);
    let cases: Vec<Vec<(String, String)>> = vec![
        vec![],
        vec![("state".into(), "x".into())],
        vec![("state".into(), long_state)],
        vec![
            ("state".into(), "../../etc/passwd".into()),
            ("id_token".into(), "a.b.c".into()),
        ],
        vec![("id_token".into(), "not-a-jwt".into())],
    ];
    for fields in cases {
        let r = b.post_form("/auth/account/azureresponse", &fields).await;
        assert!((400..500).contains(&r.status), "{fields:?} → {}", r.status);
    }
    // A real state with a truncated token.
    let a = b.begin_login("/").await;
    let fp = FormPost {
        action: a.param("redirect_uri").unwrap().into(),
        fields: vec![
            ("id_token".into(), "eyJhbGciOiJSUzI1NiJ9.eyJ".into()),
            ("state".into(), a.param("state").unwrap().into()),
        ],
    };
    let r = b.deliver(&fp).await;
    assert_refused(&b, &r, "token_malformed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_offered_by_the_token_itself_are_never_followed() {
    refused_with(|s| s.signing = Signing::EmbeddedKey, "unknown_kid").await;
}
