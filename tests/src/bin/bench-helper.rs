//! Helper for `bench/run` (not a test): runs the mock Entra ID, and signs
//! browsers in through a gateway (ours or a peer) to get session cookies or
//! to measure sign-ins per second.
//!
//!   bench-helper mock PORT REDIRECT_URI...     serve the mock until killed
//!   bench-helper signin URL USER               print the session Cookie header
//!   bench-helper signins URL N CONCURRENCY     N full sign-ins; print sign-ins/s
//!   bench-helper callbacks URL N CONCURRENCY   N callbacks with tokens the mock minted
//!                                              beforehand (untimed); print callbacks/s
//!   bench-helper plain-proxy LISTEN UPSTREAM [HEADERS|-] [timeouts]
//!                                              plain Pingora proxying (the stack's floor);
//!                                              HEADERS: a file of `name: value` lines inserted
//!                                              upstream; `timeouts`: the gateway's default
//!                                              upstream timeouts on every peer

use e2e::FormPost;
use entra_gateway::session::{Session, SessionId, SessionRecord, SessionStore};
use mock_entra::{MockApp, MockEntra, MockEntraConfig};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[path = "bench-helper/plain_proxy.rs"]
mod plain_proxy;

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

/// The authority's part of a sign-in: protected page → authorize (login_hint).
/// Returns the browser's cookies and the form_post it is asked to submit.
async fn start_sign_in(
    http: &reqwest::Client,
    url: &str,
    user: &str,
) -> Result<(BTreeMap<String, String>, FormPost), String> {
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
    Ok((jar, fp))
}

/// The gateway's part: the form_post to the callback. Returns the session cookies.
async fn finish_sign_in(
    http: &reqwest::Client,
    mut jar: BTreeMap<String, String>,
    fp: &FormPost,
) -> Result<BTreeMap<String, String>, String> {
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

/// One sign-in: protected page → authorize (login_hint) → form_post → callback.
async fn sign_in(http: &reqwest::Client, url: &str, user: &str) -> Result<BTreeMap<String, String>, String> {
    let (jar, fp) = start_sign_in(http, url, user).await?;
    finish_sign_in(http, jar, &fp).await
}

fn bench_user(i: usize) -> &'static str {
    if i.is_multiple_of(2) {
        "alice@contoso.example"
    } else {
        "zoe@contoso.example"
    }
}

/// Runs `n` jobs on `c` concurrent workers; prints "completed per-second".
/// A session as the callback writes it for a bench user at the agent portal.
fn bench_session(i: usize) -> Session {
    let now = entra_gateway::session::now_unix();
    let user = &e2e::users()[i % 2];
    SessionRecord::<String> {
        portal: "agent".into(),
        portal_kind: policy::PortalKind::Agent,
        tid: user.tenant.parse().expect("a GUID"),
        oid: user.oid.clone(),
        sub: entra_gateway::session::random_token(32),
        issuer: format!("http://127.0.0.1:19400/{}/v2.0", user.tenant),
        name: Some(user.name.clone()),
        email: user.email.clone(),
        sid: Some(entra_gateway::session::random_token(16)),
        login_hint: Some(entra_gateway::session::random_token(60)),
        user_key: format!("{}:{}", user.tenant, user.oid),
        client: None,
        created_at: now,
        last_seen: now,
        absolute_expiry: now + 3600,
        idle_timeout_secs: 3600,
        remember_me: false,
        csrf: entra_gateway::session::random_token(32),
        new_user: false,
        mfa: Default::default(),
    }
    .try_into()
    .expect("a session's strings fit")
}

