//! Helper for `bench/run` (not a test): runs the mock Entra ID, and signs
//! browsers in through a gateway (ours or a peer) to get session cookies or
//! to measure sign-ins per second.
//!
//!   bench-helper mock PORT REDIRECT_URI...     serve the mock until killed
//!   bench-helper signin URL USER               print the session Cookie header
//!   bench-helper signins URL N CONCURRENCY     N full sign-ins; print sign-ins/s

use e2e::FormPost;
use entra_gateway::demo::mock_entra::{MockApp, MockEntra, MockEntraConfig};
use std::collections::BTreeMap;
use std::time::Instant;

const CLIENT: &str = "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn set_cookies(r: &reqwest::Response, jar: &mut BTreeMap<String, String>) {
    for v in r.headers().get_all("set-cookie") {
        if let Some(c) = v.to_str().ok().and_then(e2e::SetCookie::parse) {
            if c.is_deletion() {
                jar.remove(&c.name);
            } else {
                jar.insert(c.name, c.value);
            }
        }
    }
}

fn cookie_header(jar: &BTreeMap<String, String>) -> String {
    jar.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One sign-in: protected page → authorize (login_hint) → form_post → callback.
async fn sign_in(http: &reqwest::Client, url: &str, user: &str) -> Result<BTreeMap<String, String>, String> {
    let mut jar = BTreeMap::new();
    let r = http
        .get(url)
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    set_cookies(&r, &mut jar);
    let authorize = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or("no redirect to sign-in")?
        .to_string();
    let r = http
        .get(format!("{authorize}&login_hint={user}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let fp = FormPost::parse(&r.text().await.map_err(|e| e.to_string())?).ok_or("no form_post")?;
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fp.fields.iter())
        .finish();
    let r = http
        .post(&fp.action)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie_header(&jar))
        .body(body)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !r.status().is_redirection() {
        return Err(format!("callback answered {}", r.status()));
    }
    set_cookies(&r, &mut jar);
    jar.retain(|k, _| !k.contains("_login_") && !k.starts_with("mod_auth_openidc_state"));
    Ok(jar)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("mock") => {
            let port: u16 = args[1].parse().expect("port");
            let mut apps = vec![MockApp {
                client_id: CLIENT.into(),
                secret: None,
                redirect_uris: Vec::new(),
                ..Default::default()
            }];
            for uri in &args[2..] {
                match uri.split_once('=') {
                    // peer-apache=http://127.0.0.1:8087/... registers another app
                    Some((id, u)) => apps.push(MockApp {
                        client_id: id.into(),
                        secret: Some("bench-secret".into()),
                        redirect_uris: vec![u.into()],
                        ..Default::default()
                    }),
                    None => apps[0].redirect_uris.push(uri.clone()),
                }
            }
            let cfg = MockEntraConfig {
                tenants: vec![e2e::TENANT.into()],
                users: e2e::users(),
                apps,
                ..Default::default()
            };
            let m = MockEntra::start(cfg, format!("127.0.0.1:{port}").parse().expect("addr"))
                .await
                .expect("mock");
            println!("{}", m.base_url());
            std::future::pending::<()>().await;
        }
        Some("signin") => {
            let jar = sign_in(&client(), &args[1], &args[2]).await.expect("sign-in");
            println!("{}", cookie_header(&jar));
        }
        Some("signins") => {
            let n: usize = args[2].parse().expect("n");
            let c: usize = args[3].parse().expect("concurrency");
            let url = args[1].clone();
            let http = client();
            let start = Instant::now();
            let mut tasks = Vec::new();
            for w in 0..c {
                let (http, url) = (http.clone(), url.clone());
                tasks.push(tokio::spawn(async move {
                    let mut ok = 0usize;
                    for i in (w..n).step_by(c) {
                        let user = if i % 2 == 0 {
                            "alice@contoso.example"
                        } else {
                            "zoe@contoso.example"
                        };
                        if let Ok(jar) = sign_in(&http, &url, user).await {
                            ok += 1;
                            // One authenticated request, so the session is also cached.
                            let _ = http.get(&url).header("cookie", cookie_header(&jar)).send().await;
                        }
                    }
                    ok
                }));
            }
            let mut ok = 0;
            for t in tasks {
                ok += t.await.unwrap_or(0);
            }
            let secs = start.elapsed().as_secs_f64();
            println!("{ok} {:.0}", ok as f64 / secs);
        }
        _ => {
            eprintln!("usage: bench-helper mock PORT URI... | signin URL USER | signins URL N CONCURRENCY");
            std::process::exit(2);
        }
    }
}
