//! A faithful imitation of Microsoft Entra ID's v2 endpoints, on loopback:
//! per-tenant discovery and issuers, the `/organizations` template, JWKS with
//! `kid`s, per-key `issuer` and rotation, the authorize endpoint with a login
//! form and `form_post`, the token endpoint (code + PKCE + secret) and the
//! end-session endpoint. Test helpers mint deliberately bad tokens.
//!
//! Not for production: users sign in without a password.

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// A person who can sign in.
#[derive(Debug, Clone)]
pub struct MockUser {
    /// The UPN typed into the login form; also `preferred_username`.
    pub username: String,
    pub name: String,
    /// The optional `email` claim (absent for many real accounts).
    pub email: Option<String>,
    pub oid: String,
    pub tenant: String,
}

/// An app registration.
#[derive(Debug, Clone, Default)]
pub struct MockApp {
    pub client_id: String,
    pub secret: Option<String>,
    pub redirect_uris: Vec<String>,
    /// "Front-channel logout URL": framed by the end-session page, with the
    /// `sid` of the Entra session being ended.
    pub frontchannel_logout_url: Option<String>,
}

/// The mock's own browser-session cookie (Entra's is `ESTSAUTH`): a second
/// sign-in in the same browser reuses the Entra session and its `sid`.
const SSO_COOKIE: &str = "mock_estsauth";

/// One Entra browser session: who, and which apps signed in through it.
#[derive(Debug, Clone)]
struct SsoSession {
    username: String,
    apps: Vec<String>,
}

#[derive(Debug, Clone, Default)]
pub struct MockEntraConfig {
    pub tenants: Vec<String>,
    pub users: Vec<MockUser>,
    pub apps: Vec<MockApp>,
    /// Fields replaced in every discovery document (to test a gateway
    /// that must refuse a tampered one).
    pub discovery_overrides: Map<String, Value>,
    /// The host in issuers (`iss`, discovery, JWK `issuer`), e.g. a national
    /// cloud's; default: where the mock is served.
    pub issuer_host: Option<String>,
    /// `customerId`s served by Graph `GET /v1.0/contracts`.
    pub contracts: Vec<String>,
    /// Contracts per Graph page (default 2, so paging is exercised).
    pub contracts_page_size: usize,
}

struct SigningKey {
    kid: String,
    enc: EncodingKey,
    jwk: Value,
}

fn new_signing_key(issuer: &str) -> SigningKey {
    use rsa::Generate;
    use rsa::pkcs1::EncodeRsaPrivateKey;
    let key = rsa::PrivateKey::generate();
    let der = key.to_pkcs1_der().expect("a fresh RSA key encodes");
    let enc = EncodingKey::from_rsa_der(der.as_bytes());
    let kid = crate::session::random_token(20);
    let jwk = Jwk::from_encoding_key(&enc, Algorithm::RS256).expect("RSA JWK");
    let mut v = serde_json::to_value(&jwk).expect("JWK serialises");
    if let Value::Object(m) = &mut v {
        // Entra's JWKs carry no `alg`; they carry kid, x5t, use and issuer.
        m.remove("alg");
        m.insert("kid".into(), json!(kid));
        m.insert("x5t".into(), json!(kid));
        m.insert("use".into(), json!("sig"));
        m.insert("issuer".into(), json!(issuer));
    }
    SigningKey { kid, enc, jwk: v }
}

struct PendingCode {
    client_id: String,
    redirect_uri: String,
    challenge: Option<String>,
    nonce: Option<String>,
    user: MockUser,
    sid: String,
    expires: i64,
}

/// One call to the end-session endpoint, for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct LogoutCall {
    pub tenant: String,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub logout_hint: Option<String>,
}

