//! The file model: exactly the YAML keys of SPEC §3, as loosely typed as
//! possible (strings) so that validation can report every error at once with
//! its key path instead of stopping at the first one serde meets.

use serde::Deserialize;
use serde::de::IgnoredAny;
use std::collections::BTreeMap;

/// Keys not in the model land here and are reported as errors.
pub type Unknown = BTreeMap<String, IgnoredAny>;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub server: RawServer,
    pub upstream: RawUpstream,
    pub entra: RawEntra,
    pub sso: RawSso,
    pub two_factor: RawTwoFactor,
    pub portals: Vec<RawPortal>,
    pub clients: Vec<RawClient>,
    pub session: RawSession,
    pub identity: RawIdentity,
    pub directory: RawDirectory,
    pub routes: RawRoutes,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawServer {
    pub listen: Option<String>,
    pub metrics_listen: Option<String>,
    pub threads: Option<u64>,
    pub tls: Option<RawTls>,
    pub trusted_proxies: Vec<String>,
    pub insecure_dev_cookies: bool,
    pub login_rate: Option<RawLoginRate>,
    /// Sign-ins this instance keeps pending at once (added key).
    pub max_pending_logins: Option<u64>,
    pub drain_timeout: Option<String>,
    pub shutdown_timeout: Option<String>,
    /// One log line per request, target `access` (added key).
    pub access_log: Option<bool>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawLoginRate {
    pub per_ip: Option<String>,
    pub burst: Option<u64>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawUpstream {
    pub url: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub write_timeout: Option<String>,
    pub idle_timeout: Option<String>,
    /// Absent means true: verification is only ever turned off on purpose.
    pub tls_verify: Option<bool>,
    pub ca_file: Option<String>,
    /// Remove a client-sent `Authorization` header too (SPEC §5 "only when configured").
    pub strip_authorization: bool,
    pub allow_underscore_headers: Vec<String>,
    /// Absent means false: names reach the app in lower case; true keeps the
    /// client's spelling.
    pub preserve_header_case: Option<bool>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawCspSync {
    pub enabled: bool,
    pub interval: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawEntra {
    pub cloud: Option<String>,
    pub tenant_type: Option<String>,
    pub tenant_id: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_file: Option<String>,
    pub client_certificate: Option<RawClientCertificate>,
    pub federated_token_file: Option<String>,
    pub federated_domain: Option<String>,
    pub sign_in_scope: Option<String>,
    pub allowed_tenants: Option<Vec<String>>,
    pub authority_host: Option<String>,
    pub issuer_host: Option<String>,
    pub graph_host: Option<String>,
    pub clock_skew: Option<String>,
    pub csp_sync: Option<RawCspSync>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawSso {
    pub published: bool,
    pub agents: bool,
    pub users: bool,
    pub auto_create_unmatched_users: bool,
    pub auto_redirect_agents: bool,
    pub auto_redirect_users: bool,
    pub match_by: Option<String>,
    pub single_logout: bool,
    pub remember_me: bool,
    pub remember_me_days: u64,
    pub remember_me_default: bool,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl Default for RawSso {
    fn default() -> Self {
        RawSso {
            published: true,
            agents: true,
            users: true,
            auto_create_unmatched_users: false,
            auto_redirect_agents: false,
            auto_redirect_users: false,
            match_by: None,
            single_logout: true,
            remember_me: true,
            remember_me_days: 30,
            remember_me_default: false,
            unknown: Unknown::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(default)]
pub struct RawTwoFactor {
    pub required_for: Option<String>,
    pub listed_users: Vec<String>,
    pub bypass_with_sso: bool,
    pub dont_ask_again: bool,
    pub dont_ask_again_days: u64,
    pub encryption_key: Option<String>,
    pub encryption_key_file: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

impl Default for RawTwoFactor {
    fn default() -> Self {
        RawTwoFactor {
            required_for: None,
            listed_users: Vec::new(),
            bypass_with_sso: true,
            dont_ask_again: true,
            dont_ask_again_days: 30,
            encryption_key: None,
            encryption_key_file: None,
            unknown: Unknown::new(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawBranding {
    pub title: Option<String>,
    pub logo_url: Option<String>,
    pub color: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawPortal {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub url: Option<String>,
    pub branding: Option<RawBranding>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawClient {
    pub name: Option<String>,
    pub hosts: Vec<String>,
    pub tenant_id: Option<String>,
    pub auto_redirect_users: Option<bool>,
    pub federated_domain: Option<String>,
    pub branding: Option<RawBranding>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `redis_url` is one URL, or a list of node URLs for Redis Cluster.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawRedisUrl {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawSession {
    pub store: Option<String>,
    pub redis_url: Option<RawRedisUrl>,
    pub redis_password_file: Option<String>,
    pub redis_key_prefix: Option<String>,
    pub cookie_name: Option<String>,
    pub idle_timeout: Option<String>,
    pub absolute_timeout: Option<String>,
    pub local_cache_ttl: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawIdentity {
    pub audience: Option<String>,
    pub issuer: Option<String>,
    pub assertion_lifetime: Option<String>,
    pub signing_key: Option<String>,
    pub signing_keys: Option<Vec<String>>,
    pub convenience_headers: Option<bool>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDirectoryHttp {
    pub lookup_url: Option<String>,
    pub create_url: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDirectorySync {
    pub enabled: bool,
    pub interval: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawDirectory {
    pub kind: Option<String>,
    pub http: Option<RawDirectoryHttp>,
    pub sync: Option<RawDirectorySync>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawRoutes {
    pub public: Option<Vec<String>>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct RawClientCertificate {
    pub cert: Option<String>,
    pub key: Option<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}
