//! [`MockEntra`]: starts the endpoints, and the controls and counters tests use.

use crate::config::{FaultKind, MockEndpoint, MockEntraConfig, MockFault, MockUser};
use crate::keys::{SigningKey, TokenSpec};
use crate::logout::LogoutCall;
use crate::state::Inner;
use crate::util::random_sid;
use crate::{authorize, discovery, graph, keys, logout, token};
use axum::Router;
use axum::routing::{get, post};
use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct MockEntra {
    inner: Arc<Inner>,
}

impl MockEntra {
    /// Binds `addr` (port 0 for any) and serves on the current runtime.
    pub async fn start(config: MockEntraConfig, addr: SocketAddr) -> std::io::Result<MockEntra> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base = format!("http://{local}");
        let issuer_host = config.issuer_host.clone().unwrap_or_else(|| base.clone());
        let mut keys = HashMap::new();
        for t in &config.tenants {
            keys.insert(
                t.clone(),
                vec![SigningKey::generate(&format!("{issuer_host}/{t}/v2.0"))],
            );
        }
        let inner = Arc::new(Inner {
            base,
            issuer_host,
            contracts: Mutex::new(config.contracts.clone()),
            graph_failure: Mutex::new(None),
            faults: Mutex::new(config.faults.clone()),
            app_tokens: Mutex::new(HashMap::new()),
            directory: Mutex::new(
                config
                    .users
                    .iter()
                    .map(|u| graph::DirectoryUser {
                        user: u.clone(),
                        enabled: true,
                    })
                    .collect(),
            ),
            throttle: Mutex::new((0, 0)),
            users_calls: Mutex::new(Vec::new()),
            graph_calls: Mutex::new(0),
            used_jtis: Mutex::new(Default::default()),
            config,
            keys: Mutex::new(keys),
            codes: Mutex::new(HashMap::new()),
            jwks_fetches: Mutex::new(HashMap::new()),
            logouts: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route(
                "/{tenant}/v2.0/.well-known/openid-configuration",
                get(discovery::discovery),
            )
            .route("/{tenant}/discovery/v2.0/keys", get(keys::jwks))
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(authorize::authorize_get).post(authorize::authorize_post),
            )
            .route("/{tenant}/oauth2/v2.0/token", post(token::token))
            .route("/{tenant}/oauth2/v2.0/logout", get(logout::logout))
            .route("/v1.0/contracts", get(graph::contracts))
            .route("/v1.0/users", get(graph::users))
            .layer(axum::middleware::from_fn_with_state(inner.clone(), faults))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Ok(MockEntra { inner })
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base
    }

    pub fn issuer(&self, tenant: &str) -> String {
        self.inner.issuer(tenant)
    }

    /// Replaces the `issuer` property of a tenant's published keys.
    pub fn set_key_issuer(&self, tenant: &str, issuer: &str) {
        if let Some(keys) = self.inner.keys.lock().expect("lock").get_mut(tenant) {
            for k in keys {
                k.jwk["issuer"] = json!(issuer);
            }
        }
    }

    pub fn set_contracts(&self, customer_ids: Vec<String>) {
        *self.inner.contracts.lock().expect("lock") = customer_ids;
    }

    /// Replaces the endpoints' faults (empty: normal service).
    pub fn set_faults(&self, faults: Vec<MockFault>) {
        *self.inner.faults.lock().expect("lock") = faults;
    }

    /// Makes Graph answer this status (None: normal service).
    pub fn fail_graph(&self, status: Option<u16>) {
        *self.inner.graph_failure.lock().expect("lock") = status;
    }

    pub fn graph_calls(&self) -> usize {
        *self.inner.graph_calls.lock().expect("lock")
    }

    /// Renames a user in Graph's view (`displayName`).
    pub fn graph_rename(&self, username: &str, name: &str) {
        self.graph_edit(username, |u| u.user.name = name.to_string());
    }

    /// Sets `accountEnabled` in Graph's view. A disabled account's sign-in is
    /// refused at the sign-in page (AADSTS50057), as Entra does.
    pub fn graph_set_enabled(&self, username: &str, enabled: bool) {
        self.graph_edit(username, |u| u.enabled = enabled);
    }

    /// Deletes a user from the tenant: Graph no longer lists it, and its
    /// sign-in is refused (AADSTS50034).
    pub fn graph_remove(&self, username: &str) {
        self.inner.directory.lock().expect("lock").retain(|u| !u.is(username));
    }

