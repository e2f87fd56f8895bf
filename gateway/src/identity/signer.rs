//! Signs `X-Auth-Assertion` (ES256) and publishes the verifying JWKS.

use crate::config::Identity;
use crate::session::Session;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

#[derive(Debug, thiserror::Error)]
pub enum SignerError {
    #[error("signing key is not a PKCS#8 P-256 private key in PEM: {0}")]
    BadKey(String),
    #[error("cannot sign the assertion: {0}")]
    Sign(String),
}

/// Claims of the assertion (SPEC §5): the reference the hand-written
/// [`write_payload`] is checked against, byte for byte.
#[cfg(test)]
#[derive(Debug, serde::Serialize)]
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
    /// `base64url(header)`, the same for every assertion.
    header_b64: String,
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

/// A key's public JWK, its `kid` a digest of the public key (stable across
/// instances that share the key).
fn public_jwk(key: &EncodingKey) -> Result<Jwk, SignerError> {
    let mut jwk = Jwk::from_encoding_key(key, Algorithm::ES256).map_err(|e| SignerError::BadKey(e.to_string()))?;
    let thumb = jwk
        .thumbprint(jsonwebtoken::jwk::ThumbprintHash::SHA256)
        .map_err(|e| SignerError::BadKey(e.to_string()))?;
    jwk.common.key_id = Some(thumb.chars().take(16).collect());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(KeyAlgorithm::ES256);
    Ok(jwk)
}

impl AssertionSigner {
    pub fn from_pem(pem: &str, cfg: &Identity) -> Result<Self, SignerError> {
        Self::from_pems(&[pem], cfg)
    }

