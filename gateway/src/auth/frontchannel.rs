//! `/auth/account/frontchannel-logout`: Entra's front-channel logout. Entra
//! loads it in a hidden iframe with only `sid` (and perhaps `iss`), no
//! cookies; every session whose ID token carried that `sid` ends, on every
//! instance.

use super::{RequestContext, param, params};
use crate::app::App;
use crate::respond::{self, Resp};
use bytes::Bytes;
use http::{HeaderValue, Request, header};

pub async fn handle(app: &App, req: &Request<Bytes>, _cx: &RequestContext) -> Resp {
    let p = params(req);
    let ended = match (app.config.sso.single_logout, param(&p, "sid")) {
        (true, Some(sid)) if !sid.is_empty() && sid.len() <= 256 => end_by_sid(app, sid, param(&p, "iss")).await,
        // SLO off, or nothing to identify a session by: end nothing.
        _ => 0,
    };
    tracing::info!(event = "frontchannel_logout", ended);
    answer(app)
}

async fn end_by_sid(app: &App, sid: &str, iss: Option<&str>) -> usize {
    let Ok(ids) = app.sessions.by_sid(sid).await else {
        return 0;
    };
    let mut matching = Vec::new();
    for id in ids {
        if let Ok(Some(s)) = app.sessions.get(&id).await
            // A logout for another issuer's sid must not end our sessions.
            && iss.is_none_or(|i| i.eq_ignore_ascii_case(s.issuer()))
        {
            matching.push(id);
        }
    }
    app.sessions.end(&matching, "frontchannel").await.unwrap_or(0)
}

/// 200, never cached, framable by the authority only.
fn answer(app: &App) -> Resp {
    let mut r = respond::html(200, "<!doctype html><title>Signed out</title>".into());
    let h = r.headers_mut();
    h.remove("x-frame-options");
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache, no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    // Before discovery nobody is known to frame it: framable by no one.
    let origin = app.tenants.metadata().map_or_else(
        || "'none'".to_string(),
        |m| m.authorization_endpoint.origin().ascii_serialization(),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("default-src 'none'; frame-ancestors {origin}")) {
        h.insert("content-security-policy", v);
    }
    r
}
