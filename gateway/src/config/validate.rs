//! Raw file model → [`Config`], collecting every error with its key path.

use super::duration;
use super::raw::*;
use super::*;
use policy::ratelimit::Rate;
use std::net::{IpAddr, SocketAddr};

/// Not 9100: that is node_exporter's, which often runs on the same host
/// (docs/deploy.md#metrics-port).
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";
const DEFAULT_LOGIN_RATE: &str = "10/s";
const DEFAULT_LOGIN_BURST: u64 = 50;
/// Pending sign-ins per instance: far above any real login wave (each is a
/// person who clicked "sign in" in the last ten minutes), far below memory trouble.
const DEFAULT_MAX_PENDING_LOGINS: u64 = 100_000;
/// `two_factor.encryption_key`: 32 base64 characters carry 192 bits; less is
/// a password, not a key.
const MIN_ENCRYPTION_KEY_LEN: usize = 32;

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

struct Ctx<'a> {
    errors: Vec<ConfigError>,
    env: Env<'a>,
}

impl Ctx<'_> {
    fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            path: path.into(),
            message: message.into(),
        });
    }

    fn unknown(&mut self, prefix: &str, unknown: &Unknown) {
        for key in unknown.keys() {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match super::suggest::nearest(prefix, key) {
                Some(near) => self.err(path, format!("unknown key (did you mean `{near}`?)")),
                None => self.err(path, "unknown key"),
            }
        }
    }

    /// `${VAR}` (must be set) and `${VAR:-default}` anywhere in the value.
    /// A secret kept in a file (a Kubernetes Secret, a systemd credential):
    /// its content without the trailing newline editors and `echo` add.
    fn secret_file(&mut self, path: &str, file: Option<String>) -> Option<Secret> {
        let file = file.and_then(|f| self.expand(path, &f)).filter(|f| !f.is_empty())?;
        match std::fs::read_to_string(&file) {
            Ok(s) => {
                let s = s.trim_end_matches(['\n', '\r']);
                if s.is_empty() {
                    self.err(path, format!("{file:?} is empty"));
                    None
                } else {
                    Some(Secret::new(s.to_string()))
                }
            }
            Err(e) => {
                self.err(path, format!("cannot read {file:?}: {e}"));
                None
            }
        }
    }

    fn expand(&mut self, path: &str, value: &str) -> Option<String> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let Some(end) = rest[start..].find('}') else {
                self.err(path, "unterminated ${...} reference");
                return None;
            };
            let inner = &rest[start + 2..start + end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                self.err(path, format!("invalid environment variable name {name:?}"));
                return None;
            }
            match ((self.env)(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    self.err(path, format!("environment variable {name} is not set"));
                    return None;
                }
            }
            rest = &rest[start + end + 1..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default: &str, min: u64, max: u64) -> Duration {
        let text = value.unwrap_or(default);
        match duration::parse(text) {
            Ok(d) if d.as_secs() < min || d.as_secs() > max => {
                self.err(path, format!("{text:?} is out of range ({min}s..={max}s)"));
                duration::parse(default).unwrap_or_default()
            }
            Ok(d) => d,
            Err(e) => {
                self.err(path, e);
                duration::parse(default).unwrap_or_default()
            }
        }
    }

    fn guid<T: std::str::FromStr>(&mut self, path: &str, value: Option<&str>) -> Option<T> {
        let v = value?;
        let v = self.expand(path, v)?;
        match v.parse() {
            Ok(g) => Some(g),
            Err(_) => {
                self.err(
                    path,
                    format!("{v:?} is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"),
                );
                None
            }
        }
    }

    /// A scheme+host[:port] base URL: https, or http for loopback only.
    fn host_url(&mut self, path: &str, value: &str) -> Option<String> {
        let url = match Url::parse(value) {
            Ok(u) => u,
            Err(e) => {
                self.err(path, format!("{value:?} is not a URL: {e}"));
                return None;
            }
        };
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            self.err(path, "must be scheme://host[:port] with no path");
            return None;
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback_url(&url) => {}
            "http" => {
                self.err(path, "plain http is accepted only for loopback addresses");
                return None;
            }
            other => {
                self.err(path, format!("unsupported scheme {other:?}"));
                return None;
            }
        }
        Some(value.trim_end_matches('/').to_string())
    }
}

pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// `${VAR}` expansion of one value on its own, for the property tests.
#[cfg(test)]
pub(crate) fn expand(value: &str, env: Env<'_>) -> Option<String> {
    Ctx {
        errors: Vec::new(),
        env,
    }
    .expand("value", value)
}

/// Validates the file model. `env` resolves `${VAR}` references.
pub fn validate(raw: RawConfig, env: Env<'_>) -> Result<Config, Vec<ConfigError>> {
    let mut cx = Ctx {
        errors: Vec::new(),
        env,
    };
    cx.unknown("", &raw.unknown);

    let server = server(&mut cx, raw.server);
    let upstream = upstream(&mut cx, raw.upstream);
    let entra = entra(&mut cx, raw.entra);
    let sso = sso(&mut cx, raw.sso);
    // Records of a builtin or http directory can carry a `two_factor` flag.
    let records_flag = raw.directory.kind.as_deref().is_some_and(|k| k != "open");
    let two_factor = two_factor(&mut cx, raw.two_factor, records_flag);
    let portals = portals(&mut cx, raw.portals, server.insecure_dev_cookies);
    let clients = clients(&mut cx, raw.clients);
    let session = session(&mut cx, raw.session);
    let identity = identity(&mut cx, raw.identity, &portals);
    let (directory, directory_sync) = directory(&mut cx, raw.directory);
    let routes = routes(&mut cx, raw.routes);

    if let Some(e) = &entra
        && e.tenant_type == TenantType::Single
    {
        for (i, c) in clients.iter().enumerate() {
            if c.tenant_id.as_ref().is_some_and(|t| *t != e.tenant_id) {
                cx.err(
                    format!("clients[{i}].tenant_id"),
                    "a tenant of its own needs entra.tenant_type: multi",
                );
            }
        }
    }
    if directory_sync.enabled {
        if !matches!(directory, Directory::Builtin) {
            cx.err(
                "directory.sync.enabled",
                "only applies to directory.kind: builtin (the records it writes are the builtin directory's)",
            );
        }
        if entra.as_ref().is_some_and(|e| e.credential.is_none()) {
            cx.err(
                "directory.sync.enabled",
                "needs entra.client_secret (or another client credential: client-credentials access to Graph)",
            );
        }
    }
    if let Some(e) = &entra
        && e.tenant_type == TenantType::Multi
        && sso.auto_create_unmatched_users
    {
        cx.err(
            "sso.auto_create_unmatched_users",
            "only allowed with entra.tenant_type: single (any tenant could create users)",
        );
    }

    match entra {
        Some(entra) if cx.errors.is_empty() => Ok(Config {
            server,
            upstream: upstream.expect("no errors means upstream is set"),
            entra,
            sso,
            two_factor,
            portals,
            clients,
            session,
            identity,
            directory,
            directory_sync,
            routes,
        }),
        _ => Err(cx.errors),
    }
}

