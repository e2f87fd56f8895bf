//! Microsoft Graph, the calls the gateway makes: `GET /v1.0/contracts` (a
//! CSP partner's customer tenants) and `GET /v1.0/users` (a tenant's users),
//! with app tokens from the token endpoint's client-credentials grant.

use crate::config::MockUser;
use crate::state::{Inner, Params};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Arc;

/// Graph `GET /v1.0/contracts`: the partner's customers, paged with
/// `@odata.nextLink` as Graph does.
pub(crate) async fn contracts(State(s): State<Arc<Inner>>, Query(q): Query<Params>, headers: HeaderMap) -> Response {
    *s.graph_calls.lock().expect("lock") += 1;
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !s.app_tokens.lock().expect("lock").contains_key(bearer) {
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error": {"code": "InvalidAuthenticationToken"}})),
        )
            .into_response();
    }
    if let Some(status) = *s.graph_failure.lock().expect("lock") {
        let code = StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN);
        return (code, axum::Json(json!({"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges to complete the operation."}}))).into_response();
    }
    let all = s.contracts.lock().expect("lock").clone();
    let size = if s.config.contracts_page_size == 0 {
        2
    } else {
        s.config.contracts_page_size
    };
    let skip: usize = q.get("$skiptoken").and_then(|v| v.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(size)
        .enumerate()
        .map(|(i, c)| json!({ "id": format!("contract-{}", skip + i), "customerId": c, "defaultDomainName": "customer.example", "displayName": "Customer" }))
        .collect();
    let mut body = json!({ "@odata.context": format!("{}/v1.0/$metadata#contracts", s.base), "value": page });
    if skip + size < all.len() {
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/contracts?$select=customerId&$skiptoken={}",
            s.base,
            skip + size
        ));
    }
    axum::Json(body).into_response()
}

/// A user as Graph holds it: the person, and whether the account is enabled.
#[derive(Debug, Clone)]
pub(crate) struct DirectoryUser {
    pub(crate) user: MockUser,
    pub(crate) enabled: bool,
}

impl DirectoryUser {
    /// Whether this is the account signing in as `username` (Entra's
    /// user principal names are case-insensitive).
    pub(crate) fn is(&self, username: &str) -> bool {
        self.user.username.eq_ignore_ascii_case(username)
    }
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": {"code": code, "message": message, "innerError": {"date": "2026-12-01T00:00:00", "request-id": "00000000-0000-4000-8000-000000000000"}}})),
    )
        .into_response()
}

/// Graph `GET /v1.0/users`: the users of the token's tenant, paged with
/// `@odata.nextLink` (`$skiptoken`), throttled on demand with 429 and
/// `Retry-After`, 403 for a tenant that did not grant `User.Read.All`.
pub(crate) async fn users(State(s): State<Arc<Inner>>, Query(q): Query<Params>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let tenant = s.app_tokens.lock().expect("lock").get(bearer).cloned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    s.users_calls
        .lock()
        .expect("lock")
        .push((tenant.clone().unwrap_or_default(), now));
    let Some(tenant) = tenant else {
        return graph_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.",
        );
    };
    {
        let mut t = s.throttle.lock().expect("lock");
        if t.0 > 0 {
            t.0 -= 1;
            let mut r = graph_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "Too many requests. Please try again later.",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                header::HeaderValue::from_str(&t.1.to_string()).expect("digits"),
            );
            return r;
        }
    }
    if s.config
        .users_forbidden_tenants
        .iter()
        .any(|t| t.eq_ignore_ascii_case(&tenant))
    {
        return graph_error(
            StatusCode::FORBIDDEN,
            "Authorization_RequestDenied",
            "Insufficient privileges to complete the operation.",
        );
    }
    let all: Vec<DirectoryUser> = s
        .directory
        .lock()
        .expect("lock")
        .iter()
        .filter(|u| u.user.tenant.eq_ignore_ascii_case(&tenant))
        .cloned()
        .collect();
    let top: usize = q.get("$top").and_then(|v| v.parse().ok()).unwrap_or(100).clamp(1, 999);
    let size = match s.config.users_page_size {
        0 => top,
        n => n.min(top),
    };
    let skip: usize = q.get("$skiptoken").and_then(|v| v.parse().ok()).unwrap_or(0);
    let page: Vec<Value> = all
        .iter()
        .skip(skip)
        .take(size)
        .map(|u| {
            json!({
                "id": u.user.oid,
                "displayName": u.user.name,
                "mail": u.user.email,
                "userPrincipalName": u.user.username,
                "accountEnabled": u.enabled,
            })
        })
        .collect();
    let mut body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users(id,displayName,mail,userPrincipalName,accountEnabled)", s.base),
        "value": page,
    });
    if skip + size < all.len() {
        let select = q.get("$select").cloned().unwrap_or_default();
        body["@odata.nextLink"] = json!(format!(
            "{}/v1.0/users?$select={select}&$top={top}&$skiptoken={}",
            s.base,
            skip + size
        ));
    }
    axum::Json(body).into_response()
}
