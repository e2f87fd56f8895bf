//! The authorize endpoint: the login form, the Entra browser session (a
//! second sign-in reuses it), and the `form_post` answer with an ID token or
//! a code.

use crate::config::{MockApp, MockUser};
use crate::keys::Signing;
use crate::pages::{error_page, form_post, login_form};
use crate::state::{Inner, Params, PendingCode, SSO_COOKIE, SsoSession, sso_sid};
use crate::util::{now, random_sid, random_token};
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::Map;
use std::sync::Arc;

pub(crate) async fn authorize_get(
    State(s): State<Arc<Inner>>,
    Path(tenant): Path<String>,
    Query(p): Query<Params>,
    h: HeaderMap,
) -> Response {
    authorize(s, tenant, p, sso_sid(&h))
}

pub(crate) async fn authorize_post(
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
    if let Some((code, text)) = s.sign_in_refusal(&user) {
        return error_page(StatusCode::BAD_REQUEST, code, &text);
    }
    if s.known_tenant(&tenant) && user.tenant != tenant {
        return post_error(
            "access_denied",
            &format!(
                "AADSTS50020: User account '{}' from identity provider does not exist in tenant.",
                user.username
            ),
        );
    }
    let sid = existing.map(|(sid, _)| sid).unwrap_or_else(random_sid);
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
    let code = random_token(48);
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