fn server(cx: &mut Ctx<'_>, r: RawServer) -> Server {
    cx.unknown("server", &r.unknown);
    let listen = r.listen.unwrap_or_else(|| "0.0.0.0:8080".into());
    if listen.parse::<SocketAddr>().is_err() {
        cx.err(
            "server.listen",
            format!("{listen:?} is not an address like 0.0.0.0:8080"),
        );
    }
    let metrics_listen = match r.metrics_listen.as_deref() {
        None => Some(DEFAULT_METRICS_LISTEN.to_string()),
        Some("") => None,
        Some(m) => {
            if m.parse::<SocketAddr>().is_err() {
                cx.err(
                    "server.metrics_listen",
                    format!("{m:?} is not an address like 127.0.0.1:9464"),
                );
            }
            Some(m.to_string())
        }
    };
    let threads = match r.threads.unwrap_or(0) {
        0 => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        n if n > 1024 => {
            cx.err("server.threads", "at most 1024");
            1
        }
        n => n as usize,
    };
    let tls = r.tls.and_then(|t| {
        cx.unknown("server.tls", &t.unknown);
        match (t.cert, t.key) {
            (Some(cert), Some(key)) => {
                let mut missing = false;
                for (p, v) in [("server.tls.cert", &cert), ("server.tls.key", &key)] {
                    if !Path::new(v).is_file() {
                        cx.err(p, format!("file {v:?} does not exist"));
                        missing = true;
                    }
                }
                if missing {
                    return None;
                }
                // Read and paired now: check-config, start-up and SIGHUP
                // all refuse a pair the listener could not serve.
                match crate::tls::CertPair::load(Path::new(&cert), Path::new(&key)) {
                    Ok(pair) => Some(Tls {
                        cert: cert.into(),
                        key: key.into(),
                        pair,
                    }),
                    Err(e) => {
                        use crate::tls::PairError as E;
                        let path = match &e {
                            E::Read { path, .. } if path == Path::new(&key) => "server.tls.key",
                            E::Read { .. } | E::NoCertificate { .. } | E::BadCertificatePem { .. } => "server.tls.cert",
                            E::NoKey { .. } | E::BadKeyPem { .. } | E::UnusableKey { .. } => "server.tls.key",
                            E::Mismatch { .. } | E::Unpaired { .. } => "server.tls",
                        };
                        cx.err(path, e.to_string());
                        None
                    }
                }
            }
            (None, None) => None,
            _ => {
                cx.err("server.tls", "both cert and key are required");
                None
            }
        }
    });
    let mut trusted_proxies = Vec::new();
    for (i, p) in r.trusted_proxies.iter().enumerate() {
        let parsed = p.parse::<IpNet>().or_else(|_| p.parse::<IpAddr>().map(IpNet::from));
        match parsed {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => cx.err(
                format!("server.trusted_proxies[{i}]"),
                format!("{p:?} is not an IP address or CIDR range"),
            ),
        }
    }
    let login_rate = {
        let raw = r.login_rate.unwrap_or_default();
        cx.unknown("server.login_rate", &raw.unknown);
        let burst = raw.burst.unwrap_or(DEFAULT_LOGIN_BURST);
        let burst = u32::try_from(burst).unwrap_or(u32::MAX);
        match Rate::parse_per(raw.per_ip.as_deref().unwrap_or(DEFAULT_LOGIN_RATE), burst) {
            Ok(rate) => rate,
            Err(e) => {
                let key = if burst == 0 {
                    "server.login_rate.burst"
                } else {
                    "server.login_rate.per_ip"
                };
                cx.err(key, e);
                Rate::parse_per(DEFAULT_LOGIN_RATE, DEFAULT_LOGIN_BURST as u32).expect("default rate parses")
            }
        }
    };
    let max_pending_logins = match r.max_pending_logins.unwrap_or(DEFAULT_MAX_PENDING_LOGINS) {
        0 => {
            cx.err("server.max_pending_logins", "must be at least 1");
            1
        }
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let drain_timeout = cx.duration("server.drain_timeout", r.drain_timeout.as_deref(), "10s", 0, 3600);
    let shutdown_timeout = cx.duration("server.shutdown_timeout", r.shutdown_timeout.as_deref(), "30s", 0, 3600);
    Server {
        drain_timeout,
        shutdown_timeout,
        listen,
        metrics_listen,
        threads,
        tls,
        trusted_proxies,
        insecure_dev_cookies: r.insecure_dev_cookies,
        login_rate,
        max_pending_logins,
        access_log: r.access_log.unwrap_or(true),
    }
}

fn upstream(cx: &mut Ctx<'_>, r: RawUpstream) -> Option<Upstream> {
    cx.unknown("upstream", &r.unknown);
    let Some(raw_url) = r.url else {
        cx.err(
            "upstream.url",
            "required (the application to protect, e.g. http://127.0.0.1:9000)",
        );
        return None;
    };
    let raw_url = cx.expand("upstream.url", &raw_url)?;
    let url = match Url::parse(&raw_url) {
        Ok(u) => u,
        Err(e) => {
            cx.err("upstream.url", format!("{raw_url:?} is not a URL: {e}"));
            return None;
        }
    };
    let tls = match url.scheme() {
        "http" => false,
        "https" => true,
        other => {
            cx.err("upstream.url", format!("scheme must be http or https, not {other:?}"));
            return None;
        }
    };
    let Some(host) = url.host_str().map(str::to_string) else {
        cx.err("upstream.url", "has no host");
        return None;
    };
    if url.path() != "/" {
        cx.err(
            "upstream.url",
            "must not have a path (requests are forwarded with their own path)",
        );
    }
    let mut allow_underscore_headers = Vec::new();
    for (i, h) in r.allow_underscore_headers.iter().enumerate() {
        let key = format!("upstream.allow_underscore_headers[{i}]");
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            cx.err(key, format!("{h:?} is not a header name"));
        } else if !h.contains('_') {
            cx.err(
                key,
                format!("{h:?} has no '_': only names with underscores need listing"),
            );
        } else if policy::headers::must_drop(
            h,
            &policy::headers::HeaderRules {
                trusted_peer: true,
                strip_authorization: false,
                allow_underscore: std::slice::from_ref(h),
            },
        ) {
            cx.err(
                key,
                format!("{h:?} reads as an identity header (X-Auth-*) and is always removed"),
            );
        } else {
            allow_underscore_headers.push(h.to_ascii_lowercase());
        }
    }
    let port = url.port_or_known_default().unwrap_or(80);
    let bare_host = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let connect_timeout = cx.duration("upstream.connect_timeout", r.connect_timeout.as_deref(), "5s", 1, 300);
    let read_timeout = cx.duration("upstream.read_timeout", r.read_timeout.as_deref(), "60s", 1, 86_400);
    let write_timeout = cx.duration("upstream.write_timeout", r.write_timeout.as_deref(), "60s", 1, 86_400);
    let idle_timeout = cx.duration("upstream.idle_timeout", r.idle_timeout.as_deref(), "60s", 1, 3600);
    let tls_verify = r.tls_verify.unwrap_or(true);
    let ca_certs = upstream_ca(cx, r.ca_file, tls);
    Some(Upstream {
        address: format!("{host}:{port}"),
        url,
        host: bare_host.clone(),
        port,
        tls,
        sni: bare_host,
        connect_timeout,
        read_timeout,
        write_timeout,
        idle_timeout,
        tls_verify,
        ca_certs,
        strip_authorization: r.strip_authorization,
        allow_underscore_headers,
        preserve_header_case: r.preserve_header_case.unwrap_or(false),
    })
}