struct Inner {
    base: String,
    config: MockEntraConfig,
    keys: Mutex<HashMap<String, Vec<SigningKey>>>,
    codes: Mutex<HashMap<String, PendingCode>>,
    jwks_fetches: Mutex<HashMap<String, usize>>,
    logouts: Mutex<Vec<LogoutCall>>,
    /// Entra browser sessions by `sid`, ended by logout.
    sessions: Mutex<HashMap<String, SsoSession>>,
    issuer_host: String,
    contracts: Mutex<Vec<String>>,
    graph_failure: Mutex<Option<u16>>,
    app_tokens: Mutex<Vec<String>>,
    graph_calls: Mutex<usize>,
}

/// How a minted token is signed.
#[derive(Debug, Clone, Default)]
pub enum Signing {
    /// The tenant's active key (what Entra does).
    #[default]
    Active,
    /// A key that is not in the JWKS, under a kid that is not either.
    UnknownKid,
    /// A key that is not in the JWKS, under the active key's kid.
    WrongKey,
    /// `alg: none`, empty signature.
    None,
    /// HS256 with this secret (the key-confusion attack).
    Hs256(Vec<u8>),
    /// The active key but no `kid` header.
    NoKid,
    /// The active key with a `crit` header.
    Crit,
    /// A key not in the JWKS, offered in the token itself (`jwk`) and by URL
    /// (`jku`, `x5u`): what an attacker sends hoping the verifier follows it.
    EmbeddedKey,
}

/// A token to mint: defaults are a good token for the user; set `claims`
/// entries to override (Value::Null removes the claim).
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    pub user: String,
    pub client_id: String,
    pub nonce: Option<String>,
    pub claims: Map<String, Value>,
    pub signing: Signing,
}

#[derive(Clone)]
pub struct MockEntra {
    inner: Arc<Inner>,
}

fn now() -> i64 {
    crate::session::now_unix()
}

fn pairwise_sub(oid: &str, client_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(format!("{oid}|{client_id}").as_bytes()))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

