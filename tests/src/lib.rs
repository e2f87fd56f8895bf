//! The whole-system test harness: the real `entra-gateway` binary, the mock
//! Entra ID and the verifying demo app (in-process), a real `redis-server`,
//! and a browser-like HTTP client with an explicit cookie jar.
//!
//! Run through `cargo test --workspace`, which builds the gateway binary
//! (the gateway crate has integration tests of its own, so cargo builds it).

pub mod browser;
pub mod processes;
pub mod topologies;

pub use browser::{Browser, FormPost, SetCookie};
pub use processes::{GatewayProcess, RedisServer, free_port, gateway_bin, redis_cli};
pub use topologies::{RedisCluster, RedisSentinels, TlsRedis};

use mock_entra::app::{DemoAppConfig, start as start_app};
use mock_entra::{MockApp, MockEntra, MockEntraConfig, MockUser};
use std::net::SocketAddr;

pub const TENANT: &str = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa";
pub const OTHER_TENANT: &str = "bbbbbbbb-2222-4222-8222-bbbbbbbbbbbb";
/// A tenant only the CSP sync knows about.
pub const CUSTOMER_TENANT: &str = "cccccccc-3333-4333-8333-cccccccccccc";
/// A tenant no configuration allows.
pub const STRANGER_TENANT: &str = "dddddddd-4444-4444-8444-dddddddddddd";
pub const CLIENT_ID: &str = "c1c1c1c1-3333-4333-8333-c1c1c1c1c1c1";
pub const CLIENT_SECRET: &str = "test-secret-value-9f8e7d";
pub const AUDIENCE: &str = "test-app";

pub fn users() -> Vec<MockUser> {
    vec![
        MockUser {
            username: "alice@contoso.example".into(),
            name: "Alice Agent".into(),
            email: Some("alice@contoso.example".into()),
            oid: "a11ce000-0000-4000-8000-000000000001".into(),
            tenant: TENANT.into(),
        },
        MockUser {
            username: "zoe@contoso.example".into(),
            name: "Zoë Ünicode".into(),
            email: None,
            oid: "20e00000-0000-4000-8000-000000000003".into(),
            tenant: TENANT.into(),
        },
        MockUser {
            username: "mallory@fabrikam.example".into(),
            name: "Mallory Other".into(),
            email: Some("alice@contoso.example".into()),
            oid: "3a110000-0000-4000-8000-000000000004".into(),
            tenant: OTHER_TENANT.into(),
        },
        MockUser {
            username: "carol@northwind.example".into(),
            name: "Carol Customer".into(),
            email: Some("carol@northwind.example".into()),
            oid: "ca201000-0000-4000-8000-000000000005".into(),
            tenant: CUSTOMER_TENANT.into(),
        },
        MockUser {
            username: "dave@stranger.example".into(),
            name: "Dave Stranger".into(),
            email: Some("dave@stranger.example".into()),
            oid: "da7e0000-0000-4000-8000-000000000006".into(),
            tenant: STRANGER_TENANT.into(),
        },
    ]
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// No client secret: id_token + form_post.
    IdToken,
    /// Client secret: code + PKCE + form_post.
    Code,
}

pub struct Options {
    pub flow: Flow,
    pub redis_url: Option<String>,
    /// Seed nodes of a Redis Cluster (`redis_url` as a list); wins over `redis_url`.
    pub redis_cluster: Vec<String>,
    /// Extra environment of every gateway process.
    pub env: Vec<(String, String)>,
    pub single_logout: bool,
    pub federated_domain: Option<String>,
    /// Cookies without `Secure` (plain http). Off: the test acts as a TLS
    /// terminator (trusted proxy + X-Forwarded-Proto: https).
    pub insecure_dev_cookies: bool,
    /// Extra top-level YAML appended to the config.
    pub extra_yaml: String,
    /// Extra keys inside `server:` and `upstream:` (each `key: value`).
    pub server_extra: Vec<String>,
    pub upstream_extra: Vec<String>,
    /// `sso.auto_redirect_agents` and `_users` (the login page when off).
    pub auto_redirect: bool,
    /// Extra `sso:` keys, e.g. `", users: false"`.
    pub sso_extra: String,
    /// Extra lines inside `entra:` (each indented by two spaces).
    pub entra_extra: String,
    /// Changes to the mock Entra before it starts.
    pub mock: fn(&mut MockEntraConfig),
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flow: Flow::IdToken,
            redis_url: None,
            redis_cluster: Vec::new(),
            env: Vec::new(),
            single_logout: true,
            federated_domain: None,
            insecure_dev_cookies: true,
            extra_yaml: String::new(),
            server_extra: Vec::new(),
            upstream_extra: Vec::new(),
            entra_extra: String::new(),
            auto_redirect: true,
            sso_extra: String::new(),
            mock: |_| {},
        }
    }
}

