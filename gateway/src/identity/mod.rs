//! What the protected app receives: the signed `X-Auth-Assertion`, the
//! convenience headers, and the stripping of anything a client sent in their
//! place.

pub mod assertions;
pub mod headers;
pub mod key_file;
pub mod signer;

pub use assertions::Assertions;
pub use signer::AssertionSigner;
