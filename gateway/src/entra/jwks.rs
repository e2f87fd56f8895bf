//! Signing keys of the authority, cached per JWKS URL (one per tenant in a
//! multi-tenant app).
//!
//! With `sign_in_scope: all` anyone can start a sign-in and post a token
//! naming any tenant GUID, so what a stranger's callback may cost is bounded:
//! - a key set is cached only once a fetch succeeded, in a bounded map whose
//!   least recently used set goes first ([`MAX_KEY_SETS`]; the home tenant's
//!   set is never evicted);
//! - a failed fetch of a key set nobody vouched for (see [`Trust`]) is
//!   remembered for [`FORCED_REFETCH_INTERVAL`]: no new fetch in that window,
//!   the sign-in is refused with a 4xx (`tenant_keys_unavailable`); failures
//!   of vouched sets (the home tenant, listed tenants) are an outage, answered
//!   503 and retried at the next sign-in as before;
//! - an unknown `kid` triggers one refetch, at most one per key set per
//!   [`FORCED_REFETCH_INTERVAL`] (the first fetch and scheduled refreshes not
//!   counted), so forged kids cannot turn the gateway into a load generator;
//! - one fetch in flight per URL: concurrent misses share its outcome, and a
//!   slow tenant never holds up another's sign-in;
//! - the scheduled refresh keeps only sets used within [`KEEP_UNUSED_FOR`];
//!   older ones are dropped (the next use fetches again) rather than kept
//!   alive on keys Entra may have withdrawn since.

use crate::metrics::METRICS;
use async_trait::async_trait;
use jsonwebtoken::DecodingKey;
use policy::Reason;
use serde::Deserialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

pub const FORCED_REFETCH_INTERVAL: Duration = Duration::from_secs(300);
/// Tenants whose key sets are held at once.
pub const MAX_KEY_SETS: usize = 1_000;
/// URLs whose recent failure is remembered at once; past that the oldest is
/// forgotten (and may be fetched again: still at most one fetch per callback).
const MAX_FAILURES: usize = 10_000;
/// A key set not used for this long is not refreshed, but dropped.
pub const KEEP_UNUSED_FOR: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    issuer: Option<String>,
}

/// One usable verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub key: Arc<DecodingKey>,
    /// Entra's per-key `issuer` property, when published.
    pub issuer: Option<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    #[error("cannot fetch JWKS: {0}")]
    Fetch(String),
    #[error("JWKS answered HTTP {0}")]
    Status(u16),
    #[error("JWKS is malformed: {0}")]
    Malformed(String),
}

/// Whether the tenant behind a key set is one the configuration names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The home tenant, or one listed (allowed tenants, client tenants, CSP
    /// customers): its keys being unobtainable is an outage (503), and every
    /// sign-in may try again.
    Vouched,
    /// Merely allowed by `sign_in_scope: all`, i.e. named by whoever posted
    /// the token: a failure is cached and refused with a 4xx.
    Stranger,
}

/// Where key sets come from (HTTP in production; a fake in unit tests).
#[async_trait]
pub trait Fetch: Send + Sync {
    async fn fetch(&self, uri: &str) -> Result<Vec<Key>, JwksError>;
}

struct HttpFetch(reqwest::Client);

#[async_trait]
impl Fetch for HttpFetch {
    async fn fetch(&self, uri: &str) -> Result<Vec<Key>, JwksError> {
        let resp = self
            .0
            .get(uri)
            .send()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(JwksError::Status(resp.status().as_u16()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
        parse(&body)
    }
}

/// Keeps RSA signing keys; other key types and algorithms are ignored
/// (Entra's JWKs usually carry no `alg`; absent means RS256).
fn parse(body: &[u8]) -> Result<Vec<Key>, JwksError> {
    let raw: RawJwks = serde_json::from_slice(body).map_err(|e| JwksError::Malformed(e.to_string()))?;
    Ok(raw
        .keys
        .into_iter()
        .filter(|k| k.kty.as_deref() == Some("RSA"))
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == "RS256"))
        .filter_map(|k| {
            let key = DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
            Some(Key {
                kid: k.kid,
                key: Arc::new(key),
                issuer: k.issuer,
            })
        })
        .collect())
}