async fn run_concurrently<F, Fut>(n: usize, c: usize, job: F)
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..c {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0usize;
            for i in (w..n).step_by(c) {
                ok += usize::from(job(i).await);
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
        Some(mode @ ("signins" | "callbacks")) => {
            let n: usize = args[2].parse().expect("n");
            let c: usize = args[3].parse().expect("concurrency");
            let url = Arc::new(args[1].clone());
            let http = client();
            // One authenticated request after each sign-in, so the session is
            // also cached (local cache, assertion) as it would be in use.
            async fn use_session(http: &reqwest::Client, url: &str, jar: &BTreeMap<String, String>) {
                let _ = http.get(url).header("cookie", cookie_header(jar)).send().await;
            }
            if mode == "signins" {
                run_concurrently(n, c, move |i| {
                    let (http, url) = (http.clone(), url.clone());
                    async move {
                        let Ok(jar) = sign_in(&http, &url, bench_user(i)).await else {
                            return false;
                        };
                        use_session(&http, &url, &jar).await;
                        true
                    }
                })
                .await;
            } else {
                // The mock's RS256 signing costs far more than the gateway's
                // callback; minting every token first keeps it out of the timing.
                let mut started = Vec::with_capacity(n);
                for i in 0..n {
                    started.push(Mutex::new(start_sign_in(&http, &url, bench_user(i)).await.ok()));
                }
                let started = Arc::new(started);
                run_concurrently(n, c, move |i| {
                    let (http, url, started) = (http.clone(), url.clone(), started.clone());
                    async move {
                        let Some((jar, fp)) = started[i].lock().expect("lock").take() else {
                            return false;
                        };
                        let Ok(jar) = finish_sign_in(&http, jar, &fp).await else {
                            return false;
                        };
                        use_session(&http, &url, &jar).await;
                        true
                    }
                })
                .await;
            }
        }
        Some("sessions") => {
            // N sessions as a sign-in would leave them in Redis, then one
            // authenticated request each through the gateway (its local cache
            // and assertion signature fill as they would in use). Seeding
            // through the store skips N mock RS256 signatures (~11 ms each).
            let (url, redis_url) = (Arc::new(args[1].clone()), &args[2]);
            let n: usize = args[3].parse().expect("n");
            let c: usize = args[4].parse().expect("concurrency");
            let target = entra_gateway::config::RedisTarget::Standalone { url: redis_url.clone() };
            let store = Arc::new(
                entra_gateway::session::RedisStore::connect(&target, "entra_gw:")
                    .await
                    .expect("redis"),
            );
            let ids: Arc<Vec<SessionId>> = Arc::new((0..n).map(|_| SessionId::generate()).collect());
            let seed = ids.clone();
            let t0 = Instant::now();
            futures_util::future::join_all((0..c).map(|w| {
                let (store, seed) = (store.clone(), seed.clone());
                async move {
                    for i in (w..n).step_by(c) {
                        let s = bench_session(i);
                        store
                            .put_session(&seed[i].key(), &s, std::time::Duration::from_secs(3600))
                            .await
                            .expect("seed");
                    }
                }
            }))
            .await;
            eprintln!("seeded {n} sessions in {:.1} s", t0.elapsed().as_secs_f64());
            let http = client();
            run_concurrently(n, c, move |i| {
                let (http, url, ids) = (http.clone(), url.clone(), ids.clone());
                async move {
                    http.get(url.as_str())
                        .header("cookie", format!("entra_gw_agent={}", ids[i].as_str()))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            })
            .await;
        }
        Some("plain-proxy") => {
            let (listen, upstream) = (args[1].clone(), args[2].clone());
            let headers = match args.get(3).map(String::as_str) {
                Some(file) if file != "-" => {
                    plain_proxy::headers(&std::fs::read_to_string(file).expect("the headers file"))
                }
                _ => Vec::new(),
            };
            let timeouts = args.get(4).is_some_and(|a| a == "timeouts");
            // Off this runtime's threads: Pingora starts runtimes of its own.
            let server = std::thread::spawn(move || plain_proxy::run(&listen, &upstream, headers, timeouts));
            let _ = server.join();
        }
        _ => {
            eprintln!(
                "usage: bench-helper mock PORT URI... | signin URL USER | signins|callbacks URL N CONCURRENCY \
                 | sessions URL REDIS_URL N CONCURRENCY | plain-proxy LISTEN UPSTREAM [HEADERS|-] [timeouts]"
            );
            std::process::exit(2);
        }
    }
}
