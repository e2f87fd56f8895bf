//! A request's way through the gateway up to the application: classified
//! by `policy::route`, answered here (fixed endpoints, refusals, sign-in
//! redirects, 401) or sent on with or without an identity after
//! `policy::access::decide`. `proxy.rs` calls [`route`] and [`access`] and
//! only translates to and from Pingora; no Pingora types here.

use crate::app::App;
use crate::auth::{self, RequestContext};
use crate::config::Server;
use crate::header_names::{X_FORWARDED_FOR, X_FORWARDED_PROTO, text};
use crate::metrics::METRICS;
use crate::respond::{self, Resp};
use crate::session::Session;
use bytes::Bytes;
use http::HeaderMap;
use http::request::Parts;
use policy::Reason;
use policy::access::{AccessFacts, Outcome, SessionState, decide};
use policy::cookies::cookies_secure;
use policy::route::{Fixed, PortalRequest, RequestFacts, Route, classify};
use policy::two_factor::Mfa;
use std::net::IpAddr;
use std::sync::Arc;

/// What the connection says about the client, before any routing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Conn {
    /// The TCP peer (what X-Forwarded-For gets appended).
    pub peer_ip: Option<IpAddr>,
    /// The client: the peer, or behind trusted proxies the forwarded address.
    pub client_ip: Option<IpAddr>,
    /// The peer is one of `server.trusted_proxies`.
    pub trusted_peer: bool,
    /// TLS here, or `X-Forwarded-Proto: https` from a trusted proxy.
    pub https: bool,
}

impl Conn {
    pub fn new(server: &Server, peer_ip: Option<IpAddr>, tls: bool, headers: &HeaderMap) -> Conn {
        let trusted_peer = peer_ip.is_some_and(|ip| server.is_trusted(ip));
        let client_ip = peer_ip.map(|peer| {
            policy::ratelimit::client_ip(peer, text(headers, &X_FORWARDED_FOR), |ip| server.is_trusted(ip))
        });
        let https =
            tls || (trusted_peer && text(headers, &X_FORWARDED_PROTO).is_some_and(|p| p.eq_ignore_ascii_case("https")));
        Conn {
            peer_ip,
            client_ip,
            trusted_peer,
            https,
        }
    }
}

/// Who a forwarded request is: the signed assertion and the session it says
/// (shared with the local cache, not copied).
#[derive(Debug, Clone)]
pub struct Identity {
    /// `X-Auth-Assertion` and the convenience headers, ready to insert
    /// (shared by the session's requests: cloning a value is a reference count).
    pub headers: Arc<crate::identity::headers::IdentityHeaders>,
    pub session: Arc<Session>,
}

/// What to do with a request.
#[derive(Debug)]
pub enum Step {
    /// Answer it here.
    Respond(Outcome, Resp),
    /// One of the gateway's `/auth/*` pages (`rel_path`: the path inside the
    /// portal): read the body, then [`auth::handle`].
    Auth { cx: RequestContext, rel_path: String },
    /// The application's: decide access (see [`access`]).
    App { cx: RequestContext, public: bool },
}

/// What became of a request for the application.
#[derive(Debug)]
pub enum Verdict {
    Respond(Outcome, Resp),
    /// To the upstream, with an identity or without.
    Upstream(Outcome, Option<Identity>),
}

/// Classifies a request and answers what needs no session.
pub async fn route(app: &App, req: &Parts, raw_target: &[u8], conn: &Conn) -> Step {
    let nav = auth::navigation(&req.method, &req.headers);
    let facts = RequestFacts {
        method: req.method.as_str(),
        raw_target,
        path: req.uri.path(),
        host: text(&req.headers, &http::header::HOST).unwrap_or_default(),
        https: conn.https,
    };
    match classify(&app.routing, &facts) {
        Route::Bad(bad) => {
            METRICS.bad_requests.with_label_values(&[bad.label()]).inc();
            Step::Respond(
                Outcome::BadRequest,
                respond::refusal(Reason::BadRequest, Some(bad.message()), None, nav),
            )
        }
        Route::Fixed(f) => Step::Respond(Outcome::Gateway, fixed(app, f).await),
        Route::NoPortal => {
            METRICS.bad_requests.with_label_values(&[Reason::NoPortal.code()]).inc();
            Step::Respond(Outcome::NoPortal, respond::refusal(Reason::NoPortal, None, None, nav))
        }
        Route::Auth(p) => Step::Auth {
            cx: context(app, &p, conn),
            rel_path: p.rel_path.to_string(),
        },
        Route::App { req: p, public } => Step::App {
            cx: context(app, &p, conn),
            public,
        },
    }
}

/// What the `/auth/*` routes and the access decision know of a request.
fn context(app: &App, p: &PortalRequest<'_>, conn: &Conn) -> RequestContext {
    let portal = app.portal(p.portal);
    RequestContext {
        client: p.client,
        // Every request has a context; only one at a client's host needs
        // its own portal URL (the others' is the configured one).
        client_portal_url: p.client.map(|_| {
            policy::route::portal_url_at(
                &portal.url,
                portal.https,
                &portal.route.path_prefix,
                Some(p.authority.as_ref()),
            )
        }),
        portal: p.portal,
        secure_cookies: cookies_secure(conn.https, app.config.server.insecure_dev_cookies),
        client_ip: conn.client_ip,
        sso: p.sso,
    }
}

