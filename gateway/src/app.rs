//! The shared state of a running gateway, and the operations on it that both
//! the auth routes and the proxy use.

use crate::config::TenantType;
use crate::config::{Config, Portal};
use crate::entra::csp;
use crate::entra::discovery::DiscoveryDocument;
use crate::entra::jwks::JwksCache;
use crate::identity::AssertionSigner;
use crate::identity::signer::Signed;
use crate::metrics::METRICS;
use crate::session::cache::LocalCache;
use crate::session::{Revocation, Session, SessionId, SessionKey, Store, StoreError, now_unix};
use policy::TenantId;
use policy::tenants::TenantPolicy;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

/// Re-sign an assertion when less than this is left of its lifetime.
const RESIGN_MARGIN_SECS: i64 = 60;
const ASSERTION_CACHE_MAX: usize = 100_000;
const SESSION_CACHE_MAX: usize = 100_000;

pub struct App {
    pub config: Config,
    /// What request classification needs (see `policy::route`).
    pub routing: policy::route::Routing,
    pub store: Arc<dyn Store>,
    pub http: reqwest::Client,
    pub jwks: JwksCache,
    pub metadata: DiscoveryDocument,
    pub signer: AssertionSigner,
    /// None with `directory.kind: open` (no matching: the user is `<tid>:<oid>`).
    pub directory: Option<Arc<dyn crate::directory::Directory>>,
    /// The signature of each session's current assertion (the JWT itself
    /// is rebuilt from the session: see `AssertionSigner::render`).
    assertions: Mutex<HashMap<SessionKey, Signed>>,
    tenants: RwLock<Arc<TenantPolicy>>,
    /// Sessions read recently (Redis only): the fast path's source.
    pub cache: LocalCache,
    csp: Mutex<CspStatus>,
    pub login_limits: crate::auth::limits::LoginLimits,
}

/// What the CSP sync last achieved (for readiness and `tenants sync`).
#[derive(Debug, Clone, Default)]
pub struct CspStatus {
    pub tenants: Vec<TenantId>,
    pub last_ok: Option<i64>,
    pub last_error: Option<String>,
}

