//! The shared state of a running gateway: the configuration and the parts
//! that own the rest ([`Sessions`], [`Assertions`], [`Tenants`], the login
//! states, the directory). What a request needs of two parts at once is here.

use crate::config::{Config, Portal};
use crate::entra::discovery::DiscoveryDocument;
use crate::entra::tenants::Tenants;
use crate::identity::{AssertionSigner, Assertions};
use crate::session::{LoginStates, MeteredStore, Session, SessionKey, Sessions, Store};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use crate::entra::tenants::CspStatus;

pub struct App {
    pub config: Config,
    /// What request classification needs (see `policy::route`).
    pub routing: policy::route::Routing,
    /// The backend as configured (metered): health and the kind it is.
    pub store: Arc<dyn Store>,
    pub sessions: Arc<Sessions>,
    pub logins: Arc<dyn LoginStates>,
    pub assertions: Arc<Assertions>,
    pub tenants: Tenants,
    pub http: reqwest::Client,
    /// None with `directory.kind: open` (no matching: the user is `<tid>:<oid>`).
    pub directory: Option<Arc<dyn crate::directory::Directory>>,
    pub login_limits: Arc<crate::auth::limits::LoginLimits>,
    /// Draining and in-flight requests: one per process, whatever reloads.
    pub lifecycle: Arc<crate::lifecycle::Lifecycle>,
    /// `directory.sync`: what this instance's last run achieved (readiness).
    pub directory_sync: Arc<crate::directory::sync::SyncState>,
    /// Second-factor enrolments and attempts (shared through the store).
    pub factors: crate::two_factor::Factors,
    /// Per portal, its session and local-account cookie names, without and
    /// with `Secure` (`__Host-`): looked up on every request, built once.
    cookie_names: Vec<[(String, String); 2]>,
    /// `requests_total` per (portal, outcome), resolved once.
    pub request_counters: crate::metrics::RequestCounters,
}

