//! A real browser (Debian's headless Chromium through chromedriver) signs in
//! through `entra-gateway demo` with the mock Entra's login form.

use e2e::*;
use fantoccini::{ClientBuilder, Locator};
use std::process::{Command, Stdio};
use std::time::Duration;

struct Driver(std::process::Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artifacts() -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    std::fs::create_dir_all(&d).expect("artifacts dir");
    d
}

/// Writes a screenshot to tests/artifacts, and to docs/images as well when
/// `UPDATE_DOCS_IMAGES=1`: the pages carry random secrets and times, so a
/// plain test run would otherwise leave the docs' images changed every time.
fn save_screenshot(name: &str, png: &[u8]) {
    assert!(png.starts_with(b"\x89PNG"), "{name}: a PNG screenshot");
    std::fs::write(artifacts().join(name), png).unwrap();
    if std::env::var_os("UPDATE_DOCS_IMAGES").is_some_and(|v| v == "1") {
        let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
        std::fs::write(docs.join(name), png).unwrap();
    }
}

async fn chromium() -> (Driver, fantoccini::Client) {
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is installed (apt-get install chromium chromium-driver; .ci/run does it)");
    let driver = Driver(child);
    let profile = tempfile::tempdir().expect("profile").keep();
    let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-dev-shm-usage", "--window-size=1100,800", format!("--user-data-dir={}", profile.display())]
        }
    }))
    .unwrap();
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let mut last = None;
    for _ in 0..100 {
        match ClientBuilder::new(connector.clone())
            .capabilities(caps.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(c) => return (driver, c),
            Err(e) => last = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not start: {last:?}");
}

/// The demo's login page, then "Sign in with Microsoft" (remember me as
/// given), then the mock Entra's login form as alice.
async fn sign_in_through_the_login_page(c: &fantoccini::Client, base: &str, remember: bool) {
    c.goto(&format!("{base}/tickets")).await.expect("open the demo");
    let button = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("sign-in-microsoft"))
        .await
        .expect("login page");
    if remember {
        c.find(Locator::Id("remember_me")).await.unwrap().click().await.unwrap();
    }
    button.click().await.unwrap();
    let field = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("i0116"))
        .await
        .expect("mock Entra form");
    // "Or pick a test account" starts its own row, below the floated "Next".
    let next = c.find(Locator::Id("idSIButton9")).await.unwrap();
    let (_, next_y, _, next_h) = next.rectangle().await.unwrap();
    let (_, pick_y, _, _) = c
        .find(Locator::Id("pick-test-account"))
        .await
        .unwrap()
        .rectangle()
        .await
        .unwrap();
    assert!(
        pick_y >= next_y + next_h,
        "the test-account line is below Next ({pick_y} < {next_y} + {next_h})"
    );
    field.send_keys("alice@contoso.example").await.unwrap();
    next.click().await.unwrap();
    let greeting = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("greeting"))
        .await
        .expect("demo app page");
    assert_eq!(greeting.text().await.unwrap(), "Hello, Alice Agent");
    assert_eq!(
        c.current_url().await.unwrap().as_str(),
        format!("{base}/tickets"),
        "back where the browser started"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_signs_in_through_the_demo() {
    let port = free_port();
    let _demo = GatewayProcess::demo(port).await;
    let (_driver, c) = chromium().await;
    let base = format!("http://127.0.0.1:{port}");

    c.goto(&format!("{base}/auth/login")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("sign-in-microsoft"))
        .await
        .unwrap();
    save_screenshot("login-page.png", &c.screenshot().await.unwrap());

    sign_in_through_the_login_page(&c, &base, false).await;
    let body = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(
        body.contains("which it verified"),
        "the app verified the assertion: {body}"
    );
    // Claims as a person reads them: no JSON quotes, times as dates.
    let cells = c.find_all(Locator::Css("td")).await.unwrap();
    let mut texts = Vec::new();
    for cell in cells {
        texts.push(cell.text().await.unwrap());
    }
    assert!(texts.iter().any(|t| t == "Alice Agent"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with('"')), "{texts:?}");
    assert!(
        texts.iter().filter(|t| t.contains(" GMT (")).count() >= 2,
        "exp and iat readable: {texts:?}"
    );
    save_screenshot("demo-signed-in.png", &c.screenshot().await.unwrap());
    let session = c.get_named_cookie("entra_gw_agent").await.expect("session cookie");
    assert!(
        session.expires().is_none() || matches!(session.expires(), Some(cookie::Expiration::Session)),
        "not remembered: a browser-session cookie"
    );
    assert_eq!(session.http_only(), Some(true));

    // Signing out (a same-origin link) ends at the signed-out page.
    c.find(Locator::LinkText("Sign out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let h1 = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    assert_eq!(h1.text().await.unwrap(), "You are signed out");
    c.goto(&format!("{base}/tickets")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("sign-in-microsoft"))
        .await
        .expect("signed out: login page again");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_remember_me_gives_a_persistent_cookie() {
    let port = free_port();
    let _demo = GatewayProcess::demo(port).await;
    let (_driver, c) = chromium().await;
    let base = format!("http://127.0.0.1:{port}");
    sign_in_through_the_login_page(&c, &base, true).await;
    let session = c.get_named_cookie("entra_gw_agent").await.expect("session cookie");
    let expires = session.expires_datetime().expect("remember me: a persistent cookie");
    let days = (expires - cookie::time::OffsetDateTime::now_utc()).whole_days();
    assert!(
        (29..=30).contains(&days),
        "remembered for remember_me_days (30), got {days}"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_uses_a_local_account() {
    let port = free_port();
    let _demo = GatewayProcess::demo(port).await;
    let (_driver, c) = chromium().await;
    let base = format!("http://127.0.0.1:{port}");
    c.goto(&format!("{base}/tickets")).await.unwrap();
    let local = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("use-local-account"))
        .await
        .unwrap();
    local.click().await.unwrap();
    let greeting = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("greeting"))
        .await
        .expect("the app itself");
    assert_eq!(
        greeting.text().await.unwrap(),
        "Hello, stranger",
        "no identity: the app's own login applies"
    );
    assert_eq!(c.current_url().await.unwrap().as_str(), format!("{base}/tickets"));
    let status = c.find(Locator::Id("status")).await.unwrap().text().await.unwrap();
    assert!(status.contains("No SSO identity was sent"), "{status}");
    assert!(!status.contains("signed you in"), "{status}");
    assert!(
        c.get_named_cookie("entra_gw_local_agent").await.is_ok(),
        "the local-account choice is a cookie"
    );

    // "Sign out" there forgets the choice: the browser is anonymous again.
    c.find(Locator::LinkText("Sign out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let h1 = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    assert_eq!(h1.text().await.unwrap(), "You are signed out");
    assert!(
        c.get_named_cookie("entra_gw_local_agent").await.is_err(),
        "no local-account cookie after signing out"
    );
    c.goto(&format!("{base}/tickets")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("sign-in-microsoft"))
        .await
        .expect("signed out: the login page again, not the app");
    c.close().await.unwrap();
}

/// Single logout across portals: the agent and user portals share one Entra
/// browser session (one `sid`). Signing out of the agent portal goes to
/// Entra's end-session page, which frames every app's front-channel logout
/// URL; that request (no cookies, only `sid`) ends the user-portal session too.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_single_logout_ends_the_other_portal_through_entra_iframes() {
    let port = free_port();
    let _demo = GatewayProcess::demo(port).await;
    let (_driver, c) = chromium().await;
    let base = format!("http://127.0.0.1:{port}");
    sign_in_through_the_login_page(&c, &base, false).await;

    // The user portal: Entra already knows this browser, so no form this time.
    c.goto(&format!("{base}/portal/requests")).await.unwrap();
    if let Ok(button) = c
        .wait()
        .at_most(Duration::from_secs(5))
        .for_element(Locator::Id("sign-in-microsoft"))
        .await
    {
        button.click().await.unwrap();
    }
    let greeting = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("greeting"))
        .await
        .expect("signed in to the user portal without typing anything");
    assert_eq!(greeting.text().await.unwrap(), "Hello, Alice Agent");
    assert!(
        c.get_named_cookie("entra_gw_portal").await.is_ok(),
        "a user-portal session"
    );

    c.goto(&format!("{base}/tickets")).await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::LinkText("Sign out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let h1 = c
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css("h1"))
        .await
        .unwrap();
    assert_eq!(h1.text().await.unwrap(), "You are signed out");

    // The user-portal cookie is still in the browser, but its session is gone.
    c.goto(&format!("{base}/portal/requests")).await.unwrap();
    let page = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("body"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !page.contains("Hello, Alice Agent"),
        "the front-channel logout ended the user-portal session: {page}"
    );
    c.close().await.unwrap();
}

/// The second factor in a real browser: Entra sign-in, the enrolment page
/// (QR code drawn by the gateway; screenshot in docs/images), a code the test
/// computes from the key shown, the recovery codes, then the app with
/// `mfa: totp`.
#[tokio::test(flavor = "multi_thread")]
async fn chromium_enrols_in_two_factor_through_the_qr_page() {
    let options = Options::default()
        .patch(serde_json::json!({
            "two_factor": {
                "required_for": "everyone",
                "bypass_with_sso": false,
                "encryption_key": crate::two_factor::KEY,
            },
        }))
        .patch_wired(|w| {
            serde_json::json!({"portals": [
                {"name": "agent", "kind": "agent", "url": w.portal_url, "branding": {"title": "Halo support"}},
                {"name": "portal", "kind": "user", "url": format!("{}/portal", w.portal_url)},
            ]})
        });
    let h = Harness::start(options).await;
    let (_driver, c) = chromium().await;
    c.goto(&h.url("/tickets")).await.unwrap();
    let field = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("i0116"))
        .await
        .expect("mock Entra form");
    field.send_keys("alice@contoso.example").await.unwrap();
    c.find(Locator::Id("idSIButton9")).await.unwrap().click().await.unwrap();
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("#qr svg"))
        .await
        .expect("the enrolment page with its QR code");
    assert!(c.current_url().await.unwrap().path().ends_with("/auth/2fa"));
    let secret = c.find(Locator::Id("totp-secret")).await.unwrap().text().await.unwrap();
    let code = c.find(Locator::Id("code")).await.unwrap();
    assert_eq!(
        code.attr("autocomplete").await.unwrap().as_deref(),
        Some("one-time-code")
    );
    code.send_keys(&crate::two_factor::code(secret.trim(), 0))
        .await
        .unwrap();
    save_screenshot("two-factor-enrol.png", &c.screenshot().await.unwrap());
    c.find(Locator::Id("verify")).await.unwrap().click().await.unwrap();
    let codes = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("recovery-codes"))
        .await
        .expect("recovery codes, once");
    assert_eq!(codes.find_all(Locator::Css("li")).await.unwrap().len(), 10);
    c.find(Locator::Id("continue")).await.unwrap().click().await.unwrap();
    let greeting = c
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Id("greeting"))
        .await
        .expect("the app");
    assert_eq!(greeting.text().await.unwrap(), "Hello, Alice Agent");
    let body = c.find(Locator::Css("body")).await.unwrap().text().await.unwrap();
    assert!(
        body.lines().any(|l| l.contains("mfa") && l.contains("totp")),
        "the app is told mfa: totp: {body}"
    );
    c.close().await.unwrap();
}