impl App {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        http: reqwest::Client,
        metadata: DiscoveryDocument,
        signer: AssertionSigner,
        directory: Option<Arc<dyn crate::directory::Directory>>,
    ) -> Self {
        App {
            routing: config.routing(),
            tenants: RwLock::new(Arc::new(config.entra.tenant_policy(config.client_tenants()))),
            csp: Mutex::new(CspStatus::default()),
            cache: LocalCache::new(
                if store.kind() == "redis" {
                    config.session.local_cache_ttl
                } else {
                    Duration::ZERO
                },
                SESSION_CACHE_MAX,
            ),
            login_limits: crate::auth::limits::LoginLimits::new(
                config.server.login_rate,
                config.server.max_pending_logins,
                crate::auth::login::LOGIN_TTL,
            ),
            // The home tenant's keys: vouched for and never evicted.
            jwks: JwksCache::new(
                http.clone(),
                [tenant_url(
                    config.entra.tenant_type,
                    &metadata.jwks_uri,
                    &config.entra.tenant_id,
                )],
            ),
            config,
            store,
            http,
            metadata,
            signer,
            directory,
            assertions: Mutex::new(HashMap::new()),
        }
    }

    pub fn portal(&self, i: usize) -> &Portal {
        &self.config.portals[i]
    }

    /// Who may sign in right now (static list, client tenants, CSP customers).
    pub fn tenant_policy(&self) -> Arc<TenantPolicy> {
        self.tenants.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn csp_status(&self) -> CspStatus {
        self.csp.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_csp_tenants(&self, tenants: Vec<TenantId>) {
        let c = &self.config;
        let policy = c.entra.tenant_policy(c.client_tenants().chain(tenants.iter().cloned()));
        *self.tenants.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
        METRICS.csp_tenants.set(tenants.len() as i64);
        self.csp.lock().unwrap_or_else(|p| p.into_inner()).tenants = tenants;
    }

    /// Runs the CSP sync once. Success replaces the shared list; failure
    /// keeps the last good one (never emptied, never "allow all").
    pub async fn csp_sync(&self) -> Result<csp::SyncResult, csp::CspError> {
        let result = csp::fetch(&self.http, &self.config).await;
        let now = now_unix();
        match &result {
            Ok(r) => {
                METRICS.csp_syncs.with_label_values(&["ok"]).inc();
                for s in &r.skipped {
                    tracing::warn!(event = "csp_sync_skipped", customer_id = %s, "not a tenant GUID");
                }
                tracing::info!(
                    event = "csp_sync",
                    result = "ok",
                    tenants = r.tenants.len(),
                    skipped = r.skipped.len()
                );
                let _ = self
                    .store_op(
                        "put_value",
                        self.store.put_value(csp::STORE_KEY, &csp::encode(&r.tenants)),
                    )
                    .await;
                self.set_csp_tenants(r.tenants.clone());
                let mut st = self.csp.lock().unwrap_or_else(|p| p.into_inner());
                st.last_ok = Some(now);
                st.last_error = None;
            }
            Err(e) => {
                METRICS.csp_syncs.with_label_values(&["error"]).inc();
                tracing::warn!(event = "csp_sync", result = "error", error = %e, "keeping the last good tenant list");
                self.csp.lock().unwrap_or_else(|p| p.into_inner()).last_error = Some(e.to_string());
            }
        }
        result
    }

    /// Picks up the list another instance synced.
    pub async fn csp_refresh_from_store(&self) {
        if let Ok(Some(v)) = self.store_op("get_value", self.store.get_value(csp::STORE_KEY)).await {
            let list = csp::decode(&v);
            if list != self.csp_status().tenants {
                self.set_csp_tenants(list);
            }
        }
    }

    /// A tenant-specific URL from the authority's: `/organizations/` (multi)
    /// becomes `/<tid>/`, as Entra's endpoints are uniform per tenant.
    pub fn for_tenant(&self, url: &str, tid: &TenantId) -> String {
        tenant_url(self.config.entra.tenant_type, url, tid)
    }

    /// Seconds a new session lives without use.
    pub fn session_ttl(&self, s: &Session, now: i64) -> Duration {
        Duration::from_secs(s.ttl_at(now).max(1) as u64)
    }

    pub async fn store_op<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        METRICS.store_ops.with_label_values(&[op]).inc();
        let r = fut.await;
        if let Err(e) = &r {
            METRICS.store_errors.with_label_values(&[op]).inc();
            tracing::warn!(event = "store_error", op, error = %e);
        }
        r
    }

    /// The live session behind a cookie value at this portal and client (a
    /// session is valid only where it was made: SPEC §5), if any, and the
    /// key it is known by from here on (hashed once per request).
    pub async fn session_for_cookie(
        &self,
        value: &str,
        portal: &Portal,
        client: Option<&str>,
    ) -> Result<Option<(SessionKey, Session)>, StoreError> {
        let Some(id) = SessionId::parse(value).map(|id| id.key()) else {
            METRICS
                .bad_requests
                .with_label_values(&["malformed_session_cookie"])
                .inc();
            return Ok(None);
        };
        let now = now_unix();
        let mut cached = self.cache.get(&id);
        if cached.as_ref().is_some_and(|s| !s.is_live(now)) {
            // A cached copy may carry an older `last_seen` than the store
            // (another instance touched it): only the store's copy decides.
            self.cache.remove(&id);
            cached = None;
        }
        let from_cache = cached.is_some();
        let mut s = match cached {
            Some(s) => s,
            None => match self.store_op("get_session", self.store.get_session(&id)).await? {
                Some(s) => s,
                None => return Ok(None),
            },
        };
        if !s.is_live(now) {
            // Expired by policy (idle or absolute timeout): ended everywhere
            // like any other end, so every index and cache lets go of it.
            let _ = self.end_sessions(std::slice::from_ref(&id), "expired").await;
            return Ok(None);
        }
        // A client's sessions carry its tenant pin: not valid at another
        // client's host or at the shared hosts, nor the other way round.
        if s.portal != portal.name || s.client.as_deref() != client {
            return Ok(None);
        }
        if policy::lifetime::needs_touch(s.last_seen, now) {
            s.last_seen = now;
            let ttl = self.session_ttl(&s, now);
            match self
                .store_op("touch_session", self.store.put_session(&id, &s, ttl))
                .await
            {
                Ok(()) => {}
                // Store down: a cached session keeps working until its entry
                // expires; the touch is retried on a later request.
                Err(_) if from_cache => return Ok(Some((id, s))),
                Err(e) => return Err(e),
            }
            self.cache.put(&id, &s);
        } else if !from_cache {
            self.cache.put(&id, &s);
        }
        Ok(Some((id, s)))
    }

    /// The assertion for a session, signed at most once per lifetime.
    pub fn assertion_for(&self, id: &SessionKey, s: &Session) -> Option<String> {
        let now = now_unix();
        let cached = {
            let cache = self.assertions.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(id).filter(|a| a.exp - now > RESIGN_MARGIN_SECS).copied()
        };
        let signed = match cached {
            Some(a) => a,
            None => {
                let a = match self.signer.sign(s, now) {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::error!(event = "assertion_sign_failed", error = %e);
                        return None;
                    }
                };
                let mut cache = self.assertions.lock().unwrap_or_else(|p| p.into_inner());
                if cache.len() >= ASSERTION_CACHE_MAX {
                    // Crude but bounded: everything is re-signable on demand.
                    cache.clear();
                }
                cache.insert(*id, a);
                a
            }
        };
        self.signer
            .render(s, &signed)
            .inspect_err(|e| tracing::error!(event = "assertion_sign_failed", error = %e))
            .ok()
    }

    /// The first request after an auto-create carries `new_user: true` once:
    /// signed uncached, then the flag is cleared in the store.
    pub async fn assertion_for_new_user(&self, id: &SessionKey, s: &mut Session) -> Option<String> {
        let jwt = self
            .signer
            .sign(s, now_unix())
            .and_then(|a| self.signer.render(s, &a))
            .ok();
        s.new_user = false;
        let ttl = self.session_ttl(s, now_unix());
        // If the write fails the flag may show once more; never worse.
        let _ = self.store_op("put_session", self.store.put_session(id, s, ttl)).await;
        jwt
    }

    /// Ends sessions everywhere: the store, this instance's caches, and (over
    /// the revocation bus) every other instance's. Returns how many ended.
    pub async fn end_sessions(&self, ids: &[SessionKey], kind: &'static str) -> Result<usize, StoreError> {
        let mut ended = 0;
        for id in ids {
            self.store_op("delete_session", self.store.delete_session(id)).await?;
            self.drop_cached(id);
            // Best effort: if the bus is down, the other caches' TTL bounds it.
            let _ = self
                .store_op("publish_revocation", self.store.publish_revocation(id))
                .await;
            METRICS.logouts.with_label_values(&[kind]).inc();
            ended += 1;
        }
        Ok(ended)
    }

    pub fn drop_cached(&self, id: &SessionKey) {
        self.cache.remove(id);
        self.forget_assertion(id);
    }

    /// Applies what other instances revoked (runs for the process lifetime).
    pub async fn follow_revocations(self: Arc<Self>) {
        let Some(mut rx) = self.store.revocations() else { return };
        while let Some(r) = rx.recv().await {
            match r {
                Revocation::Session(id) => self.drop_cached(&id),
                Revocation::Flush => {
                    self.cache.clear();
                    self.assertions.lock().unwrap_or_else(|p| p.into_inner()).clear();
                }
            }
        }
    }

    pub fn forget_assertion(&self, id: &SessionKey) {
        self.assertions.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// See [`App::for_tenant`].
fn tenant_url(tenant_type: TenantType, url: &str, tid: &TenantId) -> String {
    if tenant_type == TenantType::Single {
        return url.to_string();
    }
    match url::Url::parse(url) {
        Ok(mut u) => {
            let segs: Vec<String> = u
                .path_segments()
                .map(|s| s.map(str::to_string).collect())
                .unwrap_or_default();
            if segs.first().map(String::as_str) == Some("organizations") {
                let rest = segs[1..].join("/");
                u.set_path(&format!("/{tid}/{rest}"));
            }
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}
