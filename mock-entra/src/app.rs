//! A small application behind the gateway: it verifies `X-Auth-Assertion`
//! with the gateway's JWKS (as a real app should) and shows or echoes what it
//! received. The demo shows it in a browser; the tests read its JSON.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{Html, IntoResponse, Response};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

pub struct DemoAppConfig {
    /// Where the gateway publishes its assertion keys.
    pub jwks_url: String,
    pub audience: String,
}

struct Inner {
    cfg: DemoAppConfig,
    http: reqwest::Client,
    jwks: Mutex<Option<JwkSet>>,
}

/// Binds `addr` and serves on the current runtime; returns the bound address.
pub async fn start(cfg: DemoAppConfig, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let inner = Arc::new(Inner {
        cfg,
        http: reqwest::Client::new(),
        jwks: Mutex::new(None),
    });
    // Uploads of any size pass through the gateway; the demo app takes them all.
    let router = Router::new()
        .fallback(handle)
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(inner);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(local)
}

impl Inner {
    async fn fetch_jwks(&self) -> Result<JwkSet, String> {
        let set: JwkSet = self
            .http
            .get(&self.cfg.jwks_url)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        *self.jwks.lock().expect("lock") = Some(set.clone());
        Ok(set)
    }

    /// Verifies the assertion: signature (ES256 via the JWKS), `aud`, `exp`.
    async fn verify(&self, token: &str) -> Result<Map<String, Value>, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
        let kid = header.kid.ok_or("no kid")?;
        let cached = self.jwks.lock().expect("lock").clone();
        let set = match cached {
            Some(s) if s.find(&kid).is_some() => s,
            _ => self.fetch_jwks().await?,
        };
        let jwk = set.find(&kid).ok_or("unknown kid")?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[&self.cfg.audience]);
        v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &v).map_err(|e| e.to_string())?;
        Ok(data.claims)
    }
}

async fn handle(State(s): State<Arc<Inner>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let assertion = headers.get("x-auth-assertion").and_then(|v| v.to_str().ok());
    let (verified, claims, error) = match assertion {
        Some(a) => match s.verify(a).await {
            Ok(c) => (true, Value::Object(c), None),
            Err(e) => (false, Value::Null, Some(e)),
        },
        None => (false, Value::Null, None),
    };
    // Every header as received: the tests read what did (not) get through.
    let seen: Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), json!(String::from_utf8_lossy(v.as_bytes()))))
        .collect();
    let report = json!({
        "verified": verified,
        "claims": claims,
        "error": error,
        "headers": seen,
        "method": method.as_str(),
        "path": uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "body_len": body.len(),
    });
    if uri.path().ends_with("/api/whoami") || uri.path().starts_with("/api/") {
        return axum::Json(report).into_response();
    }
    let name = claims.get("name").and_then(Value::as_str).unwrap_or("stranger");
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let rows: String = claims
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(&claim_text(k, v))))
                .collect()
        })
        .unwrap_or_default();
    let logout = if uri.path().starts_with("/portal") {
        "/portal/auth/logout"
    } else {
        "/auth/logout"
    };
    Html(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Demo app</title>
<style>body{{font:16px system-ui,sans-serif;max-width:760px;margin:2rem auto;padding:0 1rem}}table{{border-collapse:collapse}}th,td{{text-align:left;padding:.25rem .75rem;border-bottom:1px solid #ddd;font-size:.9rem}}</style></head>
<body><h1 id="greeting">Hello, {name}</h1>
<p id="status">{status}</p>
<table>{rows}</table>
<p><a href="{logout}">Sign out</a></p></body></html>"#,
        name = esc(name),
        status = match (assertion, &error) {
            (Some(_), None) => "This page is the protected demo application. The gateway signed you in with (mock) \
                 Entra ID and told this app who you are in a signed assertion, which it verified."
                .to_string(),
            (Some(_), Some(e)) => format!(
                "This page is the protected demo application. The gateway sent an assertion, but this app \
                 could not verify it: {}.",
                esc(e)
            ),
            (None, _) => "This page is the protected demo application. No SSO identity was sent with this \
                 request (you chose to use a local account, or the path is public): the app sees an anonymous \
                 visitor and would show its own login."
                .to_string(),
        },
    ))
    .into_response()
}

/// A claim as a person reads it: strings without JSON quotes, times
/// (`exp`, `iat`, `nbf`, `auth_time`) as dates, anything else as JSON.
fn claim_text(name: &str, v: &Value) -> String {
    match (name, v) {
        ("exp" | "iat" | "nbf" | "auth_time", Value::Number(n)) => match n.as_u64() {
            Some(secs) => format!(
                "{} ({secs})",
                httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            ),
            None => n.to_string(),
        },
        (_, Value::String(s)) => s.clone(),
        (_, Value::Array(items)) if items.iter().all(Value::is_string) => {
            items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        }
        _ => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::claim_text;
    use serde_json::json;

    #[test]
    fn claims_read_as_text() {
        assert_eq!(claim_text("name", &json!("Alice Agent")), "Alice Agent");
        assert_eq!(claim_text("exp", &json!(0)), "Thu, 01 Jan 1970 00:00:00 GMT (0)");
        assert_eq!(
            claim_text("iat", &json!(1_800_000_000u64)),
            "Fri, 15 Jan 2027 08:00:00 GMT (1800000000)"
        );
        assert_eq!(claim_text("roles", &json!(["a", "b"])), "a, b");
        assert_eq!(claim_text("n", &json!(3)), "3");
        assert_eq!(claim_text("exp", &json!("soon")), "soon");
    }
}