/// `upstream.ca_file`: read and parsed now, so a bad bundle is a config
/// error (check-config says so) rather than a failure on the first request.
fn upstream_ca(cx: &mut Ctx<'_>, ca_file: Option<String>, tls: bool) -> Vec<Vec<u8>> {
    const KEY: &str = "upstream.ca_file";
    let Some(path) = ca_file.and_then(|f| cx.expand(KEY, &f)).filter(|f| !f.is_empty()) else {
        return Vec::new();
    };
    if !tls {
        cx.err(KEY, "only used with an https upstream.url");
        return Vec::new();
    }
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            cx.err(KEY, format!("cannot read {path:?}: {e}"));
            return Vec::new();
        }
    };
    match crate::upstream::tls::parse_ca_bundle(&text) {
        Ok(certs) => certs,
        Err(e) => {
            cx.err(KEY, format!("{path:?}: {e}"));
            Vec::new()
        }
    }
}

fn entra(cx: &mut Ctx<'_>, r: RawEntra) -> Option<Entra> {
    cx.unknown("entra", &r.unknown);
    let cloud = match r.cloud.as_deref().unwrap_or("global").parse::<Cloud>() {
        Ok(c) => c,
        Err(e) => {
            cx.err("entra.cloud", e);
            Cloud::Global
        }
    };
    let tenant_type = match r.tenant_type.as_deref().unwrap_or("single") {
        "single" => TenantType::Single,
        "multi" => TenantType::Multi,
        other => {
            cx.err("entra.tenant_type", format!("{other:?}: expected single or multi"));
            TenantType::Single
        }
    };
    if r.tenant_id.is_none() {
        cx.err(
            "entra.tenant_id",
            "required (the Directory (tenant) ID of the app registration)",
        );
    }
    if r.client_id.is_none() {
        cx.err(
            "entra.client_id",
            "required (the Application (client) ID of the app registration)",
        );
    }
    let tenant_id: Option<TenantId> = cx.guid("entra.tenant_id", r.tenant_id.as_deref());
    let client_id: Option<ClientId> = cx.guid("entra.client_id", r.client_id.as_deref());
    let inline_secret = r
        .client_secret
        .and_then(|s| cx.expand("entra.client_secret", &s))
        .filter(|s| !s.is_empty())
        .map(Secret::new);
    let file_secret = cx.secret_file("entra.client_secret_file", r.client_secret_file);
    if inline_secret.is_some() && file_secret.is_some() {
        cx.err(
            "entra.client_secret_file",
            "set either entra.client_secret or entra.client_secret_file, not both",
        );
    }
    let certificate = r.client_certificate.and_then(|c| client_certificate(cx, c));
    let federated = r
        .federated_token_file
        .and_then(|f| cx.expand("entra.federated_token_file", &f))
        .filter(|f| !f.is_empty())
        .map(PathBuf::from);
    if let Some(f) = &federated
        && !f.is_file()
    {
        cx.err("entra.federated_token_file", format!("file {f:?} does not exist"));
    }
    let given = [
        inline_secret.is_some() || file_secret.is_some(),
        certificate.is_some(),
        federated.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        cx.err(
            "entra.client_certificate",
            "set one client credential: client_secret (or client_secret_file), client_certificate or federated_token_file",
        );
    }
    let credential = inline_secret
        .or(file_secret)
        .map(ClientCredential::Secret)
        .or(certificate)
        .or(federated.map(|token_file| ClientCredential::Federated { token_file }));
    let federated_domain = r.federated_domain.filter(|d| !d.is_empty());
    if let Some(d) = &federated_domain
        && !d.contains('.')
    {
        cx.err("entra.federated_domain", format!("{d:?} is not a domain name"));
    }
    if let Some(d) = &federated_domain
        && !d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
    {
        cx.err("entra.federated_domain", format!("{d:?} is not a domain name"));
    }

    let multi = tenant_type == TenantType::Multi;
    let sign_in_scope = match r.sign_in_scope.as_deref() {
        None | Some("restricted") => SignInScope::Restricted,
        Some("all") => SignInScope::All,
        Some(other) => {
            cx.err("entra.sign_in_scope", format!("{other:?}: expected restricted or all"));
            SignInScope::Restricted
        }
    };
    if !multi && r.sign_in_scope.is_some() {
        cx.err("entra.sign_in_scope", "only applies to entra.tenant_type: multi");
    }
    let mut allowed_tenants = Vec::new();
    if let Some(list) = &r.allowed_tenants {
        if !multi && !list.is_empty() {
            cx.err("entra.allowed_tenants", "only applies to entra.tenant_type: multi");
        }
        for (i, t) in list.iter().enumerate() {
            if let Some(t) = cx.guid::<TenantId>(&format!("entra.allowed_tenants[{i}]"), Some(t)) {
                allowed_tenants.push(t);
            }
        }
    }
    let csp = r.csp_sync.unwrap_or_default();
    cx.unknown("entra.csp_sync", &csp.unknown);
    let csp_sync = CspSync {
        enabled: csp.enabled,
        interval: cx.duration("entra.csp_sync.interval", csp.interval.as_deref(), "1h", 5, 7 * 86400),
    };
    if csp_sync.enabled && !multi {
        cx.err("entra.csp_sync.enabled", "only applies to entra.tenant_type: multi");
    }
    if csp_sync.enabled && credential.is_none() {
        cx.err(
            "entra.csp_sync.enabled",
            "needs entra.client_secret (or another client credential: client-credentials access to Graph)",
        );
    }
    if multi && sign_in_scope == SignInScope::Restricted && allowed_tenants.is_empty() && !csp_sync.enabled {
        cx.err(
            "entra.allowed_tenants",
            "sign_in_scope: restricted with an empty list and no csp_sync would let nobody in",
        );
    }

    let authority_override = r.authority_host.filter(|h| !h.is_empty());
    let authority_overridden = authority_override.is_some();
    let authority_host = match authority_override {
        Some(h) => cx.host_url("entra.authority_host", &h).unwrap_or_default(),
        None => cloud.login_host().to_string(),
    };
    let issuer_host = match r.issuer_host.filter(|h| !h.is_empty()) {
        Some(h) => cx.host_url("entra.issuer_host", &h).unwrap_or_default(),
        None if authority_overridden => authority_host.clone(),
        None => cloud.issuer_host().to_string(),
    };
    let graph_host = match r.graph_host.filter(|h| !h.is_empty()) {
        Some(h) => cx.host_url("entra.graph_host", &h).unwrap_or_default(),
        None => cloud.graph_host().to_string(),
    };
    let clock_skew = cx.duration("entra.clock_skew", r.clock_skew.as_deref(), "5m", 0, 3600);

    Some(Entra {
        cloud,
        tenant_type,
        tenant_id: tenant_id?,
        client_id: client_id?,
        credential,
        federated_domain,
        sign_in_scope,
        allowed_tenants,
        authority_host,
        issuer_host,
        graph_host,
        authority_overridden,
        clock_skew,
        csp_sync,
    })
}

