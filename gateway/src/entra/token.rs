//! The authorization-code exchange (code + PKCE + the client credential).

use crate::config::ClientCredential;
use serde::Deserialize;

#[derive(Deserialize)]
struct TokenResponse {
    id_token: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("token endpoint unreachable: {0}")]
    Unreachable(String),
    /// Entra's `error` and `error_codes` (the AADSTS numbers that
    /// troubleshooting guides are keyed by); never its description, which
    /// may echo input.
    #[error("token endpoint refused the code: HTTP {status} {error}{}", aadsts_suffix(.codes))]
    Refused {
        status: u16,
        error: String,
        codes: Vec<u32>,
    },
    #[error("token endpoint answered without an id_token")]
    NoIdToken,
    #[error("{0}")]
    Credential(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    #[serde(default)]
    error_codes: Vec<u32>,
}

/// `AADSTS70008, AADSTS50148` (empty when Entra sent no codes).
fn aadsts(codes: &[u32]) -> String {
    codes
        .iter()
        .map(|c| format!("AADSTS{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// ` (AADSTS70008)` after the error, or nothing.
fn aadsts_suffix(codes: &[u32]) -> String {
    if codes.is_empty() {
        String::new()
    } else {
        format!(" ({})", aadsts(codes))
    }
}

impl ExchangeError {
    /// The AADSTS codes of a refusal, comma-separated (empty otherwise).
    pub fn error_codes(&self) -> String {
        match self {
            ExchangeError::Refused { codes, .. } => aadsts(codes),
            _ => String::new(),
        }
    }
}

pub struct CodeExchange<'a> {
    pub token_endpoint: &'a str,
    pub client_id: &'a str,
    pub credential: &'a ClientCredential,
    pub code: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
}

pub async fn exchange(http: &reqwest::Client, x: CodeExchange<'_>) -> Result<String, ExchangeError> {
    let auth = super::credential::client_auth(x.credential, x.client_id, x.token_endpoint)
        .map_err(|e| ExchangeError::Credential(e.to_string()))?;
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", x.client_id),
        ("code", x.code),
        ("redirect_uri", x.redirect_uri),
        ("code_verifier", x.code_verifier),
        ("scope", "openid profile email"),
    ];
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .extend_pairs(auth)
        .finish();
    let resp = http
        .post(x.token_endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map_err(|e| ExchangeError::Unreachable(e.without_url().to_string()))?;
    let status = resp.status().as_u16();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| ExchangeError::Unreachable(e.without_url().to_string()))?;
    if !(200..300).contains(&status) {
        // Only the OAuth error code and the AADSTS numbers are kept:
        // descriptions may echo input.
        let body = serde_json::from_slice::<ErrorBody>(&bytes).ok();
        let codes = body
            .as_ref()
            .map(|b| b.error_codes.iter().take(8).copied().collect())
            .unwrap_or_default();
        let error = body
            .and_then(|b| b.error)
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        return Err(ExchangeError::Refused { status, error, codes });
    }
    serde_json::from_slice::<TokenResponse>(&bytes)
        .ok()
        .and_then(|t| t.id_token)
        .ok_or(ExchangeError::NoIdToken)
}
