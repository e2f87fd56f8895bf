//! The Pingora `ProxyHttp` implementation: a thin adapter between Pingora
//! sessions and the gateway. `front` routes and decides (with `policy`),
//! `auth` answers the gateway's pages, `identity::headers` says what the app
//! receives; this file only reads requests and writes responses.
//!
//! ```text
//! request_filter            front::route: fixed endpoints, refusals, portal  ─▶ respond
//!                           /auth/*: read body ─▶ auth::handle               ─▶ respond
//!                           front::access: session, policy::access::decide    ─▶ respond | upstream
//! upstream_peer             upstream::Upstreams::pick (no DNS here), its settings
//! fail_to_connect           retry on the next address while there are untried ones
//! upstream_request_filter   identity::headers::upstream_edits
//! fail_to_proxy             upstream::Failure: 502/504 page or JSON, metric, log
//! logging                   one metric per request (portal, outcome) and
//!                           one access line (access_log)
//! ```

use crate::access_log;
use crate::app::App;
use crate::auth;
use crate::front::{self, Conn, Identity, Step, Verdict};
use crate::header_names::{X_REQUEST_ID, text};
use crate::identity::headers::{Upstream, upstream_edits};
use crate::lifecycle::{InFlight, SharedApp};
use crate::metrics::METRICS;
use crate::respond::{self, Resp};
use crate::upstream::{Failure, Upstreams};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;
use policy::access::Outcome;
use std::sync::Arc;
use std::time::Instant;

/// Largest body the gateway reads itself (its own forms, the form_post).
const MAX_AUTH_BODY: usize = 64 * 1024;

pub struct GatewayProxy {
    /// Replaced by a reload; each request loads it once (see [`Ctx::app`]).
    pub app: SharedApp,
    /// The upstream's addresses (resolved in the background; restart-only).
    pub upstream: Arc<Upstreams>,
}

pub struct Ctx {
    /// The app this request started with, to its end (a reload mid-request
    /// must not change which portal an index names).
    app: Arc<App>,
    /// Counted until the request is done (the drain waits for it).
    _in_flight: InFlight,
    /// When the request arrived (the access log's duration).
    started: Instant,
    /// When the request was sent upstream (the latency metric's start).
    upstream_sent: Option<Instant>,
    /// Addresses tried for this request (connect failures move on).
    upstream_tries: usize,
    portal: Option<usize>,
    conn: Conn,
    outcome: Outcome,
    identity: Option<Identity>,
    /// `X-Request-Id`: set once the request's peer is known.
    request_id: Option<http::HeaderValue>,
}

type Session_ = pingora::proxy::Session;

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

/// The body of a request to the gateway's own pages; None past the limit.
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

fn body_too_large() -> Resp {
    METRICS.bad_requests.with_label_values(&["body_too_large"]).inc();
    let mut r = respond::json(413, &serde_json::json!({ "error": "body_too_large" }));
    *r.status_mut() = http::StatusCode::PAYLOAD_TOO_LARGE;
    r
}

/// Pingora's own answer to an error that is not the upstream's (a bad
/// request, a client gone away): its status page, or nothing for a dead
/// connection.
async fn default_fail_to_proxy(session: &mut Session_, e: &pingora::Error) -> FailToProxy {
    use pingora::{ErrorSource, ErrorType};
    let code = match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        _ => match e.esource() {
            ErrorSource::Upstream => 502,
            ErrorSource::Downstream => match e.etype() {
                ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                _ => 400,
            },
            ErrorSource::Internal | ErrorSource::Unset => 500,
        },
    };
    if code > 0
        && let Err(we) = session.respond_error(code).await
    {
        tracing::debug!(event = "error_response_not_sent", error = %we);
    }
    FailToProxy {
        error_code: code,
        can_reuse_downstream: false,
    }
}

/// Answers the request here: `Ok(true)` tells Pingora it is done.
async fn answer(session: &mut Session_, ctx: &mut Ctx, outcome: Outcome, resp: Resp) -> Result<bool> {
    ctx.outcome = outcome;
    write(session, resp).await?;
    Ok(true)
}