fn sso(cx: &mut Ctx<'_>, r: RawSso) -> Sso {
    cx.unknown("sso", &r.unknown);
    let match_by = match r.match_by.as_deref().unwrap_or("email") {
        "email" => MatchBy::Email,
        "unique_id" => MatchBy::UniqueId,
        other => {
            cx.err("sso.match_by", format!("{other:?}: expected email or unique_id"));
            MatchBy::Email
        }
    };
    if !(1..=3650).contains(&r.remember_me_days) {
        cx.err("sso.remember_me_days", "must be between 1 and 3650");
    }
    Sso {
        published: r.published,
        agents: r.agents,
        users: r.users,
        auto_create_unmatched_users: r.auto_create_unmatched_users,
        auto_redirect_agents: r.auto_redirect_agents,
        auto_redirect_users: r.auto_redirect_users,
        match_by,
        single_logout: r.single_logout,
        remember_me: r.remember_me,
        remember_me_days: r.remember_me_days,
        remember_me_default: r.remember_me_default,
    }
}

fn two_factor(cx: &mut Ctx<'_>, r: RawTwoFactor, records_flag: bool) -> TwoFactor {
    cx.unknown("two_factor", &r.unknown);
    let required_for = match r.required_for.as_deref().unwrap_or("nobody") {
        "nobody" => TwoFactorRequired::Nobody,
        "everyone" => TwoFactorRequired::Everyone,
        "listed" => TwoFactorRequired::Listed,
        other => {
            cx.err(
                "two_factor.required_for",
                format!("{other:?}: expected nobody, everyone or listed"),
            );
            TwoFactorRequired::Nobody
        }
    };
    if required_for == TwoFactorRequired::Listed && r.listed_users.is_empty() && !records_flag {
        cx.err(
            "two_factor.listed_users",
            "required_for: listed needs at least one user (or a builtin/http directory whose records carry two_factor)",
        );
    }
    if !(1..=365).contains(&r.dont_ask_again_days) {
        cx.err("two_factor.dont_ask_again_days", "must be between 1 and 365");
    }
    let inline_key = r
        .encryption_key
        .and_then(|k| cx.expand("two_factor.encryption_key", &k))
        .filter(|k| !k.is_empty())
        .map(Secret::new);
    let file_key = cx.secret_file("two_factor.encryption_key_file", r.encryption_key_file);
    if inline_key.is_some() && file_key.is_some() {
        cx.err(
            "two_factor.encryption_key_file",
            "set either two_factor.encryption_key or two_factor.encryption_key_file, not both",
        );
    }
    let encryption_key = inline_key.or(file_key);
    match &encryption_key {
        // Key material is derived from it (HKDF-SHA256): what matters is
        // its entropy, so refuse what is obviously too short to hold 256 bits.
        Some(k) if k.expose().len() < MIN_ENCRYPTION_KEY_LEN => cx.err(
            "two_factor.encryption_key",
            format!(
                "too short: at least {MIN_ENCRYPTION_KEY_LEN} characters of random data (e.g. `openssl rand -base64 32`)"
            ),
        ),
        None if required_for != TwoFactorRequired::Nobody => cx.err(
            "two_factor.encryption_key",
            "required when two_factor.required_for is not nobody (it encrypts TOTP secrets at rest): a value, \
             ${ENV}, or two_factor.encryption_key_file",
        ),
        _ => {}
    }
    TwoFactor {
        encryption_key,
        required_for,
        listed_users: r.listed_users,
        bypass_with_sso: r.bypass_with_sso,
        dont_ask_again: r.dont_ask_again,
        dont_ask_again_days: r.dont_ask_again_days,
    }
}

fn branding(cx: &mut Ctx<'_>, path: &str, r: Option<RawBranding>) -> Branding {
    let Some(r) = r else {
        return Branding::default();
    };
    cx.unknown(path, &r.unknown);
    if let Some(c) = &r.color {
        let hex = c.strip_prefix('#').unwrap_or("");
        if !(matches!(hex.len(), 3 | 6) && hex.chars().all(|h| h.is_ascii_hexdigit())) {
            cx.err(format!("{path}.color"), format!("{c:?} is not a colour like #0b5cad"));
        }
    }
    if let Some(l) = &r.logo_url
        && !(l.starts_with('/') && !l.starts_with("//") || l.starts_with("https://"))
    {
        cx.err(
            format!("{path}.logo_url"),
            "must be a path on this site (/...) or an https URL",
        );
    }
    if let Some(t) = &r.title
        && t.chars().count() > 80
    {
        cx.err(format!("{path}.title"), "at most 80 characters");
    }
    Branding {
        title: r.title,
        logo_url: r.logo_url,
        color: r.color,
    }
}

fn portals(cx: &mut Ctx<'_>, raw: Vec<RawPortal>, insecure_dev: bool) -> Vec<Portal> {
    if raw.is_empty() {
        cx.err(
            "portals",
            "at least one portal is required (e.g. { name: agent, kind: agent, url: \"https://app.example.com\" })",
        );
    }
    let mut out: Vec<Portal> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let p = format!("portals[{i}]");
        cx.unknown(&p, &r.unknown);
        let name = r.name.unwrap_or_default();
        if !is_name(&name) {
            cx.err(
                format!("{p}.name"),
                "required: letters, digits, '_' or '-' (it is part of the cookie name)",
            );
        }
        let kind = match r.kind.as_deref().unwrap_or("").parse::<PortalKind>() {
            Ok(k) => k,
            Err(e) => {
                cx.err(format!("{p}.kind"), e);
                PortalKind::Agent
            }
        };
        let branding = branding(cx, &format!("{p}.branding"), r.branding);
        let Some(raw_url) = r.url else {
            cx.err(format!("{p}.url"), "required (the portal's public URL)");
            continue;
        };
        let url = match Url::parse(&raw_url) {
            Ok(u) => u,
            Err(e) => {
                cx.err(format!("{p}.url"), format!("{raw_url:?} is not a URL: {e}"));
                continue;
            }
        };
        let https = match url.scheme() {
            "https" => true,
            "http" if insecure_dev => false,
            "http" => {
                cx.err(
                    format!("{p}.url"),
                    "must be https (plain http only with server.insecure_dev_cookies: true)",
                );
                false
            }
            other => {
                cx.err(format!("{p}.url"), format!("unsupported scheme {other:?}"));
                false
            }
        };
        if url.query().is_some() || url.fragment().is_some() || url.host_str().is_none() {
            cx.err(
                format!("{p}.url"),
                "must be scheme://host[:port][/path] without query or fragment",
            );
            continue;
        }
        let host = url.host_str().unwrap_or_default();
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let path_prefix = url.path().trim_end_matches('/').to_string();
        let public = format!("{}://{}{}", url.scheme(), authority, path_prefix);
        let route = PortalRoute {
            authority: policy::portal::normalize_authority(&authority, https).into_owned(),
            path_prefix,
        };
        if out.iter().any(|o| o.name == name) {
            cx.err(format!("{p}.name"), format!("{name:?} is used by another portal"));
        }
        if out.iter().any(|o| o.route == route) {
            cx.err(format!("{p}.url"), "another portal has the same URL");
        }
        out.push(Portal {
            name,
            kind,
            url: public,
            route,
            https,
            branding,
        });
    }
    out
}