impl MockEntra {
    /// Binds `addr` (port 0 for any) and serves on the current runtime.
    pub async fn start(config: MockEntraConfig, addr: SocketAddr) -> std::io::Result<MockEntra> {
        // Processes that only host the mock (tests, bench) sign fast too.
        crate::crypto::install();
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let base = format!("http://{local}");
        let issuer_host = config.issuer_host.clone().unwrap_or_else(|| base.clone());
        let mut keys = HashMap::new();
        for t in &config.tenants {
            keys.insert(t.clone(), vec![new_signing_key(&format!("{issuer_host}/{t}/v2.0"))]);
        }
        let inner = Arc::new(Inner {
            base,
            issuer_host,
            contracts: Mutex::new(config.contracts.clone()),
            graph_failure: Mutex::new(None),
            app_tokens: Mutex::new(Vec::new()),
            graph_calls: Mutex::new(0),
            config,
            keys: Mutex::new(keys),
            codes: Mutex::new(HashMap::new()),
            jwks_fetches: Mutex::new(HashMap::new()),
            logouts: Mutex::new(Vec::new()),
            sessions: Mutex::new(HashMap::new()),
        });
        let router = Router::new()
            .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery))
            .route("/{tenant}/discovery/v2.0/keys", get(jwks))
            .route(
                "/{tenant}/oauth2/v2.0/authorize",
                get(authorize_get).post(authorize_post),
            )
            .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token))
            .route("/{tenant}/oauth2/v2.0/logout", get(logout))
            .route("/v1.0/contracts", get(contracts))
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
        format!("{}/{tenant}/v2.0", self.inner.issuer_host)
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

    /// Makes Graph answer this status (None: normal service).
    pub fn fail_graph(&self, status: Option<u16>) {
        *self.inner.graph_failure.lock().expect("lock") = status;
    }

    pub fn graph_calls(&self) -> usize {
        *self.inner.graph_calls.lock().expect("lock")
    }

    /// Publishes a new active key; the old ones stay in the JWKS (as Entra
    /// does during a rollover) until [`retire_old_keys`](Self::retire_old_keys).
    pub fn rotate_keys(&self, tenant: &str) {
        let k = new_signing_key(&self.issuer(tenant));
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
        let sid = crate::session::random_token(16);
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

impl Inner {
    fn find_user(&self, name: &str) -> Option<MockUser> {
        self.config
            .users
            .iter()
            .find(|u| {
                u.username.eq_ignore_ascii_case(name)
                    || u.email.as_deref().is_some_and(|e| e.eq_ignore_ascii_case(name))
            })
            .cloned()
    }

    fn app(&self, client_id: &str) -> Option<&MockApp> {
        self.config
            .apps
            .iter()
            .find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    fn known_tenant(&self, t: &str) -> bool {
        self.config.tenants.iter().any(|k| k == t)
    }

    #[allow(clippy::too_many_arguments)]
    fn mint(
        &self,
        user: &MockUser,
        client_id: &str,
        nonce: Option<&str>,
        sid: &str,
        code: Option<&str>,
        overrides: &Map<String, Value>,
        signing: &Signing,
    ) -> String {
        let t = now();
        let mut c = Map::new();
        c.insert("aud".into(), json!(client_id));
        c.insert(
            "iss".into(),
            json!(format!("{}/{}/v2.0", self.issuer_host, user.tenant)),
        );
        c.insert("iat".into(), json!(t));
        c.insert("nbf".into(), json!(t));
        c.insert("exp".into(), json!(t + 3600));
        c.insert("name".into(), json!(user.name));
        c.insert("oid".into(), json!(user.oid));
        c.insert("preferred_username".into(), json!(user.username));
        if let Some(e) = &user.email {
            c.insert("email".into(), json!(e));
        }
        c.insert("sub".into(), json!(pairwise_sub(&user.oid, client_id)));
        c.insert("tid".into(), json!(user.tenant));
        c.insert("sid".into(), json!(sid));
        c.insert(
            "login_hint".into(),
            json!(URL_SAFE_NO_PAD.encode(format!("O.{}.{}", user.oid, user.tenant))),
        );
        c.insert("uti".into(), json!(crate::session::random_token(16)));
        c.insert("ver".into(), json!("2.0"));
        if let Some(n) = nonce {
            c.insert("nonce".into(), json!(n));
        }
        if let Some(code) = code {
            let d = sha2::Sha256::digest(code.as_bytes());
            c.insert("c_hash".into(), json!(URL_SAFE_NO_PAD.encode(&d[..16])));
        }
        for (k, v) in overrides {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
        let claims = Value::Object(c);
        let keys = self.keys.lock().expect("lock");
        let active = keys.get(&user.tenant).and_then(|v| v.first());
        let rs256 = |kid: Option<String>, key: &EncodingKey, extra: &[(&str, Value)]| {
            let mut h = Header::new(Algorithm::RS256);
            h.kid = kid;
            h.typ = Some("JWT".into());
            let jwt = jsonwebtoken::encode(&h, &claims, key).expect("RS256 signs");
            if extra.is_empty() {
                return jwt;
            }
            // Re-sign with header fields jsonwebtoken does not model.
            let mut parts = jwt.split('.');
            let head = parts.next().unwrap_or_default();
            let mut hv: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(head).unwrap_or_default()).unwrap_or(json!({}));
            for (name, value) in extra {
                hv[*name] = value.clone();
            }
            let signing_input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(hv.to_string()),
                parts.next().unwrap_or_default()
            );
            let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, Algorithm::RS256).expect("sign");
            format!("{signing_input}.{sig}")
        };
        match signing {
            Signing::Active => {
                let k = active.expect("tenant has a key");
                rs256(Some(k.kid.clone()), &k.enc, &[])
            }
            Signing::NoKid => rs256(None, &active.expect("key").enc, &[]),
            Signing::Crit => {
                let k = active.expect("key");
                rs256(Some(k.kid.clone()), &k.enc, &[("crit", json!(["exp"]))])
            }
            Signing::EmbeddedKey => {
                let k = new_signing_key("attacker");
                let url = format!("{}/attacker/keys", self.base);
                rs256(
                    Some(k.kid.clone()),
                    &k.enc,
                    &[("jwk", k.jwk.clone()), ("jku", json!(url)), ("x5u", json!(url))],
                )
            }
            Signing::UnknownKid => {
                let k = new_signing_key("unused");
                rs256(Some(k.kid.clone()), &k.enc, &[])
            }
            Signing::WrongKey => {
                let k = new_signing_key("unused");
                rs256(Some(active.expect("key").kid.clone()), &k.enc, &[])
            }
            Signing::None => {
                let head = json!({"alg": "none", "typ": "JWT", "kid": active.map(|k| k.kid.clone())});
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(head.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                )
            }
            Signing::Hs256(secret) => {
                let mut h = Header::new(Algorithm::HS256);
                h.kid = active.map(|k| k.kid.clone());
                let key = EncodingKey::from_secret(secret).expect("HMAC key");
                jsonwebtoken::encode(&h, &claims, &key).expect("HS256 signs")
            }
        }
    }
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        axum::Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

async fn discovery(State(s): State<Arc<Inner>>, Path(tenant): Path<String>) -> Response {
    let issuer_tenant = match tenant.as_str() {
        "organizations" | "common" => "{tenantid}".to_string(),
        t if s.known_tenant(t) => t.to_string(),
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_tenant",
                "AADSTS90002: Tenant not found.",
            );
        }
    };
    let b = &s.base;
    let mut doc = json!({
        "token_endpoint": format!("{b}/{tenant}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{b}/{tenant}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{}/{issuer_tenant}/v2.0", s.issuer_host),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{b}/{tenant}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{b}/{tenant}/oauth2/v2.0/logout"),
        "claims_supported": ["sub","iss","cloud_instance_name","cloud_instance_host_name","cloud_graph_host_name","msgraph_host","aud","exp","iat","auth_time","acr","nonce","preferred_username","name","tid","ver","at_hash","c_hash","email"],
        "kerberos_endpoint": format!("{b}/{tenant}/kerberos"),
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
        "rbac_url": "https://pas.windows.net"
    });
    for (k, v) in &s.config.discovery_overrides {
        doc[k] = v.clone();
    }
    axum::Json(doc).into_response()
}

