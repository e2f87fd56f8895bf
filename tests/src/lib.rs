//! The whole-system test harness: the real `entra-gateway` binary, the mock
//! Entra ID and the verifying demo app (in-process), a real `redis-server`,
//! and a browser-like HTTP client with an explicit cookie jar.
//!
//! Run through `cargo test --workspace`, which builds the gateway binary
//! (the gateway crate has integration tests of its own, so cargo builds it).

pub mod browser;
pub mod config;
pub mod processes;
pub mod topologies;

pub use browser::{Browser, FormPost, SetCookie};
pub use config::{Patch, Wiring, deep_merge};
pub use processes::{GatewayProcess, RedisServer, free_port, gateway_bin, redis_cli};
pub use topologies::{RedisCluster, RedisSentinels, TlsRedis};

use mock_entra::app::{DemoAppConfig, start as start_app};
use mock_entra::{MockApp, MockEntra, MockEntraConfig, MockUser};
use serde_json::json;
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
    /// `sso.auto_redirect_agents` and `_users` (the login page when off).
    pub auto_redirect: bool,
    /// Merged, in order, onto the configuration the fields above describe
    /// (see [`Options::patch`]).
    pub patches: Vec<Patch>,
    /// Changes to the mock Entra before it starts.
    pub mock: fn(&mut MockEntraConfig),
    /// A command every gateway process runs under (see
    /// [`GatewayProcess::start_wrapped`]), e.g. to give it its own `/etc/hosts`.
    pub wrap: Option<Vec<String>>,
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
            auto_redirect: true,
            patches: Vec::new(),
            mock: |_| {},
            wrap: None,
        }
    }
}

impl Options {
    /// Changes configuration keys: `patch` is merged onto the configuration
    /// as [`deep_merge`] says (`null` removes a key, arrays replace).
    pub fn patch(mut self, patch: serde_json::Value) -> Self {
        self.patches.push(Patch::Fixed(patch));
        self
    }

    /// A patch that names where things listen (the mock Entra, the ports).
    pub fn patch_wired(mut self, patch: fn(&Wiring) -> serde_json::Value) -> Self {
        self.patches.push(Patch::Wired(patch));
        self
    }

    /// The gateway configuration these options describe, for this wiring.
    pub fn config(&self, w: &Wiring) -> serde_json::Value {
        let mut session = json!({"store": "redis", "redis_key_prefix": "egtest:"});
        if !self.redis_cluster.is_empty() {
            session["redis_url"] = json!(self.redis_cluster);
        } else if let Some(u) = &self.redis_url {
            session["redis_url"] = json!(u);
        } else {
            session = json!({"store": "memory"});
        }
        let mut entra = json!({
            "tenant_id": TENANT,
            "client_id": CLIENT_ID,
            "authority_host": w.entra,
        });
        if self.flow == Flow::Code {
            entra["client_secret"] = json!(CLIENT_SECRET);
        }
        if let Some(d) = &self.federated_domain {
            entra["federated_domain"] = json!(d);
        }
        let trusted: &[&str] = if self.insecure_dev_cookies {
            &[]
        } else {
            &["127.0.0.1/32"]
        };
        let mut config = json!({
            "server": {
                "listen": format!("127.0.0.1:{}", w.port),
                "metrics_listen": format!("127.0.0.1:{}", w.metrics_port),
                "threads": 2,
                "insecure_dev_cookies": self.insecure_dev_cookies,
                "trusted_proxies": trusted,
            },
            "upstream": {"url": format!("http://{}", w.app)},
            "entra": entra,
            "sso": {
                "single_logout": self.single_logout,
                "auto_redirect_agents": self.auto_redirect,
                "auto_redirect_users": self.auto_redirect,
            },
            "portals": [
                {"name": "agent", "kind": "agent", "url": w.portal_url},
                {"name": "portal", "kind": "user", "url": format!("{}/portal", w.portal_url)},
            ],
            "session": session,
            "identity": {"audience": AUDIENCE},
            "routes": {"public": ["/public/*"]},
        });
        for p in &self.patches {
            deep_merge(&mut config, p.value(w));
        }
        config
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
            ..Default::default()
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
        let wiring = Wiring {
            port,
            metrics_port,
            portal_url: portal_url.clone(),
            entra: entra.base_url().to_string(),
            app,
        };
        let gateway = GatewayProcess::start_wrapped(
            &options.config(&wiring),
            port,
            metrics_port,
            &options.env,
            options.wrap.as_deref(),
        )
        .await;
        Harness {
            entra,
            gateway,
            app,
            base,
            portal_url,
            options,
        }
    }

