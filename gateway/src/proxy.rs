//! The Pingora `ProxyHttp` implementation: a thin adapter that translates
//! between Pingora sessions and the gateway's modules. No decisions here:
//! `policy` decides, `auth`/`session`/`identity` act.
//!
//! ```text
//! request_filter            1. health/JWKS  2. portal for host+path  3. /auth/* routes
//!                           4. public route 5. session lookup  6. policy::access::decide
//! upstream_peer             the one upstream
//! upstream_request_filter   strip client X-Auth-* and gateway cookies; X-Forwarded-*; identity headers
//! logging                   one metric per request (portal, outcome)
//! ```

use crate::app::App;
use crate::auth::{self, RequestContext};
use crate::identity::headers::{self as idh, header_safe, headers_to_drop};
use crate::metrics::METRICS;
use crate::respond::{self, Resp};
use crate::session::Session;
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use policy::Reason;
use policy::access::{Access, decide};
use policy::cookies::{cookies_secure, is_gateway_cookie, local_cookie_name, session_cookie_name};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Largest body the gateway reads itself (its own forms, the form_post).
const MAX_AUTH_BODY: usize = 64 * 1024;

pub struct GatewayProxy {
    pub app: Arc<App>,
}

pub struct Ctx {
    started: Instant,
    portal: Option<usize>,
    /// The TCP peer (what X-Forwarded-For gets appended).
    peer_ip: Option<IpAddr>,
    /// The client: the peer, or behind trusted proxies the forwarded address.
    client_ip: Option<IpAddr>,
    trusted_peer: bool,
    https: bool,
    outcome: &'static str,
    identity: Option<(String, Session)>,
}

fn header<'a>(req: &'a RequestHeader, name: &str) -> Option<&'a str> {
    req.headers.get(name).and_then(|v| v.to_str().ok())
}

/// The request as a plain `http::Request`, for the auth routes.
fn to_http(req: &RequestHeader, body: Bytes) -> http::Request<Bytes> {
    let mut r = http::Request::new(body);
    *r.method_mut() = req.method.clone();
    *r.uri_mut() = req.uri.clone();
    *r.headers_mut() = req.headers.clone();
    r
}

