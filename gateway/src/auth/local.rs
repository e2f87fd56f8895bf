//! The login page and "Use a local account": this browser goes through to
//! the application's own login (transparent proxying, identity still
//! stripped) until it signs in with SSO.

use super::{RequestContext, param, params};
use crate::app::App;
use crate::pages;
use crate::respond::{self, Resp};
use bytes::Bytes;
use cookie::SameSite;
use http::Request;
use policy::cookies::local_cookie_name;

/// `GET /auth/login`: straight to Entra when auto-redirect applies (and the
/// operator's escape hatch `local=1` is absent), else the page.
pub async fn login_entry(app: &App, req: &Request<Bytes>, cx: &RequestContext) -> Resp {
    let p = params(req);
    let rd = param(&p, "rd");
    let forced_page = param(&p, "local") == Some("1");
    if !forced_page && cx.auto_redirect(&app.config) {
        return super::login::start(app, req, cx, rd, app.config.sso.remember_me_default).await;
    }
    page(app, cx, rd)
}

pub fn page(app: &App, cx: &RequestContext, rd: Option<&str>) -> Resp {
    let portal = app.portal(cx.portal);
    let client = cx.client.map(|i| &app.config.clients[i]);
    let b = |f: fn(&crate::config::Branding) -> Option<&String>| {
        client
            .and_then(|c| f(&c.branding))
            .or_else(|| f(&portal.branding))
            .map(String::as_str)
    };
    let rd = policy::paths::safe_return_path(rd, &portal.path("/"));
    respond::html_posting_to(
        200,
        pages::login(&pages::LoginPage {
            heading: b(|x| x.title.as_ref()).unwrap_or("Sign in"),
            logo_url: b(|x| x.logo_url.as_ref()),
            color: b(|x| x.color.as_ref()),
            action: &portal.path("/auth/login"),
            local_action: &portal.path("/auth/local"),
            rd: &rd,
            remember_me: app.config.sso.remember_me,
            remember_me_days: app.config.sso.remember_me_days,
        }),
        app.tenants.metadata().map(|m| m.authorization_endpoint.as_str()),
    )
}

/// `POST /auth/local`.
pub fn use_local_account(app: &App, req: &Request<Bytes>, cx: &RequestContext) -> Resp {
    let portal = app.portal(cx.portal);
    let p = params(req);
    let rd = policy::paths::safe_return_path(param(&p, "rd"), &portal.path("/"));
    let mut r = respond::redirect(303, &rd);
    let name = local_cookie_name(&app.config.session.cookie_name, &portal.name, cx.secure_cookies);
    respond::add_cookie(
        &mut r,
        &respond::cookie(name, "1".into(), cx.secure_cookies, SameSite::Lax, None),
    );
    r
}
