//! The gateway's own routes under `<portal>/auth/`, as plain async functions
//! from a request to a response: no Pingora types here.

pub mod callback;
pub mod frontchannel;
pub mod limits;
pub mod local;
pub mod login;
pub mod logout;
pub mod matching;
#[cfg(test)]
mod tests;
pub mod two_factor;

use crate::app::App;
use crate::header_names::{SEC_FETCH_MODE, SEC_FETCH_SITE, X_REQUESTED_WITH, text};
use crate::respond::{self, Resp};
use bytes::Bytes;
use http::{Method, Request};
use policy::Reason;
use policy::access::{RequestTraits, is_browser_navigation};

/// What the proxy knows about a request that the routes need.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub portal: usize,
    /// Whether cookies set on this response must be `Secure`.
    pub secure_cookies: bool,
    /// The client whose host the request came to, if any.
    pub client: Option<usize>,
    /// At a client's own host, the portal's URL as that host serves it
    /// (see [`portal_url`](Self::portal_url)); built only then.
    pub client_portal_url: Option<String>,
    /// The client's address (behind trusted proxies, the forwarded one).
    pub client_ip: Option<std::net::IpAddr>,
    /// SSO is on for this portal.
    pub sso: bool,
}

impl RequestContext {
    /// The portal's public URL as this browser reaches it (the client's host
    /// when there is one), without trailing slash.
    pub fn portal_url<'a>(&'a self, app: &'a App) -> &'a str {
        self.client_portal_url
            .as_deref()
            .unwrap_or_else(|| app.portal(self.portal).url.as_str())
    }

    /// The name of the client whose host this is (sessions are bound to it).
    pub fn client_name<'a>(&self, app: &'a App) -> Option<&'a str> {
        self.client.map(|i| app.config.clients[i].name.as_str())
    }

    /// Whether this request's sign-in skips the login page.
    pub fn auto_redirect(&self, config: &crate::config::Config) -> bool {
        let sso = &config.sso;
        let client = self.client.and_then(|i| config.clients[i].auto_redirect_users);
        policy::access::auto_redirect(
            config.portals[self.portal].kind,
            sso.auto_redirect_agents,
            sso.auto_redirect_users,
            client,
        )
    }
}

/// What `policy::origin` needs of a request.
pub fn origin_facts<'a>(
    app: &'a App,
    req: &'a Request<Bytes>,
    cx: &'a RequestContext,
) -> policy::origin::OriginFacts<'a> {
    let h = req.headers();
    policy::origin::OriginFacts {
        sec_fetch_site: text(h, &SEC_FETCH_SITE),
        origin: text(h, &http::header::ORIGIN),
        portal_url: cx.portal_url(app),
    }
}

/// A cross-site form POST is refused (403) before it changes anything.
fn cross_site_post(portal: &crate::config::Portal) -> Resp {
    crate::metrics::METRICS
        .bad_requests
        .with_label_values(&[Reason::CrossSite.code()])
        .inc();
    respond::refusal(Reason::CrossSite, None, Some(portal), true)
}

pub fn is_navigation(req: &Request<Bytes>) -> bool {
    navigation(req.method(), req.headers())
}

/// Whether a request is a top-level browser navigation (see `policy::access`).
pub fn navigation(method: &Method, h: &http::HeaderMap) -> bool {
    is_browser_navigation(&RequestTraits {
        method: method.as_str(),
        sec_fetch_mode: text(h, &SEC_FETCH_MODE),
        accept: text(h, &http::header::ACCEPT),
        x_requested_with: h.contains_key(&X_REQUESTED_WITH),
    })
}

/// Query or form parameters (the first of each name wins).
/// The browser's `User-Agent` for sign-in and logout log lines: enough to
/// tell devices apart, bounded so a client cannot flood the log.
pub fn user_agent(req: &Request<Bytes>) -> &str {
    const MAX: usize = 256;
    let ua = text(req.headers(), &http::header::USER_AGENT).unwrap_or("");
    // `to_str` only accepts visible ASCII: any byte index is a char boundary.
    &ua[..ua.len().min(MAX)]
}

pub fn params(req: &Request<Bytes>) -> Vec<(String, String)> {
    let mut out = query_params(req);
    out.extend(form_params(req));
    out
}

pub fn query_params(req: &Request<Bytes>) -> Vec<(String, String)> {
    req.uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

/// The urlencoded body of a POST (nothing for other methods or types).
pub fn form_params(req: &Request<Bytes>) -> Vec<(String, String)> {
    let is_form = text(req.headers(), &http::header::CONTENT_TYPE)
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if req.method() == Method::POST && is_form {
        form_urlencoded::parse(req.body()).into_owned().collect()
    } else {
        Vec::new()
    }
}

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Routes a request whose portal-relative path (`rel_path`) starts with `/auth/`.
pub async fn handle(app: &App, req: Request<Bytes>, cx: &RequestContext, rel_path: &str) -> Resp {
    let portal = app.portal(cx.portal);
    let nav = is_navigation(&req);
    match (req.method().clone(), rel_path) {
        (Method::GET, "/auth/login") => local::login_entry(app, &req, cx).await,
        (Method::POST, "/auth/local" | "/auth/login")
            if !policy::origin::post_is_same_origin(&origin_facts(app, &req, cx)) =>
        {
            cross_site_post(portal)
        }
        (Method::POST, "/auth/local") => local::use_local_account(app, &req, cx),
        (Method::POST, "/auth/login") => {
            let p = params(&req);
            // The box exists only with sso.remember_me; ignore it otherwise.
            let remember = app.config.sso.remember_me
                && param(&p, "remember_me").is_some_and(|v| v == "on" || v == "1" || v == "true");
            login::start(app, &req, cx, param(&p, "rd"), remember).await
        }
        (Method::GET | Method::POST, "/auth/account/azureresponse") => callback::handle(app, &req, cx).await,
        (Method::GET | Method::POST, "/auth/logout") => logout::handle(app, &req, cx).await,
        (Method::GET | Method::POST, "/auth/2fa") => two_factor::handle(app, &req, cx).await,
        (Method::GET, "/auth/account/frontchannel-logout") => frontchannel::handle(app, &req, cx).await,
        (Method::GET, "/auth/logged-out") => respond::html(
            200,
            crate::pages::logged_out(&portal.path("/auth/login"), portal.branding.color.as_deref()),
        ),
        (
            _,
            "/auth/login"
            | "/auth/local"
            | "/auth/2fa"
            | "/auth/account/azureresponse"
            | "/auth/logout"
            | "/auth/logged-out",
        ) => {
            let mut r = respond::json(405, &serde_json::json!({ "error": "method_not_allowed" }));
            *r.status_mut() = http::StatusCode::METHOD_NOT_ALLOWED;
            r
        }
        _ => {
            let mut r = respond::refusal(Reason::BadRequest, Some("No such gateway page."), Some(portal), nav);
            *r.status_mut() = http::StatusCode::NOT_FOUND;
            r
        }
    }
}
