//! The keys of the second factor, all derived from `two_factor.encryption_key`
//! (HKDF-SHA256, one label per use): AES-256-GCM for TOTP secrets at rest,
//! HMAC-SHA256 for "don't ask again" cookies. ring is already in the build
//! (rustls), so no other crypto crate comes in for this.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{aead, hkdf, hmac};

const SALT: &[u8] = b"entra-gateway two_factor v1";
const SECRET_INFO: &[u8] = b"totp secret at rest (aes-256-gcm)";
const COOKIE_INFO: &[u8] = b"don't ask again cookie (hmac-sha256)";
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("sealed value is not valid base64url")]
    Encoding,
    /// Wrong key, or the value was changed or moved to another user.
    #[error("sealed value does not open with this key")]
    Open,
    #[error("cannot seal")]
    Seal,
}

pub struct FactorKeys {
    aead: aead::LessSafeKey,
    mac: hmac::Key,
}

impl FactorKeys {
    pub fn derive(master: &str) -> FactorKeys {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(master.as_bytes());
        // Expanding to the algorithms' own lengths cannot fail (far below 255 blocks).
        let aead_key = prk
            .expand(&[SECRET_INFO], &aead::AES_256_GCM)
            .map(aead::UnboundKey::from)
            .expect("HKDF expands to 32 bytes");
        let mac = prk
            .expand(&[COOKIE_INFO], hmac::HMAC_SHA256)
            .map(hmac::Key::from)
            .expect("HKDF expands to 32 bytes");
        FactorKeys {
            aead: aead::LessSafeKey::new(aead_key),
            mac,
        }
    }

    /// Encrypts `plain` bound to `context` (the user key: a sealed secret
    /// copied onto another user's record does not open). A random 96-bit
    /// nonce per seal: a handful of seals per user, far from the birthday bound.
    pub fn seal(&self, plain: &[u8], context: &str) -> Result<String, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::fill(&mut nonce);
        let mut buf = plain.to_vec();
        self.aead
            .seal_in_place_append_tag(
                aead::Nonce::assume_unique_for_key(nonce),
                aead::Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| KeyError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(URL_SAFE_NO_PAD.encode(out))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, KeyError> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| KeyError::Encoding)?;
        if bytes.len() < NONCE_LEN + aead::AES_256_GCM.tag_len() {
            return Err(KeyError::Open);
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = aead::Nonce::try_assume_unique_for_key(nonce).map_err(|_| KeyError::Open)?;
        let mut buf = rest.to_vec();
        let plain = self
            .aead
            .open_in_place(nonce, aead::Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| KeyError::Open)?;
        Ok(plain.to_vec())
    }

    /// base64url HMAC of `data`.
    pub fn sign(&self, data: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.mac, data))
    }

    /// Constant-time check of a [`sign`](Self::sign) output.
    pub fn verify(&self, data: &[u8], tag: &str) -> bool {
        URL_SAFE_NO_PAD
            .decode(tag)
            .is_ok_and(|t| hmac::verify(&self.mac, data, &t).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn sealed_secrets_open_only_with_the_key_and_the_user() {
        let k = FactorKeys::derive(KEY);
        let sealed = k.seal(b"totp secret", "ann").unwrap();
        assert!(!sealed.contains("totp"));
        assert_eq!(k.open(&sealed, "ann").unwrap(), b"totp secret");
        assert_ne!(k.seal(b"totp secret", "ann").unwrap(), sealed, "fresh nonce");
        assert_eq!(k.open(&sealed, "bob"), Err(KeyError::Open), "bound to the user");
        let other = FactorKeys::derive("another key, also 32 characters!");
        assert_eq!(other.open(&sealed, "ann"), Err(KeyError::Open));
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 3;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(k.open(std::str::from_utf8(&tampered).unwrap(), "ann").is_err());
        assert_eq!(k.open("!!", "ann"), Err(KeyError::Encoding));
        assert_eq!(k.open("AAAA", "ann"), Err(KeyError::Open));
    }

    #[test]
    fn cookie_tags() {
        let k = FactorKeys::derive(KEY);
        let tag = k.sign(b"ann|1|99");
        assert!(k.verify(b"ann|1|99", &tag));
        assert!(!k.verify(b"bob|1|99", &tag));
        assert!(!FactorKeys::derive("another key, also 32 characters!").verify(b"ann|1|99", &tag));
        assert!(!k.verify(b"ann|1|99", "not base64!"));
    }
}
