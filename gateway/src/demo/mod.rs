//! `entra-gateway demo`: the whole product on one machine, no Azure tenant.
//! The mock Entra and the demo app are also the test harness's peers.

pub mod app;
pub mod mock_entra;
mod run;

pub use run::{DemoOptions, run};
