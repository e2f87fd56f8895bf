//! The app's client credential at the token endpoint (a secret, a
//! certificate's `private_key_jwt` assertion, or a federated token), and the
//! app's own token from Entra (client-credentials grant): what CSP sync reads
//! Graph with, and what `check-config --online` proves the credential with.

use crate::config::{ClientCredential, Config};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Deserialize;

/// RFC 7523's client assertion type.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// How long a certificate's client assertion is valid (Entra accepts up to 10 min).
const ASSERTION_LIFETIME_SECS: i64 = 300;

/// The DER of the first certificate in a PEM file.
pub fn certificate_der(pem: &str) -> Option<Vec<u8>> {
    let body = pem
        .split("-----BEGIN CERTIFICATE-----")
        .nth(1)?
        .split("-----END CERTIFICATE-----")
        .next()?;
    let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(b64).ok().filter(|d| !d.is_empty())
}

/// base64url SHA-256 and SHA-1 thumbprints of a certificate's DER: the
/// `x5t#S256` and `x5t` headers that tell Entra which registered
/// certificate signed the assertion.
pub fn thumbprints(der: &[u8]) -> (String, String) {
    let s256 = ring::digest::digest(&ring::digest::SHA256, der);
    let s1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, der);
    (URL_SAFE_NO_PAD.encode(s256), URL_SAFE_NO_PAD.encode(s1))
}

#[derive(serde::Serialize)]
struct AssertionClaims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: i64,
    iat: i64,
    exp: i64,
}

/// The form parameters that authenticate the app at `token_endpoint`.
pub fn client_auth(
    cred: &ClientCredential,
    client_id: &str,
    token_endpoint: &str,
) -> Result<Vec<(&'static str, String)>, TokenError> {
    match cred {
        ClientCredential::Secret(s) => Ok(vec![("client_secret", s.expose().to_string())]),
        ClientCredential::Certificate { key_pem, x5t_s256, x5t } => {
            let key = jsonwebtoken::EncodingKey::from_rsa_pem(key_pem.expose().as_bytes())
                .map_err(|e| TokenError::Credential(format!("certificate key: {e}")))?;
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
            header.x5t_s256 = Some(x5t_s256.clone());
            header.x5t = Some(x5t.clone());
            let now = crate::session::now_unix();
            let claims = AssertionClaims {
                aud: token_endpoint,
                iss: client_id,
                sub: client_id,
                // Single use: Entra refuses a replayed assertion.
                jti: uuid::Uuid::new_v4().to_string(),
                nbf: now,
                iat: now,
                exp: now + ASSERTION_LIFETIME_SECS,
            };
            let jwt = jsonwebtoken::encode(&header, &claims, &key)
                .map_err(|e| TokenError::Credential(format!("cannot sign the client assertion: {e}")))?;
            Ok(vec![
                ("client_assertion_type", JWT_BEARER.to_string()),
                ("client_assertion", jwt),
            ])
        }
        ClientCredential::Federated { token_file } => {
            // Re-read every time: the platform rotates the file (hourly on AKS).
            let token = std::fs::read_to_string(token_file)
                .map_err(|e| TokenError::Credential(format!("{}: {e}", token_file.display())))?;
            let token = token.trim();
            if token.is_empty() {
                return Err(TokenError::Credential(format!("{} is empty", token_file.display())));
            }
            Ok(vec![
                ("client_assertion_type", JWT_BEARER.to_string()),
                ("client_assertion", token.to_string()),
            ])
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "no client credential configured (entra.client_secret, client_secret_file, client_certificate or federated_token_file)"
    )]
    NoCredential,
    #[error("client credential unusable: {0}")]
    Credential(String),
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
    app_token_in(http, c, resource, &c.entra.tenant_id).await
}

/// An app-only access token valid in `tenant` (a CSP customer's, once its
/// administrator consented to the app; Entra refuses it otherwise).
pub async fn app_token_in(
    http: &reqwest::Client,
    c: &Config,
    resource: &str,
    tenant: &policy::TenantId,
) -> Result<String, TokenError> {
    let e = &c.entra;
    let cred = e.credential.as_ref().ok_or(TokenError::NoCredential)?;
    let url = format!("{}/{}/oauth2/v2.0/token", e.authority_host, tenant);
    let scope = format!("{resource}/.default");
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("grant_type", "client_credentials"),
            ("client_id", e.client_id.as_str()),
            ("scope", scope.as_str()),
        ])
        .extend_pairs(client_auth(cred, e.client_id.as_str(), &url)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_pem_and_thumbprints() {
        let der = b"not really DER but bytes".to_vec();
        let pem = format!(
            "junk\n-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            STANDARD.encode(&der)
        );
        assert_eq!(certificate_der(&pem), Some(der.clone()));
        assert_eq!(certificate_der("-----BEGIN PRIVATE KEY-----\nAAAA\n"), None);
        let (s256, s1) = thumbprints(&der);
        assert_eq!(URL_SAFE_NO_PAD.decode(&s256).unwrap().len(), 32);
        assert_eq!(URL_SAFE_NO_PAD.decode(&s1).unwrap().len(), 20);
    }
}
