//! The operator's listener (`server.metrics_listen`): `/healthz`,
//! `/readyz` and `/metrics` (Prometheus text format). Kept off the main
//! listener, where every path but the gateway's own belongs to the app.

use crate::lifecycle::SharedApp;
use async_trait::async_trait;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use pingora::services::listening::Service;
use prometheus::{Encoder, TextEncoder};

pub struct HealthApp {
    app: SharedApp,
}

#[async_trait]
impl ServeHttp for HealthApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path().to_string();
        let resp = match path.as_str() {
            "/healthz" => crate::front::live(),
            "/readyz" => crate::front::ready(&self.app.load_full()).await,
            "/metrics" => metrics(),
            _ => crate::respond::text(404, "not found"),
        };
        let (parts, body) = resp.into_parts();
        let mut r = http::Response::from_parts(parts, body.to_vec());
        if let Ok(len) = http::HeaderValue::from_str(&r.body().len().to_string()) {
            r.headers_mut().insert(http::header::CONTENT_LENGTH, len);
        }
        r
    }
}

/// Every metric of the default registry, in the text exposition format.
fn metrics() -> crate::respond::Resp {
    let encoder = TextEncoder::new();
    let mut buf = Vec::new();
    if let Err(e) = encoder.encode(&prometheus::gather(), &mut buf) {
        tracing::warn!(event = "metrics_encode_failed", error = %e);
        return crate::respond::text(500, "metrics unavailable");
    }
    let mut r = http::Response::new(bytes::Bytes::from(buf));
    if let Ok(v) = http::HeaderValue::from_str(encoder.format_type()) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    r
}

/// The service to add on `server.metrics_listen`.
pub fn service(app: SharedApp) -> Service<HttpServer<HealthApp>> {
    Service::new("health and metrics".to_string(), HttpServer::new_app(HealthApp { app }))
}
