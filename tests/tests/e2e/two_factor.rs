//! The second factor after SSO (issue 12 A; SPEC §3 `two_factor.*`, §4
//! `/auth/2fa`, §5 `mfa`): a pending session reaches nothing, enrolment with
//! a code the test computes from the key the page shows, lockout, recovery
//! codes, "don't ask again", the CLI reset, bypass, `listed`, two instances.

use e2e::*;
use serde_json::json;
use std::net::IpAddr;

pub const KEY: &str = "e2e-two-factor-key-0123456789abcdefghij";
const ALICE: &str = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa:a11ce000-0000-4000-8000-000000000001";
const ZOE: &str = "zoe@contoso.example";

fn options(two_factor: serde_json::Value) -> Options {
    let mut tf = json!({
        "required_for": "everyone",
        "bypass_with_sso": false,
        "encryption_key": KEY,
    });
    deep_merge(&mut tf, two_factor);
    Options::default().patch(json!({ "two_factor": tf }))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code of the key shown on the enrolment page, `steps_ahead` steps
/// from now (a step already used is refused as a replay).
pub fn code(secret_b32: &str, steps_ahead: u64) -> String {
    let secret = totp_rs::Secret::try_from_base32(secret_b32).expect("base32 key");
    let t = totp_rs::Builder::new()
        .with_algorithm(totp_rs::Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(secret)
        .build()
        .expect("totp");
    t.generate(now() + 30 * steps_ahead).to_string()
}

fn between<'a>(html: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = html.find(start)? + start.len();
    let j = html[i..].find(end)?;
    Some(&html[i..i + j])
}

pub fn secret_of(page: &str) -> String {
    between(page, "id=\"totp-secret\">", "<")
        .unwrap_or_else(|| panic!("no key on the page: {page}"))
        .to_string()
}

fn csrf_of(page: &str) -> String {
    between(page, "name=\"csrf\" value=\"", "\"")
        .unwrap_or_else(|| panic!("no csrf on the page: {page}"))
        .to_string()
}

/// Signs `user` in; the callback's 303 and the pending session's redirect.
async fn signed_in_pending(h: &Harness, b: &Browser, user: &str) {
    let landed = b.sign_in(&h.url("/tickets"), user).await;
    assert_eq!(landed, "/tickets");
    let r = b.get("/tickets").await;
    assert_eq!(r.status, 303, "pending: to the 2FA page: {}", r.body);
    assert_eq!(r.location(), Some("/auth/2fa?rd=%2Ftickets"));
}

async fn submit(b: &Browser, page: &str, code: &str, dont_ask_again: bool) -> browser::Resp {
    let mut fields = vec![
        ("rd".to_string(), "/tickets".to_string()),
        ("csrf".to_string(), csrf_of(page)),
        ("code".to_string(), code.to_string()),
    ];
    if dont_ask_again {
        fields.push(("dont_ask_again".into(), "on".into()));
    }
    b.post_form("/auth/2fa", &fields).await
}

/// Enrols the signed-in (pending) browser; returns the key and the recovery codes.
async fn enrol(b: &Browser, dont_ask_again: bool) -> (String, Vec<String>) {
    let page = b.get("/auth/2fa?rd=%2Ftickets").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let secret = secret_of(&page.body);
    let r = submit(b, &page.body, &code(&secret, 0), dont_ask_again).await;
    assert_eq!(r.status, 200, "recovery codes page: {}", r.body);
    let list = between(&r.body, "id=\"recovery-codes\">", "</ol>").expect("codes");
    let codes: Vec<String> = list
        .split("<li>")
        .skip(1)
        .map(|c| c.split("</li>").next().unwrap().to_string())
        .collect();
    (secret, codes)
}

async fn mfa(b: &Browser) -> String {
    let r = b.whoami().await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["verified"], true);
    r.json()["claims"]["mfa"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_until_enrolled_then_the_app_sees_totp() {
    let h = Harness::start(options(json!({}))).await;
    let b = h.browser();
    signed_in_pending(&h, &b, "alice@contoso.example").await;

    // Nothing reaches the app meanwhile: XHR gets 401 JSON naming the page.
    let r = b.whoami().await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.json()["error"], "two_factor_required");
    assert_eq!(r.json()["two_factor_url"], "/auth/2fa?rd=%2Fapi%2Fwhoami");
    assert_eq!(r.headers["x-auth-2fa-url"], "/auth/2fa?rd=%2Fapi%2Fwhoami");
    // A local-account marker is no way round it.
    b.set_cookie("entra_gw_local_agent", "1");
    assert_eq!(b.whoami().await.status, 401);
    b.remove_cookie("entra_gw_local_agent");
    // Public paths stay public.
    assert_eq!(b.get("/public/x").await.status, 200);

    // The enrolment page: QR code drawn by the gateway, key as text, labelled
    // one-time-code input, CSRF token, never cached.
    let page = b.get("/auth/2fa?rd=%2Ftickets").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["cache-control"], "no-store");
    for needle in [
        "<svg",
        "id=\"totp-secret\"",
        "autocomplete=\"one-time-code\"",
        "inputmode=\"numeric\"",
        "<label for=\"code\"",
        "name=\"csrf\"",
        "id=\"dont_ask_again\"",
    ] {
        assert!(page.body.contains(needle), "{needle} in {}", page.body);
    }
    // The QR code is drawn here: no image from anywhere else.
    assert!(!page.body.contains("src=\"http"), "no external QR service");
    let secret = secret_of(&page.body);
    assert_eq!(secret.len(), 32, "160-bit key in base32");

    // A wrong CSRF token changes nothing.
    let forged = page.body.replace(&csrf_of(&page.body), "forged");
    let r = submit(&b, &forged, &code(&secret, 0), false).await;
    assert_eq!(r.status, 403, "{}", r.body);
    // A wrong code: the form again, with the error.
    let r = submit(&b, &page.body, "000000", false).await;
    assert_eq!(r.status, 400);
    assert!(r.body.contains("id=\"two-factor-error\""), "{}", r.body);
    assert_eq!(secret_of(&r.body), secret, "the same key until confirmed");

    // Kept: recomputed later, a step boundary in between would give a fresh code.
    let used = code(&secret, 0);
    let r = submit(&b, &page.body, &used, false).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.matches("<li>").count(), 10, "ten recovery codes: {}", r.body);
    // Continue to where the sign-in was going (minijinja escapes `/`).
    assert!(r.body.contains("id=\"continue\" href=\"&#x2f;tickets\""), "{}", r.body);
    assert_eq!(mfa(&b).await, "totp");
    assert_eq!(b.get("/tickets").await.status, 200);
    // Done: the page sends the browser on.
    assert_eq!(b.get("/auth/2fa?rd=%2Ftickets").await.status, 303);

    assert_eq!(
        h.metric("entra_gateway_two_factor_total", &[("result", "enrolled")])
            .await,
        1.0
    );
    assert_eq!(
        h.metric("entra_gateway_two_factor_total", &[("result", "wrong_code")])
            .await,
        1.0
    );
    assert_eq!(
        h.metric("entra_gateway_two_factor_total", &[("result", "bad_csrf")])
            .await,
        1.0
    );
    assert_eq!(
        h.metric("entra_gateway_requests_total", &[("outcome", "two_factor")])
            .await,
        3.0
    );
    let logs = h.gateway.logs();
    assert!(!logs.contains(&secret), "the key is never logged");

    // Signing in again: the code form (no QR), a fresh code works once.
    let again = h.browser();
    signed_in_pending(&h, &again, "alice@contoso.example").await;
    let page = again.get("/auth/2fa?rd=%2Ftickets").await;
    assert!(!page.body.contains("<svg") && !page.body.contains("totp-secret"));
    let r = submit(&again, &page.body, &used, false).await;
    assert_eq!(r.status, 400, "the code used at enrolment is spent (replay)");
    assert!(r.body.contains("already used"), "{}", r.body);
    let r = submit(&again, &page.body, &code(&secret, 1), false).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.location(), Some("/tickets"));
    assert_eq!(mfa(&again).await, "totp");
    assert_eq!(
        h.metric("entra_gateway_two_factor_total", &[("result", "replayed_code")])
            .await,
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn five_wrong_codes_lock_out_and_a_recovery_code_works_once() {
    let h = Harness::start(options(json!({}))).await;
    let a = h.browser();
    signed_in_pending(&h, &a, "alice@contoso.example").await;
    let (_secret, codes) = enrol(&a, false).await;

    // Zoe, from another address, guesses.
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let z = Browser::new_from(&h.base, false, Some(other));
    signed_in_pending(&h, &z, ZOE).await;
    let page = z.get("/auth/2fa?rd=%2Ftickets").await;
    for i in 1..=4 {
        let r = submit(&z, &page.body, "123456", false).await;
        assert_eq!(r.status, 400, "attempt {i}: {}", r.body);
    }
    let r = submit(&z, &page.body, "123456", false).await;
    assert_eq!(r.status, 429, "the fifth wrong code locks out: {}", r.body);
    assert!(
        r.body.contains("two_factor_locked") && r.body.contains("Try again in 1 minute"),
        "{}",
        r.body
    );
    assert!(r.headers.contains_key("retry-after"));
    // Locked: even the page says so, and a right code would not be judged.
    assert_eq!(z.get("/auth/2fa?rd=%2Ftickets").await.status, 429);
    assert_eq!(
        h.metric("entra_gateway_two_factor_total", &[("result", "locked_out")])
            .await,
        2.0
    );

    // Alice, on a new browser: a recovery code instead of the app's code, once.
    let b = h.browser();
    signed_in_pending(&h, &b, "alice@contoso.example").await;
    let page = b.get("/auth/2fa?rd=%2Ftickets").await;
    assert!(page.body.contains("recovery code"));
    let r = submit(&b, &page.body, &codes[0].to_uppercase(), false).await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(mfa(&b).await, "totp");
    let c = h.browser();
    signed_in_pending(&h, &c, "alice@contoso.example").await;
    let page = c.get("/auth/2fa?rd=%2Ftickets").await;
    assert_eq!(submit(&c, &page.body, &codes[0], false).await.status, 400, "spent");
    assert_eq!(
        submit(&c, &page.body, &codes[1], false).await.status,
        303,
        "another one works"
    );
    assert_eq!(
        h.metric("entra_gateway_two_factor_total", &[("result", "recovery_code")])
            .await,
        2.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn dont_ask_again_skips_for_that_user_only_until_a_reset() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..options(json!({ "dont_ask_again_days": 7 }))
    })
    .await;
    let a = h.browser();
    signed_in_pending(&h, &a, "alice@contoso.example").await;
    let page = a.get("/auth/2fa?rd=%2Ftickets").await;
    let secret = secret_of(&page.body);
    let r = submit(&a, &page.body, &code(&secret, 0), true).await;
    assert_eq!(r.status, 200);
    let set = r.cookie("entra_gw_2fa").expect("the don't-ask-again cookie");
    assert!(set.has("httponly"), "{set:?}");
    assert_eq!(set.attr("samesite").map(str::to_lowercase).as_deref(), Some("lax"));
    assert_eq!(set.max_age(), Some(7 * 86_400));
    let remembered = set.value.clone();

    // The same browser signs in again: no step, `mfa: remembered`.
    let b = h.browser();
    b.set_cookie("entra_gw_2fa", &remembered);
    assert_eq!(b.sign_in(&h.url("/tickets"), "alice@contoso.example").await, "/tickets");
    assert_eq!(mfa(&b).await, "remembered");
    assert_eq!(
        h.metric("entra_gateway_two_factor_total", &[("result", "remembered")])
            .await,
        1.0
    );

    // Another user on that browser still takes the step.
    let z = h.browser();
    z.set_cookie("entra_gw_2fa", &remembered);
    signed_in_pending(&h, &z, ZOE).await;
    // A tampered cookie counts for nothing.
    let t = h.browser();
    t.set_cookie("entra_gw_2fa", &format!("{remembered}x"));
    signed_in_pending(&h, &t, "alice@contoso.example").await;

    // Support resets alice: the remembered browser is void, enrolment anew.
    let out = h.command(&["two-factor", "status", "--user", ALICE]);
    let status = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{status} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        status.contains("enrolled:        yes") && status.contains("10 left"),
        "{status}"
    );
    let out = h.command(&["two-factor", "reset", "--user", ALICE]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = h.command(&["two-factor", "status", "--user", ALICE]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled:        no"));
    let c = h.browser();
    c.set_cookie("entra_gw_2fa", &remembered);
    signed_in_pending(&h, &c, "alice@contoso.example").await;
    let page = c.get("/auth/2fa?rd=%2Ftickets").await;
    assert_ne!(secret_of(&page.body), secret, "a new key to enrol");
    // An unknown user's status is simply "not enrolled"; a missing --user is a usage error.
    let out = h.command(&["two-factor", "status", "--user", "nobody"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("enrolled:        no"));
    assert_eq!(h.command(&["two-factor", "reset"]).status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread")]
async fn pending_on_one_instance_done_on_the_other() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..options(json!({}))
    })
    .await;
    let (_b_proc, b) = h.another_instance().await;
    let a = h.browser();
    signed_in_pending(&h, &a, "alice@contoso.example").await;
    copy_session(&a, &b);
    // B reads (and caches) the pending session.
    assert_eq!(b.whoami().await.status, 401);
    assert_eq!(b.whoami().await.status, 401);
    enrol(&a, false).await;
    assert_eq!(mfa(&a).await, "totp");
    // B lets it through at once, with the state the store holds.
    assert_eq!(mfa(&b).await, "totp");
}

#[tokio::test(flavor = "multi_thread")]
async fn bypass_with_sso_and_listed_users() {
    let h = Harness::start(options(json!({ "bypass_with_sso": true }))).await;
    let b = h.signed_in("alice@contoso.example").await;
    assert_eq!(mfa(&b).await, "bypassed");
    assert_eq!(
        h.metric("entra_gateway_two_factor_total", &[("result", "bypassed")])
            .await,
        1.0
    );
    drop(h);

    let h = Harness::start(options(json!({ "required_for": "listed", "listed_users": [ALICE] }))).await;
    let z = h.signed_in(ZOE).await;
    assert_eq!(mfa(&z).await, "none", "not listed: no step");
    let a = h.browser();
    signed_in_pending(&h, &a, "alice@contoso.example").await;
    enrol(&a, false).await;
    assert_eq!(mfa(&a).await, "totp");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_2fa_the_assertion_says_none() {
    let h = Harness::start(Options::default()).await;
    let b = h.signed_in("alice@contoso.example").await;
    assert_eq!(mfa(&b).await, "none");
    // The page is harmless when 2FA is off.
    assert_eq!(b.get("/auth/2fa?rd=%2Ftickets").await.location(), Some("/tickets"));
}

/// `listed` through the directory: a record flagged `two_factor` takes the
/// step, the others do not.
#[tokio::test(flavor = "multi_thread")]
async fn listed_by_a_directory_record_flag() {
    let redis = RedisServer::start();
    let h = Harness::start(Options {
        redis_url: Some(redis.url()),
        ..options(json!({ "required_for": "listed" }))
            .patch(json!({"sso": {"match_by": "unique_id"}, "directory": {"kind": "builtin"}}))
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        format!(
            "key,kind,tid,oid,two_factor\n\
             agent-alice,agent,{TENANT},a11ce000-0000-4000-8000-000000000001,yes\n\
             agent-zoe,agent,{TENANT},20e00000-0000-4000-8000-000000000003,no\n"
        ),
    )
    .unwrap();
    let out = h.command(&["directory", "import", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let z = h.signed_in(ZOE).await;
    assert_eq!(mfa(&z).await, "none");
    let a = h.browser();
    signed_in_pending(&h, &a, "alice@contoso.example").await;
    enrol(&a, false).await;
    assert_eq!(mfa(&a).await, "totp");
    assert_eq!(a.whoami().await.json()["headers"]["x-auth-user"], "agent-alice");
}