    /// Where a gateway of this harness listens, at `port` and `portal_url`
    /// (same mock and app).
    pub fn wiring(&self, port: u16, metrics_port: u16, portal_url: &str) -> Wiring {
        Wiring {
            port,
            metrics_port,
            portal_url: portal_url.to_string(),
            entra: self.entra.base_url().to_string(),
            app: self.app,
        }
    }

    /// Another gateway process with this harness' options, on its own port
    /// (same store, mock and app), and a browser pointed at it.
    pub async fn another_instance(&self) -> (GatewayProcess, Browser) {
        let port = free_port();
        let mport = free_port();
        let portal = format!("http://127.0.0.1:{port}");
        let config = self.options.config(&self.wiring(port, mport, &portal));
        (
            GatewayProcess::start_wrapped(&config, port, mport, &self.options.env, self.options.wrap.as_deref()).await,
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
        let config = self
            .options
            .config(&self.wiring(free_port(), free_port(), &self.portal_url));
        std::fs::write(&cfg, config::to_yaml(&config)).expect("write config");
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

    /// Waits (up to 20 s) until the sum of `name{labels}` reaches `at_least`.
    pub async fn wait_for_metric(&self, name: &str, labels: &[(&str, &str)], at_least: f64) {
        let start = std::time::Instant::now();
        while self.metric(name, labels).await < at_least {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "{name}{labels:?} never reached {at_least}:\n{}",
                self.gateway.logs()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use entra_gateway::config::Config;

    fn wiring() -> Wiring {
        Wiring {
            port: 18080,
            metrics_port: 18081,
            portal_url: "http://127.0.0.1:18080".into(),
            entra: "http://127.0.0.1:18082".into(),
            app: "127.0.0.1:18083".parse().expect("addr"),
        }
    }

    /// The configuration as JSON goes through the gateway's YAML loader
    /// and validation, in every shape the options give it.
    #[test]
    fn the_harness_config_loads_as_the_gateways_yaml() {
        let shapes = [
            Options::default(),
            Options {
                flow: Flow::Code,
                redis_url: Some("redis://127.0.0.1:6399/0".into()),
                federated_domain: Some("contoso.example".into()),
                insecure_dev_cookies: false,
                single_logout: false,
                auto_redirect: false,
                ..Options::default()
            },
            Options {
                redis_cluster: vec!["redis://127.0.0.1:7001".into(), "redis://127.0.0.1:7002".into()],
                ..Options::default()
            }
            .patch(json!({"entra": {"tenant_type": "multi", "allowed_tenants": [TENANT, OTHER_TENANT]}}))
            .patch(json!({"server": {"login_rate": {"per_ip": "1000/s", "burst": 1000}}})),
        ];
        for o in shapes {
            let mut w = wiring();
            if !o.insecure_dev_cookies {
                // Behind a TLS terminator, as `Harness::start` has it.
                w.portal_url = w.portal_url.replace("http:", "https:");
            }
            let text = config::to_yaml(&o.config(&w));
            if let Err(e) = Config::from_yaml(&text) {
                panic!("{e:?}\n{text}");
            }
        }
    }

    #[test]
    fn patches_apply_in_order_and_wired_ones_see_the_wiring() {
        let o = Options::default()
            .patch(json!({"sso": {"users": false}}))
            .patch(json!({"sso": {"users": null, "published": false}}))
            .patch_wired(|w| json!({"entra": {"graph_host": w.entra}}));
        let c = o.config(&wiring());
        assert_eq!(c["sso"].get("users"), None);
        assert_eq!(c["sso"]["published"], false);
        assert_eq!(c["sso"]["single_logout"], true, "untouched keys stay");
        assert_eq!(c["entra"]["graph_host"], "http://127.0.0.1:18082");
    }
}
