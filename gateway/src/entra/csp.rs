//! CSP tenant sync: the partner's customer tenants, read from Microsoft Graph
//! (`GET /v1.0/contracts`, `customerId`) with an app-only token, become
//! allowed tenants on top of the static list.

use crate::config::Config;
use policy::TenantId;
use serde::Deserialize;

/// Pages followed at most: a loop in `@odata.nextLink` cannot run forever.
const MAX_PAGES: usize = 1000;
/// Store key of the shared list.
pub const STORE_KEY: &str = "csp_tenants";

#[derive(Debug, thiserror::Error)]
pub enum CspError {
    #[error("token request failed: {0}")]
    Token(String),
    #[error("Graph request failed: {0}")]
    Graph(String),
    #[error("Graph answered HTTP {0}")]
    Status(u16),
    #[error("Graph answered malformed JSON: {0}")]
    Malformed(String),
    #[error("Graph's nextLink leaves {0}: not followed")]
    ForeignLink(String),
    #[error("more than {MAX_PAGES} pages")]
    TooManyPages,
}

/// What one sync found.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncResult {
    pub tenants: Vec<TenantId>,
    /// `customerId` values that are not GUIDs (skipped).
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
struct Contract {
    #[serde(rename = "customerId")]
    customer_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Page {
    value: Vec<Contract>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
}

/// Runs one sync against Graph. Never returns an empty "allow all": an
/// error leaves the caller's last good list in force.
pub async fn fetch(http: &reqwest::Client, c: &Config) -> Result<SyncResult, CspError> {
    let graph = &c.entra.graph_host;
    let token = super::credential::app_token(http, c, graph)
        .await
        .map_err(|e| CspError::Token(e.to_string()))?;
    let mut url = format!("{graph}/v1.0/contracts?$select=customerId&$top=999");
    let mut result = SyncResult {
        tenants: Vec::new(),
        skipped: Vec::new(),
    };
    for _ in 0..MAX_PAGES {
        let resp = http
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| CspError::Graph(e.without_url().to_string()))?;
        if !resp.status().is_success() {
            return Err(CspError::Status(resp.status().as_u16()));
        }
        let page: Page = resp
            .json()
            .await
            .map_err(|e| CspError::Malformed(e.without_url().to_string()))?;
        for contract in page.value {
            let raw = match contract.customer_id {
                Some(serde_json::Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => "(missing)".into(),
            };
            match raw.parse::<TenantId>() {
                Ok(t) if !result.tenants.contains(&t) => result.tenants.push(t),
                Ok(_) => {}
                Err(_) => result.skipped.push(raw.chars().take(80).collect()),
            }
        }
        match page.next {
            None => {
                result.tenants.sort();
                return Ok(result);
            }
            // The token must never be sent anywhere but Graph.
            Some(next) if next.starts_with(&format!("{graph}/")) => url = next,
            Some(next) => return Err(CspError::ForeignLink(next.chars().take(120).collect())),
        }
    }
    Err(CspError::TooManyPages)
}

/// The list as kept in the session store (shared by every instance).
pub fn encode(tenants: &[TenantId]) -> String {
    serde_json::to_string(&tenants.iter().map(|t| t.as_str()).collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

pub fn decode(s: &str) -> Vec<TenantId> {
    serde_json::from_str::<Vec<String>>(s)
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect()
}
