//! The app's own token from Entra (client-credentials grant): what CSP sync
//! reads Graph with, and what `check-config --online` proves the client
//! credential with.

use crate::config::Config;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no client credential configured (entra.client_secret or client_secret_file)")]
    NoCredential,
    #[error("token request failed: {0}")]
    Request(String),
    /// Entra's answer, by its error code (never the request, which holds the secret).
    #[error("token endpoint answered HTTP {status}{}", .error.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
    Refused { status: u16, error: Option<String> },
    #[error("token endpoint answered malformed JSON: {0}")]
    Malformed(String),
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: Option<String>,
    error_description: Option<String>,
}

/// An app-only access token for `resource` (`https://graph.microsoft.com`),
/// from the home tenant's token endpoint.
pub async fn app_token(http: &reqwest::Client, c: &Config, resource: &str) -> Result<String, TokenError> {
    let e = &c.entra;
    let secret = e.client_secret.as_ref().ok_or(TokenError::NoCredential)?;
    let url = format!("{}/{}/oauth2/v2.0/token", e.authority_host, e.tenant_id);
    let scope = format!("{resource}/.default");
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", e.client_id.as_str()),
            ("client_secret", secret.expose()),
            ("scope", scope.as_str()),
        ])
        .finish();
    let resp = http
        .post(&url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| TokenError::Request(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    if !resp.status().is_success() {
        // `AADSTS7000215: Invalid client secret provided…`: the code and the
        // first sentence tell an operator what to fix.
        let error = resp.json::<ErrorResponse>().await.ok().and_then(|b| {
            let first = b
                .error_description
                .as_deref()
                .and_then(|d| d.split(['.', '\r', '\n']).next())
                .map(|d| d.chars().take(160).collect::<String>());
            match (b.error, first) {
                (Some(e), Some(d)) => Some(format!("{e} ({d})")),
                (e, d) => e.or(d),
            }
        });
        return Err(TokenError::Refused { status, error });
    }
    resp.json::<TokenResponse>()
        .await
        .map(|t| t.access_token)
        .map_err(|e| TokenError::Malformed(e.without_url().to_string()))
}
