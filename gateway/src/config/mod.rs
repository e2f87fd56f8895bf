//! Configuration: the YAML file model ([`raw`]) validated into [`Config`],
//! which is all the rest of the gateway ever sees. Every problem is reported
//! at once, each with its key path.

pub mod duration;
pub mod raw;
pub mod redis_target;
mod suggest;
mod validate;

use crate::entra::cloud::Cloud;
use ipnet::IpNet;
use policy::portal::PortalRoute;
use policy::tenants::TenantPolicy;
use policy::{ClientId, PortalKind, TenantId};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

pub use redis_target::RedisTarget;
#[cfg(test)]
pub(crate) use validate::expand;
pub use validate::validate;

/// One configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Everything wrong with a file.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} problem(s) in the configuration", .0.len())]
    Invalid(Vec<ConfigError>),
}

impl LoadError {
    pub fn errors(&self) -> Vec<String> {
        match self {
            LoadError::Read { .. } => vec![self.to_string()],
            LoadError::Invalid(v) => v.iter().map(ToString::to_string).collect(),
        }
    }
}

/// The app's client credential (`entra.client_secret[_file]`,
/// `client_certificate`, `federated_token_file`): exactly one, or none.
#[derive(Debug, Clone)]
pub enum ClientCredential {
    Secret(Secret),
    /// `private_key_jwt` with a certificate registered in the App
    /// Registration (what Microsoft recommends over secrets).
    Certificate {
        /// PKCS#8 (or PKCS#1) RSA private key, PEM.
        key_pem: Secret,
        /// base64url SHA-256 and SHA-1 of the certificate's DER (`x5t#S256`, `x5t`).
        x5t_s256: String,
        x5t: String,
    },
    /// Workload identity federation: a token the platform writes to a file
    /// (Kubernetes projected service-account token), read at every use.
    Federated {
        token_file: PathBuf,
    },
}

impl ClientCredential {
    pub fn kind(&self) -> &'static str {
        match self {
            ClientCredential::Secret(_) => "client secret",
            ClientCredential::Certificate { .. } => "certificate (private_key_jwt)",
            ClientCredential::Federated { .. } => "federated token file (workload identity)",
        }
    }
}

/// A secret value: never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Self {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub upstream: Upstream,
    pub entra: Entra,
    pub sso: Sso,
    pub two_factor: TwoFactor,
    pub portals: Vec<Portal>,
    pub clients: Vec<Client>,
    pub session: SessionConfig,
    pub identity: Identity,
    pub directory: Directory,
    /// `directory.sync`: users from Graph into the builtin directory.
    pub directory_sync: DirectorySync,
    pub routes: Routes,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: String,
    pub metrics_listen: Option<String>,
    /// Worker threads, already resolved (0 in the file means one per core).
    pub threads: usize,
    pub tls: Option<Tls>,
    pub trusted_proxies: Vec<IpNet>,
    pub insecure_dev_cookies: bool,
    /// Anonymous login starts per client address.
    pub login_rate: policy::ratelimit::Rate,
    pub max_pending_logins: usize,
    /// After SIGTERM: readiness answers 503 while requests are still served.
    pub drain_timeout: Duration,
    /// Then, with the listener closed: how long in-flight requests may take.
    pub shutdown_timeout: Duration,
    /// One `access` log line per request (`server.access_log`, default on).
    pub access_log: bool,
}

impl Server {
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Both files as read when the configuration was loaded (a reload reads
    /// them again: files replaced in place under the same names count).
    pub pair: crate::tls::CertPair,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub url: Url,
    /// `host:port` to connect to.
    pub address: String,
    /// The host of `url` without IPv6 brackets: an IP literal or a name to
    /// resolve (off the request path, see `crate::upstream`).
    pub host: String,
    pub port: u16,
    pub tls: bool,
    pub sni: String,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// How long an idle pooled connection is kept.
    pub idle_timeout: Duration,
    pub tls_verify: bool,
    /// DER certificates of `ca_file`: the only roots trusted for an https
    /// upstream when set (checked to parse at load).
    pub ca_certs: Vec<Vec<u8>>,
    pub strip_authorization: bool,
    /// Client headers with `_` in the name that may pass (lower-case).
    pub allow_underscore_headers: Vec<String>,
    /// Header names reach the app spelt as the client sent them (see
    /// `upstream::request`); false, the default: in lower case, faster.
    pub preserve_header_case: bool,
}

pub use policy::matching::MatchBy;
pub use policy::route::RoutePattern;
pub use policy::signin::TenantType;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInScope {
    Restricted,
    All,
}

#[derive(Debug, Clone)]
pub struct CspSync {
    pub enabled: bool,
    pub interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Entra {
    pub cloud: Cloud,
    pub tenant_type: TenantType,
    pub tenant_id: TenantId,
    pub client_id: ClientId,
    /// How the app proves itself at the token endpoint; None: the
    /// id_token flow (no token endpoint at all).
    pub credential: Option<ClientCredential>,
    pub federated_domain: Option<String>,
    pub sign_in_scope: SignInScope,
    pub allowed_tenants: Vec<TenantId>,
    /// `https://login.microsoftonline.com`, or the override; no trailing slash.
    pub authority_host: String,
    pub issuer_host: String,
    pub graph_host: String,
    /// True when `authority_host` was overridden (e.g. a local mock).
    pub authority_overridden: bool,
    pub clock_skew: Duration,
    pub csp_sync: CspSync,
}

impl Entra {
    /// The authority every sign-in is sent to (tenant or `/organizations`).
    pub fn authority(&self) -> String {
        match self.tenant_type {
            TenantType::Single => format!("{}/{}", self.authority_host, self.tenant_id),
            TenantType::Multi => format!("{}/organizations", self.authority_host),
        }
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/v2.0/.well-known/openid-configuration", self.authority())
    }

