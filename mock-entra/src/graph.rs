//! Microsoft Graph, the one call the gateway makes: `GET /v1.0/contracts`
//! (a CSP partner's customer tenants), with app tokens from the token
//! endpoint's client-credentials grant.

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
    if !s.app_tokens.lock().expect("lock").iter().any(|t| t == bearer) {
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
