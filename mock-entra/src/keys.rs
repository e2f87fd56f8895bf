//! Signing keys, the JWKS endpoint, and minting ID tokens (good ones as
//! Entra issues them, and the bad ones tests ask for).

use crate::pages::oauth_error;
use crate::state::Inner;
use crate::util::{now, random_token};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::sync::Arc;

/// How a minted token is signed.
#[derive(Debug, Clone, Default)]
pub enum Signing {
    /// The tenant's active key (what Entra does).
    #[default]
    Active,
    /// A key that is not in the JWKS, under a kid that is not either.
    UnknownKid,
    /// A key that is not in the JWKS, under the active key's kid.
    WrongKey,
    /// `alg: none`, empty signature.
    None,
    /// HS256 with this secret (the key-confusion attack).
    Hs256(Vec<u8>),
    /// The active key but no `kid` header.
    NoKid,
    /// The active key with a `crit` header.
    Crit,
    /// A key not in the JWKS, offered in the token itself (`jwk`) and by URL
    /// (`jku`, `x5u`): what an attacker sends hoping the verifier follows it.
    EmbeddedKey,
}

/// A token to mint: defaults are a good token for the user; set `claims`
/// entries to override (Value::Null removes the claim).
#[derive(Debug, Clone, Default)]
pub struct TokenSpec {
    pub user: String,
    pub client_id: String,
    pub nonce: Option<String>,
    pub claims: Map<String, Value>,
    pub signing: Signing,
}

/// An RSA key as Entra publishes it: the JWK carries kid, x5t, use and
/// issuer, and no `alg`.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pair: RsaKeyPair,
    pub(crate) jwk: Value,
}

impl SigningKey {
    pub(crate) fn generate(issuer: &str) -> SigningKey {
        use rsa::Generate;
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let key = rsa::PrivateKey::generate();
        let der = key.to_pkcs1_der().expect("a fresh RSA key encodes");
        Self::from_pkcs1_der(der.as_bytes(), issuer)
    }

    fn from_pkcs1_der(der: &[u8], issuer: &str) -> SigningKey {
        let pair = RsaKeyPair::from_der(der).expect("ring loads a fresh RSA key");
        let enc = EncodingKey::from_rsa_der(der);
        let kid = random_token(20);
        let jwk = Jwk::from_encoding_key(&enc, Algorithm::RS256).expect("RSA JWK");
        let mut v = serde_json::to_value(&jwk).expect("JWK serialises");
        if let Value::Object(m) = &mut v {
            m.remove("alg");
            m.insert("kid".into(), json!(kid));
            m.insert("x5t".into(), json!(kid));
            m.insert("use".into(), json!("sig"));
            m.insert("issuer".into(), json!(issuer));
        }
        SigningKey { kid, pair, jwk: v }
    }

    /// An RS256 JWT, byte for byte what `jsonwebtoken::encode` makes (RSA
    /// PKCS#1 v1.5 is deterministic). Signed with `ring` directly: its
    /// signer is ~100× faster than the pure-Rust one (the mock signs every
    /// sign-in of the benchmarks), and going through jsonwebtoken's
    /// process-wide provider would have the mock choose the crypto of the
    /// process it lives in (the gateway installs its own).
    fn sign(&self, header: &str, claims: &Value) -> String {
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut sig = vec![0; self.pair.public().modulus_len()];
        self.pair
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .expect("RS256 signs");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }
}

/// Entra's `sub`: pairwise, per user and app.
fn pairwise_sub(oid: &str, client_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(format!("{oid}|{client_id}").as_bytes()))
}

/// An RS256 JWT header (JSON) with `kid`, plus fields jsonwebtoken does not
/// model.
fn rs256_header(kid: Option<String>, extra: &[(&str, Value)]) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid;
    h.typ = Some("JWT".into());
    if extra.is_empty() {
        return serde_json::to_string(&h).expect("header serialises");
    }
    let mut v = serde_json::to_value(&h).expect("header serialises");
    for (name, value) in extra {
        v[*name] = value.clone();
    }
    v.to_string()
}