    /// Rotation (`identity.signing_keys`): the first key signs; every key is
    /// in the JWKS, so apps that cached it keep verifying while a new key is
    /// introduced (listed second, then first) and an old one retired.
    pub fn from_pems(pems: &[&str], cfg: &Identity) -> Result<Self, SignerError> {
        let mut keys = pems
            .iter()
            .map(|pem| EncodingKey::from_ec_pem(pem.as_bytes()).map_err(|e| SignerError::BadKey(e.to_string())));
        let key = keys
            .next()
            .ok_or_else(|| SignerError::BadKey("no signing key".into()))??;
        let mut jwks = JwkSet {
            keys: vec![public_jwk(&key)?],
        };
        for other in keys {
            let jwk = public_jwk(&other?)?;
            if !jwks.keys.iter().any(|k| k.common.key_id == jwk.common.key_id) {
                jwks.keys.push(jwk);
            }
        }
        let kid = jwks.keys[0].common.key_id.clone();
        let jwks_json = serde_json::to_vec(&jwks).map_err(|e| SignerError::BadKey(e.to_string()))?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = kid;
        let header_json = serde_json::to_vec(&header).map_err(|e| SignerError::BadKey(e.to_string()))?;
        Ok(AssertionSigner {
            key,
            header_b64: URL_SAFE_NO_PAD.encode(header_json),
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

    /// `header.payload` of the assertion for `s` issued at `iat`.
    fn signing_input(&self, s: &Session, iat: i64, exp: i64) -> Result<String, SignerError> {
        // Rendered on every authenticated request: the payload goes into a
        // buffer this thread reuses, and from there base64 straight into the
        // one allocation the request keeps.
        thread_local! {
            static PAYLOAD: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(512));
        }
        PAYLOAD.with_borrow_mut(|payload| {
            payload.clear();
            write_payload(payload, &self.issuer, &self.audience, s, iat, exp)?;
            // Exactly the finished JWT's length: a `String` whose length is
            // its capacity becomes the header value without another allocation.
            let payload_b64 = base64::encoded_len(payload.len(), false)
                .ok_or_else(|| SignerError::Sign("payload too long".into()))?;
            let mut out = String::with_capacity(self.header_b64.len() + 1 + payload_b64 + 1 + SIGNATURE_B64_LEN);
            out.push_str(&self.header_b64);
            out.push('.');
            URL_SAFE_NO_PAD.encode_string(&payload[..], &mut out);
            Ok(out)
        })
    }

    /// Signs the assertion for `s`: what [`render`](Self::render) needs to
    /// produce the JWT again, without signing, for the session's later requests.
    pub fn sign(&self, s: &Session, now: i64) -> Result<Signed, SignerError> {
        let exp = now + self.lifetime_secs;
        let input = self.signing_input(s, now, exp)?;
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, Algorithm::ES256)
            .map_err(|e| SignerError::Sign(e.to_string()))?;
        let signature: [u8; SIGNATURE_B64_LEN] = sig
            .as_bytes()
            .try_into()
            .map_err(|_| SignerError::Sign(format!("unexpected signature length {}", sig.len())))?;
        Ok(Signed {
            iat: now,
            exp,
            signature,
        })
    }

    /// The JWT for `s` from a signature made by [`sign`](Self::sign) for the
    /// same session with the same `mfa` (the one claim that changes while a
    /// session lives; the cache is keyed by it, see `Assertions`): serialising and
    /// encoding the payload costs far less than signing, and keeping 100 bytes
    /// per session instead of the whole JWT keeps the cache small.
    pub fn render(&self, s: &Session, signed: &Signed) -> Result<String, SignerError> {
        let mut jwt = self.signing_input(s, signed.iat, signed.exp)?;
        jwt.push('.');
        jwt.push_str(std::str::from_utf8(&signed.signature).map_err(|e| SignerError::Sign(e.to_string()))?);
        Ok(jwt)
    }
}

/// The identity settings unit tests sign with: issuer `https://gw.example`,
/// audience `app`, 300 s.
#[cfg(test)]
pub fn test_identity() -> Identity {
    Identity {
        audience: "app".into(),
        issuer: "https://gw.example".into(),
        assertion_lifetime: std::time::Duration::from_secs(300),
        signing_key: None,
        signing_keys: Vec::new(),
        convenience_headers: true,
    }
}

#[cfg(test)]
impl AssertionSigner {
    /// A fresh key with [`test_identity`]'s settings.
    pub fn for_tests() -> Self {
        Self::from_pem(&generate_pem().expect("a key"), &test_identity()).expect("a signer")
    }
}

/// The assertion's claims (SPEC §5) as JSON, in the order and spelling
/// serde gives `AssertionClaims` (a test holds the two byte-equal), without
/// serde's per-field machinery and the claim set's own allocations. Strings
/// are escaped by serde_json itself.
fn write_payload(out: &mut Vec<u8>, iss: &str, aud: &str, s: &Session, iat: i64, exp: i64) -> Result<(), SignerError> {
    use std::io::Write;
    fn string(out: &mut Vec<u8>, v: &str) -> Result<(), SignerError> {
        serde_json::to_writer(out, v).map_err(|e| SignerError::Sign(e.to_string()))
    }
    fn optional(out: &mut Vec<u8>, v: Option<&str>) -> Result<(), SignerError> {
        match v {
            Some(v) => string(out, v),
            None => {
                out.extend_from_slice(b"null");
                Ok(())
            }
        }
    }
    let io = |e: std::io::Error| SignerError::Sign(e.to_string());
    out.extend_from_slice(b"{\"iss\":");
    string(out, iss)?;
    out.extend_from_slice(b",\"aud\":");
    string(out, aud)?;
    write!(out, ",\"exp\":{exp},\"iat\":{iat},\"sub\":").map_err(io)?;
    // `tid:oid`: neither needs escaping as a GUID, but both are escaped
    // like any string rather than trusted to be one.
    let (tid, oid) = (s.tid.as_str(), s.oid());
    if [tid, oid]
        .iter()
        .all(|v| v.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\'))
    {
        write!(out, "\"{tid}:{oid}\"").map_err(io)?;
    } else {
        string(out, &format!("{tid}:{oid}"))?;
    }
    out.extend_from_slice(b",\"tid\":");
    string(out, tid)?;
    out.extend_from_slice(b",\"oid\":");
    string(out, oid)?;
    out.extend_from_slice(b",\"email\":");
    optional(out, s.email())?;
    out.extend_from_slice(b",\"name\":");
    optional(out, s.name())?;
    out.extend_from_slice(b",\"portal\":");
    string(out, s.portal_kind.as_str())?;
    out.extend_from_slice(b",\"client\":");
    optional(out, s.client())?;
    out.extend_from_slice(b",\"sid\":");
    optional(out, s.sid())?;
    // `pending` never reaches here: a pending session gets no assertion.
    out.extend_from_slice(b",\"amr\":[\"sso\"],\"mfa\":");
    string(out, s.mfa.as_str())?;
    if s.new_user {
        out.extend_from_slice(b",\"new_user\":true");
    }
    out.push(b'}');
    Ok(())
}

/// An ES256 signature is 64 bytes: 86 base64url characters.
const SIGNATURE_B64_LEN: usize = 86;

/// A signed assertion without its payload (rebuilt from the session).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    pub iat: i64,
    pub exp: i64,
    signature: [u8; SIGNATURE_B64_LEN],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionRecord;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    use super::test_identity as cfg;

    fn signer() -> AssertionSigner {
        AssertionSigner::for_tests()
    }

    fn session() -> Session {
        record().try_into().unwrap()
    }

    fn record() -> SessionRecord<String> {
        SessionRecord::<String> {
            portal: "agent".into(),
            portal_kind: policy::PortalKind::Agent,
            tid: "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa".parse().unwrap(),
            oid: "a11ce000-0000-4000-8000-000000000001".into(),
            sub: "s".into(),
            issuer: "i".into(),
            name: Some("Zoë Ünicode".into()),
            email: Some("zoe@contoso.example".into()),
            sid: Some("sid-1".into()),
            login_hint: None,
            user_key: "k".into(),
            client: None,
            created_at: 0,
            last_seen: 0,
            absolute_expiry: 0,
            idle_timeout_secs: 0,
            remember_me: false,
            csrf: "c".into(),
            new_user: false,
            mfa: Default::default(),
        }
    }

    fn verify(signer: &AssertionSigner, jwt: &str) -> Result<serde_json::Value, jsonwebtoken::errors::Error> {
        let jwks: JwkSet = serde_json::from_slice(&signer.jwks_json()).unwrap();
        let kid = decode_header(jwt)?.kid.unwrap();
        // An unknown kid fails like a bad signature: nothing to verify with.
        let Some(jwk) = jwks.find(&kid) else {
            return Err(jsonwebtoken::errors::ErrorKind::InvalidSignature.into());
        };
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&["app"]);
        v.set_issuer(&["https://gw.example"]);
        decode::<serde_json::Value>(jwt, &DecodingKey::from_jwk(jwk)?, &v).map(|d| d.claims)
    }

