//! `upstream.ca_file`: a PEM bundle of the roots an https upstream's
//! certificate must chain to (a private CA), in the form pingora's rustls
//! connector takes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pingora::utils::tls::WrappedX509;
use std::sync::Arc;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CaError {
    #[error("no certificate in the file (expected -----BEGIN CERTIFICATE----- blocks)")]
    Empty,
    #[error("certificate {0} is not valid base64 PEM")]
    Base64(usize),
    #[error("certificate {0} is not an X.509 certificate")]
    NotX509(usize),
    #[error("certificate {0} has no -----END CERTIFICATE----- line")]
    Unterminated(usize),
}

const BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const END: &str = "-----END CERTIFICATE-----";

/// The DER of every certificate in `pem` (other blocks, such as keys, are
/// ignored), each checked to parse as X.509.
pub fn parse_ca_bundle(pem: &str) -> Result<Vec<Vec<u8>>, CaError> {
    let mut certs = Vec::new();
    for (i, block) in pem.split(BEGIN).skip(1).enumerate() {
        let n = i + 1;
        let body = block.split_once(END).ok_or(CaError::Unterminated(n))?.0;
        let b64: String = body.chars().filter(|c| !c.is_whitespace()).collect();
        let der = STANDARD.decode(b64).map_err(|_| CaError::Base64(n))?;
        X509Certificate::from_der(&der).map_err(|_| CaError::NotX509(n))?;
        certs.push(der);
    }
    if certs.is_empty() {
        return Err(CaError::Empty);
    }
    Ok(certs)
}

/// The roots as pingora's `PeerOptions::ca`. The DER was checked at load;
/// a certificate that fails here anyway is skipped, never a panic (pingora's
/// own constructor `expect`s).
pub fn peer_ca(certs: &[Vec<u8>]) -> Option<Arc<[WrappedX509]>> {
    if certs.is_empty() {
        return None;
    }
    let wrapped: Vec<WrappedX509> = certs
        .iter()
        .filter_map(|der| {
            WrappedX509::try_new(der.clone(), |raw| X509Certificate::from_der(raw).map(|(_, cert)| cert)).ok()
        })
        .collect();
    Some(Arc::from(wrapped))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_of(der: &[u8]) -> String {
        format!("{BEGIN}\n{}\n{END}\n", STANDARD.encode(der))
    }

    // A real certificate: the one the Entra credential tests use would do,
    // but a self-contained one keeps this module independent.
    fn sample_der() -> Vec<u8> {
        let pem = include_str!("testdata/ca.pem");
        parse_ca_bundle(pem).expect("sample parses").remove(0)
    }

    #[test]
    fn bundle_of_two_and_other_blocks() {
        let der = sample_der();
        let text = format!(
            "# comment\n{}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n{}",
            pem_of(&der),
            pem_of(&der)
        );
        let certs = parse_ca_bundle(&text).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(peer_ca(&certs).map(|c| c.len()), Some(2));
        assert!(peer_ca(&[]).is_none());
    }

    #[test]
    fn bad_bundles_are_named() {
        assert_eq!(parse_ca_bundle(""), Err(CaError::Empty));
        assert_eq!(
            parse_ca_bundle("-----BEGIN PRIVATE KEY-----\nAAAA\n"),
            Err(CaError::Empty)
        );
        assert_eq!(
            parse_ca_bundle(&format!("{BEGIN}\n!!!\n{END}")),
            Err(CaError::Base64(1))
        );
        assert_eq!(parse_ca_bundle(&pem_of(b"not a certificate")), Err(CaError::NotX509(1)));
        let ok = pem_of(&sample_der());
        assert_eq!(
            parse_ca_bundle(&format!("{ok}{BEGIN}\nAAAA")),
            Err(CaError::Unterminated(2))
        );
    }
}
