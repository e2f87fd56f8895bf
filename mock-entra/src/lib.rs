//! A faithful imitation of Microsoft Entra ID's v2 endpoints, on loopback:
//! per-tenant discovery and issuers, the `/organizations` template, JWKS with
//! `kid`s, per-key `issuer` and rotation, the authorize endpoint with a login
//! form and `form_post`, the token endpoint (code + PKCE + secret, client
//! credentials), the end-session endpoint with front-channel logout, and
//! Graph's `/contracts` and `/users` (paged, throttled on demand, 403 without
//! consent). Test helpers mint deliberately bad tokens.
//!
//! Also [`app`]: a small application that verifies the gateway's assertion.
//!
//! A test double for `entra-gateway demo` and the tests, kept out of the
//! product crate: the gateway depends on it only through its `demo` cargo
//! feature, so a production build (`--no-default-features`) carries no
//! token-minting code. Not for production: users sign in without a password.
#![forbid(unsafe_code)]

pub mod app;
mod authorize;
mod client_auth;
mod config;
mod discovery;
mod graph;
mod keys;
mod logout;
mod pages;
mod server;
mod state;
mod token;
mod util;

pub use config::{
    FaultKind, MockApp, MockCertificate, MockEndpoint, MockEntraConfig, MockFault, MockFederatedCredential, MockUser,
};
pub use keys::{Signing, TokenSpec};
pub use logout::LogoutCall;
pub use server::MockEntra;