async fn write(session: &mut Session_, resp: Resp) -> Result<()> {
    let (parts, body) = resp.into_parts();
    let mut h = ResponseHeader::build(parts.status, Some(parts.headers.len() + 1))?;
    for (k, v) in parts.headers.iter() {
        h.append_header(k.clone(), v.clone())?;
    }
    h.insert_header(http::header::CONTENT_LENGTH, body.len().to_string())?;
    let empty = body.is_empty();
    session.write_response_header(Box::new(h), empty).await?;
    if !empty {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

type Session_ = pingora::proxy::Session;

impl GatewayProxy {
    async fn read_body(session: &mut Session_) -> Result<Option<Bytes>> {
        let mut buf = BytesMut::new();
        while let Some(chunk) = session.read_request_body().await? {
            if buf.len() + chunk.len() > MAX_AUTH_BODY {
                return Ok(None);
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Some(buf.freeze()))
    }

    async fn ready(&self) -> Resp {
        let store_ok = self.app.store.ping().await.is_ok();
        // A failing CSP sync degrades (the last good list stays in force);
        // it does not take the instance out of rotation.
        let csp_error = if self.app.config.entra.csp_sync.enabled {
            self.app.tenants.csp_status().last_error
        } else {
            None
        };
        match (store_ok, csp_error) {
            (false, _) => respond::json(
                503,
                &serde_json::json!({ "status": "not_ready", "store": "unavailable", "entra_metadata": "ok" }),
            ),
            // Status only: error texts go to the log and metrics, not to
            // whoever can reach this path.
            (true, Some(_)) => respond::json(
                200,
                &serde_json::json!({ "status": "degraded", "store": "ok", "entra_metadata": "ok", "csp_sync": "failing" }),
            ),
            (true, None) => respond::json(
                200,
                &serde_json::json!({ "status": "ready", "store": "ok", "entra_metadata": "ok" }),
            ),
        }
    }
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            started: Instant::now(),
            portal: None,
            peer_ip: None,
            client_ip: None,
            trusted_peer: false,
            https: false,
            outcome: "error",
            identity: None,
        }
    }

    async fn request_filter(&self, session: &mut Session_, ctx: &mut Ctx) -> Result<bool>
    where
        Self::CTX: Send + Sync,
    {
        let app = &self.app;
        let cfg = &app.config;
        ctx.peer_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        ctx.trusted_peer = ctx.peer_ip.is_some_and(|ip| cfg.server.is_trusted(ip));
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let req = session.req_header();
        ctx.client_ip = ctx.peer_ip.map(|peer| {
            policy::ratelimit::client_ip(peer, header(req, "x-forwarded-for"), |ip| cfg.server.is_trusted(ip))
        });
        ctx.https = tls
            || (ctx.trusted_peer && header(req, "x-forwarded-proto").is_some_and(|p| p.eq_ignore_ascii_case("https")));
        let nav = auth::navigation(&req.method, &req.headers);

        // Origin-form only (`/path`): an absolute-form target names a host of
        // its own that the app might prefer over the Host header we routed by.
        if !policy::paths::is_origin_form(req.method.as_str(), req.raw_path()) {
            ctx.outcome = "bad_request";
            METRICS.bad_requests.with_label_values(&["request_target"]).inc();
            write(
                session,
                respond::refusal(
                    Reason::BadRequest,
                    Some("The request target must be a path."),
                    None,
                    nav,
                ),
            )
            .await?;
            return Ok(true);
        }

        // Health and key endpoints answer on any host.
        let path = req.uri.path().to_string();
        let fixed = match path.as_str() {
            "/healthz" => Some(respond::text(200, "ok")),
            "/readyz" => Some(self.ready().await),
            "/.well-known/entra-gateway/jwks.json" => {
                let mut r = respond::json(200, &serde_json::Value::Null);
                *r.body_mut() = app.assertions.signer.jwks_json();
                r.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("public, max-age=300"),
                );
                Some(r)
            }
            _ => None,
        };
        if let Some(resp) = fixed {
            ctx.outcome = "gateway";
            write(session, resp).await?;
            return Ok(true);
        }

        if !policy::paths::is_normalized(&path) {
            ctx.outcome = "bad_request";
            METRICS.bad_requests.with_label_values(&["path_not_normalized"]).inc();
            write(
                session,
                respond::refusal(Reason::BadRequest, Some("The path contains dot segments."), None, nav),
            )
            .await?;
            return Ok(true);
        }
        let host = header(req, "host").unwrap_or_default().to_string();
        let authority = policy::portal::normalize_authority(&host, ctx.https);
        // A client's own host is an alias of every portal's host.
        let client = policy::portal::resolve_client(cfg.clients.iter().map(|c| c.hosts.as_slice()), &authority);
        let resolved = match client {
            Some(_) => policy::portal::resolve_by_path(&app.portal_routes, &path),
            None => policy::portal::resolve(&app.portal_routes, &authority, &path),
        };
        let Some(pi) = resolved else {
            ctx.outcome = "no_portal";
            METRICS.bad_requests.with_label_values(&[Reason::NoPortal.code()]).inc();
            write(session, respond::refusal(Reason::NoPortal, None, None, nav)).await?;
            return Ok(true);
        };
        ctx.portal = Some(pi);
        let portal = app.portal(pi);
        let rel = policy::portal::relative_path(&portal.route, &path).to_string();
        let secure_cookies = cookies_secure(ctx.https, cfg.server.insecure_dev_cookies);
        let portal_url = match client {
            Some(_) => format!(
                "{}://{}{}",
                if portal.https { "https" } else { "http" },
                policy::portal::bare_authority(&authority),
                portal.route.path_prefix
            ),
            None => portal.url.clone(),
        };
        let rcx = RequestContext {
            client,
            portal_url,
            portal: pi,
            secure_cookies,
            rel_path: rel.clone(),
            client_ip: ctx.client_ip,
        };

        let sso = cfg.sso.enabled_for(portal.kind);
        // Without SSO on this portal, /auth/* is the app's like any path.
        if sso && rel.starts_with("/auth/") {
            ctx.outcome = "auth";
            let Some(body) = Self::read_body(session).await? else {
                METRICS.bad_requests.with_label_values(&["body_too_large"]).inc();
                let mut r = respond::json(413, &serde_json::json!({ "error": "body_too_large" }));
                *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
                write(session, r).await?;
                return Ok(true);
            };
            let http_req = to_http(session.req_header(), body);
            let resp = auth::handle(app, http_req, &rcx).await;
            write(session, resp).await?;
            return Ok(true);
        }

        let public = cfg.routes.public.iter().any(|p| p.matches(&rel));
        let mut has_session = false;
        let mut local_account = false;
        if sso {
            let name = session_cookie_name(&cfg.session.cookie_name, &portal.name, secure_cookies);
            let cookies = respond::request_cookies(&session.req_header().headers);
            let local = local_cookie_name(&cfg.session.cookie_name, &portal.name, secure_cookies);
            local_account = respond::find_cookie(&cookies, &local).is_some();
            if let Some(value) = respond::find_cookie(&cookies, &name) {
                match app.sessions.for_cookie(value, portal, rcx.client_name(app)).await {
                    Ok(Some((id, mut s))) => {
                        let jwt = if s.new_user {
                            app.assertion_for_new_user(&id, &mut s).await
                        } else {
                            app.assertions.for_session(&id, &s)
                        };
                        if let Some(jwt) = jwt {
                            ctx.identity = Some((jwt, s));
                            has_session = true;
                        }
                    }
                    Ok(None) => {}
                    Err(_) => {
                        ctx.outcome = "store_unavailable";
                        write(
                            session,
                            respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav),
                        )
                        .await?;
                        return Ok(true);
                    }
                }
            }
        }
        // "Use a local account": the app's own login, until an SSO sign-in.
        let sso = sso && (has_session || !local_account);
        match decide(sso, public, has_session, nav) {
            Access::Forward => {
                ctx.outcome = "forwarded";
                Ok(false)
            }
            Access::Transparent => {
                ctx.identity = None;
                ctx.outcome = if public {
                    "public"
                } else if local_account {
                    "local_account"
                } else {
                    "transparent"
                };
                Ok(false)
            }
            Access::StartLogin => {
                ctx.outcome = "login";
                let rd = session
                    .req_header()
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string());
                let resp = if app.auto_redirect(&rcx) {
                    let http_req = to_http(session.req_header(), Bytes::new());
                    auth::login::start(app, &http_req, &rcx, rd.as_deref(), cfg.sso.remember_me_default).await
                } else {
                    let q: String = form_urlencoded::Serializer::new(String::new())
                        .append_pair("rd", rd.as_deref().unwrap_or("/"))
                        .finish();
                    respond::redirect(302, &format!("{}?{q}", portal.path("/auth/login")))
                };
                write(session, resp).await?;
                Ok(true)
            }
            Access::Unauthorized => {
                ctx.outcome = "unauthorized";
                let mut r = respond::refusal(Reason::NoSession, None, Some(portal), false);
                r.headers_mut().insert(
                    http::header::WWW_AUTHENTICATE,
                    http::HeaderValue::from_static("Cookie realm=\"entra-gateway\""),
                );
                if let Ok(v) = http::HeaderValue::from_str(&portal.path("/auth/login")) {
                    r.headers_mut().insert("x-auth-login-url", v);
                }
                write(session, r).await?;
                Ok(true)
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session_, _ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let u = &self.app.config.upstream;
        Ok(Box::new(HttpPeer::new(u.address.as_str(), u.tls, u.sni.clone())))
    }

    async fn upstream_request_filter(&self, session: &mut Session_, up: &mut RequestHeader, ctx: &mut Ctx) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        let cfg = &self.app.config;
        // 1. Nothing a client sent may pose as identity or as a proxy, SSO or not.
        let rules = policy::headers::HeaderRules {
            trusted_peer: ctx.trusted_peer,
            strip_authorization: cfg.upstream.strip_authorization,
            allow_underscore: &cfg.upstream.allow_underscore_headers,
        };
        for name in headers_to_drop(&up.headers, &rules) {
            up.remove_header(&name);
        }
        // 2. The gateway's own cookies stay between the browser and us.
        let kept: Vec<String> = up
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .map(str::trim)
            .filter(|pair| {
                let name = pair.split_once('=').map(|(n, _)| n).unwrap_or(pair);
                !pair.is_empty() && !is_gateway_cookie(name.trim(), &cfg.session.cookie_name)
            })
            .map(str::to_string)
            .collect();
        up.remove_header(&http::header::COOKIE);
        if !kept.is_empty() {
            up.insert_header(http::header::COOKIE, kept.join("; "))?;
        }
        // 3. X-Forwarded-*: trusted proxies' values are extended, others replaced.
        let client = ctx.peer_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let xff = match (ctx.trusted_peer, header(up, "x-forwarded-for")) {
            (true, Some(prev)) if !client.is_empty() => format!("{prev}, {client}"),
            (true, Some(prev)) => prev.to_string(),
            _ => client,
        };
        up.insert_header("x-forwarded-for", xff)?;
        up.insert_header("x-forwarded-proto", if ctx.https { "https" } else { "http" })?;
        let fwd_host = match (ctx.trusted_peer, header(up, "x-forwarded-host")) {
            (true, Some(h)) => Some(h.to_string()),
            _ => header(session.req_header(), "host").map(str::to_string),
        };
        match fwd_host {
            Some(h) => up.insert_header("x-forwarded-host", h)?,
            None => {
                up.remove_header("x-forwarded-host");
            }
        }
        // 4. Identity.
        if let Some((jwt, s)) = &ctx.identity {
            up.insert_header(idh::ASSERTION, jwt.as_str())?;
            up.insert_header(idh::USER, header_safe(&s.user_key))?;
            if let Some(e) = &s.email {
                up.insert_header(idh::EMAIL, header_safe(e))?;
            }
            if let Some(n) = &s.name {
                up.insert_header(idh::NAME, header_safe(n))?;
            }
            up.insert_header(idh::OID, header_safe(&s.oid))?;
            up.insert_header(idh::TID, header_safe(s.tid.as_str()))?;
            up.insert_header(idh::PORTAL, header_safe(s.portal_kind.as_str()))?;
        }
        Ok(())
    }

    async fn upstream_response_filter(&self, _s: &mut Session_, _r: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        let portal = ctx.portal.map(|p| self.app.portal(p).name.as_str()).unwrap_or("");
        METRICS
            .upstream_latency
            .with_label_values(&[portal])
            .observe(ctx.started.elapsed().as_secs_f64());
        Ok(())
    }

    /// What Pingora's error log says about a request: method, host and path,
    /// never the query string (it may carry codes, tokens or personal data).
    fn request_summary(&self, session: &Session_, _ctx: &Ctx) -> String {
        let req = session.req_header();
        format!(
            "{} {} Host: {}",
            req.method,
            req.uri.path(),
            header(req, "host").unwrap_or("")
        )
    }

    async fn logging(&self, _session: &mut Session_, e: Option<&pingora::Error>, ctx: &mut Ctx)
    where
        Self::CTX: Send + Sync,
    {
        let portal = ctx.portal.map(|p| self.app.portal(p).name.as_str()).unwrap_or("");
        let outcome = if e.is_some() && matches!(ctx.outcome, "forwarded" | "transparent" | "public") {
            "upstream_error"
        } else {
            ctx.outcome
        };
        METRICS.requests.with_label_values(&[portal, outcome]).inc();
    }
}
