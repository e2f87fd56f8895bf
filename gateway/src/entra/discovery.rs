//! The authority's OpenID configuration, checked before it is trusted.

use crate::config::Entra;
use serde::Deserialize;
use url::Url;

/// The document as the authority serves it, before any check.
#[derive(Debug, Clone, Deserialize)]
pub struct RawDiscovery {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// The checked document: every endpoint parsed once, on the cloud's hosts.
#[derive(Debug, Clone)]
pub struct DiscoveryDocument {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    pub end_session_endpoint: Option<Url>,
}

#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("cannot fetch {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} is not a valid OpenID configuration: {reason}")]
    Malformed { url: String, reason: String },
    #[error("discovery issuer is {found:?}, expected {expected:?}")]
    WrongIssuer { found: String, expected: String },
    #[error("{field} {value:?} is not https on the cloud's hosts")]
    UntrustedEndpoint { field: &'static str, value: String },
}

/// An endpoint is trusted when it is https on the cloud's login or issuer
/// host, or on the operator's override (which may be loopback http).
fn endpoint_ok(cfg: &Entra, url: &Url) -> bool {
    let origin = url.origin().ascii_serialization();
    let mut allowed = vec![cfg.authority_host.as_str(), cfg.issuer_host.as_str()];
    if !cfg.authority_overridden {
        allowed.push(cfg.cloud.login_host());
        allowed.push(cfg.cloud.issuer_host());
    }
    let https = url.scheme() == "https"
        || (url.scheme() == "http" && crate::config::is_loopback(url) && cfg.authority_overridden);
    https && allowed.iter().any(|a| origin == *a)
}

pub async fn fetch(http: &reqwest::Client, cfg: &Entra) -> Result<DiscoveryDocument, DiscoveryError> {
    let url = cfg.discovery_url();
    let resp = http.get(&url).send().await.map_err(|e| DiscoveryError::Fetch {
        url: url.clone(),
        reason: e.without_url().to_string(),
    })?;
    if !resp.status().is_success() {
        return Err(DiscoveryError::Status {
            url,
            status: resp.status().as_u16(),
        });
    }
    let doc: RawDiscovery = resp.json().await.map_err(|e| DiscoveryError::Malformed {
        url: url.clone(),
        reason: e.without_url().to_string(),
    })?;
    check(cfg, doc)
}

/// SPEC §6: the issuer must be the one expected, every endpoint must be on
/// the cloud's hosts.
pub fn check(cfg: &Entra, doc: RawDiscovery) -> Result<DiscoveryDocument, DiscoveryError> {
    let expected = cfg.expected_discovery_issuer();
    if doc.issuer != expected {
        return Err(DiscoveryError::WrongIssuer {
            found: doc.issuer,
            expected,
        });
    }
    let trusted = |field: &'static str, value: String| match Url::parse(&value) {
        Ok(url) if endpoint_ok(cfg, &url) => Ok(url),
        _ => Err(DiscoveryError::UntrustedEndpoint { field, value }),
    };
    // Checked in this order (the first refusal names its field).
    let jwks_uri = trusted("jwks_uri", doc.jwks_uri)?;
    let authorization_endpoint = trusted("authorization_endpoint", doc.authorization_endpoint)?;
    let token_endpoint = trusted("token_endpoint", doc.token_endpoint)?;
    let end_session_endpoint = doc
        .end_session_endpoint
        .map(|e| trusted("end_session_endpoint", e))
        .transpose()?;
    Ok(DiscoveryDocument {
        issuer: doc.issuer,
        authorization_endpoint,
        token_endpoint,
        jwks_uri,
        end_session_endpoint,
    })
}
