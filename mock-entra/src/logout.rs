//! The end-session endpoint: ends this browser's Entra session, frames each
//! app's front-channel logout URL, and goes on only to a post-logout URI the
//! app may use.

use crate::pages::end_session_page;
use crate::state::{Inner, Params, SSO_COOKIE, sso_sid};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;

/// One call to the end-session endpoint, for tests.
#[derive(Debug, Clone, PartialEq)]
pub struct LogoutCall {
    pub tenant: String,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub logout_hint: Option<String>,
}

pub(crate) async fn logout(
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
