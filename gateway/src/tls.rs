//! The main listener's certificate (`server.tls`): loaded with the
//! configuration, served by a resolver that SIGHUP can point at a new pair.
//!
//! Pingora's own `add_tls` reads the files once, when the listener is built,
//! and panics on a bad pair. Here the pair is read and checked as part of
//! loading the configuration (so `check-config`, start-up and a reload all
//! refuse a bad pair with the same message) and handed to the listener
//! through [`CertResolver`], whose current pair a reload swaps: new
//! handshakes get the new certificate; connections already up keep theirs.
//!
//! One TLS stack: rustls and ring come through pingora (`pingora::tls`);
//! the PEM sections are read with rustls' own `rustls-pki-types`.

use arc_swap::ArcSwap;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a certificate/key pair cannot be served. Never carries key material:
/// a key file's parse error is reduced to its kind.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("cannot read {path:?}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path:?}: no PEM certificate (\"-----BEGIN CERTIFICATE-----\") in it")]
    NoCertificate { path: PathBuf },
    #[error("{path:?}: a certificate is not valid PEM: {detail}")]
    BadCertificatePem { path: PathBuf, detail: String },
    #[error(
        "{path:?}: no PEM private key (PKCS#8 \"PRIVATE KEY\", PKCS#1 \"RSA PRIVATE KEY\" or SEC1 \"EC PRIVATE KEY\") in it"
    )]
    NoKey { path: PathBuf },
    #[error("{path:?}: the private key is not valid PEM")]
    BadKeyPem { path: PathBuf },
    #[error("{path:?}: the private key cannot be used (RSA, ECDSA P-256/P-384 or Ed25519): {detail}")]
    UnusableKey { path: PathBuf, detail: String },
    #[error("the private key {key:?} does not belong to the certificate {cert:?}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("the certificate {cert:?} and key {key:?} cannot be paired: {detail}")]
    Unpaired {
        cert: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// A certificate chain and its private key, checked to belong together.
#[derive(Clone)]
pub struct CertPair {
    key: Arc<CertifiedKey>,
    fingerprint: String,
}

impl CertPair {
    /// Reads both files now (every call: a reload must see files replaced
    /// in place under the same names, as cert-manager and certbot do).
    pub fn load(cert: &Path, key: &Path) -> Result<CertPair, PairError> {
        let chain = read_chain(cert)?;
        let private = read_key(key)?;
        // ring, as pingora's listener uses it; installing is idempotent.
        pingora::tls::install_default_crypto_provider();
        let provider = CryptoProvider::get_default().ok_or_else(|| PairError::Unpaired {
            cert: cert.into(),
            key: key.into(),
            detail: "no TLS crypto provider".into(),
        })?;
        let signing = provider
            .key_provider
            .load_private_key(private)
            .map_err(|e| PairError::UnusableKey {
                path: key.into(),
                detail: e.to_string(),
            })?;
        let certified = CertifiedKey::new(chain, signing);
        // The public key in the certificate against the private key's: a
        // pair that does not match would fail every handshake. (ring's keys
        // all know their public key; one that does not cannot be compared.)
        if certified.key.public_key().is_some() {
            match certified.keys_match() {
                Ok(()) => {}
                Err(pingora::tls::RusTlsError::InconsistentKeys(_)) => {
                    return Err(PairError::Mismatch {
                        cert: cert.into(),
                        key: key.into(),
                    });
                }
                Err(e) => {
                    return Err(PairError::Unpaired {
                        cert: cert.into(),
                        key: key.into(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        let fingerprint = fingerprint(&certified.cert[0]);
        Ok(CertPair {
            key: Arc::new(certified),
            fingerprint,
        })
    }

    /// SHA-256 of the leaf certificate (DER), hex: what `openssl x509
    /// -fingerprint -sha256` prints, without the colons.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// Only the fingerprint: the key stays out of logs and `Debug` output.
impl std::fmt::Debug for CertPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertPair").field("sha256", &self.fingerprint).finish()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, PairError> {
    std::fs::read(path).map_err(|source| PairError::Read {
        path: path.into(),
        source,
    })
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, PairError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PairError::BadCertificatePem {
            path: path.into(),
            detail: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(PairError::NoCertificate { path: path.into() });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, PairError> {
    // The PEM text is wiped when dropped (the parsed key is rustls' to
    // keep; the text need not linger in freed memory).
    let pem = zeroize::Zeroizing::new(read(path)?);
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => PairError::NoKey { path: path.into() },
        _ => PairError::BadKeyPem { path: path.into() },
    })
}

fn fingerprint(der: &CertificateDer<'_>) -> String {
    crate::session::hex(&Sha256::digest(der.as_ref()))
}

/// What the TLS listener asks for each handshake: the current pair, whatever
/// name the client asked for (one listener, one certificate).
pub struct CertResolver {
    current: ArcSwap<CertPair>,
}

impl CertResolver {
    pub fn new(pair: CertPair) -> CertResolver {
        CertResolver {
            current: ArcSwap::from_pointee(pair),
        }
    }

    /// Serves `pair` from the next handshake on. Returns whether it differs
    /// from the pair served until now.
    pub fn replace(&self, pair: CertPair) -> bool {
        let old = self.current.swap(Arc::new(pair));
        old.fingerprint != self.current.load().fingerprint
    }

    pub fn current(&self) -> Arc<CertPair> {
        self.current.load_full()
    }
}

impl std::fmt::Debug for CertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertResolver")
            .field("current", &*self.current.load())
            .finish()
    }
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().key.clone())
    }
}

#[cfg(test)]
pub(crate) mod tests;