/// The time windows, shortened by unit tests.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_key_sets: usize,
    pub max_failures: usize,
    /// Both the unknown-kid refetch limit and how long a failure is remembered.
    pub refetch_interval: Duration,
    pub keep_unused_for: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_sets: MAX_KEY_SETS,
            max_failures: MAX_FAILURES,
            refetch_interval: FORCED_REFETCH_INTERVAL,
            keep_unused_for: KEEP_UNUSED_FOR,
        }
    }
}

struct Entry {
    keys: Arc<[Key]>,
    last_used: Instant,
    /// The last refetch an unknown kid caused.
    last_forced: Option<Instant>,
}

#[derive(Default)]
struct Tables {
    sets: HashMap<String, Entry>,
    /// Strangers' URLs whose fetch failed, and when.
    failed: HashMap<String, Instant>,
    /// The same, oldest first (failures are recorded in time order).
    failed_order: VecDeque<(String, Instant)>,
}

type Outcome = Result<Arc<[Key]>, JwksError>;

pub struct JwksCache {
    fetcher: Box<dyn Fetch>,
    limits: Limits,
    /// Key sets that are always vouched for and never evicted (the home
    /// tenant's). Written once more when discovery arrives after start.
    pinned: std::sync::RwLock<HashSet<String>>,
    tables: Mutex<Tables>,
    /// The fetch in flight per URL. Lock order: `tables`, then `flights`
    /// (a look and the flight it joins are decided under both).
    flights: Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
}

struct Landing<'a> {
    flights: &'a Mutex<HashMap<String, Arc<OnceCell<Outcome>>>>,
    uri: &'a str,
    cell: &'a Arc<OnceCell<Outcome>>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut f = lock(self.flights);
        if f.get(self.uri).is_some_and(|c| Arc::ptr_eq(c, self.cell)) {
            f.remove(self.uri);
        }
    }
}

enum Found {
    Key(Key),
    Ambiguous,
    Missing,
}

