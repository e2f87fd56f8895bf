//! The JWT crypto provider: `jsonwebtoken`'s pure-Rust backend, with `ring`
//! (already compiled for TLS) for the three operations on the sign-in path.
//!
//! - RS256 verification of ID tokens: the pure-Rust backend rebuilds the RSA
//!   key (with its modular precomputation) on every verify, ~0.4 ms here;
//!   `ring` takes a few tens of µs.
//! - ES256 signing of assertions, and RS256 signing (the pure-Rust RSA
//!   signer costs ~11 ms a token; the gateway itself signs no RS256, and the
//!   mock Entra, crate `mock-entra`, signs with `ring` directly).
//!
//! Everything else (and any key `ring` cannot load) goes to the pure-Rust
//! backend unchanged, so behaviour stays the same; only the speed differs.

use jsonwebtoken::DecodingKeyKind;
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils, rust_crypto};
use jsonwebtoken::errors::Result;
use jsonwebtoken::signature;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature as rs;

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: signer,
    verifier_factory: verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: RUST.key_utils.rsa_pub_components_from_private_key,
        rsa_pub_components_from_public_key: RUST.key_utils.rsa_pub_components_from_public_key,
        ec_pub_components_from_private_key: RUST.key_utils.ec_pub_components_from_private_key,
        ed_pub_components_from_private_key: RUST.key_utils.ed_pub_components_from_private_key,
        compute_digest: RUST.key_utils.compute_digest,
    },
};

const RUST: &CryptoProvider = &rust_crypto::DEFAULT_PROVIDER;

/// Makes this provider the process default (idempotent; first caller wins).
pub fn install() {
    let _ = PROVIDER.install_default();
}

fn verifier(alg: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if let (Algorithm::RS256, DecodingKeyKind::RsaModulusExponent { n, e }) = (alg, key.kind()) {
        return Ok(Box::new(Rs256Verifier {
            n: n.clone(),
            e: e.clone(),
        }));
    }
    (RUST.verifier_factory)(alg, key)
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let rng = SystemRandom::new();
    match alg {
        Algorithm::ES256 => {
            if let Ok(pair) = rs::EcdsaKeyPair::from_pkcs8(&rs::ECDSA_P256_SHA256_FIXED_SIGNING, key.as_bytes(), &rng) {
                return Ok(Box::new(Es256Signer { pair, rng }));
            }
        }
        Algorithm::RS256 => {
            let der = key.as_bytes();
            if let Ok(pair) = rs::RsaKeyPair::from_der(der).or_else(|_| rs::RsaKeyPair::from_pkcs8(der)) {
                return Ok(Box::new(Rs256Signer { pair, rng }));
            }
        }
        _ => {}
    }
    (RUST.signer_factory)(alg, key)
}

struct Rs256Verifier {
    n: Vec<u8>,
    e: Vec<u8>,
}

impl signature::Verifier<Vec<u8>> for Rs256Verifier {
    fn verify(&self, msg: &[u8], sig: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        // 2048 bits at least, as Entra's keys are.
        rs::RsaPublicKeyComponents { n: &self.n, e: &self.e }
            .verify(&rs::RSA_PKCS1_2048_8192_SHA256, msg, sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Rs256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

struct Es256Signer {
    pair: rs::EcdsaKeyPair,
    rng: SystemRandom,
}

impl signature::Signer<Vec<u8>> for Es256Signer {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        self.pair
            .sign(&self.rng, msg)
            .map(|s| s.as_ref().to_vec())
            .map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Es256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

struct Rs256Signer {
    pair: rs::RsaKeyPair,
    rng: SystemRandom,
}

impl signature::Signer<Vec<u8>> for Rs256Signer {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let mut sig = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(&rs::RSA_PKCS1_SHA256, &self.rng, msg, &mut sig)
            .map(|()| sig)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Rs256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path and the pure-Rust backend agree: each verifies what the
    /// other signed, and neither accepts a tampered message.
    #[test]
    fn ring_and_rust_crypto_agree() {
        install();
        let pem = crate::identity::signer::generate_pem().unwrap();
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap();
        let dk = DecodingKey::from_jwk(&jwk).unwrap();
        let sig = jsonwebtoken::crypto::sign(b"msg", &key, Algorithm::ES256).unwrap();
        assert!(jsonwebtoken::crypto::verify(&sig, b"msg", &dk, Algorithm::ES256).unwrap());
        assert!(!jsonwebtoken::crypto::verify(&sig, b"msh", &dk, Algorithm::ES256).unwrap());
    }

    /// The keys this project makes load into `ring` (so the fast path is the
    /// one taken), and an RS256 signature made by `ring` verifies with the
    /// pure-Rust backend and with `ring`, and only for its own message.
    #[test]
    fn the_fast_path_is_taken_for_our_keys() {
        use rsa::Generate;
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let rng = SystemRandom::new();
        let pem = crate::identity::signer::generate_pem().unwrap();
        let ec = EncodingKey::from_ec_pem(pem.as_bytes()).unwrap();
        assert!(rs::EcdsaKeyPair::from_pkcs8(&rs::ECDSA_P256_SHA256_FIXED_SIGNING, ec.as_bytes(), &rng).is_ok());

        let der = rsa::PrivateKey::generate().to_pkcs1_der().unwrap();
        let key = EncodingKey::from_rsa_der(der.as_bytes());
        assert!(rs::RsaKeyPair::from_der(key.as_bytes()).is_ok());
        let jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        let dk = DecodingKey::from_jwk(&jwk).unwrap();
        let sig = (PROVIDER.signer_factory)(&Algorithm::RS256, &key)
            .unwrap()
            .try_sign(b"msg")
            .unwrap();
        for provider in [&PROVIDER, RUST] {
            let v = (provider.verifier_factory)(&Algorithm::RS256, &dk).unwrap();
            assert!(v.verify(b"msg", &sig).is_ok());
            assert!(v.verify(b"msh", &sig).is_err());
        }
    }
}
