//! Talking to Entra: clouds and endpoints, discovery, JWKS, ID-token
//! validation and the authorization-code exchange.

pub mod cloud;
pub mod credential;
pub mod csp;
pub mod discovery;
pub mod graph_users;
pub mod jwks;
pub mod tenants;
pub mod token;
pub mod validate;

use std::time::Duration;

/// The HTTP client every outbound call to Entra uses: rustls, bounded time,
/// no redirects (discovery and JWKS must come from where we asked).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("entra-gateway/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with a static configuration builds")
}
