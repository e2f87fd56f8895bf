//! Starting a sign-in: a login record in the store, a login cookie in the
//! browser, and a redirect to the authority.

use super::RequestContext;
use crate::app::App;
use crate::respond::{self, Resp};
use crate::session::{LoginRecord, now_unix, now_unix_us, random_token};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use cookie::SameSite;
use http::Request;
use policy::Reason;
use policy::cookies::{login_cookie_name, login_cookie_same_site, prefixed};
use sha2::Digest;
use std::time::Duration;

/// How long a started sign-in may take.
pub const LOGIN_TTL: Duration = Duration::from_secs(600);
/// Pending sign-ins (tabs) per browser; older ones are dropped beyond this.
pub const MAX_PENDING_LOGINS: usize = 8;
/// Characters of the state that name its cookie.
pub const STATE_TAG_LEN: usize = policy::state::STATE_TAG_LEN;

/// Login cookies already in the browser, oldest first (by the start time in
/// microseconds that each cookie carries: tabs opened within one second are
/// still told apart).
fn pending_login_cookies(app: &App, req: &Request<Bytes>) -> Vec<(String, i64)> {
    let base = format!("{}_login_", app.config.session.cookie_name);
    let mut v: Vec<(String, i64)> = respond::request_cookies(req.headers())
        .into_iter()
        .filter(|(n, _)| n.strip_prefix("__Host-").unwrap_or(n).starts_with(&base))
        .map(|(n, v)| {
            let started = policy::state::parse_login_cookie(&v).map_or(0, |(t, _)| t);
            (n, started)
        })
        .collect();
    v.sort_by_key(|(_, t)| *t);
    v
}

/// A navigation that needs a session, where sign-in is not automatic: to
/// the login page, which brings the browser back to `rd` afterwards.
pub fn to_login_page(portal: &crate::config::Portal, rd: Option<&str>) -> Resp {
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("rd", rd.unwrap_or("/"))
        .finish();
    respond::redirect(302, &format!("{}?{q}", portal.path("/auth/login")))
}

pub async fn start(app: &App, req: &Request<Bytes>, cx: &RequestContext, rd: Option<&str>, remember_me: bool) -> Resp {
    let portal = app.portal(cx.portal);
    let nav = super::is_navigation(req) || req.method() == http::Method::POST;
    // Every start writes a record: anonymous clients are held to a rate.
    if let Err(reason) = app.login_limits.admit(cx.client_ip) {
        crate::metrics::METRICS
            .bad_requests
            .with_label_values(&[reason.code()])
            .inc();
        return respond::refusal(reason, None, Some(portal), nav);
    }
    // Entra not reached since start: nothing to send the browser to yet.
    if app.tenants.metadata().is_none() {
        return respond::refusal(Reason::MetadataUnavailable, None, Some(portal), nav);
    }
    let return_to = policy::paths::safe_return_path(rd, &portal.path("/"));
    let entra = &app.config.entra;

    // 256 bits for the state (the store key), the nonce and the PKCE verifier
    // (RFC 7636's 43-character minimum); 128 for the browser binding.
    let state = random_token(32);
    let nonce = random_token(32);
    let binding = random_token(16);
    let pkce_verifier = entra.credential.as_ref().map(|_| random_token(32));
    let now = now_unix();
    let now_us = now_unix_us();
    let client = cx.client.map(|i| &app.config.clients[i]);
    let tenant = policy::signin::login_tenant(
        entra.tenant_type,
        &entra.tenant_id,
        client.and_then(|c| c.tenant_id.as_ref()),
    );
    let redirect_uri = format!("{}/auth/account/azureresponse", cx.portal_url(app));
    let record = LoginRecord {
        portal: portal.name.clone(),
        nonce: nonce.clone(),
        binding: binding.clone(),
        pkce_verifier: pkce_verifier.clone(),
        return_to,
        remember_me,
        tenant: tenant.cloned(),
        client: client.map(|c| c.name.clone()),
        redirect_uri: redirect_uri.clone(),
        started_at: now,
    };
    if app.logins.put_login(&state, &record, LOGIN_TTL).await.is_err() {
        return respond::refusal(Reason::StoreUnavailable, None, Some(portal), nav);
    }

    let mut url = match app.tenants.authorize_endpoint(tenant) {
        Ok(url) => url,
        Err(reason) => return respond::refusal(reason, None, Some(portal), nav),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", entra.client_id.as_str());
        q.append_pair(
            "response_type",
            if pkce_verifier.is_some() { "code" } else { "id_token" },
        );
        q.append_pair("redirect_uri", &redirect_uri);
        q.append_pair("response_mode", "form_post");
        q.append_pair("scope", "openid profile email");
        q.append_pair("state", &state);
        q.append_pair("nonce", &nonce);
        if let Some(v) = &pkce_verifier {
            let challenge = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes()));
            q.append_pair("code_challenge", &challenge);
            q.append_pair("code_challenge_method", "S256");
        }
        if let Some(d) = policy::signin::domain_hint(
            client.and_then(|c| c.federated_domain.as_deref()),
            entra.federated_domain.as_deref(),
        ) {
            q.append_pair("domain_hint", d);
        }
    }

    let mut resp = respond::redirect(302, url.as_str());
    let secure = cx.secure_cookies;
    // Bound what a browser accumulates: drop the oldest pending logins.
    let pending = pending_login_cookies(app, req);
    let excess = (pending.len() + 1).saturating_sub(MAX_PENDING_LOGINS);
    for (name, _) in pending.into_iter().take(excess) {
        let bare = name.strip_prefix("__Host-").unwrap_or(&name).to_string();
        respond::add_cookie(&mut resp, &respond::expired_cookie(prefixed(&bare, secure), secure));
    }
    let same_site = match login_cookie_same_site(secure) {
        "None" => SameSite::None,
        _ => SameSite::Lax,
    };
    let name = login_cookie_name(&app.config.session.cookie_name, &state[..STATE_TAG_LEN], secure);
    let c = respond::cookie(
        name,
        policy::state::login_cookie_value(now_us, &binding),
        secure,
        same_site,
        Some(LOGIN_TTL.as_secs() as i64),
    );
    respond::add_cookie(&mut resp, &c);
    resp
}
