//! How the token endpoint authenticates the app, as Entra does: a client
//! secret (`client_secret_post`), or a client assertion (RFC 7523) that is
//! either a `private_key_jwt` signed by a registered certificate or a
//! federated token from a trusted external issuer.

use crate::config::MockApp;
use crate::state::{Inner, Params};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Entra's audience for federated tokens.
const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

/// Why a client is refused, with the AADSTS code Entra gives.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    UnknownApp,
    BadSecret,
    /// `AADSTS700027`-class: the assertion does not verify or names no
    /// registered certificate or federated credential.
    BadAssertion(&'static str),
    /// `AADSTS700024`: outside its validity window.
    Expired,
    /// A `jti` seen before.
    Replayed,
}

/// Authenticates the client of a token request sent to `token_url`.
pub(crate) fn authenticate<'a>(s: &'a Inner, f: &Params, token_url: &str) -> Result<&'a MockApp, Refusal> {
    let get = |k: &str| f.get(k).map(String::as_str);
    let app = get("client_id").and_then(|c| s.app(c)).ok_or(Refusal::UnknownApp)?;
    if let Some(assertion) = get("client_assertion") {
        if get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(Refusal::BadAssertion(
                "AADSTS50027: client_assertion_type is not jwt-bearer.",
            ));
        }
        verify_assertion(s, app, assertion, token_url)?;
        return Ok(app);
    }
    if app.secret.is_none() || get("client_secret") != app.secret.as_deref() {
        return Err(Refusal::BadSecret);
    }
    Ok(app)
}

fn verify_assertion(s: &Inner, app: &MockApp, jwt: &str, token_url: &str) -> Result<(), Refusal> {
    let header =
        jsonwebtoken::decode_header(jwt).map_err(|_| Refusal::BadAssertion("AADSTS50027: JWT token is invalid."))?;
    if header.alg != Algorithm::RS256 {
        return Err(Refusal::BadAssertion(
            "AADSTS5002738: Invalid JWT token. Unsupported algorithm.",
        ));
    }
    let (key_pem, validation) = match &header.x5t_s256 {
        // A certificate credential: iss = sub = the app, aud = this endpoint.
        Some(thumb) => {
            let cert = app
                .certificates
                .iter()
                .find(|c| &c.x5t_s256 == thumb)
                .ok_or(Refusal::BadAssertion(
                    "AADSTS700027: The certificate with identifier used to sign the client assertion is not registered on application.",
                ))?;
            let mut v = Validation::new(Algorithm::RS256);
            v.set_audience(&[token_url]);
            v.set_issuer(&[&app.client_id]);
            v.sub = Some(app.client_id.clone());
            (&cert.public_key_pem, v)
        }
        // A federated token: issuer, subject and audience of a registered
        // federated credential.
        None => {
            let unverified: serde_json::Value = jsonwebtoken::dangerous::insecure_decode(jwt)
                .map(|d| d.claims)
                .map_err(|_| Refusal::BadAssertion("AADSTS50027: JWT token is invalid."))?;
            let (iss, sub) = (unverified["iss"].as_str(), unverified["sub"].as_str());
            let fed = app
                .federated
                .iter()
                .find(|c| Some(c.issuer.as_str()) == iss && Some(c.subject.as_str()) == sub)
                .ok_or(Refusal::BadAssertion(
                    "AADSTS70021: No matching federated identity record found for presented assertion.",
                ))?;
            let mut v = Validation::new(Algorithm::RS256);
            v.set_audience(&[fed.audience.as_str(), FEDERATED_AUDIENCE]);
            v.set_issuer(&[&fed.issuer]);
            v.sub = Some(fed.subject.clone());
            (&fed.public_key_pem, v)
        }
    };
    let key = DecodingKey::from_rsa_pem(key_pem.as_bytes())
        .map_err(|_| Refusal::BadAssertion("AADSTS50027: registered key unusable."))?;
    let mut validation = validation;
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    let data = jsonwebtoken::decode::<serde_json::Value>(jwt, &key, &validation).map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature | jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
            Refusal::Expired
        }
        jsonwebtoken::errors::ErrorKind::InvalidAudience => Refusal::BadAssertion(
            "AADSTS700212: No matching federated identity record found for presented assertion audience.",
        ),
        _ => Refusal::BadAssertion("AADSTS700027: Client assertion failed signature validation."),
    })?;
    // Certificates' assertions must carry a jti, used once; federated tokens
    // are the platform's and may be presented again until they expire.
    if header.x5t_s256.is_some() {
        let jti = data.claims["jti"]
            .as_str()
            .ok_or(Refusal::BadAssertion("AADSTS700023: Client assertion contains no jti."))?
            .to_string();
        if !s.used_jtis.lock().expect("lock").insert(jti) {
            return Err(Refusal::Replayed);
        }
    }
    Ok(())
}
