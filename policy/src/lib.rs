//! Pure decisions of entra-gateway: no I/O, no async, no HTTP types.
//!
//! Every rule that decides whether a token, a request or a return path is
//! acceptable lives here, so it can be tested table-driven and reasoned about
//! without a network.
#![forbid(unsafe_code)]

pub mod access;
pub mod claims;
pub mod cookies;
pub mod headers;
pub mod ids;
pub mod lifetime;
pub mod matching;
pub mod origin;
pub mod paths;
pub mod portal;
pub mod ratelimit;
pub mod reason;
pub mod route;
pub mod signin;
pub mod state;
pub mod tenants;
pub mod two_factor;

pub use ids::{ClientId, GuidError, PortalKind, TenantId};
pub use reason::Reason;

#[cfg(test)]
mod properties;