async fn jwks(State(s): State<Arc<Inner>>, Path(tenant): Path<String>) -> Response {
    *s.jwks_fetches.lock().expect("lock").entry(tenant.clone()).or_default() += 1;
    let keys = s.keys.lock().expect("lock");
    let list: Vec<Value> = match tenant.as_str() {
        // The common endpoints publish every key, with the template issuer.
        "organizations" | "common" => keys
            .values()
            .flatten()
            .map(|k| {
                let mut j = k.jwk.clone();
                j["issuer"] = json!(format!("{}/{{tenantid}}/v2.0", s.issuer_host));
                j
            })
            .collect(),
        t => match keys.get(t) {
            Some(v) => v.iter().map(|k| k.jwk.clone()).collect(),
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_tenant",
                    "AADSTS90002: Tenant not found.",
                );
            }
        },
    };
    axum::Json(json!({ "keys": list })).into_response()
}

type Params = HashMap<String, String>;

async fn authorize_get(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    Query(p): Query<Params>,
    h: HeaderMap,
) -> Response {
    authorize(s, tenant, p, sso_sid(&h))
}

async fn authorize_post(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    Query(q): Query<Params>,
    h: HeaderMap,
    Form(f): Form<Params>,
) -> Response {
    let mut p = q;
    p.extend(f);
    authorize(s, tenant, p, sso_sid(&h))
}

/// The `sid` of this browser's Entra session, from the mock's cookie.
fn sso_sid(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SSO_COOKIE)
        .map(|(_, v)| v.to_string())
}

