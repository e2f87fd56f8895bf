//! The whole-system tests, one module per area, linked into one test binary
//! (linking the gateway's dependency tree once, not once per file).
//!
//! `cargo test -p e2e signin::` runs one area. The gateway binary these tests
//! start is built by `cargo test --workspace` (or `cargo build -p entra-gateway`).

mod browser;
mod credentials;
mod directory;
mod directory_errors;
mod directory_sync;
mod edge;
mod instances;
mod keys_and_secrets;
mod lifecycle;
mod logout;
mod logs;
mod monitoring;
mod multitenant;
mod portals;
mod registration;
mod requests;
mod signin;
mod startup;
mod tls;
mod token_rules;
mod topologies;
mod two_factor;
mod upstream;