    fn claims<'a>(signer: &'a AssertionSigner, s: &'a Session, iat: i64, exp: i64) -> AssertionClaims<'a> {
        AssertionClaims {
            iss: &signer.issuer,
            aud: &signer.audience,
            exp,
            iat,
            sub: format!("{}:{}", s.tid, s.oid()),
            tid: s.tid.as_str(),
            oid: s.oid(),
            email: s.email(),
            name: s.name(),
            portal: s.portal_kind.as_str(),
            client: s.client(),
            sid: s.sid(),
            amr: vec!["sso"],
            // `pending` never reaches here: a pending session gets no assertion.
            mfa: s.mfa.as_str(),
            new_user: s.new_user,
        }
    }

    #[test]
    fn the_payload_is_byte_for_byte_what_serde_writes() {
        let signer = signer();
        let base = record();
        let mut variants = vec![base.clone()];
        let mut odd = base.clone();
        odd.name = Some("Quote \" back\\slash \u{1} tab\t Zoë 😀 </script>".into());
        odd.email = None;
        odd.client = Some("halo-ccc".into());
        odd.sid = None;
        odd.new_user = true;
        odd.mfa = policy::two_factor::Mfa::Totp;
        odd.portal_kind = policy::PortalKind::User;
        variants.push(odd);
        let mut weird_oid = base.clone();
        weird_oid.oid = "not\"a\\guid".into();
        variants.push(weird_oid);
        for r in variants {
            let s: &Session = &r.try_into().unwrap();
            let mut mine = Vec::new();
            write_payload(&mut mine, &signer.issuer, &signer.audience, s, 1_700_000_000, -5).unwrap();
            let reference = serde_json::to_vec(&claims(&signer, s, 1_700_000_000, -5)).unwrap();
            assert_eq!(String::from_utf8(mine).unwrap(), String::from_utf8(reference).unwrap());
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2_000, ..Default::default() })]
        /// Whatever strings a token or the directory put in a session, the
        /// hand-written payload is what serde writes.
        #[test]
        fn the_payload_is_serdes_for_any_strings(
            name in proptest::option::of(".*"),
            email in proptest::option::of(".*"),
            client in proptest::option::of(".*"),
            sid in proptest::option::of(".*"),
            oid in ".*",
            new_user: bool,
            iat: i64,
        ) {
            let signer = signer();
            let r = SessionRecord { name, email, client, sid, oid, new_user, ..record() };
            let Ok(s) = Session::try_from(r) else { return Ok(()) };
            let mut mine = Vec::new();
            write_payload(&mut mine, &signer.issuer, &signer.audience, &s, iat, iat.wrapping_add(300)).unwrap();
            let reference = serde_json::to_vec(&claims(&signer, &s, iat, iat.wrapping_add(300))).unwrap();
            proptest::prop_assert_eq!(mine, reference);
        }
    }

    #[test]
    fn a_rendered_assertion_verifies_with_the_published_key_every_time() {
        let signer = signer();
        let s = session();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let signed = signer.sign(&s, now).unwrap();
        let first = signer.render(&s, &signed).unwrap();
        assert_eq!(
            signer.render(&s, &signed).unwrap(),
            first,
            "the same bytes on every request"
        );
        let claims = verify(&signer, &first).unwrap();
        assert_eq!(claims["email"], "zoe@contoso.example");
        assert_eq!(claims["name"], "Zoë Ünicode");
        assert_eq!(claims["exp"], now + 300);
        assert_eq!(claims["sub"], format!("{}:{}", s.tid, s.oid()));
    }

    #[test]
    fn the_signature_covers_every_claim() {
        let signer = signer();
        let s = session();
        let signed = signer.sign(&s, jsonwebtoken::get_current_timestamp() as i64).unwrap();
        let mut other = s.record();
        other.email = Some("mallory@contoso.example");
        let other: Session = other.try_into().unwrap();
        let forged = signer.render(&other, &signed).unwrap();
        assert!(
            verify(&signer, &forged).is_err(),
            "a signature never vouches for other claims"
        );
    }

    #[test]
    fn rotation_signs_with_the_first_key_and_publishes_all() {
        let cfg = cfg();
        let (old, new) = (generate_pem().unwrap(), generate_pem().unwrap());
        let before = AssertionSigner::from_pems(&[&old], &cfg).unwrap();
        // Step 1 of a rotation: the new key published beside the old, which still signs.
        let introduced = AssertionSigner::from_pems(&[&old, &new], &cfg).unwrap();
        // Step 2: the new key signs; the old stays published until removed.
        let rotated = AssertionSigner::from_pems(&[&new, &old], &cfg).unwrap();
        let kids = |s: &AssertionSigner| -> Vec<String> {
            let set: JwkSet = serde_json::from_slice(&s.jwks_json()).unwrap();
            set.keys.iter().map(|k| k.common.key_id.clone().unwrap()).collect()
        };
        let s = session();
        let now = jsonwebtoken::get_current_timestamp() as i64;
        let jwt = |signer: &AssertionSigner| signer.render(&s, &signer.sign(&s, now).unwrap()).unwrap();
        let old_kid = kids(&before)[0].clone();
        assert_eq!(kids(&introduced).len(), 2);
        assert_eq!(decode_header(jwt(&introduced)).unwrap().kid.unwrap(), old_kid);
        let new_jwt = jwt(&rotated);
        assert_ne!(
            decode_header(&new_jwt).unwrap().kid.unwrap(),
            old_kid,
            "the new key signs"
        );
        assert!(verify(&rotated, &new_jwt).is_ok());
        // An app holding the JWKS of step 1 verifies what step 2 signs, and
        // one holding step 2's still verifies what the old key signed.
        assert!(verify(&introduced, &new_jwt).is_ok());
        assert!(verify(&rotated, &jwt(&before)).is_ok());
        assert!(verify(&before, &new_jwt).is_err(), "never published before step 1");
        // Retired: only the new key remains.
        let retired = AssertionSigner::from_pems(&[&new], &cfg).unwrap();
        assert!(verify(&retired, &jwt(&before)).is_err());
        assert!(AssertionSigner::from_pems(&[], &cfg).is_err());
    }
}
