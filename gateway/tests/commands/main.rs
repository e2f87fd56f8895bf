//! The command line, run as an operator would: one test binary, and the
//! reason cargo builds `target/<profile>/entra-gateway` before the e2e tests
//! (`CARGO_BIN_EXE_entra-gateway`).

mod cli;
mod directory_cli;