/// Decides a request for the application: with its session (if SSO is on
/// here), forwarded with identity, without, or sent to sign in.
pub async fn access(app: &App, req: &Parts, cx: &RequestContext, public: bool) -> Verdict {
    let portal = app.portal(cx.portal);
    let nav = auth::navigation(&req.method, &req.headers);
    let mut identity = None;
    let mut local_account = false;
    let mut pending = false;
    if cx.sso {
        let (name, local) = app.cookie_names(cx.portal, cx.secure_cookies);
        local_account = respond::cookie_value(&req.headers, local).is_some();
        if let Some(value) = respond::cookie_value(&req.headers, name) {
            match app.sessions.for_cookie(value, portal, cx.client_name(app)).await {
                Ok(Some((id, mut s))) => {
                    let mut mfa = auth::two_factor::effective(app, &s);
                    if mfa == Mfa::Pending {
                        s = auth::two_factor::refresh_pending(app, &id, s).await;
                        mfa = auth::two_factor::effective(app, &s);
                    }
                    if mfa == Mfa::Pending {
                        pending = true;
                    } else {
                        if mfa != s.mfa {
                            // A session from before 2FA applied, under bypass_with_sso.
                            Arc::make_mut(&mut s).mfa = mfa;
                        }
                        let headers = if s.new_user {
                            app.headers_for_new_user(&id, &mut s).await
                        } else {
                            app.assertions.for_session(&id, &s)
                        };
                        identity = headers.map(|headers| Identity { headers, session: s });
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    return Verdict::Respond(
                        Outcome::StoreUnavailable,
                        respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav),
                    );
                }
            }
        }
    }
    let access = decide(&AccessFacts {
        sso: cx.sso,
        public,
        session: if identity.is_some() {
            SessionState::Valid
        } else if pending {
            SessionState::Pending2fa
        } else {
            SessionState::None
        },
        local_account,
        navigation: nav,
        auto_redirect: cx.auto_redirect(&app.config),
    });
    let outcome = Outcome::from(access);
    match access {
        policy::access::Access::Forward => Verdict::Upstream(outcome, identity),
        policy::access::Access::Transparent(_) => Verdict::Upstream(outcome, None),
        policy::access::Access::StartLogin { auto_redirect } => {
            let rd = req.uri.path_and_query().map(|p| p.as_str());
            let resp = if auto_redirect {
                let http_req = to_http(req, Bytes::new());
                auth::login::start(app, &http_req, cx, rd, app.config.sso.remember_me_default).await
            } else {
                auth::login::to_login_page(portal, rd)
            };
            Verdict::Respond(outcome, resp)
        }
        policy::access::Access::Unauthorized => Verdict::Respond(outcome, respond::unauthorized(portal)),
        policy::access::Access::SecondFactor { navigation } => {
            let rd = req.uri.path_and_query().map(|p| p.as_str());
            Verdict::Respond(outcome, auth::two_factor::required(portal, rd, navigation))
        }
    }
}

/// The request as a plain `http::Request`, for the auth routes.
pub fn to_http(req: &Parts, body: Bytes) -> http::Request<Bytes> {
    let mut r = http::Request::new(body);
    *r.method_mut() = req.method.clone();
    *r.uri_mut() = req.uri.clone();
    *r.headers_mut() = req.headers.clone();
    r
}

/// The gateway's own endpoints, on any host.
async fn fixed(app: &App, f: Fixed) -> Resp {
    match f {
        Fixed::Healthz => live(),
        Fixed::Readyz => ready(app).await,
        Fixed::Jwks => {
            let mut r = respond::json(200, &serde_json::Value::Null);
            *r.body_mut() = app.assertions.signer.jwks_json();
            r.headers_mut().insert(
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("public, max-age=300"),
            );
            r
        }
    }
}

/// Liveness: the process answers.
pub fn live() -> Resp {
    respond::text(200, "ok")
}

/// Readiness, status only: error texts go to the log and metrics, not to
/// whoever can reach this path.
pub async fn ready(app: &App) -> Resp {
    if app.lifecycle.draining() {
        // SIGTERM: out of rotation while requests are still served.
        return respond::json(503, &serde_json::json!({ "status": "draining" }));
    }
    let store_ok = app.store.ping().await.is_ok();
    let metadata = if app.tenants.metadata().is_some() {
        "ok"
    } else {
        "pending"
    };
    // A failing CSP sync degrades (the last good list stays in force), and
    // so does Entra unreachable since start (sessions are still served):
    // neither takes the instance out of rotation.
    let csp_failing = app.config.entra.csp_sync.enabled && app.tenants.csp_status().last_error.is_some();
    // Likewise a failing directory sync: the records of the last good one stay.
    let dir_sync_failing = app.config.directory_sync.enabled && app.directory_sync.get().last_error.is_some();
    let mut body = serde_json::json!({
        "status": "ready",
        "store": if store_ok { "ok" } else { "unavailable" },
        "entra_metadata": metadata,
    });
    if csp_failing {
        body["csp_sync"] = serde_json::json!("failing");
    }
    if dir_sync_failing {
        body["directory_sync"] = serde_json::json!("failing");
    }
    let status = if !store_ok {
        body["status"] = serde_json::json!("not_ready");
        503
    } else if csp_failing || dir_sync_failing || metadata == "pending" {
        body["status"] = serde_json::json!("degraded");
        200
    } else {
        200
    };
    respond::json(status, &body)
}