    /// Restores a deleted configured user (Entra's "deleted users" restore),
    /// enabled.
    pub fn graph_restore(&self, username: &str) {
        let user = self
            .inner
            .find_user(username)
            .expect("graph_restore: not a configured user");
        let mut d = self.inner.directory.lock().expect("lock");
        if !d.iter().any(|u| u.is(username)) {
            d.push(graph::DirectoryUser { user, enabled: true });
        }
    }

    /// Adds a user to Graph's view only (not to the sign-in page).
    pub fn graph_add(&self, user: MockUser) {
        self.inner
            .directory
            .lock()
            .expect("lock")
            .push(graph::DirectoryUser { user, enabled: true });
    }

    fn graph_edit(&self, username: &str, f: impl FnOnce(&mut graph::DirectoryUser)) {
        let mut d = self.inner.directory.lock().expect("lock");
        let u = d.iter_mut().find(|u| u.is(username)).expect("graph_edit: unknown user");
        f(u);
    }

    /// The next `calls` Graph `/v1.0/users` calls answer 429 with
    /// `Retry-After: retry_after_secs`.
    pub fn throttle_users(&self, calls: usize, retry_after_secs: u64) {
        *self.inner.throttle.lock().expect("lock") = (calls, retry_after_secs);
    }

    /// Every Graph `/v1.0/users` call so far: (tenant of the token, or "" when
    /// refused, unix time in milliseconds).
    pub fn users_calls(&self) -> Vec<(String, u128)> {
        self.inner.users_calls.lock().expect("lock").clone()
    }

    /// Publishes a new active key; the old ones stay in the JWKS (as Entra
    /// does during a rollover) until [`retire_old_keys`](Self::retire_old_keys).
    pub fn rotate_keys(&self, tenant: &str) {
        let k = SigningKey::generate(&self.issuer(tenant));
        self.inner
            .keys
            .lock()
            .expect("lock")
            .entry(tenant.to_string())
            .or_default()
            .insert(0, k);
    }

    pub fn retire_old_keys(&self, tenant: &str) {
        if let Some(v) = self.inner.keys.lock().expect("lock").get_mut(tenant) {
            v.truncate(1);
        }
    }

    pub fn active_kid(&self, tenant: &str) -> Option<String> {
        self.inner
            .keys
            .lock()
            .expect("lock")
            .get(tenant)
            .and_then(|v| v.first())
            .map(|k| k.kid.clone())
    }

    pub fn jwks_fetch_count(&self, tenant: &str) -> usize {
        self.inner
            .jwks_fetches
            .lock()
            .expect("lock")
            .get(tenant)
            .copied()
            .unwrap_or(0)
    }

    pub fn logout_calls(&self) -> Vec<LogoutCall> {
        self.inner.logouts.lock().expect("lock").clone()
    }

    pub fn user(&self, username: &str) -> Option<MockUser> {
        self.inner.find_user(username)
    }

    /// Mints an ID token as Entra would, then applies the spec's overrides.
    pub fn mint(&self, spec: &TokenSpec) -> String {
        let user = self.inner.find_user(&spec.user).expect("mint: unknown user");
        let sid = random_sid();
        self.inner.mint(
            &user,
            &spec.client_id,
            spec.nonce.as_deref(),
            &sid,
            None,
            &spec.claims,
            &spec.signing,
        )
    }
}

/// Applies the fault configured for the endpoint a request is for.
async fn faults(
    axum::extract::State(inner): axum::extract::State<Arc<Inner>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let endpoint = MockEndpoint::of_path(req.uri().path());
    let fault = endpoint.and_then(|e| {
        inner
            .faults
            .lock()
            .expect("lock")
            .iter()
            .find(|f| f.endpoint == e)
            .map(|f| f.kind)
    });
    match fault {
        None => next.run(req).await,
        Some(FaultKind::Status(code)) => {
            let status =
                axum::http::StatusCode::from_u16(code).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
            (status, axum::Json(json!({"error": "temporarily_unavailable"}))).into_response()
        }
        Some(FaultKind::Hang) => {
            let never: std::convert::Infallible = std::future::pending().await;
            match never {}
        }
        Some(FaultKind::Delay(d)) => {
            tokio::time::sleep(d).await;
            next.run(req).await
        }
    }
}