fn find(keys: &[Key], kid: Option<&str>) -> Found {
    match kid {
        Some(kid) => match keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
            Some(k) => Found::Key(k.clone()),
            None => Found::Missing,
        },
        // No kid: acceptable only when there is no doubt which key it means.
        None => match keys {
            [only] => Found::Key(only.clone()),
            _ => Found::Ambiguous,
        },
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every update below is a single insert/remove: poison leaves nothing half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the first look decided.
#[derive(Clone, Copy)]
enum Plan {
    /// Fetch (or join the fetch in flight), then look again.
    Fetch,
    /// Join a fetch only if one is in flight; never start one.
    JoinOnly,
}

impl JwksCache {
    /// `pinned`: key sets vouched for whatever the token says (the home tenant's).
    pub fn new(http: reqwest::Client, pinned: impl IntoIterator<Item = String>) -> Self {
        Self::with_fetcher(Box::new(HttpFetch(http)), pinned, Limits::default())
    }

    pub fn with_fetcher(fetcher: Box<dyn Fetch>, pinned: impl IntoIterator<Item = String>, limits: Limits) -> Self {
        JwksCache {
            fetcher,
            limits,
            pinned: std::sync::RwLock::new(pinned.into_iter().collect()),
            tables: Mutex::new(Tables::default()),
            flights: Mutex::new(HashMap::new()),
        }
    }

    pub fn is_pinned(&self, uri: &str) -> bool {
        self.pinned.read().unwrap_or_else(|p| p.into_inner()).contains(uri)
    }

    /// Vouches for a key set from now on (the home tenant's, once discovery
    /// has named it: a gateway may start before Entra answers).
    pub fn pin(&self, uri: String) {
        self.pinned.write().unwrap_or_else(|p| p.into_inner()).insert(uri);
    }

    /// Key sets used recently enough to be worth refreshing (for the
    /// scheduled refresh); the others are dropped here.
    pub fn refresh_due(&self) -> Vec<String> {
        let keep = self.limits.keep_unused_for;
        let mut t = lock(&self.tables);
        let pinned = self.pinned.read().unwrap_or_else(|p| p.into_inner());
        t.sets
            .retain(|uri, e| pinned.contains(uri) || e.last_used.elapsed() < keep);
        drop(pinned);
        METRICS.jwks_key_sets.set(t.sets.len() as i64);
        t.sets.keys().cloned().collect()
    }

    /// (Re)loads a key set now: the first fetch of the home tenant's and the
    /// scheduled refreshes. A failure keeps the keys held.
    pub async fn refresh(&self, uri: &str) -> Result<usize, JwksError> {
        let flight = self.flight_cell(uri, true).unwrap_or_default();
        self.fly(uri, &flight, Trust::Vouched).await.map(|k| k.len())
    }

    /// The key for `kid` at `uri`, fetching the set when not held, and
    /// refetching once (rate-limited) when the kid is unknown.
    pub async fn key(&self, uri: &str, kid: Option<&str>, trust: Trust) -> Result<Key, Reason> {
        let trust = if self.is_pinned(uri) { Trust::Vouched } else { trust };
        let unavailable = match trust {
            Trust::Vouched => Reason::MetadataUnavailable,
            Trust::Stranger => Reason::TenantKeysUnavailable,
        };
        let interval = self.limits.refetch_interval;
        let (plan, flight) = {
            let mut t = lock(&self.tables);
            let plan = match t.sets.get_mut(uri) {
                Some(e) => {
                    e.last_used = Instant::now();
                    match find(&e.keys, kid) {
                        Found::Key(k) => return Ok(k),
                        Found::Ambiguous => return Err(Reason::AmbiguousKey),
                        Found::Missing if e.last_forced.is_some_and(|at| at.elapsed() < interval) => Plan::JoinOnly,
                        Found::Missing => {
                            e.last_forced = Some(Instant::now());
                            Plan::Fetch
                        }
                    }
                }
                None => {
                    if trust == Trust::Stranger && t.failed.get(uri).is_some_and(|at| at.elapsed() < interval) {
                        METRICS.jwks_skipped.with_label_values(&["recently_failed"]).inc();
                        return Err(unavailable);
                    }
                    Plan::Fetch
                }
            };
            // Decided and joined under the tables lock: a fetch that ends in
            // between cannot be missed, nor be started twice.
            (plan, self.flight_cell(uri, matches!(plan, Plan::Fetch)))
        };
        let Some(flight) = flight else {
            METRICS.jwks_skipped.with_label_values(&["refetch_limited"]).inc();
            return Err(Reason::UnknownKid);
        };
        let outcome = self.fly(uri, &flight, trust).await;
        // Whatever the fetch brought is in the tables now; look there, so a
        // flight started by a refresh or another kid serves this one too.
        let mut t = lock(&self.tables);
        match t.sets.get_mut(uri) {
            Some(e) => match find(&e.keys, kid) {
                Found::Key(k) => Ok(k),
                Found::Ambiguous => Err(Reason::AmbiguousKey),
                Found::Missing if outcome.is_err() && matches!(plan, Plan::Fetch) => Err(unavailable),
                Found::Missing => Err(Reason::UnknownKid),
            },
            None => Err(match outcome {
                // Fetched, then evicted at once by a flood of other tenants.
                Ok(keys) => match find(&keys, kid) {
                    Found::Key(k) => return Ok(k),
                    Found::Ambiguous => Reason::AmbiguousKey,
                    Found::Missing => Reason::UnknownKid,
                },
                Err(_) => unavailable,
            }),
        }
    }

    /// The flight in progress for `uri`, or (when `start`) a new one.
    fn flight_cell(&self, uri: &str, start: bool) -> Option<Arc<OnceCell<Outcome>>> {
        let mut f = lock(&self.flights);
        match f.get(uri) {
            Some(cell) => Some(cell.clone()),
            None if start => Some(f.entry(uri.to_string()).or_default().clone()),
            None => None,
        }
    }

    /// Runs the flight (or waits for whoever runs it) and returns its outcome.
    async fn fly(&self, uri: &str, cell: &Arc<OnceCell<Outcome>>, trust: Trust) -> Outcome {
        cell.get_or_init(|| async {
            // Done or abandoned (the request running it was dropped), the
            // flight leaves the map: it never outlives its fetch.
            let _landing = Landing {
                flights: &self.flights,
                uri,
                cell,
            };
            let result = self.fetcher.fetch(uri).await.map(Arc::<[Key]>::from);
            METRICS
                .jwks_refreshes
                .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
                .inc();
            if let Err(e) = &result {
                match trust {
                    Trust::Vouched => tracing::warn!(event = "jwks_fetch_failed", uri, error = %e),
                    // Anyone can name a tenant: the refused sign-in's own
                    // line is enough, a second one per attempt is noise.
                    Trust::Stranger => tracing::debug!(event = "jwks_fetch_failed", uri, error = %e),
                }
            }
            // Before the landing: whoever finds no flight finds its result.
            self.settle(uri, &result, trust);
            result
        })
        .await
        .clone()
    }

    fn settle(&self, uri: &str, result: &Outcome, trust: Trust) {
        let now = Instant::now();
        let mut t = lock(&self.tables);
        match result {
            Ok(keys) => {
                t.failed.remove(uri);
                if let Some(e) = t.sets.get_mut(uri) {
                    e.keys = keys.clone();
                } else {
                    if t.sets.len() >= self.limits.max_key_sets {
                        let pinned = self.pinned.read().unwrap_or_else(|p| p.into_inner());
                        let victim = t
                            .sets
                            .iter()
                            .filter(|(u, _)| !pinned.contains(*u))
                            .min_by_key(|(_, e)| e.last_used)
                            .map(|(u, _)| u.clone());
                        if let Some(v) = victim {
                            t.sets.remove(&v);
                        }
                    }
                    t.sets.insert(
                        uri.to_string(),
                        Entry {
                            keys: keys.clone(),
                            last_used: now,
                            last_forced: None,
                        },
                    );
                }
            }
            // A set already held keeps its keys; only a stranger's first
            // fetch is remembered as failed.
            Err(_) if trust == Trust::Stranger && !t.sets.contains_key(uri) && !self.is_pinned(uri) => {
                t.failed.insert(uri.to_string(), now);
                t.failed_order.push_back((uri.to_string(), now));
                let (interval, max) = (self.limits.refetch_interval, self.limits.max_failures);
                while let Some((u, at)) = t.failed_order.front().cloned() {
                    if t.failed_order.len() <= max && at.elapsed() < interval {
                        break;
                    }
                    t.failed_order.pop_front();
                    // Only if not recorded again since.
                    if t.failed.get(&u) == Some(&at) {
                        t.failed.remove(&u);
                    }
                }
            }
            Err(_) => {}
        }
        METRICS.jwks_key_sets.set(t.sets.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn ignores_keys_that_cannot_verify_rs256() {
        let body = br#"{"keys":[
            {"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"ec"},
            {"kty":"RSA","use":"enc","n":"sXch","e":"AQAB","kid":"enc"},
            {"kty":"RSA","alg":"RS512","n":"sXch","e":"AQAB","kid":"rs512"},
            {"kty":"RSA","n":"sXch","e":"AQAB","kid":"good","issuer":"https://x/t/v2.0"}
        ]}"#;
        let keys = parse(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("good"));
        assert_eq!(keys[0].issuer.as_deref(), Some("https://x/t/v2.0"));
        assert!(parse(b"{}").is_err());
    }

    fn key(kid: &str) -> Key {
        Key {
            kid: Some(kid.into()),
            key: Arc::new(DecodingKey::from_rsa_components("sXch", "AQAB").unwrap()),
            issuer: None,
        }
    }

    /// Serves `good/*` URLs with the kids in `kids`, fails everything else;
    /// counts fetches per URL; each fetch takes `delay`.
    #[derive(Clone, Default)]
    struct Fake {
        kids: Arc<Mutex<Vec<String>>>,
        fetches: Arc<Mutex<HashMap<String, usize>>>,
        total: Arc<AtomicUsize>,
        delay: Duration,
    }

    impl Fake {
        fn count(&self, uri: &str) -> usize {
            lock(&self.fetches).get(uri).copied().unwrap_or(0)
        }
    }

    #[async_trait]
    impl Fetch for Fake {
        async fn fetch(&self, uri: &str) -> Result<Vec<Key>, JwksError> {
            *lock(&self.fetches).entry(uri.to_string()).or_default() += 1;
            self.total.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(self.delay).await;
            if uri.starts_with("good/") {
                Ok(lock(&self.kids).iter().map(|k| key(k)).collect())
            } else if uri.starts_with("slow/") {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Ok(vec![key("k1")])
            } else {
                Err(JwksError::Status(400))
            }
        }
    }

    fn cache(fake: &Fake, limits: Limits) -> Arc<JwksCache> {
        *lock(&fake.kids) = vec!["k1".into()];
        Arc::new(JwksCache::with_fetcher(
            Box::new(fake.clone()),
            ["good/home".to_string()],
            limits,
        ))
    }

    fn short() -> Limits {
        Limits {
            max_key_sets: 3,
            max_failures: 100,
            // Long enough that "still within the window" holds on a loaded
            // machine; the tests sleep past it where it must have passed.
            refetch_interval: Duration::from_millis(1000),
            keep_unused_for: Duration::from_millis(1000),
        }
    }

    #[tokio::test]
    async fn a_strangers_failure_is_remembered_and_refused_with_a_4xx() {
        let fake = Fake::default();
        let c = cache(&fake, short());
        for _ in 0..5 {
            let r = c.key("bad/t1", Some("k1"), Trust::Stranger).await;
            assert_eq!(r.err(), Some(Reason::TenantKeysUnavailable));
            assert!((400..500).contains(&Reason::TenantKeysUnavailable.status()));
        }
        assert_eq!(fake.count("bad/t1"), 1, "one fetch within the window");
        assert!(lock(&c.tables).sets.is_empty(), "nothing cached for a failure");
        tokio::time::sleep(Duration::from_millis(1050)).await;
        let _ = c.key("bad/t1", Some("k1"), Trust::Stranger).await;
        assert_eq!(fake.count("bad/t1"), 2, "tried again after the window");
    }

    #[tokio::test]
    async fn a_vouched_failure_is_an_outage_and_is_retried() {
        let fake = Fake::default();
        let c = cache(&fake, short());
        for _ in 0..3 {
            let r = c.key("bad/listed", Some("k1"), Trust::Vouched).await;
            assert_eq!(r.err(), Some(Reason::MetadataUnavailable));
        }
        assert_eq!(fake.count("bad/listed"), 3, "no negative caching for vouched sets");
        // The home tenant's set is vouched whatever the caller says.
        assert!(c.is_pinned("good/home"));
        assert!(c.key("good/home", Some("k1"), Trust::Stranger).await.is_ok());
    }

    #[tokio::test]
    async fn the_cache_is_bounded_and_evicts_the_least_recently_used() {
        let fake = Fake::default();
        let c = cache(&fake, short());
        c.refresh("good/home").await.unwrap();
        for t in ["good/a", "good/b"] {
            c.key(t, Some("k1"), Trust::Stranger).await.unwrap();
        }
        c.key("good/a", Some("k1"), Trust::Stranger).await.unwrap(); // a is now fresher than b
        c.key("good/c", Some("k1"), Trust::Stranger).await.unwrap();
        {
            let t = lock(&c.tables);
            assert_eq!(t.sets.len(), 3, "bounded");
            assert!(t.sets.contains_key("good/home"), "pinned sets are never evicted");
            assert!(t.sets.contains_key("good/a") && t.sets.contains_key("good/c"));
            assert!(!t.sets.contains_key("good/b"), "least recently used went first");
        }
        for i in 0..50 {
            c.key(&format!("good/x{i}"), Some("k1"), Trust::Stranger).await.unwrap();
        }
        assert_eq!(lock(&c.tables).sets.len(), 3);
        assert_eq!(fake.count("good/a"), 1);
    }

    #[tokio::test]
    async fn failures_remembered_are_bounded_too() {
        let fake = Fake::default();
        let c = cache(
            &fake,
            Limits {
                max_failures: 10,
                ..short()
            },
        );
        for i in 0..100 {
            let _ = c.key(&format!("bad/{i}"), Some("k1"), Trust::Stranger).await;
        }
        let t = lock(&c.tables);
        assert!(t.failed.len() <= 10 && t.failed_order.len() <= 10, "{}", t.failed.len());
        assert!(t.failed.contains_key("bad/99"), "the newest are kept");
    }

    #[tokio::test]
    async fn concurrent_misses_share_one_fetch_and_a_slow_tenant_blocks_nobody() {
        let fake = Fake {
            delay: Duration::from_millis(100),
            ..Fake::default()
        };
        let c = cache(&fake, short());
        let slow = tokio::spawn({
            let c = c.clone();
            async move { c.key("slow/t", Some("k1"), Trust::Stranger).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = Instant::now();
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let c = c.clone();
                let uri = if i % 2 == 0 { "good/a" } else { "bad/b" };
                tokio::spawn(async move { c.key(uri, Some("k1"), Trust::Stranger).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let r = t.await.unwrap();
            assert_eq!(r.is_ok(), i % 2 == 0);
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "not held up by the slow tenant: {:?}",
            started.elapsed()
        );
        assert_eq!(fake.count("good/a"), 1, "one fetch for ten concurrent misses");
        assert_eq!(fake.count("bad/b"), 1, "failures are shared too");
        assert!(slow.await.unwrap());
        assert!(lock(&c.flights).is_empty(), "finished flights are gone");
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_at_most_once_per_interval() {
        let fake = Fake::default();
        let c = cache(&fake, short());
        c.key("good/a", Some("k1"), Trust::Stranger).await.unwrap();
        assert_eq!(
            c.key("good/a", Some("forged1"), Trust::Stranger).await.err(),
            Some(Reason::UnknownKid)
        );
        assert_eq!(fake.count("good/a"), 2, "one forced refetch");
        for i in 0..10 {
            let r = c.key("good/a", Some(&format!("forged{i}")), Trust::Stranger).await;
            assert_eq!(r.err(), Some(Reason::UnknownKid));
        }
        assert_eq!(fake.count("good/a"), 2, "rate-limited");
        // Scheduled refreshes are not counted and pick up rotations.
        lock(&fake.kids).push("k2".into());
        assert_eq!(c.refresh("good/a").await.unwrap(), 2);
        assert!(c.key("good/a", Some("k2"), Trust::Stranger).await.is_ok());
        assert_eq!(fake.count("good/a"), 3);
        // After the window, a rotation is found by the forced refetch.
        lock(&fake.kids).push("k3".into());
        tokio::time::sleep(Duration::from_millis(1050)).await;
        assert!(c.key("good/a", Some("k3"), Trust::Stranger).await.is_ok());
        assert_eq!(fake.count("good/a"), 4);
    }

    #[tokio::test]
    async fn no_kid_needs_exactly_one_key() {
        let fake = Fake::default();
        let c = cache(&fake, short());
        assert!(c.key("good/a", None, Trust::Stranger).await.is_ok());
        lock(&fake.kids).push("k2".into());
        c.refresh("good/a").await.unwrap();
        assert_eq!(
            c.key("good/a", None, Trust::Stranger).await.err(),
            Some(Reason::AmbiguousKey)
        );
    }

    #[tokio::test]
    async fn only_recently_used_sets_are_refreshed() {
        let fake = Fake::default();
        let c = cache(&fake, short());
        c.refresh("good/home").await.unwrap();
        c.key("good/old", Some("k1"), Trust::Stranger).await.unwrap();
        tokio::time::sleep(Duration::from_millis(850)).await;
        c.key("good/new", Some("k1"), Trust::Stranger).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut due = c.refresh_due();
        due.sort();
        assert_eq!(due, ["good/home", "good/new"], "old unused, dropped; home pinned");
        assert!(!lock(&c.tables).sets.contains_key("good/old"));
    }
}