fn clients(cx: &mut Ctx<'_>, raw: Vec<RawClient>) -> Vec<Client> {
    let mut out: Vec<Client> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let p = format!("clients[{i}]");
        cx.unknown(&p, &r.unknown);
        let name = r.name.unwrap_or_default();
        if !is_name(&name) {
            cx.err(format!("{p}.name"), "required: letters, digits, '_' or '-'");
        }
        if out.iter().any(|o| o.name == name) {
            cx.err(format!("{p}.name"), format!("{name:?} is used by another client"));
        }
        if r.hosts.is_empty() {
            cx.err(format!("{p}.hosts"), "at least one host is required");
        }
        for (j, h) in r.hosts.iter().enumerate() {
            let ok = !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
            if !ok {
                cx.err(format!("{p}.hosts[{j}]"), format!("{h:?} is not a host name"));
            }
            if out.iter().any(|o| o.hosts.contains(&policy::portal::bare_authority(h))) {
                cx.err(format!("{p}.hosts[{j}]"), format!("{h:?} belongs to another client"));
            }
        }
        if let Some(d) = &r.federated_domain
            && !(d.contains('.') && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-'))
        {
            cx.err(format!("{p}.federated_domain"), format!("{d:?} is not a domain name"));
        }
        let tenant_id = cx.guid(&format!("{p}.tenant_id"), r.tenant_id.as_deref());
        let branding = branding(cx, &format!("{p}.branding"), r.branding);
        out.push(Client {
            name,
            hosts: r.hosts.iter().map(|h| policy::portal::bare_authority(h)).collect(),
            tenant_id,
            auto_redirect_users: r.auto_redirect_users,
            federated_domain: r.federated_domain,
            branding,
        });
    }
    out
}

fn session(cx: &mut Ctx<'_>, r: RawSession) -> SessionConfig {
    cx.unknown("session", &r.unknown);
    let store = match r.store.as_deref().unwrap_or("memory") {
        "memory" => StoreConfig::Memory,
        "redis" => {
            let (urls, list) = match r.redis_url {
                None => {
                    cx.err("session.redis_url", "required with store: redis");
                    (Vec::new(), false)
                }
                Some(RawRedisUrl::One(u)) => (vec![u], false),
                Some(RawRedisUrl::Many(v)) => (v, true),
            };
            let mut expanded = Vec::new();
            for (i, u) in urls.iter().enumerate() {
                let path = if list {
                    format!("session.redis_url[{i}]")
                } else {
                    "session.redis_url".to_string()
                };
                if let Some(u) = cx.expand(&path, u) {
                    expanded.push(u);
                }
            }
            if expanded.len() == urls.len() && (list || !urls.is_empty()) {
                let password = cx.secret_file("session.redis_password_file", r.redis_password_file.clone());
                match RedisTarget::parse(&expanded, list) {
                    // Errors name the rule, never echo the URL (it may hold a password).
                    Ok(target) => StoreConfig::Redis(match password {
                        Some(p) => target.with_password(p.expose()),
                        None => target,
                    }),
                    Err(e) => {
                        cx.err("session.redis_url", e.to_string());
                        StoreConfig::Memory
                    }
                }
            } else {
                StoreConfig::Memory
            }
        }
        other => {
            cx.err("session.store", format!("{other:?}: expected memory or redis"));
            StoreConfig::Memory
        }
    };
    let cookie_name = r.cookie_name.unwrap_or_else(|| "entra_gw".into());
    if !(!cookie_name.is_empty()
        && cookie_name.len() <= 32
        && cookie_name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
    {
        cx.err("session.cookie_name", "letters, digits and '_' only, at most 32");
    }
    let key_prefix = r.redis_key_prefix.unwrap_or_else(|| "entra_gw:".into());
    if key_prefix.contains(['{', '}']) || key_prefix.chars().any(char::is_whitespace) {
        cx.err("session.redis_key_prefix", "must not contain braces or spaces");
    }
    let idle_timeout = cx.duration("session.idle_timeout", r.idle_timeout.as_deref(), "8h", 60, 365 * 86400);
    let absolute_timeout = cx.duration(
        "session.absolute_timeout",
        r.absolute_timeout.as_deref(),
        "24h",
        60,
        365 * 86400,
    );
    if idle_timeout > absolute_timeout {
        cx.err("session.idle_timeout", "must not exceed session.absolute_timeout");
    }
    let local_cache_ttl = cx.duration("session.local_cache_ttl", r.local_cache_ttl.as_deref(), "5s", 0, 60);
    SessionConfig {
        store,
        key_prefix,
        cookie_name,
        idle_timeout,
        absolute_timeout,
        local_cache_ttl,
    }
}

fn identity(cx: &mut Ctx<'_>, r: RawIdentity, portals: &[Portal]) -> Identity {
    cx.unknown("identity", &r.unknown);
    let audience = r.audience.unwrap_or_default();
    if audience.is_empty() {
        cx.err(
            "identity.audience",
            "required: the `aud` your application verifies in X-Auth-Assertion",
        );
    }
    let issuer = r
        .issuer
        .or_else(|| portals.first().map(|p| p.url.clone()))
        .unwrap_or_else(|| "entra-gateway".into());
    let assertion_lifetime = cx.duration(
        "identity.assertion_lifetime",
        r.assertion_lifetime.as_deref(),
        "5m",
        30,
        300,
    );
    let key_file = |cx: &mut Ctx<'_>, path: &str, k: String| -> Option<PathBuf> {
        let k = PathBuf::from(cx.expand(path, &k).filter(|k| !k.is_empty())?);
        if !k.is_file() {
            cx.err(path, format!("file {k:?} does not exist"));
        } else if let Some(why) = crate::identity::key_file::loose_permissions(&k) {
            cx.err(path, why);
        }
        Some(k)
    };
    let signing_key = r.signing_key.and_then(|k| key_file(cx, "identity.signing_key", k));
    let signing_keys: Vec<PathBuf> = r
        .signing_keys
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .filter_map(|(i, k)| key_file(cx, &format!("identity.signing_keys[{i}]"), k))
        .collect();
    if signing_key.is_some() && !signing_keys.is_empty() {
        cx.err(
            "identity.signing_keys",
            "set either identity.signing_key or identity.signing_keys (the first signs), not both",
        );
    }
    Identity {
        audience,
        issuer,
        assertion_lifetime,
        signing_key,
        signing_keys,
        convenience_headers: r.convenience_headers.unwrap_or(true),
    }
}

/// `entra.client_certificate`: the key and the certificate registered in
/// Entra (whose thumbprint names it in the client assertion).
fn client_certificate(cx: &mut Ctx<'_>, r: RawClientCertificate) -> Option<ClientCredential> {
    cx.unknown("entra.client_certificate", &r.unknown);
    let blank = |v: &Option<String>| v.as_deref().is_none_or(str::is_empty);
    if blank(&r.cert) && blank(&r.key) {
        // `{ cert: "", key: "" }`, as in the example: not configured.
        return None;
    }
    let read = |cx: &mut Ctx<'_>, path: &str, v: Option<String>| -> Option<String> {
        let Some(f) = v.and_then(|f| cx.expand(path, &f)).filter(|f| !f.is_empty()) else {
            cx.err(path, "required with entra.client_certificate");
            return None;
        };
        std::fs::read_to_string(&f)
            .map_err(|e| cx.err(path, format!("cannot read {f:?}: {e}")))
            .ok()
    };
    let cert = read(cx, "entra.client_certificate.cert", r.cert);
    let key = read(cx, "entra.client_certificate.key", r.key);
    let der = cert.as_deref().and_then(|pem| {
        let der = crate::entra::credential::certificate_der(pem);
        if der.is_none() {
            cx.err(
                "entra.client_certificate.cert",
                "not a PEM certificate (-----BEGIN CERTIFICATE-----)",
            );
        }
        der
    })?;
    let key = key?;
    if jsonwebtoken::EncodingKey::from_rsa_pem(key.as_bytes()).is_err() {
        cx.err(
            "entra.client_certificate.key",
            "not an RSA private key in PEM (PKCS#8 or PKCS#1)",
        );
        return None;
    }
    let (x5t_s256, x5t) = crate::entra::credential::thumbprints(&der);
    Some(ClientCredential::Certificate {
        key_pem: Secret::new(key),
        x5t_s256,
        x5t,
    })
}