impl App {
    /// `store` is the raw backend: every call through the app is metered.
    /// `metadata` is empty until discovery succeeds (see [`Tenants::set_metadata`]).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        http: reqwest::Client,
        metadata: Arc<OnceLock<DiscoveryDocument>>,
        signer: AssertionSigner,
        directory: Option<Arc<dyn crate::directory::Directory>>,
    ) -> Self {
        let store = MeteredStore::wrap(store);
        // A memory store is read in place: a second copy would only be stale.
        let local_cache_ttl = if store.kind() == "redis" {
            config.session.local_cache_ttl
        } else {
            Duration::ZERO
        };
        let sessions = Arc::new(Sessions::new(store.clone(), local_cache_ttl));
        // Signatures are kept in the session cache's entries.
        let assertions = Arc::new(Assertions::new(signer, sessions.cache().clone()));
        App {
            request_counters: crate::metrics::RequestCounters::new(config.portals.iter().map(|p| p.name.as_str())),
            cookie_names: cookie_names(&config),
            routing: config.routing(),
            sessions,
            logins: store.clone(),
            tenants: Tenants::new(&config, metadata, http.clone(), store.clone()),
            login_limits: Arc::new(crate::auth::limits::LoginLimits::new(
                config.server.login_rate,
                config.server.max_pending_logins,
                crate::auth::login::LOGIN_TTL,
            )),
            lifecycle: Arc::new(crate::lifecycle::Lifecycle::default()),
            factors: crate::two_factor::Factors::new(&config.two_factor, store.clone()),
            assertions,
            config,
            store,
            http,
            directory,
            directory_sync: Default::default(),
        }
    }

    /// The app of a reloaded configuration: what comes from configuration
    /// (portals, clients, tenants, SSO switches, routes, branding, the
    /// directory) is new; the store, sessions and their cache, signing keys,
    /// login states and limits, discovery and keys are this app's, so no
    /// session or pending sign-in is lost. `config` must keep the settings
    /// that need a restart (see `reload::restart_only`).
    pub fn reconfigured(&self, config: Config, directory: Option<Arc<dyn crate::directory::Directory>>) -> App {
        App {
            request_counters: crate::metrics::RequestCounters::new(config.portals.iter().map(|p| p.name.as_str())),
            cookie_names: cookie_names(&config),
            routing: config.routing(),
            sessions: self.sessions.clone(),
            logins: self.logins.clone(),
            tenants: self.tenants.reconfigured(&config),
            login_limits: self.login_limits.clone(),
            lifecycle: self.lifecycle.clone(),
            directory_sync: self.directory_sync.clone(),
            // Its settings may have changed; enrolments live in the store,
            // and the per-address attempts carry over.
            factors: self.factors.reconfigured(&config.two_factor),
            assertions: self.assertions.clone(),
            store: self.store.clone(),
            http: self.http.clone(),
            directory,
            config,
        }
    }

    /// An app for in-process tests: the configuration `yaml`, a memory
    /// store, a fresh signing key, and a discovery document naming the
    /// public cloud's endpoints of the configured tenant (nothing is fetched).
    #[cfg(test)]
    pub fn for_tests(yaml: &str) -> App {
        let app = Self::for_tests_pending(yaml);
        let config = &app.config;
        let authority = config.entra.authority();
        let url = |p: &str| url::Url::parse(&format!("{authority}{p}")).expect("static URL");
        app.tenants.set_metadata(DiscoveryDocument {
            issuer: config.entra.expected_discovery_issuer(),
            authorization_endpoint: url("/oauth2/v2.0/authorize"),
            token_endpoint: url("/oauth2/v2.0/token"),
            jwks_uri: url("/discovery/v2.0/keys"),
            end_session_endpoint: Some(url("/oauth2/v2.0/logout")),
        });
        app
    }

    /// As [`App::for_tests`], with Entra not reached yet (no discovery).
    #[cfg(test)]
    pub fn for_tests_pending(yaml: &str) -> App {
        crate::crypto::install();
        let config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("test config: {e:?}"));
        let pem = crate::identity::signer::generate_pem().expect("a key");
        let signer = AssertionSigner::from_pem(&pem, &config.identity).expect("a signer");
        App::new(
            config,
            Arc::new(crate::session::MemoryStore::new()),
            crate::entra::http_client(),
            Arc::new(OnceLock::new()),
            signer,
            None,
        )
    }

    /// The session and local-account cookie names of portal `i`.
    pub fn cookie_names(&self, i: usize, secure: bool) -> (&str, &str) {
        let (s, l) = &self.cookie_names[i][usize::from(secure)];
        (s, l)
    }

    pub fn portal(&self, i: usize) -> &Portal {
        &self.config.portals[i]
    }

    /// The identity headers of a session that still says `new_user`: the one
    /// request that wins the claim carries `new_user: true`, signed for it
    /// alone; every other gets the session's ordinary (cached) assertion.
    pub async fn headers_for_new_user(
        &self,
        id: &SessionKey,
        s: &mut Arc<Session>,
    ) -> Option<Arc<crate::identity::headers::IdentityHeaders>> {
        if self.sessions.take_new_user(id, s).await {
            let mut once = Session::clone(s);
            once.new_user = true;
            self.assertions.uncached(&once)
        } else {
            self.assertions.for_session(id, s)
        }
    }

    /// Runs the CSP sync once (see [`Tenants::csp_sync`]).
    pub async fn csp_sync(&self) -> Result<crate::entra::csp::SyncResult, crate::entra::csp::CspError> {
        self.tenants.csp_sync(&self.http, &self.config).await
    }
}

/// Per portal, its session and local-account cookie names, without and with
/// `Secure` (`__Host-`).
fn cookie_names(config: &Config) -> Vec<[(String, String); 2]> {
    let base = &config.session.cookie_name;
    config
        .portals
        .iter()
        .map(|p| {
            [false, true].map(|secure| {
                (
                    policy::cookies::session_cookie_name(base, &p.name, secure),
                    policy::cookies::local_cookie_name(base, &p.name, secure),
                )
            })
        })
        .collect()
}
