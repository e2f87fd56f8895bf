//! `/auth/logout`: ends the session when the request is provably
//! same-origin; a cross-site GET only gets a confirmation page.

use super::{RequestContext, param, params};
use crate::app::App;
use crate::config::Portal;
use crate::respond::{self, Resp};
use crate::session::{Session, SessionKey};
use bytes::Bytes;
use http::{Method, Request};
use policy::Reason;
use policy::cookies::{local_cookie_name, session_cookie_name};
use subtle::ConstantTimeEq;

pub async fn handle(app: &App, req: &Request<Bytes>, cx: &RequestContext) -> Resp {
    let portal = app.portal(cx.portal);
    let cookie_name = session_cookie_name(&app.config.session.cookie_name, &portal.name, cx.secure_cookies);
    let current = match respond::cookie_value(req.headers(), &cookie_name) {
        Some(v) => match app.sessions.for_cookie(v, portal, cx.client_name(app)).await {
            Ok(s) => s,
            Err(_) => return respond::refusal(Reason::StoreUnavailable, None, Some(portal), true),
        },
        None => None,
    };
    let Some((id, session)) = current else {
        // Nothing to end: say so plainly (and clear a stale cookie, and the
        // "use a local account" choice: signing out leaves it too).
        let mut r = respond::redirect(303, &portal.path("/auth/logged-out"));
        clear_cookies(&mut r, app, cx, portal, cookie_name);
        return r;
    };

    if req.method() == Method::POST {
        let p = params(req);
        let csrf = param(&p, "csrf").unwrap_or("");
        if !bool::from(csrf.as_bytes().ct_eq(session.csrf().as_bytes())) {
            return respond::refusal(Reason::CsrfMismatch, None, Some(portal), true);
        }
    } else if !policy::origin::get_is_same_origin(&super::origin_facts(app, req, cx)) {
        return respond::html_posting_to(
            200,
            crate::pages::logout_confirm(
                &portal.path("/auth/logout"),
                session.csrf(),
                portal.branding.color.as_deref(),
            ),
            end_session_endpoint(app).map(url::Url::as_str),
        );
    }
    end_session(app, req, cx, portal, &id, &session, cookie_name).await
}

/// Entra's end-session endpoint; none while discovery is pending (the
/// logout is then local: the session here ends, Entra's sign-in stays).
fn end_session_endpoint(app: &App) -> Option<&url::Url> {
    app.tenants.metadata()?.end_session_endpoint.as_ref()
}

async fn end_session(
    app: &App,
    req: &Request<Bytes>,
    cx: &RequestContext,
    portal: &Portal,
    id: &SessionKey,
    s: &Session,
    cookie_name: String,
) -> Resp {
    let slo = app.config.sso.single_logout && end_session_endpoint(app).is_some();
    let kind = if slo { "single_logout" } else { "local" };
    // Single logout ends the Entra sign-in, so every local session made from
    // it (the other portals' of the same `sid`) ends too, on every instance.
    let mut ids = vec![*id];
    if slo && let Some(sid) = s.sid() {
        match app.sessions.by_sid(sid).await {
            Ok(more) => ids.extend(more.into_iter().filter(|m| m != id)),
            Err(_) => return respond::refusal(Reason::StoreUnavailable, None, Some(portal), true),
        }
    }
    if app.sessions.end(&ids, kind).await.is_err() {
        return respond::refusal(Reason::StoreUnavailable, None, Some(portal), true);
    }
    tracing::info!(
        event = "logout", kind, portal = %portal.name, tid = %s.tid, oid = %s.oid(), ended = ids.len(),
        user = %s.user_key(), client_ip = cx.client_ip.map(tracing::field::display),
        user_agent = super::user_agent(req)
    );

    let location = match (end_session_endpoint(app), slo) {
        (Some(end), true) => {
            let mut url = end.clone();
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("client_id", app.config.entra.client_id.as_str());
                q.append_pair(
                    "post_logout_redirect_uri",
                    &format!("{}/auth/logged-out", cx.portal_url(app)),
                );
                // The login_hint claim, never an email: it names the account
                // to Entra without disclosing anything to a log.
                if let Some(h) = s.login_hint() {
                    q.append_pair("logout_hint", h);
                }
            }
            url.to_string()
        }
        _ => portal.path("/auth/logged-out"),
    };
    let mut r = respond::redirect(303, &location);
    clear_cookies(&mut r, app, cx, portal, cookie_name);
    r
}

/// Signing out forgets the session and the "use a local account" choice: a
/// browser that signed out is anonymous, not passed through to the app's
/// own login.
fn clear_cookies(r: &mut Resp, app: &App, cx: &RequestContext, portal: &Portal, session_cookie: String) {
    let local = local_cookie_name(&app.config.session.cookie_name, &portal.name, cx.secure_cookies);
    respond::add_cookie(r, &respond::expired_cookie(session_cookie, cx.secure_cookies));
    respond::add_cookie(r, &respond::expired_cookie(local, cx.secure_cookies));
}