impl Inner {
    /// The ID token Entra would issue `user` for `client_id`, then
    /// `overrides` applied and signed as `signing` says.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mint(
        &self,
        user: &crate::MockUser,
        client_id: &str,
        nonce: Option<&str>,
        sid: &str,
        code: Option<&str>,
        overrides: &Map<String, Value>,
        signing: &Signing,
    ) -> String {
        let t = now();
        let mut c = Map::new();
        c.insert("aud".into(), json!(client_id));
        c.insert("iss".into(), json!(self.issuer(&user.tenant)));
        c.insert("iat".into(), json!(t));
        c.insert("nbf".into(), json!(t));
        c.insert("exp".into(), json!(t + 3600));
        c.insert("name".into(), json!(user.name));
        c.insert("oid".into(), json!(user.oid));
        c.insert("preferred_username".into(), json!(user.username));
        if let Some(e) = &user.email {
            c.insert("email".into(), json!(e));
        }
        c.insert("sub".into(), json!(pairwise_sub(&user.oid, client_id)));
        c.insert("tid".into(), json!(user.tenant));
        c.insert("sid".into(), json!(sid));
        c.insert(
            "login_hint".into(),
            json!(URL_SAFE_NO_PAD.encode(format!("O.{}.{}", user.oid, user.tenant))),
        );
        c.insert("uti".into(), json!(random_token(16)));
        c.insert("ver".into(), json!("2.0"));
        if let Some(n) = nonce {
            c.insert("nonce".into(), json!(n));
        }
        if let Some(code) = code {
            let d = sha2::Sha256::digest(code.as_bytes());
            c.insert("c_hash".into(), json!(URL_SAFE_NO_PAD.encode(&d[..16])));
        }
        for (k, v) in overrides {
            if v.is_null() {
                c.remove(k);
            } else {
                c.insert(k.clone(), v.clone());
            }
        }
        let claims = Value::Object(c);
        let keys = self.keys.lock().expect("lock");
        let active = keys.get(&user.tenant).and_then(|v| v.first());
        match signing {
            Signing::Active => {
                let k = active.expect("tenant has a key");
                k.sign(&rs256_header(Some(k.kid.clone()), &[]), &claims)
            }
            Signing::NoKid => active.expect("key").sign(&rs256_header(None, &[]), &claims),
            Signing::Crit => {
                let k = active.expect("key");
                k.sign(&rs256_header(Some(k.kid.clone()), &[("crit", json!(["exp"]))]), &claims)
            }
            Signing::EmbeddedKey => {
                let k = SigningKey::generate("attacker");
                let url = format!("{}/attacker/keys", self.base);
                let header = rs256_header(
                    Some(k.kid.clone()),
                    &[("jwk", k.jwk.clone()), ("jku", json!(url)), ("x5u", json!(url))],
                );
                k.sign(&header, &claims)
            }
            Signing::UnknownKid => {
                let k = SigningKey::generate("unused");
                k.sign(&rs256_header(Some(k.kid.clone()), &[]), &claims)
            }
            Signing::WrongKey => {
                let k = SigningKey::generate("unused");
                k.sign(&rs256_header(Some(active.expect("key").kid.clone()), &[]), &claims)
            }
            Signing::None => {
                let head = json!({"alg": "none", "typ": "JWT", "kid": active.map(|k| k.kid.clone())});
                format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(head.to_string()),
                    URL_SAFE_NO_PAD.encode(claims.to_string())
                )
            }
            Signing::Hs256(secret) => {
                let mut h = Header::new(Algorithm::HS256);
                h.kid = active.map(|k| k.kid.clone());
                let key = EncodingKey::from_secret(secret).expect("HMAC key");
                jsonwebtoken::encode(&h, &claims, &key).expect("HS256 signs")
            }
        }
    }
}

/// `GET /{tenant}/discovery/v2.0/keys`.
pub(crate) async fn jwks(State(s): State<Arc<Inner>>, Path(tenant): Path<String>) -> Response {
    *s.jwks_fetches.lock().expect("lock").entry(tenant.clone()).or_default() += 1;
    let keys = s.keys.lock().expect("lock");
    let list: Vec<Value> = match tenant.as_str() {
        // The common endpoints publish every key, with the template issuer.
        "organizations" | "common" => keys
            .values()
            .flatten()
            .map(|k| {
                let mut j = k.jwk.clone();
                j["issuer"] = json!(s.issuer("{tenantid}"));
                j
            })
            .collect(),
        t => match keys.get(t) {
            Some(v) => v.iter().map(|k| k.jwk.clone()).collect(),
            None => {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_tenant",
                    "AADSTS90002: Tenant not found.",
                );
            }
        },
    };
    axum::Json(json!({ "keys": list })).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{DecodingKey, Validation};

    /// `ring`'s RS256 token is the one `jsonwebtoken::encode` would make,
    /// and it verifies with the key as published in the JWKS.
    #[test]
    fn tokens_signed_with_ring_are_what_jsonwebtoken_makes() {
        use rsa::Generate;
        use rsa::pkcs1::EncodeRsaPrivateKey;
        let der = rsa::PrivateKey::generate().to_pkcs1_der().unwrap();
        let key = SigningKey::from_pkcs1_der(der.as_bytes(), "https://issuer.example/t/v2.0");
        let claims = json!({"sub": "someone", "n": 1});
        let token = key.sign(&rs256_header(Some(key.kid.clone()), &[]), &claims);

        let mut h = Header::new(Algorithm::RS256);
        h.kid = Some(key.kid.clone());
        let expected = jsonwebtoken::encode(&h, &claims, &EncodingKey::from_rsa_der(der.as_bytes())).unwrap();
        assert_eq!(token, expected);

        let jwk: Jwk = serde_json::from_value(key.jwk.clone()).unwrap();
        let mut v = Validation::new(Algorithm::RS256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        let decoded = jsonwebtoken::decode::<Value>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap();
        assert_eq!(decoded.claims, claims);
        assert!(
            jsonwebtoken::decode::<Value>(&format!("{token}x"), &DecodingKey::from_jwk(&jwk).unwrap(), &v).is_err()
        );
    }
}
