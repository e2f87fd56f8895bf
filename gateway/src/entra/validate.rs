//! ID-token validation: header rules, signature, then the claim rules of
//! `policy::claims`.

use super::jwks::{JwksCache, Trust};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use policy::claims::{IdTokenClaims, TokenExpectations, VerifiedIdentity, check_id_token, check_jwk_issuer};
use policy::{Reason, TenantId};

/// The JOSE header fields we look at. Everything else (jku, x5u, jwk, x5c)
/// is never followed: keys come only from the authority's JWKS.
#[derive(serde::Deserialize)]
pub(crate) struct Header {
    pub(crate) alg: Option<String>,
    pub(crate) kid: Option<String>,
    pub(crate) crit: Option<serde_json::Value>,
}

pub(crate) fn header(token: &str) -> Result<Header, Reason> {
    let mut parts = token.split('.');
    let (Some(h), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(Reason::TokenMalformed);
    };
    let bytes = URL_SAFE_NO_PAD.decode(h).map_err(|_| Reason::TokenMalformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Reason::TokenMalformed)
}

/// Verifies `token` against the key set at `jwks_uri` and the expectations.
pub async fn validate_id_token(
    jwks: &JwksCache,
    jwks_uri: &str,
    token: &str,
    expect: &TokenExpectations<'_>,
) -> Result<VerifiedIdentity, Reason> {
    if token.len() > 16 * 1024 {
        return Err(Reason::TokenMalformed);
    }
    let h = header(token)?;
    // RS256 only: `none`, HMAC (key confusion) and everything else refused
    // before any key is looked at.
    if h.alg.as_deref() != Some("RS256") {
        return Err(Reason::AlgNotAllowed);
    }
    if h.crit.is_some() {
        return Err(Reason::CritHeader);
    }
    let key = jwks
        .key(jwks_uri, h.kid.as_deref(), trust(jwks, jwks_uri, token, expect))
        .await?;

    let mut v = Validation::new(Algorithm::RS256);
    // Time, audience and issuer rules are ours (policy::claims), with skew.
    v.validate_exp = false;
    v.validate_nbf = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    v.leeway = 0;
    let data = jsonwebtoken::decode::<IdTokenClaims>(token, &key.key, &v).map_err(|e| match e.kind() {
        ErrorKind::InvalidSignature => Reason::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => Reason::AlgNotAllowed,
        _ => Reason::TokenMalformed,
    })?;
    let identity = check_id_token(&data.claims, expect)?;
    check_jwk_issuer(key.issuer.as_deref(), &identity.issuer, identity.tid.as_str())?;
    Ok(identity)
}

/// Whether the token's tenant is one the configuration names (the home
/// tenant's key set is pinned in the cache), or merely one that
/// `sign_in_scope: all` lets anyone name: that decides whether failing to get
/// its keys is an outage or a refusal.
fn trust(jwks: &JwksCache, jwks_uri: &str, token: &str, expect: &TokenExpectations<'_>) -> Trust {
    let tid = peek_claims(token)
        .ok()
        .and_then(|c| c.tid)
        .and_then(|t| t.parse::<TenantId>().ok());
    let named = tid
        .as_ref()
        .is_some_and(|t| expect.login_tenant == Some(t) || expect.tenants.names(t));
    if named || jwks.is_pinned(jwks_uri) {
        Trust::Vouched
    } else {
        Trust::Stranger
    }
}

/// `c_hash`: left half of SHA-256 of the code, base64url (OIDC Core §3.3.2.11).
pub fn c_hash(code: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(code.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The claims of a token, not yet verified: only for decisions that must come
/// before any fetch (which tenant), and for `c_hash` after verification.
pub fn peek_claims(token: &str) -> Result<IdTokenClaims, Reason> {
    if token.len() > 16 * 1024 {
        return Err(Reason::TokenMalformed);
    }
    let payload = token.split('.').nth(1).ok_or(Reason::TokenMalformed)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).map_err(|_| Reason::TokenMalformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Reason::TokenMalformed)
}
