//! Signs `X-Auth-Assertion` (ES256) and publishes the verifying JWKS.

use crate::config::Identity;
use crate::session::Session;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("signing key is not a PKCS#8 P-256 private key in PEM: {0}")]
    BadKey(String),
    #[error("cannot sign the assertion: {0}")]
    Sign(String),
}

/// Claims of the assertion (SPEC §5).
#[derive(Debug, Serialize)]
pub struct AssertionClaims<'a> {
    pub iss: &'a str,
    pub aud: &'a str,
    pub exp: i64,
    pub iat: i64,
    pub sub: String,
    pub tid: &'a str,
    pub oid: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub portal: &'a str,
    pub client: Option<&'a str>,
    pub sid: Option<&'a str>,
    pub amr: Vec<&'a str>,
    pub mfa: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new_user: bool,
}

pub struct AssertionSigner {
    key: EncodingKey,
    header: Header,
    jwks_json: bytes::Bytes,
    issuer: String,
    audience: String,
    lifetime_secs: i64,
}

/// A fresh P-256 key as PKCS#8 PEM.
pub fn generate_pem() -> Result<String, SignerError> {
    use p256::pkcs8::EncodePrivateKey;
    loop {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        // Rejection sampling: the odd out-of-range scalar is simply redrawn.
        if let Ok(sk) = p256::SecretKey::from_slice(&bytes) {
            return sk
                .to_pkcs8_pem(p256::pkcs8::LineEnding::LF)
                .map(|pem| pem.to_string())
                .map_err(|e| SignerError::BadKey(e.to_string()));
        }
    }
}

impl AssertionSigner {
    pub fn from_pem(pem: &str, cfg: &Identity) -> Result<Self, SignerError> {
        let key = EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| SignerError::BadKey(e.to_string()))?;
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|e| SignerError::BadKey(e.to_string()))?;
        // kid: a thumbprint-like digest of the public key, stable across
        // instances that share the key.
        let thumb = jwk
            .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
            .map_err(|e| SignerError::BadKey(e.to_string()))?;
        let kid = thumb.chars().take(16).collect::<String>();
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
        let jwks = JwkSet { keys: vec![jwk] };
        let jwks_json = serde_json::to_vec(&jwks).map_err(|e| SignerError::BadKey(e.to_string()))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid);
        Ok(AssertionSigner {
            key,
            header,
            jwks_json: jwks_json.into(),
            issuer: cfg.issuer.clone(),
            audience: cfg.audience.clone(),
            lifetime_secs: cfg.assertion_lifetime.as_secs() as i64,
        })
    }

    pub fn jwks_json(&self) -> bytes::Bytes {
        self.jwks_json.clone()
    }

    pub fn lifetime_secs(&self) -> i64 {
        self.lifetime_secs
    }

    /// Signs the assertion for `s`; returns the JWT and its expiry.
    pub fn sign(&self, s: &Session, now: i64) -> Result<(String, i64), SignerError> {
        let exp = now + self.lifetime_secs;
        let claims = AssertionClaims {
            iss: &self.issuer,
            aud: &self.audience,
            exp,
            iat: now,
            sub: format!("{}:{}", s.tid, s.oid),
            tid: &s.tid,
            oid: &s.oid,
            email: s.email.as_deref(),
            name: s.name.as_deref(),
            portal: &s.portal_kind,
            client: s.client.as_deref(),
            sid: s.sid.as_deref(),
            amr: vec!["sso"],
            mfa: "none",
            new_user: s.new_user,
        };
        let jwt =
            jsonwebtoken::encode(&self.header, &claims, &self.key).map_err(|e| SignerError::Sign(e.to_string()))?;
        Ok((jwt, exp))
    }
}
