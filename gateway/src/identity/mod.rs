//! What the protected app receives: the signed `X-Auth-Assertion`, the
//! convenience headers, and the stripping of anything a client sent in their
//! place.

pub mod headers;
pub mod key_file;
pub mod signer;

pub use signer::AssertionSigner;