fn error_page(status: StatusCode, code: &str, text: &str) -> Response {
    (
        status,
        Html(format!(
            "<!doctype html><title>Sign in to your account</title><h1>Sorry, but we're having trouble signing you in.</h1><p id=\"error\">{}: {}</p>",
            html_escape(code),
            html_escape(text)
        )),
    )
        .into_response()
}

fn form_post(action: &str, fields: &[(&str, &str)]) -> Response {
    let inputs: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\" />",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let body = format!(
        "<html><head><title>Working...</title></head><body><form method=\"POST\" name=\"hiddenform\" action=\"{}\">{}<noscript><p>Script is disabled. Click Submit to continue.</p><input type=\"submit\" value=\"Submit\" /></noscript></form><script language=\"javascript\">window.setTimeout(function(){{document.forms[0].submit()}}, 0);</script></body></html>",
        html_escape(action),
        inputs
    );
    let mut r = Html(body).into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("static"));
    r
}

fn login_form(s: &Inner, tenant: &str, p: &Params, message: Option<&str>) -> Response {
    let hidden: String = p
        .iter()
        .filter(|(k, _)| k.as_str() != "username")
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                html_escape(k),
                html_escape(v)
            )
        })
        .collect();
    let users: String = s
        .config
        .users
        .iter()
        .filter(|u| tenant == "organizations" || tenant == "common" || u.tenant == tenant)
        .map(|u| {
            format!(
                "<li><button type=\"submit\" name=\"username\" value=\"{0}\" class=\"pick\">{1} <small>{0}</small></button></li>",
                html_escape(&u.username),
                html_escape(&u.name)
            )
        })
        .collect();
    let msg = message
        .map(|m| format!("<p id=\"usernameError\" role=\"alert\">{}</p>", html_escape(m)))
        .unwrap_or_default();
    let action = format!("/{}/oauth2/v2.0/authorize", html_escape(tenant));
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:15px "Segoe UI",system-ui,sans-serif;background:#f2f2f2;display:grid;place-items:center;min-height:100vh;margin:0}}
main{{background:#fff;padding:44px;width:min(440px,92vw);box-shadow:0 2px 6px rgba(0,0,0,.2)}}h1{{font-size:24px;font-weight:600}}
input[type=email]{{width:100%;padding:6px 0;border:0;border-bottom:1px solid #666;font-size:15px}}
#idSIButton9{{background:#0067b8;color:#fff;border:0;padding:6px 24px;margin-top:16px;float:right}}ul{{list-style:none;padding:0;clear:both;padding-top:16px}}
.pick{{background:none;border:0;color:#0067b8;cursor:pointer;padding:4px 0;font:inherit}}.banner{{font-size:12px;color:#a4262c}}</style></head>
<body><main><p class="banner">Mock Entra ID — for demos and tests only</p><h1>Sign in</h1>{msg}
<form method="post" action="{action}">{hidden}
<input type="email" name="username" id="i0116" placeholder="Email, phone, or Skype" aria-label="Enter your email" autofocus>
<input type="submit" id="idSIButton9" value="Next"></form>
<form method="post" action="{action}">{hidden}<p>Or pick a test account:</p><ul>{users}</ul></form></main></body></html>"#
    ))
    .into_response()
}

fn authorize(s: Arc<Inner>, tenant: String, p: Params, sso: Option<String>) -> Response {
    let get = |k: &str| p.get(k).map(String::as_str);
    let tenant_ok = matches!(tenant.as_str(), "organizations" | "common") || s.known_tenant(&tenant);
    if !tenant_ok {
        return error_page(StatusCode::BAD_REQUEST, "AADSTS90002", "Tenant not found.");
    }
    let Some(app) = get("client_id").and_then(|c| s.app(c)).cloned() else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "AADSTS700016",
            "Application was not found in the directory.",
        );
    };
    let Some(redirect_uri) = get("redirect_uri")
        .filter(|r| app.redirect_uris.iter().any(|u| u == r))
        .map(str::to_string)
    else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "AADSTS50011",
            "The redirect URI specified in the request does not match the redirect URIs configured for the application.",
        );
    };
    let state = get("state").unwrap_or("").to_string();
    let post_error = |error: &str, description: &str| {
        let mut fields = vec![("error", error), ("error_description", description)];
        if !state.is_empty() {
            fields.push(("state", state.as_str()));
        }
        form_post(&redirect_uri, &fields)
    };
    if get("response_mode") != Some("form_post") {
        return error_page(
            StatusCode::BAD_REQUEST,
            "AADSTS900144",
            "This mock supports response_mode=form_post only.",
        );
    }
    let response_type = get("response_type").unwrap_or("");
    if !get("scope").unwrap_or("").split(' ').any(|x| x == "openid") {
        return post_error(
            "invalid_request",
            "AADSTS900144: The request body must contain the following parameter: 'scope' with openid.",
        );
    }
    let nonce = get("nonce").map(str::to_string);
    match response_type {
        "id_token" if nonce.is_none() => {
            return post_error(
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'nonce'.",
            );
        }
        "id_token" | "code" => {}
        _ => {
            return post_error(
                "unsupported_response_type",
                "AADSTS700054: response_type is not enabled for the application.",
            );
        }
    }
    if response_type == "code" && get("code_challenge").is_some() && get("code_challenge_method") != Some("S256") {
        return post_error("invalid_request", "AADSTS501491: Invalid code_challenge_method.");
    }

    // An Entra session in this browser signs in without asking, unless the
    // request names another account.
    let existing = sso.and_then(|sid| {
        let sessions = s.sessions.lock().expect("lock");
        let session = sessions.get(&sid)?;
        let named = get("username").or(get("login_hint"));
        named
            .is_none_or(|n| n.eq_ignore_ascii_case(&session.username))
            .then(|| (sid.clone(), session.username.clone()))
    });
    let wanted = get("username")
        .or(get("login_hint"))
        .or(existing.as_ref().map(|(_, u)| u.as_str()));
    let Some(user) = wanted.and_then(|w| s.find_user(w)) else {
        let message = get("username").map(|_| "We couldn't find an account with that username.");
        return login_form(&s, &tenant, &p, message);
    };
    if s.known_tenant(&tenant) && user.tenant != tenant {
        return post_error(
            "access_denied",
            &format!(
                "AADSTS50020: User account '{}' from identity provider does not exist in tenant.",
                user.username
            ),
        );
    }
    let sid = existing
        .map(|(sid, _)| sid)
        .unwrap_or_else(|| crate::session::random_token(16));
    s.sessions
        .lock()
        .expect("lock")
        .entry(sid.clone())
        .or_insert_with(|| SsoSession {
            username: user.username.clone(),
            apps: Vec::new(),
        })
        .apps
        .push(app.client_id.clone());
    let mut response = issue(
        &s,
        &app,
        &user,
        &redirect_uri,
        &state,
        response_type,
        nonce,
        get,
        sid.clone(),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        format!("{SSO_COOKIE}={sid}; Path=/; HttpOnly; SameSite=Lax")
            .parse()
            .expect("cookie"),
    );
    response
}