/// Kills the README command's whole process group (`./dev` → cargo → the
/// gateway) however the test ends.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        // `--`: without it a negative process-group id reads as a signal.
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// The README's first code block names the demo command: run exactly that
/// line (from the repository root, through bash) and reach the demo app.
/// Only the address differs, through `ENTRA_GATEWAY_DEMO_LISTEN` (a free
/// port instead of 8080). `cargo run` builds only the gateway's own feature
/// set, which the workspace's test build does not share (dev-dependencies
/// unify features across the workspace), so the first run compiles part of
/// the dependency tree again: bounded, but generously.
#[tokio::test(flavor = "multi_thread")]
async fn the_readmes_demo_command_reaches_the_demo_page() {
    use std::os::unix::process::CommandExt;
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let block = readme.split("```").nth(1).expect("README has a code block");
    let command = block
        .lines()
        .skip(1)
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .find(|l| l.split_whitespace().any(|w| w == "demo"))
        .expect("the first code block has a demo command")
        .to_string();
    let port = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("demo.log");
    let out = std::fs::File::create(&log).expect("log");
    // A user's shell, not cargo test's: variables cargo sets for the test
    // process would make that cargo rebuild the dependencies (and the next
    // `cargo test` rebuild them back).
    let mut cmd = Command::new("bash");
    cmd.env_clear();
    for var in [
        "PATH",
        "HOME",
        "USER",
        "LANG",
        "TERM",
        "RUSTUP_HOME",
        "RUSTUP_TOOLCHAIN",
        "CARGO_HOME",
    ] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    let child = cmd
        .arg("-c")
        .arg(&command)
        .current_dir(root)
        .env("ENTRA_GATEWAY_DEMO_LISTEN", format!("127.0.0.1:{port}"))
        .env("CARGO_NET_OFFLINE", "true")
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log"))
        .stderr(out)
        .process_group(0)
        .spawn()
        .expect("bash");
    let mut demo = Group(child);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let base = format!("http://127.0.0.1:{port}");
    let start = std::time::Instant::now();
    loop {
        if let Ok(r) = reqwest::get(format!("{base}/.well-known/entra-gateway/healthz")).await
            && r.status().is_success()
        {
            break;
        }
        if let Ok(Some(status)) = demo.0.try_wait() {
            panic!("`{command}` exited with {status}:\n{}", read_log());
        }
        assert!(
            start.elapsed() < Duration::from_secs(900),
            "`{command}` did not serve the demo within 15 minutes:\n{}",
            read_log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The login page, then "Use a local account" to the demo app itself.
    let b = Browser::new(&base, false);
    let r = b.get("/").await;
    assert_eq!(r.status, 302, "{}", r.body);
    let r = b.get(r.location().expect("to the login page")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("sign-in-microsoft"), "{}", r.body);
    let r = b.post_form("/auth/local", &[("rd".into(), "/".into())]).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let r = b.get("/").await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("protected demo application"), "{}", r.body);
    assert!(
        read_log().contains("alice@contoso.example"),
        "the demo prints its accounts:\n{}",
        read_log()
    );
}
