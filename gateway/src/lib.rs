//! entra-gateway: Microsoft Entra ID single sign-on in front of an existing
//! web application, as a Pingora reverse proxy.
#![forbid(unsafe_code)]

pub mod access_log;
pub mod app;
pub mod as_string;
pub mod auth;
pub mod config;
pub mod crypto;
#[cfg(feature = "demo")]
pub mod demo;
pub mod directory;
pub mod entra;
pub mod front;
pub mod header_names;
pub mod health;
pub mod identity;
pub mod lifecycle;
pub mod metrics;
pub mod online;
pub mod pages;
pub mod proxy;
pub mod registration;
pub mod reload;
pub mod respond;
pub mod server;
pub mod session;
pub mod tls;
pub mod two_factor;
pub mod upstream;

#[cfg(test)]
mod properties;
