//! The authority's OpenID configuration, checked before it is trusted.

use crate::config::Entra;
use serde::Deserialize;
use url::Url;

#[derive(Debug, Clone, Deserialize)]
pub struct DiscoveryDocument {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
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
fn endpoint_ok(cfg: &Entra, value: &str) -> bool {
    let Ok(url) = Url::parse(value) else {
        return false;
    };
    let origin = url.origin().ascii_serialization();
    let mut allowed = vec![cfg.authority_host.as_str(), cfg.issuer_host.as_str()];
    if !cfg.authority_overridden {
        allowed.push(cfg.cloud.login_host());
        allowed.push(cfg.cloud.issuer_host());
    }
    let https = url.scheme() == "https"
        || (url.scheme() == "http" && crate::config::is_loopback(&url) && cfg.authority_overridden);
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
    let doc: DiscoveryDocument = resp.json().await.map_err(|e| DiscoveryError::Malformed {
        url: url.clone(),
        reason: e.without_url().to_string(),
    })?;
    check(cfg, &doc)?;
    Ok(doc)
}

/// SPEC §6: the issuer must be the one expected, every endpoint must be on
/// the cloud's hosts.
pub fn check(cfg: &Entra, doc: &DiscoveryDocument) -> Result<(), DiscoveryError> {
    let expected = cfg.expected_discovery_issuer();
    if doc.issuer != expected {
        return Err(DiscoveryError::WrongIssuer {
            found: doc.issuer.clone(),
            expected,
        });
    }
    let mut fields = vec![
        ("jwks_uri", &doc.jwks_uri),
        ("authorization_endpoint", &doc.authorization_endpoint),
        ("token_endpoint", &doc.token_endpoint),
    ];
    if let Some(e) = &doc.end_session_endpoint {
        fields.push(("end_session_endpoint", e));
    }
    for (field, value) in fields {
        if !endpoint_ok(cfg, value) {
            return Err(DiscoveryError::UntrustedEndpoint {
                field,
                value: value.clone(),
            });
        }
    }
    Ok(())
}