    /// The issuer discovery must announce: the tenant's, or the template.
    pub fn expected_discovery_issuer(&self) -> String {
        match self.tenant_type {
            TenantType::Single => policy::claims::issuer_for(&self.issuer_host, self.tenant_id.as_str()),
            TenantType::Multi => format!("{}/{{tenantid}}/v2.0", self.issuer_host),
        }
    }

    /// `with_extra`: tenants allowed besides the static list (per-client
    /// tenants, the CSP sync's customers).
    pub fn tenant_policy(&self, with_extra: impl IntoIterator<Item = TenantId>) -> TenantPolicy {
        let mut listed: std::collections::BTreeSet<TenantId> = self.allowed_tenants.iter().cloned().collect();
        listed.extend(with_extra);
        match (self.tenant_type, self.sign_in_scope) {
            (TenantType::Single, _) => TenantPolicy::Single(self.tenant_id.clone()),
            (TenantType::Multi, SignInScope::Restricted) => TenantPolicy::Restricted(listed),
            (TenantType::Multi, SignInScope::All) => TenantPolicy::All(listed),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Sso {
    pub published: bool,
    pub agents: bool,
    pub users: bool,
    pub auto_create_unmatched_users: bool,
    pub auto_redirect_agents: bool,
    pub auto_redirect_users: bool,
    pub match_by: MatchBy,
    pub single_logout: bool,
    pub remember_me: bool,
    pub remember_me_days: u64,
    /// Whether an auto-redirected sign-in (no login page, no box) is remembered.
    pub remember_me_default: bool,
}

impl Sso {
    /// The switches that say where SSO applies (see `policy::access`).
    pub fn switches(&self) -> policy::access::SsoSwitches {
        policy::access::SsoSwitches {
            published: self.published,
            agents: self.agents,
            users: self.users,
        }
    }

    /// Whether a portal of this kind gets SSO at all.
    pub fn enabled_for(&self, kind: PortalKind) -> bool {
        self.switches().enabled_for(kind)
    }

    /// What a new session's lifetimes come from.
    pub fn lifetime_settings(&self, session: &SessionConfig) -> policy::lifetime::LifetimeSettings {
        policy::lifetime::LifetimeSettings {
            remember_me: self.remember_me,
            remember_me_days: self.remember_me_days,
            idle_timeout_secs: session.idle_timeout.as_secs(),
            absolute_timeout_secs: session.absolute_timeout.as_secs(),
        }
    }
}

pub use policy::two_factor::RequiredFor as TwoFactorRequired;

#[derive(Debug, Clone)]
pub struct TwoFactor {
    pub required_for: TwoFactorRequired,
    pub listed_users: Vec<String>,
    pub bypass_with_sso: bool,
    pub dont_ask_again: bool,
    pub dont_ask_again_days: u64,
    /// Encrypts TOTP secrets at rest and signs "don't ask again" cookies;
    /// present whenever 2FA can apply (validated).
    pub encryption_key: Option<Secret>,
}

impl TwoFactor {
    /// Whether the step can apply to anyone at all.
    pub fn enabled(&self) -> bool {
        self.required_for != TwoFactorRequired::Nobody
    }

    /// Whether this user must take the step, by configuration alone (a
    /// directory record's `two_factor` flag is the other way to be listed).
    pub fn applies_to(&self, user_key: &str, directory_flag: bool) -> bool {
        let listed = self.listed_users.iter().any(|u| u == user_key);
        policy::two_factor::applies(self.required_for, listed, directory_flag)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Branding {
    pub title: Option<String>,
    pub logo_url: Option<String>,
    pub color: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Portal {
    pub name: String,
    pub kind: PortalKind,
    /// The public URL, without trailing slash.
    pub url: String,
    pub route: PortalRoute,
    pub https: bool,
    pub branding: Branding,
}

impl Portal {
    pub fn redirect_uri(&self) -> String {
        format!("{}/auth/account/azureresponse", self.url)
    }
    pub fn frontchannel_logout_url(&self) -> String {
        format!("{}/auth/account/frontchannel-logout", self.url)
    }
    pub fn post_logout_redirect_uri(&self) -> String {
        format!("{}/auth/logged-out", self.url)
    }
    /// An absolute path inside this portal (`/x` → `/portal/x`).
    pub fn path(&self, rel: &str) -> String {
        format!("{}{}", self.route.path_prefix, rel)
    }
}

#[derive(Debug, Clone)]
pub struct Client {
    pub name: String,
    pub hosts: Vec<String>,
    pub tenant_id: Option<TenantId>,
    pub auto_redirect_users: Option<bool>,
    pub federated_domain: Option<String>,
    pub branding: Branding,
}

#[derive(Debug, Clone)]
pub enum StoreConfig {
    Memory,
    Redis(RedisTarget),
}

impl StoreConfig {
    /// One line for `check-config`, without credentials.
    pub fn describe(&self) -> String {
        match self {
            StoreConfig::Memory => "memory (this process only)".into(),
            StoreConfig::Redis(RedisTarget::Standalone { url }) => {
                format!("redis {}", redis_target::redact(url))
            }
            StoreConfig::Redis(RedisTarget::Sentinel(s)) => format!(
                "redis sentinel: master {:?} from {} sentinel(s), database {}{}",
                s.master_name,
                s.sentinels.len(),
                s.db,
                if s.tls { ", TLS" } else { "" }
            ),
            StoreConfig::Redis(RedisTarget::Cluster { nodes }) => {
                format!("redis cluster: {} seed node(s)", nodes.len())
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub store: StoreConfig,
    pub key_prefix: String,
    pub cookie_name: String,
    pub idle_timeout: Duration,
    pub absolute_timeout: Duration,
    pub local_cache_ttl: Duration,
}

#[derive(Debug, Clone)]
pub struct Identity {
    pub audience: String,
    pub issuer: String,
    pub assertion_lifetime: Duration,
    pub signing_key: Option<PathBuf>,
    /// `identity.signing_keys`: the first signs, all are published.
    pub signing_keys: Vec<PathBuf>,
    /// `X-Auth-User` and friends beside the assertion; apps that verify the
    /// assertion alone can turn them off (less to build per request).
    pub convenience_headers: bool,
}

impl Identity {
    /// The key files in force, the signing one first (none: a generated key
    /// kept in the store).
    pub fn key_files(&self) -> Vec<&Path> {
        if self.signing_keys.is_empty() {
            self.signing_key.iter().map(PathBuf::as_path).collect()
        } else {
            self.signing_keys.iter().map(PathBuf::as_path).collect()
        }
    }
}

#[derive(Debug, Clone)]
pub enum Directory {
    Open,
    Builtin,
    Http { lookup_url: Url, create_url: Option<Url> },
}

/// `directory.sync`: how often the running gateway reads Entra's users into
/// the builtin directory (`entra-gateway directory sync` runs it by hand).
#[derive(Debug, Clone)]
pub struct DirectorySync {
    pub enabled: bool,
    pub interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Routes {
    pub public: Vec<RoutePattern>,
}

impl Config {
    /// Reads, parses and validates a file.
    pub fn load(path: &Path) -> Result<Config, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_yaml(&text).map_err(|mut errors| {
            // The YAML parser names its input `<input>`: say which file.
            for e in &mut errors {
                e.message = e.message.replace("<input>", &path.display().to_string());
            }
            LoadError::Invalid(errors)
        })
    }

    pub fn from_yaml(text: &str) -> Result<Config, Vec<ConfigError>> {
        let raw: raw::RawConfig = serde_saphyr::from_str(text).map_err(|e| {
            vec![ConfigError {
                path: "(file)".into(),
                message: e.to_string(),
            }]
        })?;
        validate(raw, &|name| std::env::var(name).ok())
    }

    pub fn portal_routes(&self) -> Vec<PortalRoute> {
        self.portals.iter().map(|p| p.route.clone()).collect()
    }

    /// What `policy::route::classify` needs, built once at start.
    pub fn routing(&self) -> policy::route::Routing {
        policy::route::Routing {
            portals: self.portal_routes(),
            kinds: self.portals.iter().map(|p| p.kind).collect(),
            client_hosts: self.clients.iter().map(|c| c.hosts.clone()).collect(),
            public: self.routes.public.clone(),
            sso: self.sso.switches(),
        }
    }

    /// Tenants configured per client: allowed without being listed again.
    pub fn client_tenants(&self) -> impl Iterator<Item = TenantId> + '_ {
        self.clients.iter().filter_map(|c| c.tenant_id.clone())
    }

    /// Every public URL a portal is reached at: its own, and its path on
    /// each client host (same scheme).
    pub fn portal_urls(&self, p: &Portal) -> Vec<String> {
        let scheme = if p.https { "https" } else { "http" };
        std::iter::once(p.url.clone())
            .chain(
                self.clients
                    .iter()
                    .flat_map(|c| c.hosts.iter())
                    .map(|h| format!("{scheme}://{h}{}", p.route.path_prefix)),
            )
            .collect()
    }
}

/// Whether a URL points at this machine (plain http is tolerated there only).
pub fn is_loopback(url: &Url) -> bool {
    validate::is_loopback_url(url)
}