fn directory(cx: &mut Ctx<'_>, r: RawDirectory) -> (Directory, DirectorySync) {
    cx.unknown("directory", &r.unknown);
    let sync = r.sync.unwrap_or_default();
    cx.unknown("directory.sync", &sync.unknown);
    let sync = DirectorySync {
        enabled: sync.enabled,
        interval: cx.duration("directory.sync.interval", sync.interval.as_deref(), "6h", 5, 7 * 86400),
    };
    (directory_kind(cx, r.kind, r.http), sync)
}

fn directory_kind(cx: &mut Ctx<'_>, kind: Option<String>, http: Option<RawDirectoryHttp>) -> Directory {
    if let Some(h) = &http {
        cx.unknown("directory.http", &h.unknown);
    }
    match kind.as_deref().unwrap_or("open") {
        "open" => Directory::Open,
        "builtin" => Directory::Builtin,
        "http" => {
            let h = http.unwrap_or_default();
            let mut parse = |path: &str, v: Option<String>| -> Option<Url> {
                let v = v?;
                match Url::parse(&v) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => Some(u),
                    _ => {
                        cx.err(path, format!("{v:?} is not an http(s) URL"));
                        None
                    }
                }
            };
            let lookup = parse("directory.http.lookup_url", h.lookup_url);
            let create_url = parse("directory.http.create_url", h.create_url);
            match lookup {
                Some(lookup_url) => Directory::Http { lookup_url, create_url },
                None => {
                    cx.err("directory.http.lookup_url", "required with kind: http");
                    Directory::Open
                }
            }
        }
        other => {
            cx.err("directory.kind", format!("{other:?}: expected open, builtin or http"));
            Directory::Open
        }
    }
}

fn routes(cx: &mut Ctx<'_>, r: RawRoutes) -> Routes {
    cx.unknown("routes", &r.unknown);
    let mut public = Vec::new();
    for (i, p) in r.public.unwrap_or_default().into_iter().enumerate() {
        let path = format!("routes.public[{i}]");
        if !p.starts_with('/') {
            cx.err(path, format!("{p:?} must start with /"));
        } else if let Some(prefix) = p.strip_suffix('*') {
            if prefix.contains('*') || !prefix.ends_with('/') {
                cx.err(path, format!("{p:?}: '*' is only allowed as a final \"/*\""));
            } else {
                public.push(RoutePattern::Prefix(prefix.to_string()));
            }
        } else if p.contains('*') {
            cx.err(path, format!("{p:?}: '*' is only allowed as a final \"/*\""));
        } else {
            public.push(RoutePattern::Exact(p));
        }
    }
    Routes { public }
}

#[cfg(test)]
mod tests {
    use super::super::Config;

    const BASE: &str = r#"
upstream: { url: "http://127.0.0.1:9000" }
portals: [ { name: agent, kind: agent, url: "https://halo.example.com" } ]
identity: { audience: halo }
"#;

    fn errors(entra: &str, extra: &str) -> Vec<String> {
        let yaml = format!(
            "{BASE}\nentra:\n  tenant_id: \"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"\n  client_id: \"11111111-1111-4111-8111-111111111111\"\n{entra}\n{extra}"
        );
        match Config::from_yaml(&yaml) {
            Ok(_) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        }
    }

    fn has(errs: &[String], needle: &str) -> bool {
        errs.iter().any(|e| e.contains(needle))
    }

    #[test]
    fn metrics_listen_defaults_off_node_exporters_port() {
        let c = Config::from_yaml(&format!(
            "{BASE}\nentra: {{ tenant_id: aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa, client_id: 11111111-1111-4111-8111-111111111111 }}\n"
        ))
        .unwrap();
        assert_eq!(c.server.metrics_listen.as_deref(), Some("127.0.0.1:9464"));
        let c = Config::from_yaml(&format!(
            "{BASE}\nserver: {{ metrics_listen: \"\" }}\nentra: {{ tenant_id: aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa, client_id: 11111111-1111-4111-8111-111111111111 }}\n"
        ))
        .unwrap();
        assert_eq!(c.server.metrics_listen, None);
    }