/// The form_post that answers a successful authorize: an ID token or a code.
#[allow(clippy::too_many_arguments)]
fn issue<'a>(
    s: &Inner,
    app: &MockApp,
    user: &MockUser,
    redirect_uri: &str,
    state: &str,
    response_type: &str,
    nonce: Option<String>,
    get: impl Fn(&str) -> Option<&'a str>,
    sid: String,
) -> Response {
    if response_type == "id_token" {
        let token = s.mint(
            user,
            &app.client_id,
            nonce.as_deref(),
            &sid,
            None,
            &Map::new(),
            &Signing::Active,
        );
        return form_post(redirect_uri, &[("id_token", &token), ("state", state)]);
    }
    let code = crate::session::random_token(48);
    s.codes.lock().expect("lock").insert(
        code.clone(),
        PendingCode {
            client_id: app.client_id.clone(),
            redirect_uri: redirect_uri.to_string(),
            challenge: get("code_challenge").map(str::to_string),
            nonce,
            user: user.clone(),
            sid,
            expires: now() + 600,
        },
    );
    form_post(redirect_uri, &[("code", &code), ("state", state)])
}

async fn token(State(s): State<Arc<Inner>>, Path(_tenant): Path<String>, Form(f): Form<Params>) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str);
    if get("grant_type") == Some("client_credentials") {
        return client_credentials(&s, &f);
    }
    if get("grant_type") != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: grant type not supported by this mock.",
        );
    }
    let app = match authenticate_client(&s, &f) {
        Ok(app) => app.clone(),
        Err(e) => return e.refusal(),
    };
    let code = get("code").unwrap_or("");
    let Some(pending) = s.codes.lock().expect("lock").remove(code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "AADSTS70008: The provided authorization code or refresh token has expired or was already used.",
        );
    };
    if pending.expires < now()
        || pending.client_id != app.client_id
        || get("redirect_uri") != Some(pending.redirect_uri.as_str())
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "AADSTS50148: The code was issued to another request.",
        );
    }
    if let Some(challenge) = &pending.challenge {
        let verifier = get("code_verifier").unwrap_or("");
        let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        if &computed != challenge {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
    }
    let id_token = s.mint(
        &pending.user,
        &app.client_id,
        pending.nonce.as_deref(),
        &pending.sid,
        Some(code),
        &Map::new(),
        &Signing::Active,
    );
    axum::Json(json!({
        "token_type": "Bearer",
        "scope": "openid profile email",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": crate::session::random_token(64),
        "id_token": id_token,
    }))
    .into_response()
}