/// The mock Entra of the tests: two tenants, the test users, one app
/// registration whose redirect URIs are both portals' under `portal_url`.
pub fn mock_config(portal_url: &str) -> MockEntraConfig {
    MockEntraConfig {
        tenants: vec![
            TENANT.into(),
            OTHER_TENANT.into(),
            CUSTOMER_TENANT.into(),
            STRANGER_TENANT.into(),
        ],
        users: users(),
        apps: vec![MockApp {
            client_id: CLIENT_ID.into(),
            secret: Some(CLIENT_SECRET.into()),
            redirect_uris: [portal_url.to_string(), portal_url.replace("127.0.0.1", "localhost")]
                .iter()
                .flat_map(|u| {
                    [
                        format!("{u}/auth/account/azureresponse"),
                        format!("{u}/portal/auth/account/azureresponse"),
                    ]
                })
                .collect(),
            frontchannel_logout_url: Some(format!("{portal_url}/auth/account/frontchannel-logout")),
        }],
        ..Default::default()
    }
}

/// One gateway in front of the verifying app, against the mock Entra.
pub struct Harness {
    pub entra: MockEntra,
    pub gateway: GatewayProcess,
    pub app: SocketAddr,
    /// `http://127.0.0.1:<port>`: where tests connect.
    pub base: String,
    /// The agent portal's public URL (https when not insecure_dev_cookies).
    pub portal_url: String,
    pub options: Options,
}

impl Harness {
    pub async fn start(options: Options) -> Harness {
        Self::start_on(options, free_port()).await
    }

    /// On a chosen gateway port (for configs that must name it).
    pub async fn start_on(options: Options, port: u16) -> Harness {
        let metrics_port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let scheme = if options.insecure_dev_cookies { "http" } else { "https" };
        let portal_url = format!("{scheme}://127.0.0.1:{port}");
        let mut mock = mock_config(&portal_url);
        (options.mock)(&mut mock);
        let entra = MockEntra::start(mock, "127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("mock Entra starts");
        let app = start_app(
            DemoAppConfig {
                jwks_url: format!("{base}/.well-known/entra-gateway/jwks.json"),
                audience: AUDIENCE.into(),
            },
            "127.0.0.1:0".parse().expect("addr"),
        )
        .await
        .expect("app starts");
        let yaml = Self::config_yaml(&options, port, metrics_port, &portal_url, entra.base_url(), app);
        let gateway = GatewayProcess::start_with_env(&yaml, port, metrics_port, &options.env).await;
        Harness {
            entra,
            gateway,
            app,
            base,
            portal_url,
            options,
        }
    }

    pub fn config_yaml(
        o: &Options,
        port: u16,
        metrics_port: u16,
        portal_url: &str,
        entra: &str,
        app: SocketAddr,
    ) -> String {
        let store = match &o.redis_url {
            _ if !o.redis_cluster.is_empty() => format!(
                "{{ store: redis, redis_url: {:?}, redis_key_prefix: \"egtest:\" }}",
                o.redis_cluster
            ),
            Some(u) => {
                format!("{{ store: redis, redis_url: \"{u}\", redis_key_prefix: \"egtest:\" }}")
            }
            None => "{ store: memory }".into(),
        };
        let secret = match o.flow {
            Flow::Code => format!("client_secret: \"{CLIENT_SECRET}\""),
            Flow::IdToken => String::new(),
        };
        let fed = o
            .federated_domain
            .as_ref()
            .map(|d| format!("federated_domain: \"{d}\""))
            .unwrap_or_default();
        let trusted = if o.insecure_dev_cookies {
            "[]"
        } else {
            "[\"127.0.0.1/32\"]"
        };
        format!(
            r#"
server:
  listen: "127.0.0.1:{port}"
  metrics_listen: "127.0.0.1:{metrics_port}"
  threads: 2
  insecure_dev_cookies: {insecure}
  trusted_proxies: {trusted}
{server_extra}
upstream: {{ url: "http://{app}"{upstream_extra} }}
entra:
  tenant_id: "{TENANT}"
  client_id: "{CLIENT_ID}"
  authority_host: "{entra}"
  {secret}
  {fed}
  {entra_extra}
sso: {{ single_logout: {slo}, auto_redirect_agents: {auto}, auto_redirect_users: {auto}{sso_extra} }}
portals:
  - {{ name: agent, kind: agent, url: "{portal_url}" }}
  - {{ name: portal, kind: user, url: "{portal_url}/portal" }}
session: {store}
identity: {{ audience: "{AUDIENCE}" }}
routes: {{ public: ["/public/*"] }}
{extra}
"#,
            insecure = o.insecure_dev_cookies,
            slo = o.single_logout,
            auto = o.auto_redirect,
            sso_extra = o.sso_extra,
            extra = o.extra_yaml,
            server_extra = o.server_extra.iter().map(|l| format!("  {l}\n")).collect::<String>(),
            upstream_extra = o.upstream_extra.iter().map(|l| format!(", {l}")).collect::<String>(),
            entra_extra = o.entra_extra.replace("{MOCK}", entra),
        )
    }

    /// Another gateway process with this harness' options, on its own port
    /// (same store, mock and app), and a browser pointed at it.
    pub async fn another_instance(&self) -> (GatewayProcess, Browser) {
        let port = free_port();
        let mport = free_port();
        let portal = format!("http://127.0.0.1:{port}");
        let yaml = Self::config_yaml(&self.options, port, mport, &portal, self.entra.base_url(), self.app);
        (
            GatewayProcess::start_with_env(&yaml, port, mport, &self.options.env).await,
            Browser::new(&portal, false),
        )
    }

    /// Runs an `entra-gateway` subcommand against this harness' configuration
    /// (same store, mock, app), as an operator would: `ARGS --config FILE`.
    pub fn command(&self, args: &[&str]) -> std::process::Output {
        self.command_with_env(args, &self.options.env)
    }

    /// [`command`](Self::command) with this environment instead of the options' one.
    pub fn command_with_env(&self, args: &[&str], env: &[(String, String)]) -> std::process::Output {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("gateway.yaml");
        let yaml = Self::config_yaml(
            &self.options,
            free_port(),
            free_port(),
            &self.portal_url,
            self.entra.base_url(),
            self.app,
        );
        std::fs::write(&cfg, yaml).expect("write config");
        std::process::Command::new(gateway_bin())
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg("--config")
            .arg(&cfg)
            .output()
            .expect("run gateway")
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base, !self.options.insecure_dev_cookies)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Signs `user` in through the mock's login form; returns the browser.
    pub async fn signed_in(&self, user: &str) -> Browser {
        let b = self.browser();
        let landed = b.sign_in(&self.url("/"), user).await;
        assert_eq!(landed, "/", "sign-in returns to the page it started from");
        b
    }

    /// Reads a Prometheus counter value (sum over series matching `labels`).
    pub async fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.gateway.metrics_port))
            .await
            .expect("metrics reachable")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// Starts a login at `start`, mints a token for it (as `mutate` says) and
