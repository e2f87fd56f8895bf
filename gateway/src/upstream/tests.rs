//! The balancer with a resolver that answers what the test says, in front of
//! real loopback listeners (the e2e tests cover the system resolver).

use super::*;
use async_trait::async_trait;
use std::sync::Mutex;
use tokio::net::TcpListener;

/// Answers from a script: each call takes the next answer, the last repeats.
struct Scripted {
    answers: Mutex<Vec<std::io::Result<Vec<SocketAddr>>>>,
    delay: Duration,
}

fn scripted(answers: Vec<std::io::Result<Vec<SocketAddr>>>, delay: Duration) -> Box<Scripted> {
    Box::new(Scripted {
        answers: Mutex::new(answers),
        delay,
    })
}

fn clone_answer(a: &std::io::Result<Vec<SocketAddr>>) -> std::io::Result<Vec<SocketAddr>> {
    match a {
        Ok(v) => Ok(v.clone()),
        Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
    }
}

#[async_trait]
impl Resolve for Scripted {
    async fn resolve(&self, _host: &str, _port: u16) -> std::io::Result<Vec<SocketAddr>> {
        tokio::time::sleep(self.delay).await;
        let mut answers = self.answers.lock().unwrap();
        if answers.len() > 1 {
            answers.remove(0)
        } else {
            clone_answer(&answers[0])
        }
    }
}

fn not_found() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::NotFound, "no such host")
}

fn cfg(url: &str) -> UpstreamConfig {
    let url = url::Url::parse(url).unwrap();
    let host = url.host_str().unwrap().trim_matches(['[', ']']).to_string();
    UpstreamConfig {
        address: String::new(),
        host: host.clone(),
        port: url.port_or_known_default().unwrap(),
        tls: url.scheme() == "https",
        sni: host,
        url,
        connect_timeout: Duration::from_secs(1),
        read_timeout: Duration::from_secs(60),
        write_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(60),
        tls_verify: true,
        ca_certs: Vec::new(),
        strip_authorization: false,
        allow_underscore_headers: Vec::new(),
        preserve_header_case: false,
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// An address nothing listens on (bound, then closed).
async fn closed_addr() -> SocketAddr {
    listener().await.1
}

#[tokio::test]
async fn ip_literal_is_ready_at_once_without_a_resolver_call() {
    let up = Upstreams::with_resolver(
        &cfg("http://127.0.0.1:9000"),
        scripted(vec![Err(not_found())], Duration::ZERO),
    );
    assert_eq!(up.pick().await, Ok("127.0.0.1:9000".parse().unwrap()));
    let up = Upstreams::with_resolver(
        &cfg("http://[::1]:9000"),
        scripted(vec![Err(not_found())], Duration::ZERO),
    );
    assert_eq!(up.pick().await, Ok("[::1]:9000".parse().unwrap()));
    assert_eq!(up.address_count(), 1);
}

#[tokio::test]
async fn every_address_of_a_name_is_used_in_turn() {
    let (_l1, a1) = listener().await;
    let (_l2, a2) = listener().await;
    let up = Upstreams::with_resolver(
        &cfg("http://app.test:80"),
        scripted(vec![Ok(vec![a1, a2])], Duration::ZERO),
    );
    up.balancer().update().await.unwrap();
    assert_eq!(up.address_count(), 2);
    let picks: Vec<SocketAddr> = futures_util::future::join_all((0..6).map(|_| up.pick()))
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for w in picks.windows(2) {
        assert_ne!(w[0], w[1], "round robin alternates: {picks:?}");
    }
    assert!(picks.contains(&a1) && picks.contains(&a2));
}

#[tokio::test]
async fn an_unhealthy_address_is_skipped_until_none_is_left() {
    let (live_listener, live) = listener().await;
    let dead = closed_addr().await;
    let up = Upstreams::with_resolver(
        &cfg("http://app.test:80"),
        scripted(vec![Ok(vec![live, dead])], Duration::ZERO),
    );
    let lb = up.balancer();
    lb.update().await.unwrap();
    lb.backends().run_health_check(true).await;
    for _ in 0..4 {
        assert_eq!(up.pick().await, Ok(live));
    }
    // Nothing healthy: an address anyway, so the connect error says why.
    drop(live_listener);
    lb.backends().run_health_check(true).await;
    assert!(up.pick().await.is_ok());
}

#[tokio::test]
async fn a_failed_resolution_keeps_the_last_answer() {
    let (_l, a) = listener().await;
    let up = Upstreams::with_resolver(
        &cfg("http://app.test:80"),
        scripted(vec![Ok(vec![a]), Err(not_found())], Duration::ZERO),
    );
    let lb = up.balancer();
    lb.update().await.unwrap();
    assert!(lb.update().await.is_err(), "the second lookup fails");
    assert_eq!(up.pick().await, Ok(a));
}

#[tokio::test]
async fn a_name_that_never_resolved_is_unresolved_once_the_first_lookup_failed() {
    let up = Upstreams::with_resolver(
        &cfg("http://no-such-host.invalid:80"),
        scripted(vec![Err(not_found())], Duration::ZERO),
    );
    // The round keeps retrying in the background; requests do not wait for it.
    let lb = up.balancer();
    let round = tokio::spawn(async move { lb.update().await });
    let started = std::time::Instant::now();
    assert_eq!(up.pick().await, Err(Failure::Unresolved));
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    round.abort();
}

#[tokio::test]
async fn a_request_before_the_first_answer_waits_for_it() {
    let (_l, a) = listener().await;
    let up = Upstreams::with_resolver(
        &cfg("http://app.test:80"),
        scripted(vec![Ok(vec![a])], Duration::from_millis(200)),
    );
    let lb = up.balancer();
    let round = tokio::spawn(async move { lb.update().await });
    assert_eq!(up.pick().await, Ok(a));
    round.await.unwrap().unwrap();
}

#[test]
fn peer_carries_the_configured_settings() {
    let mut c = cfg("https://app.test:8443");
    c.connect_timeout = Duration::from_secs(3);
    c.read_timeout = Duration::from_secs(7);
    c.tls_verify = false;
    c.ca_certs = tls::parse_ca_bundle(include_str!("testdata/ca.pem")).unwrap();
    let up = Upstreams::with_resolver(&c, scripted(vec![Err(not_found())], Duration::ZERO));
    let p = up.peer("127.0.0.1:8443".parse().unwrap());
    assert!(p.is_tls());
    assert_eq!(p.sni, "app.test");
    assert_eq!(p.options.connection_timeout, Some(Duration::from_secs(3)));
    assert_eq!(p.options.read_timeout, Some(Duration::from_secs(7)));
    assert_eq!(p.options.idle_timeout, Some(Duration::from_secs(60)));
    assert!(!p.options.verify_cert && !p.options.verify_hostname);
    assert_eq!(p.options.ca.as_ref().map(|c| c.len()), Some(1));
}