    /// The systemd unit (deploy/systemd) names its credentials this way.
    #[test]
    fn credential_files_expand_credentials_directory() {
        use super::super::ClientCredential;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("client-secret"), "s3cret\n").unwrap();
        let key = dir.path().join("signing-key.pem");
        std::fs::write(&key, "pem").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        let yaml = r#"
upstream: { url: "http://127.0.0.1:9000" }
portals: [ { name: agent, kind: agent, url: "https://halo.example.com" } ]
entra: { tenant_id: aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa, client_id: 11111111-1111-4111-8111-111111111111,
         client_secret_file: "${CREDENTIALS_DIRECTORY}/client-secret" }
identity: { audience: halo, signing_key: "${CREDENTIALS_DIRECTORY}/signing-key.pem" }
"#;
        let raw = serde_saphyr::from_str(yaml).unwrap();
        let creds = dir.path().display().to_string();
        let env = move |name: &str| (name == "CREDENTIALS_DIRECTORY").then(|| creds.clone());
        let c = super::validate(raw, &env).unwrap();
        match &c.entra.credential {
            Some(ClientCredential::Secret(s)) => assert_eq!(s.expose(), "s3cret"),
            other => panic!("{other:?}"),
        }
        assert_eq!(c.identity.key_files(), [key.as_path()]);
        // Outside systemd the variable is unset: the key is named, not guessed.
        let raw = serde_saphyr::from_str(yaml).unwrap();
        let e: Vec<String> = super::validate(raw, &|_: &str| None)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            has(&e, "environment variable CREDENTIALS_DIRECTORY is not set"),
            "{e:?}"
        );
    }

    #[test]
    fn signing_keys_are_checked_like_signing_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("new.pem"), dir.path().join("old.pem"));
        for f in [&a, &b] {
            std::fs::write(f, "pem").unwrap();
            std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let yaml = |identity: String| {
            format!(
                "upstream: {{ url: \"http://127.0.0.1:9000\" }}\nportals: [ {{ name: agent, kind: agent, url: \"https://halo.example.com\" }} ]\nentra: {{ tenant_id: aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa, client_id: 11111111-1111-4111-8111-111111111111 }}\nidentity: {{ audience: halo, {identity} }}\n"
            )
        };
        let c = Config::from_yaml(&yaml(format!("signing_keys: [{a:?}, {b:?}]"))).unwrap();
        assert_eq!(c.identity.key_files(), [a.as_path(), b.as_path()]);
        std::fs::set_permissions(&b, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e: Vec<String> = Config::from_yaml(&yaml(format!("signing_keys: [{a:?}, {b:?}, \"/nonexistent.pem\"]")))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(has(&e, "identity.signing_keys[1]:"), "{e:?}");
        assert!(
            has(&e, "identity.signing_keys[2]: file \"/nonexistent.pem\" does not exist"),
            "{e:?}"
        );
        let e: Vec<String> = Config::from_yaml(&yaml(format!("signing_key: {a:?}, signing_keys: [{a:?}]")))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(has(&e, "identity.signing_keys: set either"), "{e:?}");
    }

    #[test]
    fn one_client_credential_and_certificates_that_parse() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "eyJ.x.y").unwrap();
        let e = errors(&format!("  client_secret: s\n  federated_token_file: {token:?}"), "");
        assert!(has(&e, "entra.client_certificate: set one client credential"), "{e:?}");
        let e = errors("  federated_token_file: /nonexistent/token", "");
        assert!(
            has(
                &e,
                "entra.federated_token_file: file \"/nonexistent/token\" does not exist"
            ),
            "{e:?}"
        );
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a pem").unwrap();
        let e = errors(
            &format!("  client_certificate: {{ cert: {junk:?}, key: {junk:?} }}"),
            "",
        );
        assert!(has(&e, "entra.client_certificate.cert: not a PEM certificate"), "{e:?}");
        let e = errors(&format!("  client_certificate: {{ cert: {junk:?} }}"), "");
        assert!(has(&e, "entra.client_certificate.key: required"), "{e:?}");
        assert!(errors("  client_certificate: { cert: \"\", key: \"\" }", "").is_empty());
    }

    #[test]
    fn secrets_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("client-secret");
        std::fs::write(&secret, "s3cr3t~value\n").unwrap();
        let pw = dir.path().join("redis-password");
        std::fs::write(&pw, "p@ss:word/x\r\n").unwrap();
        let yaml = format!(
            "{BASE}\nentra:\n  tenant_id: \"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"\n  client_id: \"11111111-1111-4111-8111-111111111111\"\n  client_secret_file: {secret:?}\nsession: {{ store: redis, redis_url: \"redis://127.0.0.1:6379/0\", redis_password_file: {pw:?} }}\n"
        );
        let c = Config::from_yaml(&yaml).unwrap();
        match &c.entra.credential {
            Some(super::super::ClientCredential::Secret(s)) => assert_eq!(s.expose(), "s3cr3t~value"),
            other => panic!("{other:?}"),
        }
        match &c.session.store {
            super::super::StoreConfig::Redis(super::super::RedisTarget::Standalone { url }) => {
                let u = url::Url::parse(url).unwrap();
                assert_eq!(u.password(), Some("p%40ss%3Aword%2Fx"), "percent-encoded in the URL");
                assert_eq!(u.host_str(), Some("127.0.0.1"));
                assert!(
                    !format!("{:?}", c.session.store).contains("p%40ss"),
                    "never in debug output"
                );
            }
            other => panic!("{other:?}"),
        }
        let e = errors(
            &format!("  client_secret: inline\n  client_secret_file: {secret:?}"),
            "",
        );
        assert!(has(&e, "entra.client_secret_file: set either"), "{e:?}");
        let e = errors("  client_secret_file: /nonexistent/secret", "");
        assert!(
            has(&e, "entra.client_secret_file: cannot read \"/nonexistent/secret\""),
            "{e:?}"
        );
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = errors(&format!("  client_secret_file: {empty:?}"), "");
        assert!(has(&e, "is empty"), "{e:?}");
    }

    #[test]
    fn directory_sync_rules() {
        let ok = "directory: { kind: builtin, sync: { enabled: true, interval: 30m } }";
        assert_eq!(errors("  client_secret: s", ok), Vec::<String>::new());
        let c = Config::from_yaml(&format!(
            "{BASE}\nentra:\n  tenant_id: \"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"\n  client_id: \"11111111-1111-4111-8111-111111111111\"\n  client_secret: s\n{ok}"
        ))
        .unwrap();
        assert!(c.directory_sync.enabled);
        assert_eq!(c.directory_sync.interval, std::time::Duration::from_secs(1800));
        // Off by default, every 6h when turned on without an interval.
        let c = Config::from_yaml(&format!(
            "{BASE}\nentra:\n  tenant_id: \"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\"\n  client_id: \"11111111-1111-4111-8111-111111111111\"\n"
        ))
        .unwrap();
        assert!(!c.directory_sync.enabled);
        assert_eq!(c.directory_sync.interval, std::time::Duration::from_secs(6 * 3600));
        let e = errors("", ok);
        assert!(has(&e, "directory.sync.enabled: needs entra.client_secret"), "{e:?}");
        let e = errors(
            "  client_secret: s",
            "directory: { kind: open, sync: { enabled: true } }",
        );
        assert!(
            has(&e, "directory.sync.enabled: only applies to directory.kind: builtin"),
            "{e:?}"
        );
        let e = errors(
            "  client_secret: s",
            "directory: { kind: builtin, sync: { interval: 1s, color: red } }",
        );
        assert!(has(&e, "directory.sync.interval"), "{e:?}");
        assert!(has(&e, "directory.sync.color"), "{e:?}");
        // Off, the interval is still checked but no credential is needed.
        assert_eq!(
            errors("", "directory: { kind: builtin, sync: { enabled: false } }"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn multi_tenant_rules() {
        let ok = "  tenant_type: multi\n  allowed_tenants: [\"BBBBBBBB-BBBB-4BBB-8BBB-BBBBBBBBBBBB\"]";
        assert_eq!(errors(ok, ""), Vec::<String>::new());
        let e = errors("  sign_in_scope: all", "");
        assert!(
            has(&e, "entra.sign_in_scope: only applies to entra.tenant_type: multi"),
            "{e:?}"
        );
        let e = errors("  allowed_tenants: [\"bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb\"]", "");
        assert!(has(&e, "entra.allowed_tenants: only applies"), "{e:?}");
        let e = errors("  csp_sync: { enabled: true }\n  client_secret: s", "");
        assert!(has(&e, "entra.csp_sync.enabled: only applies"), "{e:?}");
        let e = errors("  tenant_type: multi", "");
        assert!(
            has(
                &e,
                "entra.allowed_tenants: sign_in_scope: restricted with an empty list"
            ),
            "{e:?}"
        );
        let e = errors("  tenant_type: multi\n  csp_sync: { enabled: true }", "");
        assert!(has(&e, "needs entra.client_secret"), "{e:?}");
        assert_eq!(
            errors(
                "  tenant_type: multi\n  client_secret: s\n  csp_sync: { enabled: true }",
                ""
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            errors("  tenant_type: multi\n  sign_in_scope: all", ""),
            Vec::<String>::new()
        );
        let e = errors(ok, "sso: { auto_create_unmatched_users: true }");
        assert!(
            has(
                &e,
                "sso.auto_create_unmatched_users: only allowed with entra.tenant_type: single"
            ),
            "{e:?}"
        );
        let e = errors("  tenant_type: multi\n  allowed_tenants: [\"not-a-guid\"]", "");
        assert!(
            has(&e, "entra.allowed_tenants[0]: \"not-a-guid\" is not a GUID"),
            "{e:?}"
        );
    }

    #[test]
    fn redis_topologies() {
        let store = |v: &str| {
            let yaml = format!(
                "{BASE}\nentra: {{ tenant_id: \"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\", client_id: \"11111111-1111-4111-8111-111111111111\" }}\nsession: {{ store: redis, redis_url: {v} }}"
            );
            Config::from_yaml(&yaml).map(|c| c.session.store.describe())
        };
        assert_eq!(
            store("\"redis://127.0.0.1:6379/0\"").unwrap(),
            "redis redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            store("\"rediss://:secret@cache.example:6380\"").unwrap(),
            "redis rediss://:redacted@cache.example:6380"
        );
        assert_eq!(
            store("\"redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/halo\"").unwrap(),
            "redis sentinel: master \"halo\" from 2 sentinel(s), database 0"
        );
        assert_eq!(
            store("[\"redis://10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]").unwrap(),
            "redis cluster: 2 seed node(s)"
        );
        let e = store("\"redis+sentinel://u:hunter2@10.0.0.1/halo\"").unwrap_err();
        let text: Vec<String> = e.iter().map(ToString::to_string).collect();
        assert!(
            has(&text, "session.redis_url: sentinel URL needs host:port"),
            "{text:?}"
        );
        assert!(!text.iter().any(|t| t.contains("hunter2")), "{text:?}");
        let e = store("[\"redis+sentinel://10.0.0.1:1/m\"]").unwrap_err();
        assert!(e.iter().any(|e| e.to_string().contains("cluster nodes must be")));
    }

    #[test]
    fn clouds_and_hosts() {
        let c = Config::from_yaml(&format!(
            "{BASE}\nentra: {{ cloud: china, tenant_id: \"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\", client_id: \"11111111-1111-4111-8111-111111111111\" }}"
        ))
        .unwrap();
        assert_eq!(c.entra.authority_host, "https://login.chinacloudapi.cn");
        assert_eq!(c.entra.issuer_host, "https://login.partner.microsoftonline.cn");
        assert_eq!(c.entra.graph_host, "https://microsoftgraph.chinacloudapi.cn");
        let e = errors("  authority_host: \"http://login.example.com\"", "");
        assert!(
            has(&e, "entra.authority_host: plain http is accepted only for loopback"),
            "{e:?}"
        );
        let c = Config::from_yaml(&format!(
            "{BASE}\nentra: {{ cloud: usgov, authority_host: \"http://127.0.0.1:7000\", tenant_id: \"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa\", client_id: \"11111111-1111-4111-8111-111111111111\" }}"
        ))
        .unwrap();
        assert_eq!(
            c.entra.issuer_host, "http://127.0.0.1:7000",
            "an overridden authority is also the issuer host"
        );
        assert_eq!(c.entra.graph_host, "https://graph.microsoft.us");
    }

    #[test]
    fn client_tenants_need_multi() {
        let e = errors(
            "",
            "clients: [ { name: c, hosts: [c.example], tenant_id: \"cccccccc-cccc-4ccc-8ccc-cccccccccccc\" } ]",
        );
        assert!(
            has(
                &e,
                "clients[0].tenant_id: a tenant of its own needs entra.tenant_type: multi"
            ),
            "{e:?}"
        );
        let e = errors("", "clients: [ { name: c, hosts: [\"bad host!\"] } ]");
        assert!(has(&e, "clients[0].hosts[0]"), "{e:?}");
    }

    fn with_upstream(upstream: &str) -> Result<Config, Vec<String>> {
        let yaml = format!(
            "upstream: {upstream}\nportals: [ {{ name: agent, kind: agent, url: \"https://halo.example.com\" }} ]\nidentity: {{ audience: halo }}\nentra: {{ tenant_id: aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa, client_id: 11111111-1111-4111-8111-111111111111 }}\n"
        );
        Config::from_yaml(&yaml).map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn upstream_settings_and_their_defaults() {
        let c = with_upstream("{ url: \"http://halo-app:8080\" }").unwrap();
        let u = &c.upstream;
        assert_eq!((u.host.as_str(), u.port, u.tls), ("halo-app", 8080, false));
        assert_eq!(u.connect_timeout.as_secs(), 5);
        assert_eq!(u.read_timeout.as_secs(), 60);
        assert_eq!(u.write_timeout.as_secs(), 60);
        assert_eq!(u.idle_timeout.as_secs(), 60);
        assert!(u.tls_verify && u.ca_certs.is_empty());

        let c = with_upstream(
            "{ url: \"https://[::1]\", connect_timeout: 2s, read_timeout: 1m, write_timeout: 10s, idle_timeout: 30s, tls_verify: false, ca_file: \"\" }",
        )
        .unwrap();
        let u = &c.upstream;
        assert_eq!(
            (u.host.as_str(), u.sni.as_str(), u.port, u.tls),
            ("::1", "::1", 443, true)
        );
        assert_eq!(u.connect_timeout.as_secs(), 2);
        assert_eq!(u.read_timeout.as_secs(), 60);
        assert_eq!(u.write_timeout.as_secs(), 10);
        assert_eq!(u.idle_timeout.as_secs(), 30);
        assert!(!u.tls_verify);

        let e = with_upstream("{ url: \"http://a:1\", connect_timeout: 0s, read_timeout: soon, idle_timeout: 2h }")
            .unwrap_err();
        for key in [
            "upstream.connect_timeout",
            "upstream.read_timeout",
            "upstream.idle_timeout",
        ] {
            assert!(has(&e, key), "{key}: {e:?}");
        }
    }

    #[test]
    fn upstream_ca_file_is_read_and_checked_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, include_str!("../upstream/testdata/ca.pem")).unwrap();
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        let c = with_upstream(&format!("{{ url: \"https://app.internal\", ca_file: {good:?} }}")).unwrap();
        assert_eq!(c.upstream.ca_certs.len(), 1);
        let e = with_upstream(&format!("{{ url: \"https://app.internal\", ca_file: {bad:?} }}")).unwrap_err();
        assert!(
            has(&e, "upstream.ca_file") && has(&e, "not an X.509 certificate"),
            "{e:?}"
        );
        let e = with_upstream("{ url: \"https://app.internal\", ca_file: /nonexistent/ca.pem }").unwrap_err();
        assert!(has(&e, "upstream.ca_file: cannot read"), "{e:?}");
        let e = with_upstream(&format!("{{ url: \"http://app.internal\", ca_file: {good:?} }}")).unwrap_err();
        assert!(has(&e, "only used with an https upstream.url"), "{e:?}");
    }

    #[test]
    fn server_tls_files_are_read_and_paired_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ka) = crate::tls::tests::write_pair(dir.path(), "a");
        let (_, kb) = crate::tls::tests::write_pair(dir.path(), "b");
        let tls = |c: &std::path::Path, k: &std::path::Path| {
            format!(
                "server: {{ tls: {{ cert: {:?}, key: {:?} }} }}",
                c.display().to_string(),
                k.display().to_string()
            )
        };
        assert!(errors("", &tls(&ca, &ka)).is_empty());
        let e = errors("", &tls(&ca, &kb));
        assert!(
            has(&e, "server.tls: the private key") && has(&e, "does not belong"),
            "{e:?}"
        );
        let e = errors("", &tls(&ka, &ka));
        assert!(has(&e, "server.tls.cert: ") && has(&e, "no PEM certificate"), "{e:?}");
        let e = errors("", &tls(&ca, &ca));
        assert!(has(&e, "server.tls.key: ") && has(&e, "no PEM private key"), "{e:?}");
        let e = errors("", &tls(&ca, &dir.path().join("none.key")));
        assert!(has(&e, "server.tls.key: file") && has(&e, "does not exist"), "{e:?}");
    }
}
