//! The token endpoint: the authorization-code grant (PKCE, a client secret
//! or assertion) and the client-credentials grant Graph calls use.

use crate::client_auth::{Refusal, authenticate};
use crate::keys::Signing;
use crate::pages::oauth_error;
use crate::state::{Inner, Params};
use crate::util::{now, random_token};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, json};
use sha2::Digest;
use std::sync::Arc;

pub(crate) async fn token(State(s): State<Arc<Inner>>, Path(tenant): Path<String>, Form(f): Form<Params>) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str);
    if get("grant_type") == Some("client_credentials") {
        return client_credentials(&s, &f, &tenant);
    }
    if get("grant_type") != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "AADSTS70003: grant type not supported by this mock.",
        );
    }
    let app = match authenticate(&s, &f, &token_url(&s, &tenant)) {
        Ok(app) => app.clone(),
        Err(e) => return refusal(e),
    };
    let code = get("code").unwrap_or("");
    let Some(pending) = s.codes.lock().expect("lock").remove(code) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "AADSTS70008: The provided authorization code or refresh token has expired or was already used.",
        );
    };
    if pending.expires < now()
        || pending.client_id != app.client_id
        || get("redirect_uri") != Some(pending.redirect_uri.as_str())
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "AADSTS50148: The code was issued to another request.",
        );
    }
    if let Some(challenge) = &pending.challenge {
        let verifier = get("code_verifier").unwrap_or("");
        let computed = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
        if &computed != challenge {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            );
        }
    }
    let id_token = s.mint(
        &pending.user,
        &app.client_id,
        pending.nonce.as_deref(),
        &pending.sid,
        Some(code),
        &Map::new(),
        &Signing::Active,
    );
    axum::Json(json!({
        "token_type": "Bearer",
        "scope": "openid profile email",
        "expires_in": 3599,
        "ext_expires_in": 3599,
        "access_token": random_token(64),
        "id_token": id_token,
    }))
    .into_response()
}

fn refusal(r: Refusal) -> Response {
    match r {
        Refusal::UnknownApp => oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "AADSTS700016: Application not found.",
        ),
        Refusal::BadSecret => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        ),
        Refusal::BadAssertion(why) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", why),
        Refusal::Expired => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS700024: Client assertion is not within its valid time range.",
        ),
        Refusal::Replayed => oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "AADSTS700027: The client assertion has already been used (jti replayed).",
        ),
    }
}

/// The URL this request was sent to: a client assertion's audience.
fn token_url(s: &Inner, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", s.base)
}

fn client_credentials(s: &Inner, f: &Params, tenant: &str) -> Response {
    let get = |k: &str| f.get(k).map(String::as_str);
    if let Err(e) = authenticate(s, f, &token_url(s, tenant)) {
        return refusal(e);
    }
    if !get("scope").is_some_and(|sc| sc.ends_with("/.default")) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid.",
        );
    }
    if s.config
        .unconsented_tenants
        .iter()
        .any(|t| t.eq_ignore_ascii_case(tenant))
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.",
                get("client_id").unwrap_or_default()
            ),
        );
    }
    let token = random_token(48);
    s.app_tokens
        .lock()
        .expect("lock")
        .insert(token.clone(), tenant.to_string());
    axum::Json(json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token }))
        .into_response()
}