async fn logout(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    Query(p): Query<Params>,
    h: HeaderMap,
) -> Response {
    let call = LogoutCall {
        tenant,
        client_id: p.get("client_id").cloned(),
        post_logout_redirect_uri: p.get("post_logout_redirect_uri").cloned(),
        logout_hint: p.get("logout_hint").cloned(),
    };
    s.logouts.lock().expect("lock").push(call.clone());
    // End this browser's Entra session; every app that signed in through it
    // hears of it by its front-channel logout URL, framed below.
    let ended = sso_sid(&h).and_then(|sid| s.sessions.lock().expect("lock").remove(&sid).map(|e| (sid, e)));
    let mut frames = Vec::new();
    if let Some((sid, session)) = &ended {
        for client in &session.apps {
            if let Some(url) = s.app(client).and_then(|a| a.frontchannel_logout_url.clone())
                && !frames.contains(&url)
            {
                frames.push(url);
            }
        }
        for url in frames.iter_mut() {
            let sep = if url.contains('?') { '&' } else { '?' };
            *url = format!("{url}{sep}sid={sid}");
        }
    }
    // Entra redirects only to a post-logout URI on the same host as a
    // registered redirect URI of the app.
    let allowed = |uri: &str| {
        let host = |u: &str| url::Url::parse(u).ok().map(|u| u.origin().ascii_serialization());
        call.client_id.as_deref().and_then(|c| s.app(c)).is_some_and(|a| {
            a.redirect_uris
                .iter()
                .any(|r| host(r).is_some() && host(r) == host(uri))
        })
    };
    let next = call.post_logout_redirect_uri.as_deref().filter(|u| allowed(u));
    let mut r = Html(end_session_page(&frames, next)).into_response();
    r.headers_mut().append(
        header::SET_COOKIE,
        format!("{SSO_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax")
            .parse()
            .expect("cookie"),
    );
    r
}

