//! The users of one tenant from Microsoft Graph (`GET /v1.0/users`), read
//! with an app-only token valid in that tenant: what `directory sync` turns
//! into directory records.
//!
//! Graph pages with `@odata.nextLink` and throttles with 429 + `Retry-After`;
//! both are followed here, within bounds (a loop of links or an endless
//! throttle ends the read with an error instead of hanging a sync).

use crate::config::Config;
use policy::TenantId;
use reqwest::StatusCode;
use serde::Deserialize;
use std::time::Duration;

/// Pages followed at most (999 users each: about a million users).
const MAX_PAGES: usize = 1000;
/// Throttled answers retried per request before the read gives up.
pub const MAX_RETRIES: u32 = 5;
/// Longest `Retry-After` honoured: a longer one ends the read (the next
/// scheduled sync tries again) rather than holding it for hours.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
/// When Graph throttles without saying how long to wait.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(5);

/// One user as Graph describes it (the `$select`ed properties).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct GraphUser {
    /// The object id: the `oid` of this user's tokens.
    pub id: String,
    #[serde(rename = "displayName")]
    pub display_name: Option<String>,
    /// The primary SMTP address; many accounts have none.
    pub mail: Option<String>,
    /// Read for the operator's report only: SPEC §6 never matches it.
    #[serde(rename = "userPrincipalName")]
    pub user_principal_name: Option<String>,
    /// Absent on some guest accounts: treated as enabled, as Entra does.
    #[serde(rename = "accountEnabled")]
    pub account_enabled: Option<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    /// The tenant has not consented to the app, or not to `User.Read.All`:
    /// Entra refuses the token, or Graph answers 403.
    #[error("not consented: {0}")]
    NotConsented(String),
    #[error("token request failed: {0}")]
    Token(String),
    #[error("Graph request failed: {0}")]
    Graph(String),
    #[error("Graph answered HTTP {status}{}", .code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Status { status: u16, code: Option<String> },
    #[error("Graph is still throttling after {MAX_RETRIES} retries")]
    Throttled,
    #[error("Graph answered malformed JSON: {0}")]
    Malformed(String),
    #[error("Graph's nextLink leaves {0}: not followed")]
    ForeignLink(String),
    #[error("more than {MAX_PAGES} pages")]
    TooManyPages,
}

#[derive(Deserialize)]
struct Page {
    value: Vec<GraphUser>,
    #[serde(rename = "@odata.nextLink")]
    next: Option<String>,
}

/// Graph's error body: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    code: Option<String>,
}

/// Every user of `tenant`.
pub async fn fetch(http: &reqwest::Client, c: &Config, tenant: &TenantId) -> Result<Vec<GraphUser>, UsersError> {
    let graph = &c.entra.graph_host;
    let token = super::credential::app_token_in(http, c, graph, tenant)
        .await
        .map_err(|e| match e {
            // AADSTS700016 (app not in the directory), 65001 (no consent),
            // 7000229 (no service principal): the tenant never consented.
            super::credential::TokenError::Refused { status: 400 | 401, .. } => UsersError::NotConsented(e.to_string()),
            other => UsersError::Token(other.to_string()),
        })?;
    let mut url = format!("{graph}/v1.0/users?$select=id,displayName,mail,userPrincipalName,accountEnabled&$top=999");
    let mut users = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = get_page(http, &url, &token).await?;
        users.extend(page.value);
        match page.next {
            None => return Ok(users),
            // The token must never be sent anywhere but Graph.
            Some(next) if next.starts_with(&format!("{graph}/")) => url = next,
            Some(next) => return Err(UsersError::ForeignLink(next.chars().take(120).collect())),
        }
    }
    Err(UsersError::TooManyPages)
}

async fn get_page(http: &reqwest::Client, url: &str, token: &str) -> Result<Page, UsersError> {
    let mut retries = 0;
    loop {
        let resp = http
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| UsersError::Graph(e.without_url().to_string()))?;
        let status = resp.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
            if retries >= MAX_RETRIES {
                return Err(UsersError::Throttled);
            }
            retries += 1;
            let wait = retry_after(resp.headers()).unwrap_or(DEFAULT_RETRY_AFTER);
            if wait > MAX_RETRY_AFTER {
                return Err(UsersError::Throttled);
            }
            tracing::info!(
                event = "graph_throttled",
                status = status.as_u16(),
                wait_secs = wait.as_secs(),
                retry = retries
            );
            tokio::time::sleep(wait).await;
            continue;
        }
        if !status.is_success() {
            let code = resp.json::<ErrorBody>().await.ok().and_then(|b| b.error.code).map(|c| {
                c.chars()
                    .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .take(64)
                    .collect::<String>()
            });
            if status == StatusCode::FORBIDDEN {
                return Err(UsersError::NotConsented(format!(
                    "Graph answered 403{} (grant User.Read.All with admin consent)",
                    code.map(|c| format!(" {c}")).unwrap_or_default()
                )));
            }
            return Err(UsersError::Status {
                status: status.as_u16(),
                code,
            });
        }
        return resp
            .json::<Page>()
            .await
            .map_err(|e| UsersError::Malformed(e.without_url().to_string()));
    }
}

/// `Retry-After` in seconds (Graph's form; an HTTP date is not used by Graph).
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    h.get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_deserialize_from_graphs_shape() {
        let page: Page = serde_json::from_str(
            r#"{"@odata.context":"x","value":[
                {"id":"o1","displayName":"Ann","mail":null,"userPrincipalName":"ann@contoso.com","accountEnabled":false},
                {"id":"o2"}],
                "@odata.nextLink":"https://graph.microsoft.com/v1.0/users?$skiptoken=abc"}"#,
        )
        .unwrap();
        assert_eq!(page.value[0].account_enabled, Some(false));
        assert_eq!(page.value[0].mail, None);
        assert_eq!(page.value[1].display_name, None);
        assert!(page.next.unwrap().ends_with("skiptoken=abc"));
    }

    #[test]
    fn retry_after_in_seconds_only() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