#[async_trait]
impl ProxyHttp for GatewayProxy {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        let app = self.app.load_full();
        Ctx {
            _in_flight: app.lifecycle.request(),
            app,
            started: Instant::now(),
            upstream_sent: None,
            upstream_tries: 0,
            portal: None,
            conn: Conn::default(),
            outcome: Outcome::Error,
            identity: None,
            request_id: None,
        }
    }

    async fn request_filter(&self, session: &mut Session_, ctx: &mut Ctx) -> Result<bool>
    where
        Self::CTX: Send + Sync,
    {
        let app = &ctx.app.clone();
        let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let req = session.req_header();
        ctx.conn = Conn::new(&app.config.server, peer, tls, &req.headers);
        ctx.request_id = Some(access_log::request_id(
            ctx.conn.trusted_peer,
            req.headers.get(&X_REQUEST_ID),
        ));
        match front::route(app, req, req.raw_path(), &ctx.conn).await {
            Step::Respond(outcome, resp) => answer(session, ctx, outcome, resp).await,
            Step::Auth { cx, rel_path } => {
                ctx.portal = Some(cx.portal);
                let Some(body) = read_body(session).await? else {
                    return answer(session, ctx, Outcome::Auth, body_too_large()).await;
                };
                let resp = auth::handle(app, front::to_http(session.req_header(), body), &cx, &rel_path).await;
                answer(session, ctx, Outcome::Auth, resp).await
            }
            Step::App { cx, public } => {
                ctx.portal = Some(cx.portal);
                match front::access(app, session.req_header(), &cx, public).await {
                    Verdict::Respond(outcome, resp) => answer(session, ctx, outcome, resp).await,
                    Verdict::Upstream(outcome, identity) => {
                        ctx.outcome = outcome;
                        ctx.identity = identity;
                        Ok(false)
                    }
                }
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session_, ctx: &mut Ctx) -> Result<Box<HttpPeer>> {
        let addr = self
            .upstream
            .pick()
            .await
            .map_err(|f| pingora::Error::explain(pingora::ErrorType::Custom(f.code()), "no address"))?;
        ctx.upstream_tries += 1;
        Ok(Box::new(self.upstream.peer(addr)))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session_,
        _peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<pingora::Error>,
    ) -> Box<pingora::Error> {
        // Another address may be up (a name with several); one try each.
        e.set_retry(ctx.upstream_tries < self.upstream.address_count());
        e
    }

    async fn fail_to_proxy(&self, session: &mut Session_, e: &pingora::Error, ctx: &mut Ctx) -> FailToProxy
    where
        Self::CTX: Send + Sync,
    {
        let Some(failure) = Failure::of(e) else {
            return default_fail_to_proxy(session, e).await;
        };
        let portal = ctx.portal.map(|p| ctx.app.portal(p));
        let portal_name = portal.map(|p| p.name.as_str()).unwrap_or("");
        METRICS
            .upstream_errors
            .with_label_values(&[portal_name, failure.code()])
            .inc();
        let req = session.req_header();
        tracing::warn!(
            event = "upstream_error", reason = failure.code(), status = failure.status(), portal = portal_name,
            method = %req.method, path = req.uri.path(), tries = ctx.upstream_tries, error = %e
        );
        // Past the response header the client already has a status: the
        // connection is just closed.
        if session.response_written().is_some() {
            return FailToProxy {
                error_code: failure.status(),
                can_reuse_downstream: false,
            };
        }
        let navigation = auth::navigation(&req.method, &req.headers);
        let resp = failure.response(portal, navigation);
        // Pingora closes the connection after a failed proxy attempt (the
        // request body may be unread); `Connection: close` says so, or a
        // client would send its next request into the closing connection.
        session.set_keepalive(None);
        if let Err(we) = write(session, resp).await {
            tracing::debug!(event = "upstream_error_page_not_sent", error = %we);
        }
        FailToProxy {
            error_code: failure.status(),
            can_reuse_downstream: false,
        }
    }

    async fn upstream_request_filter(&self, session: &mut Session_, up: &mut RequestHeader, ctx: &mut Ctx) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        ctx.upstream_sent = Some(Instant::now());
        let cfg = &ctx.app.config;
        let facts = Upstream {
            rules: policy::headers::HeaderRules {
                trusted_peer: ctx.conn.trusted_peer,
                strip_authorization: cfg.upstream.strip_authorization,
                allow_underscore: &cfg.upstream.allow_underscore_headers,
            },
            cookie_base: &cfg.session.cookie_name,
            peer_ip: ctx.conn.peer_ip,
            https: ctx.conn.https,
            host: text(&session.req_header().headers, &http::header::HOST),
            convenience: cfg.identity.convenience_headers,
            request_id: ctx.request_id.as_ref(),
        };
        let edits = upstream_edits(&up.headers, &facts, ctx.identity.as_ref());
        crate::upstream::request::apply(up, edits, cfg.upstream.preserve_header_case)
    }

    async fn upstream_response_filter(&self, _s: &mut Session_, _r: &mut ResponseHeader, ctx: &mut Ctx) -> Result<()>
    where
        Self::CTX: Send + Sync,
    {
        if let Some(sent) = ctx.upstream_sent {
            let secs = sent.elapsed().as_secs_f64();
            ctx.app.request_counters.observe_upstream(ctx.portal, secs);
        }
        Ok(())
    }

    /// What Pingora's error log says about a request: method, host and path,
    /// never the query string (it may carry codes, tokens or personal data).
    fn request_summary(&self, session: &Session_, _ctx: &Ctx) -> String {
        let req = session.req_header();
        let host = text(&req.headers, &http::header::HOST);
        format!("{} {} Host: {}", req.method, req.uri.path(), host.unwrap_or(""))
    }

    async fn logging(&self, session: &mut Session_, e: Option<&pingora::Error>, ctx: &mut Ctx)
    where
        Self::CTX: Send + Sync,
    {
        // A local-account request is proxied too; its failures count alike.
        let outcome = if e.is_some() && ctx.outcome.is_proxied() {
            Outcome::UpstreamError
        } else {
            ctx.outcome
        };
        ctx.app.request_counters.inc(ctx.portal, outcome);
        if ctx.app.config.server.access_log && access_log::enabled() {
            let portal = ctx.portal.map(|p| ctx.app.portal(p).name.as_str()).unwrap_or("");
            let req = session.req_header();
            access_log::write(&access_log::Entry {
                request_id: ctx.request_id.as_ref(),
                client_ip: ctx.conn.client_ip,
                portal,
                method: req.method.as_str(),
                path: req.uri.path(),
                status: session.response_written().map(|r| r.status.as_u16()),
                outcome: outcome.label(),
                duration: ctx.started.elapsed(),
                user: ctx.identity.as_ref().map(|i| i.session.user_key()),
            });
        }
    }
}