/// Entra's "signing out" page: one hidden iframe per app's front-channel
/// logout URL; once they have loaded (or after 5 s) it goes on to the
/// post-logout redirect URI.
fn end_session_page(frames: &[String], next: Option<&str>) -> String {
    let iframes: String = frames
        .iter()
        .map(|u| {
            format!(
                "<iframe class=\"fcl\" src=\"{}\" style=\"display:none\" title=\"sign out\"></iframe>",
                html_escape(u)
            )
        })
        .collect();
    let script = match next {
        Some(n) => format!(
            "<script>(function(){{var left=document.querySelectorAll('iframe.fcl').length;var go=function(){{location.replace({})}};\
             if(!left){{go();return}}document.querySelectorAll('iframe.fcl').forEach(function(f){{f.addEventListener('load',function(){{if(--left===0)go()}})}});\
             setTimeout(go,5000)}})();</script>",
            serde_json::to_string(n).expect("string").replace('<', "\\u003c")
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><title>Sign out</title><h1>You signed out of your account</h1>\
         <p>It's a good idea to close all browser windows.</p>{iframes}{script}"
    )
}

/// Why the token endpoint refuses a client.
enum ClientAuthError {
    UnknownApp,
    BadSecret,
}

impl ClientAuthError {
    fn refusal(self) -> Response {
        match self {
            ClientAuthError::UnknownApp => oauth_error(
                StatusCode::BAD_REQUEST,
                "unauthorized_client",
                "AADSTS700016: Application not found.",
            ),
            ClientAuthError::BadSecret => oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "AADSTS7000215: Invalid client secret provided.",
            ),
        }
    }
}

/// The token endpoint's client authentication (client_secret_post), shared
/// by both grants.
fn authenticate_client<'a>(s: &'a Inner, f: &Params) -> Result<&'a MockApp, ClientAuthError> {
    let get = |k: &str| f.get(k).map(String::as_str);
    let app = get("client_id")
        .and_then(|c| s.app(c))
        .ok_or(ClientAuthError::UnknownApp)?;
    if app.secret.is_none() || get("client_secret") != app.secret.as_deref() {
        return Err(ClientAuthError::BadSecret);
    }
    Ok(app)
}

fn client_credentials(s: &Inner, f: &Params) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str);
    if let Err(e) = authenticate_client(s, f) {
        return e.refusal();
    }
    if !get("scope").is_some_and(|sc| sc.ends_with("/.default")) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid.",
        );
    }
    let token = crate::session::random_token(48);
    s.app_tokens.lock().expect("lock").push(token.clone());
    axum::Json(json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token }))
        .into_response()
}

/// Graph `GET /v1.0/contracts`: the partner's customers, paged with
/// `@odata.nextLink` as Graph does.
async fn contracts(State(s): State<Arc<Inner>>, Query(q): Query<Params>, headers: HeaderMap) -> Response {
    *s.graph_calls.lock().expect("lock") += 1;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !s.app_tokens.lock().expect("lock").iter().any(|t| t == bearer) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "InvalidAuthenticationToken"}})),
        )
            .into_response();
    }
    if let Some(status) = *s.graph_failure.lock().expect("lock") {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        return (code, axum::Json(json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}}))).into_response();
    }
    let all = s.contracts.lock().expect("lock").clone();
    let size = if s.config.contracts_page_size == 0 {
        2
    } else {
        s.config.contracts_page_size
    };
    let skip: usize = q.get("$skiptoken").and_then(|v| v.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(size)
        .enumerate()
        .map(|(i, c)| json!({ "id": format!("contract-{}", skip + i), "customerId": c, "defaultDomainName": "customer.example", "displayName": "Customer" }))
        .collect();
    let mut body = json!({ "@odata.context": format!("{}/v1.0/$metadata#contracts", s.base), "value": page });
    if skip + size < all.len() {
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/contracts?$select=customerId&$skiptoken={}",
            s.base,
            skip + size
        ));
    }
    axum::Json(body).into_response()
}
