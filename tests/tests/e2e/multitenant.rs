//! Multi-tenant sign-in (issue 3): the issuer per `tid`, the tenant
//! allow-list decided before any fetch, national clouds, per-client tenants,
//! and the CSP tenant sync.

use e2e::*;
use serde_json::{Value, json};

fn multi(allowed: &[&str]) -> Options {
    Options::default().patch(json!({"entra": {"tenant_type": "multi", "allowed_tenants": allowed}}))
}

fn set(spec: &mut mock_entra::TokenSpec, k: &str, v: Value) {
    spec.claims.insert(k.into(), v);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mock_serves_per_tenant_issuers_and_the_organizations_template() {
    let h = Harness::start(multi(&[TENANT])).await;
    let get = |path: String| async move { reqwest::get(path).await.unwrap().json::<Value>().await.unwrap() };
    let base = h.entra.base_url();
    for t in [TENANT, OTHER_TENANT] {
        let d = get(format!("{base}/{t}/v2.0/.well-known/openid-configuration")).await;
        assert_eq!(d["issuer"], format!("{base}/{t}/v2.0"));
        let keys = get(d["jwks_uri"].as_str().unwrap().to_string()).await;
        for k in keys["keys"].as_array().unwrap() {
            assert_eq!(
                k["issuer"],
                format!("{base}/{t}/v2.0"),
                "each JWK names its tenant's issuer"
            );
            assert!(k.get("alg").is_none(), "Entra's JWKs carry no alg");
        }
    }
    let d = get(format!("{base}/organizations/v2.0/.well-known/openid-configuration")).await;
    assert_eq!(d["issuer"], format!("{base}/{{tenantid}}/v2.0"));
    assert_eq!(
        d["authorization_endpoint"],
        format!("{base}/organizations/oauth2/v2.0/authorize")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_allowed_tenant_signs_in_through_organizations() {
    let h = Harness::start(multi(&[TENANT, OTHER_TENANT])).await;
    let b = h.browser();
    let a = b.begin_login("/").await;
    assert!(
        a.url
            .starts_with(&format!("{}/organizations/oauth2/v2.0/authorize?", h.entra.base_url())),
        "{}",
        a.url
    );
    let fp = b.idp_sign_in(&a, "mallory@fabrikam.example").await;
    assert_eq!(b.deliver(&fp).await.status, 303);
    let j = b.whoami().await.json();
    assert_eq!(j["claims"]["tid"], OTHER_TENANT);
    assert_eq!(
        j["claims"]["sub"],
        format!("{OTHER_TENANT}:3a110000-0000-4000-8000-000000000004")
    );
    assert_eq!(
        h.entra.jwks_fetch_count("organizations"),
        0,
        "keys come from the token's tenant"
    );
    assert_eq!(h.entra.jwks_fetch_count(OTHER_TENANT), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn upper_case_guids_in_the_allow_list_match() {
    let upper = OTHER_TENANT.to_ascii_uppercase();
    let h = Harness::start(multi(&[&upper])).await;
    let b = h.browser();
    let r = attempt(&h, &b, |s| s.user = "mallory@fabrikam.example".into()).await;
    assert_eq!(r.status, 303, "{}", r.body);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_not_on_the_list_is_refused_before_anything_is_fetched_for_it() {
    let h = Harness::start(multi(&[TENANT])).await;
    let b = h.browser();
    let r = attempt(&h, &b, |s| s.user = "mallory@fabrikam.example".into()).await;
    assert_refused(&b, &r, "tenant_not_allowed").await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains(&format!("Tenant {OTHER_TENANT} is not allowed")),
        "{}",
        r.body
    );
    assert_eq!(
        h.entra.jwks_fetch_count(OTHER_TENANT),
        0,
        "decided before any fetch for that tenant"
    );
    assert_eq!(
        h.metric("entra_gateway_signins_total", &[("reason", "tenant_not_allowed")])
            .await,
        1.0
    );
    assert!(h.gateway.logs().contains(OTHER_TENANT), "the log line names the tenant");
}

/// Each issuer/tenant rule, with alice's otherwise valid token.
async fn refused_in_multi(mutate: impl FnOnce(&mut mock_entra::TokenSpec, &Harness), reason: &str) {
    let h = Harness::start(multi(&[TENANT, OTHER_TENANT])).await;
    let b = h.browser();
    assert_eq!(
        attempt(&h, &b, |_| {}).await.status,
        303,
        "control: the unmodified token is accepted"
    );
    let b = h.browser();
    let r = attempt(&h, &b, |s| mutate(s, &h)).await;
    assert_refused(&b, &r, reason).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn issuer_of_another_tenant_than_tid() {
    refused_in_multi(
        |s, h| set(s, "iss", json!(h.entra.issuer(OTHER_TENANT))),
        "wrong_issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tid_of_another_tenant_than_the_issuer() {
    refused_in_multi(|s, _| set(s, "tid", json!(OTHER_TENANT)), "wrong_issuer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn literal_template_issuer() {
    refused_in_multi(
        |s, h| set(s, "iss", json!(format!("{}/{{tenantid}}/v2.0", h.entra.base_url()))),
        "wrong_issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn organizations_issuer() {
    refused_in_multi(
        |s, h| set(s, "iss", json!(format!("{}/organizations/v2.0", h.entra.base_url()))),
        "wrong_issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn trailing_slash_issuer() {
    refused_in_multi(
        |s, h| set(s, "iss", json!(format!("{}/", h.entra.issuer(TENANT)))),
        "wrong_issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn v1_sts_issuer() {
    refused_in_multi(
        |s, _| set(s, "iss", json!(format!("https://sts.windows.net/{TENANT}/"))),
        "wrong_issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_clouds_issuer_host() {
    refused_in_multi(
        |s, _| {
            set(
                s,
                "iss",
                json!(format!("https://login.microsoftonline.us/{TENANT}/v2.0")),
            )
        },
        "wrong_issuer",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tid_that_is_not_a_guid() {
    refused_in_multi(
        |s, h| {
            set(s, "tid", json!("contoso.onmicrosoft.com"));
            set(
                s,
                "iss",
                json!(format!("{}/contoso.onmicrosoft.com/v2.0", h.entra.base_url())),
            );
        },
        "tid_invalid",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_tid() {
    refused_in_multi(|s, _| set(s, "tid", Value::Null), "tid_invalid").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn jwk_whose_issuer_names_another_tenant() {
    let h = Harness::start(multi(&[TENANT, OTHER_TENANT])).await;
    h.entra.set_key_issuer(TENANT, &h.entra.issuer(OTHER_TENANT));
    let b = h.browser();
    let r = attempt(&h, &b, |_| {}).await;
    assert_refused(&b, &r, "jwk_issuer_mismatch").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clients_login_goes_to_its_tenant_and_requires_its_tid() {
    let port = free_port();
    let mport = free_port();
    let mut o = multi(&[TENANT, OTHER_TENANT]).patch(json!({
        "clients": [{
            "name": "contoso",
            // The client's host: `localhost:<port>` (the gateway's own port).
            "hosts": [format!("localhost:{port}")],
            "tenant_id": TENANT,
            "federated_domain": "contoso.example",
        }],
    }));
    o.federated_domain = Some("halo.example".into());
    // Start by hand to use the port chosen above.
    let portal = format!("http://127.0.0.1:{port}");
    let entra = mock_entra::MockEntra::start(mock_config(&portal), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let app = mock_entra::app::start(
        mock_entra::app::DemoAppConfig {
            jwks_url: format!("{portal}/.well-known/entra-gateway/jwks.json"),
            audience: AUDIENCE.into(),
        },
        "127.0.0.1:0".parse().unwrap(),
    )
    .await
    .unwrap();
    let wiring = Wiring {
        port,
        metrics_port: mport,
        portal_url: portal.clone(),
        entra: entra.base_url().to_string(),
        app,
    };
    let _g = GatewayProcess::start(&o.config(&wiring), port, mport).await;
    let h_entra = entra;

    // At the client's host: its tenant's authority, its domain_hint, its redirect URI.
    let b = Browser::new(&format!("http://localhost:{port}"), false);
    let a = b.begin_login("/").await;
    assert!(
        a.url
            .starts_with(&format!("{}/{TENANT}/oauth2/v2.0/authorize?", h_entra.base_url())),
        "{}",
        a.url
    );
    assert_eq!(a.param("domain_hint"), Some("contoso.example"));
    assert_eq!(
        a.param("redirect_uri").map(str::to_string),
        Some(format!("http://localhost:{port}/auth/account/azureresponse"))
    );
    let fp = b.idp_sign_in(&a, "alice@contoso.example").await;
    assert_eq!(b.deliver(&fp).await.status, 303);
    assert_eq!(b.whoami().await.json()["claims"]["client"], "contoso");

    // A genuine token of another (allowed) tenant is refused on a contoso login.
    let b = Browser::new(&format!("http://localhost:{port}"), false);
    let a = b.begin_login("/").await;
    let token = h_entra.mint(&mock_entra::TokenSpec {
        user: "mallory@fabrikam.example".into(),
        client_id: CLIENT_ID.into(),
        nonce: a.param("nonce").map(str::to_string),
        ..Default::default()
    });
    let r = b
        .deliver(&FormPost {
            action: a.param("redirect_uri").unwrap().into(),
            fields: vec![
                ("id_token".into(), token),
                ("state".into(), a.param("state").unwrap().into()),
            ],
        })
        .await;
    assert_refused(&b, &r, "tenant_not_allowed").await;

    // Elsewhere, the organizations authority and the global domain_hint.
    let b = Browser::new(&format!("http://127.0.0.1:{port}"), false);
    let a = b.begin_login("/").await;
    assert!(a.url.contains("/organizations/oauth2/v2.0/authorize?"));
    assert_eq!(a.param("domain_hint"), Some("halo.example"));
}

fn cloud(cloud: &str, issuer_host: &'static str, tenants: Value) -> Options {
    let mut o = Options::default()
        .patch(json!({"entra": {"cloud": cloud, "issuer_host": issuer_host}}))
        .patch(json!({"entra": tenants}));
    o.mock = match issuer_host {
        "https://login.microsoftonline.us" => |m| m.issuer_host = Some("https://login.microsoftonline.us".into()),
        _ => |m| m.issuer_host = Some("https://login.partner.microsoftonline.cn".into()),
    };
    o
}

#[tokio::test(flavor = "multi_thread")]
async fn usgov_end_to_end() {
    let h = Harness::start(cloud("usgov", "https://login.microsoftonline.us", json!({}))).await;
    let b = h.signed_in("alice@contoso.example").await;
    assert_eq!(b.whoami().await.json()["claims"]["tid"], TENANT);
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        set(
            s,
            "iss",
            json!(format!("https://login.microsoftonline.com/{TENANT}/v2.0")),
        )
    })
    .await;
    assert_refused(&b, &r, "wrong_issuer").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn china_end_to_end_multi_tenant() {
    let h = Harness::start(cloud(
        "china",
        "https://login.partner.microsoftonline.cn",
        json!({"tenant_type": "multi", "allowed_tenants": [TENANT, OTHER_TENANT]}),
    ))
    .await;
    let b = h.browser();
    let landed = b.sign_in("/", "mallory@fabrikam.example").await;
    assert_eq!(landed, "/");
    assert_eq!(b.whoami().await.json()["claims"]["tid"], OTHER_TENANT);
    // The sign-in host is not the issuer host in this cloud.
    let b = h.browser();
    let r = attempt(&h, &b, |s| {
        set(s, "iss", json!(format!("https://login.chinacloudapi.cn/{TENANT}/v2.0")))
    })
    .await;
    assert_refused(&b, &r, "wrong_issuer").await;
}

fn csp_options(redis: Option<String>) -> Options {
    Options {
        flow: Flow::Code,
        redis_url: redis,
        mock: |m| {
            m.contracts = vec![
                CUSTOMER_TENANT.to_ascii_uppercase(),
                "not-a-tenant-guid".into(),
                OTHER_TENANT.into(),
                CUSTOMER_TENANT.into(),
            ];
        },
        ..Options::default()
    }
    .patch(json!({"entra": {
        "tenant_type": "multi",
        "allowed_tenants": [TENANT],
        "csp_sync": {"enabled": true, "interval": "5s"},
    }}))
    // Graph is the mock too.
    .patch_wired(|w| json!({"entra": {"graph_host": w.entra}}))
}

#[tokio::test(flavor = "multi_thread")]
async fn csp_sync_allows_customers_and_a_failure_keeps_the_last_good_list() {
    let h = Harness::start(csp_options(None)).await;
    h.wait_for_metric("entra_gateway_csp_syncs_total", &[("result", "ok")], 1.0)
        .await;
    assert!(h.entra.graph_calls() >= 2, "two pages read");
    let b = h.browser();
    b.sign_in("/", "carol@northwind.example").await; // a tenant added only by the CSP sync
    assert!(
        h.gateway.logs().contains("not-a-tenant-guid"),
        "a malformed customerId is skipped and logged"
    );
    assert_eq!(h.metric("entra_gateway_csp_tenants", &[]).await, 2.0);

    h.entra.fail_graph(Some(403));
    h.wait_for_metric("entra_gateway_csp_syncs_total", &[("result", "error")], 1.0)
        .await;
    let b = h.browser();
    b.sign_in("/", "carol@northwind.example").await; // the last good list stays after a 403
    let ready = reqwest::get(h.url("/.well-known/entra-gateway/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200, "degraded, not down");
    assert_eq!(ready.json::<Value>().await.unwrap()["status"], "degraded");
    // Never "allow all": a tenant neither listed nor synced is still refused.
    let b = h.browser();
    let a = b.begin_login("/").await;
    let fp = b.idp_sign_in(&a, "dave@stranger.example").await;
    let r = b.deliver(&fp).await;
    assert_refused(&b, &r, "tenant_not_allowed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_sync_command_merges_pages_and_shares_the_list_through_redis() {
    let redis = RedisServer::start();
    let h = Harness::start(csp_options(Some(redis.url()))).await;
    redis.cli(&["del", "egtest:v:csp_tenants"]);
    let out = h.command(&["tenants", "sync"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("2 customer tenant(s)"), "{stdout}");
    assert!(
        stdout.contains(CUSTOMER_TENANT) && stdout.contains(OTHER_TENANT),
        "{stdout}"
    );
    assert!(
        stdout.contains("skipped (not a tenant GUID): \"not-a-tenant-guid\""),
        "{stdout}"
    );
    let stored = redis.cli(&["get", "egtest:v:csp_tenants"]);
    assert!(
        stored.contains(CUSTOMER_TENANT) && stored.contains(OTHER_TENANT),
        "{stored}"
    );

    // A failing sync exits 1 and leaves the stored list as it was.
    h.entra.fail_graph(Some(403));
    let out = h.command(&["tenants", "sync"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(redis.cli(&["get", "egtest:v:csp_tenants"]), stored);

    // Another instance whose own sync fails still uses the shared list.
    let (second, _) = h.another_instance().await;
    let mport = second.metrics_port;
    let metric = || async {
        let text = reqwest::get(format!("http://127.0.0.1:{mport}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find(|l| l.starts_with("entra_gateway_csp_tenants "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut seen = 0.0;
    for _ in 0..100 {
        seen = metric().await;
        if seen == 2.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen, 2.0, "the second instance picked the list up from Redis");
}