/// posts it to the callback, as an attacker or a broken IdP would.
pub async fn attempt_at(
    h: &Harness,
    b: &Browser,
    start: &str,
    mutate: impl FnOnce(&mut mock_entra::TokenSpec),
) -> browser::Resp {
    let a = b.begin_login(start).await;
    let mut spec = mock_entra::TokenSpec {
        user: "alice@contoso.example".into(),
        client_id: CLIENT_ID.into(),
        nonce: a.param("nonce").map(str::to_string),
        ..Default::default()
    };
    mutate(&mut spec);
    let token = h.entra.mint(&spec);
    let fp = FormPost {
        action: a.param("redirect_uri").expect("redirect_uri").to_string(),
        fields: vec![
            ("id_token".into(), token),
            ("state".into(), a.param("state").expect("state").to_string()),
        ],
    };
    b.deliver(&fp).await
}

pub async fn attempt(h: &Harness, b: &Browser, mutate: impl FnOnce(&mut mock_entra::TokenSpec)) -> browser::Resp {
    attempt_at(h, b, "/", mutate).await
}

/// A refusal as SPEC §6 wants it: 4xx, answered directly, the reason in the
/// page, no session, still signed out.
pub async fn assert_refused(b: &Browser, r: &browser::Resp, reason: &str) {
    assert!(
        (400..500).contains(&r.status),
        "refusal is 4xx, got {}: {}",
        r.status,
        r.body
    );
    assert!(
        r.location().is_none(),
        "refusals are answered directly, never redirected"
    );
    assert!(
        r.body.contains(&format!("<span id=\"reason\">{reason}</span>")),
        "reason {reason} in page:\n{}",
        r.body
    );
    assert!(
        r.set_cookies
            .iter()
            .all(|c| !c.name.ends_with("_agent") || c.is_deletion()),
        "no session cookie on refusal"
    );
    assert_eq!(b.whoami().await.status, 401, "still signed out");
}

/// Polls until every browser's `/api/whoami` is refused (401); returns how
/// long that took. Fails the test after `within`.
pub async fn until_refused(browsers: &[&Browser], within: std::time::Duration) -> std::time::Duration {
    let start = std::time::Instant::now();
    loop {
        let mut all = true;
        for b in browsers {
            if b.whoami().await.status != 401 {
                all = false;
            }
        }
        if all {
            return start.elapsed();
        }
        assert!(start.elapsed() < within, "still signed in after {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Gives `to` the agent-portal session of `from` (the same session used
/// through another instance).
pub fn copy_session(from: &Browser, to: &Browser) {
    const AGENT_COOKIE: &str = "entra_gw_agent";
    to.set_cookie(AGENT_COOKIE, &from.cookie(AGENT_COOKIE).expect("a session cookie"));
}
