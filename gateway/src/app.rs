//! The shared state of a running gateway: the configuration and the parts
//! that own the rest ([`Sessions`], [`Assertions`], [`Tenants`], the login
//! states, the directory). What a request needs of two parts at once is here.

use crate::config::{Config, Portal};
use crate::entra::discovery::DiscoveryDocument;
use crate::entra::tenants::Tenants;
use crate::identity::{AssertionSigner, Assertions};
use crate::session::sessions::SessionDerived;
use crate::session::{LoginStates, MeteredStore, Session, SessionKey, Sessions, Store};
use std::sync::Arc;
use std::time::Duration;

pub use crate::entra::tenants::CspStatus;

pub struct App {
    pub config: Config,
    /// What request classification needs (see `policy::route`).
    pub routing: policy::route::Routing,
    /// The backend as configured (metered): health and the kind it is.
    pub store: Arc<dyn Store>,
    pub sessions: Sessions,
    pub logins: Arc<dyn LoginStates>,
    pub assertions: Arc<Assertions>,
    pub tenants: Tenants,
    pub http: reqwest::Client,
    /// None with `directory.kind: open` (no matching: the user is `<tid>:<oid>`).
    pub directory: Option<Arc<dyn crate::directory::Directory>>,
    pub login_limits: crate::auth::limits::LoginLimits,
    /// Second-factor enrolments and attempts (shared through the store).
    pub factors: crate::two_factor::Factors,
    /// Per portal, its session and local-account cookie names, without and
    /// with `Secure` (`__Host-`): looked up on every request, built once.
    cookie_names: Vec<[(String, String); 2]>,
}

impl App {
    /// `store` is the raw backend: every call through the app is metered.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        http: reqwest::Client,
        metadata: DiscoveryDocument,
        signer: AssertionSigner,
        directory: Option<Arc<dyn crate::directory::Directory>>,
    ) -> Self {
        let store = MeteredStore::wrap(store);
        let assertions = Arc::new(Assertions::new(signer));
        // A memory store is read in place: a second copy would only be stale.
        let local_cache_ttl = if store.kind() == "redis" {
            config.session.local_cache_ttl
        } else {
            Duration::ZERO
        };
        let base = &config.session.cookie_name;
        let cookie_names = config
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
            .collect();
        App {
            cookie_names,
            routing: config.routing(),
            sessions: Sessions::new(
                store.clone(),
                local_cache_ttl,
                vec![assertions.clone() as Arc<dyn SessionDerived>],
            ),
            logins: store.clone(),
            tenants: Tenants::new(&config, metadata, http.clone(), store.clone()),
            login_limits: crate::auth::limits::LoginLimits::new(
                config.server.login_rate,
                config.server.max_pending_logins,
                crate::auth::login::LOGIN_TTL,
            ),
            factors: crate::two_factor::Factors::new(&config.two_factor, store.clone()),
            assertions,
            config,
            store,
            http,
            directory,
        }
    }

    /// An app for in-process tests: the configuration `yaml`, a memory
    /// store, a fresh signing key, and a discovery document naming the
    /// public cloud's endpoints of the configured tenant (nothing is fetched).
    #[cfg(test)]
    pub fn for_tests(yaml: &str) -> App {
        crate::crypto::install();
        let config = Config::from_yaml(yaml).unwrap_or_else(|e| panic!("test config: {e:?}"));
        let authority = config.entra.authority();
        let url = |p: &str| url::Url::parse(&format!("{authority}{p}")).expect("static URL");
        let metadata = DiscoveryDocument {
            issuer: config.entra.expected_discovery_issuer(),
            authorization_endpoint: url("/oauth2/v2.0/authorize"),
            token_endpoint: url("/oauth2/v2.0/token"),
            jwks_uri: url("/discovery/v2.0/keys"),
            end_session_endpoint: Some(url("/oauth2/v2.0/logout")),
        };
        let pem = crate::identity::signer::generate_pem().expect("a key");
        let signer = AssertionSigner::from_pem(&pem, &config.identity).expect("a signer");
        App::new(
            config,
            Arc::new(crate::session::MemoryStore::new()),
            crate::entra::http_client(),
            metadata,
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

    /// The first request after an auto-create carries `new_user: true` once:
    /// signed uncached, then the flag is cleared in the store.
    pub async fn assertion_for_new_user(&self, id: &SessionKey, s: &mut Session) -> Option<String> {
        let jwt = self.assertions.uncached(s);
        s.new_user = false;
        // If the write fails the flag may show once more; never worse.
        let _ = self.sessions.update(id, s).await;
        jwt
    }

    /// Runs the CSP sync once (see [`Tenants::csp_sync`]).
    pub async fn csp_sync(&self) -> Result<crate::entra::csp::SyncResult, crate::entra::csp::CspError> {
        self.tenants.csp_sync(&self.http, &self.config).await
    }
}
