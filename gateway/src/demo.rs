//! `entra-gateway demo`: the whole product on one machine, no Azure tenant.
//! Wires the mock Entra and the demo app (crate `mock-entra`) on a background
//! runtime, then the real gateway on the main thread.
//!
//! Compiled only with the `demo` cargo feature (on by default, off in
//! production builds), so that a production binary carries no mock.

use crate::config::Config;
use mock_entra::app::{DemoAppConfig, start as start_app};
use mock_entra::{MockApp, MockEntra, MockEntraConfig, MockUser};
use std::net::SocketAddr;

pub const DEMO_TENANT: &str = "7d6f0a1e-3c2b-4e5f-9a8b-1c2d3e4f5a6b";
pub const DEMO_CLIENT: &str = "0f1e2d3c-4b5a-4697-8887-a1b2c3d4e5f6";

pub struct DemoOptions {
    pub listen: SocketAddr,
}

pub fn demo_users() -> Vec<MockUser> {
    vec![
        MockUser {
            username: "alice@contoso.example".into(),
            name: "Alice Agent".into(),
            email: Some("alice@contoso.example".into()),
            oid: "a11ce000-0000-4000-8000-000000000001".into(),
            tenant: DEMO_TENANT.into(),
        },
        MockUser {
            username: "bob@contoso.example".into(),
            name: "Bob User".into(),
            email: Some("bob@contoso.example".into()),
            oid: "b0b00000-0000-4000-8000-000000000002".into(),
            tenant: DEMO_TENANT.into(),
        },
    ]
}

pub fn run(opts: DemoOptions) -> Result<(), Box<dyn std::error::Error>> {
    let gw = format!("http://{}", opts.listen);
    let rt = Box::leak(Box::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("demo")
            .enable_all()
            .build()?,
    ));
    let users = demo_users();
    let (entra, app_addr) = rt.block_on(async {
        let entra = MockEntra::start(
            MockEntraConfig {
                tenants: vec![DEMO_TENANT.into()],
                users: users.clone(),
                apps: vec![MockApp {
                    client_id: DEMO_CLIENT.into(),
                    secret: None,
                    redirect_uris: vec![
                        format!("{gw}/auth/account/azureresponse"),
                        format!("{gw}/portal/auth/account/azureresponse"),
                    ],
                    frontchannel_logout_url: Some(format!("{gw}/auth/account/frontchannel-logout")),
                    ..Default::default()
                }],
                ..Default::default()
            },
            "127.0.0.1:0".parse().expect("static"),
        )
        .await?;
        let app = start_app(
            DemoAppConfig {
                jwks_url: format!("{gw}/.well-known/entra-gateway/jwks.json"),
                audience: "demo-app".into(),
            },
            "127.0.0.1:0".parse().expect("static"),
        )
        .await?;
        Ok::<_, std::io::Error>((entra, app))
    })?;
    let yaml = format!(
        r##"
server: {{ listen: "{listen}", metrics_listen: "", insecure_dev_cookies: true }}
upstream: {{ url: "http://{app_addr}" }}
entra: {{ tenant_id: "{DEMO_TENANT}", client_id: "{DEMO_CLIENT}", authority_host: "{entra}" }}
sso: {{ single_logout: true }}
portals:
  - {{ name: agent, kind: agent, url: "{gw}", branding: {{ title: "Sign in to the agent app" }} }}
  - {{ name: portal, kind: user, url: "{gw}/portal", branding: {{ title: "Support portal", color: "#0f7b45" }} }}
identity: {{ audience: demo-app }}
"##,
        listen = opts.listen,
        entra = entra.base_url(),
    );
    let config = Config::from_yaml(&yaml).map_err(|e| format!("demo config: {e:?}"))?;
    println!("entra-gateway demo: NOT FOR PRODUCTION (mock Entra ID, in-memory sessions, plain http)");
    println!();
    println!("  open           {gw}/            (agent portal)");
    println!("                 {gw}/portal/     (user portal)");
    println!("  mock Entra ID  {}  (tenant {DEMO_TENANT})", entra.base_url());
    println!("  demo app       http://{app_addr}  (behind the gateway)");
    println!("  demo accounts  (no password: pick one on the mock sign-in page)");
    for u in &users {
        println!("                 {}  {}", u.username, u.name);
    }
    println!();
    crate::server::run(config, None)?;
    Ok(())
}
