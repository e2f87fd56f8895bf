//! The claim rules of SPEC §6 for an Entra v2 ID token whose signature has
//! already been verified.

use crate::ids::{ClientId, TenantId};
use crate::reason::Reason;
use crate::tenants::TenantPolicy;

/// `aud` may be a string or an array (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of an Entra v2 ID token that the gateway reads. Unknown claims
/// are ignored; absent ones are `None` so that each rule can say why.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct IdTokenClaims {
    pub iss: Option<String>,
    pub aud: Option<Audience>,
    pub azp: Option<String>,
    pub exp: Option<i64>,
    pub nbf: Option<i64>,
    pub iat: Option<i64>,
    pub tid: Option<String>,
    pub oid: Option<String>,
    pub sub: Option<String>,
    pub name: Option<String>,
    pub preferred_username: Option<String>,
    pub email: Option<String>,
    pub nonce: Option<String>,
    pub sid: Option<String>,
    pub login_hint: Option<String>,
    pub ver: Option<String>,
    pub c_hash: Option<String>,
    pub xms_edov: Option<serde_json::Value>,
}

/// What this sign-in expects of the token.
#[derive(Debug, Clone)]
pub struct TokenExpectations<'a> {
    /// e.g. `https://login.microsoftonline.com` (no trailing slash).
    pub issuer_host: &'a str,
    pub client_id: &'a ClientId,
    pub tenants: &'a TenantPolicy,
    /// The tenant this particular login was sent to, when it was a tenant
    /// authority (single-tenant, or a per-client tenant).
    pub login_tenant: Option<&'a TenantId>,
    /// The nonce bound to the browser's login state.
    pub nonce: &'a str,
    pub now: i64,
    pub skew_secs: i64,
}

/// The part of a validated token the gateway keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub tid: TenantId,
    pub oid: String,
    pub sub: String,
    pub issuer: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub preferred_username: Option<String>,
    pub sid: Option<String>,
    pub login_hint: Option<String>,
    pub email_domain_verified: bool,
}

/// The issuer Entra uses for tokens of tenant `tid` (as written in the token).
pub fn issuer_for(issuer_host: &str, tid: &str) -> String {
    format!("{issuer_host}/{tid}/v2.0")
}

/// The rules that say who issued the token: `ver`, `tid` (a GUID), `iss`
/// derived from that tid and compared byte for byte, and the tenant allowed.
/// Pure string checks, so the callback runs them on the still-unverified
/// claims first and decides the tenant before fetching anything for it.
pub fn check_issuer_and_tenant(c: &IdTokenClaims, x: &TokenExpectations<'_>) -> Result<TenantId, Reason> {
    if c.ver.as_deref() != Some("2.0") {
        return Err(Reason::WrongVersion);
    }
    let tid_raw = c.tid.as_deref().ok_or(Reason::TidInvalid)?;
    let tid: TenantId = tid_raw.parse().map_err(|_| Reason::TidInvalid)?;
    // No trailing slash, no v1 host, no template, no other cloud.
    let iss = c.iss.as_deref().ok_or(Reason::WrongIssuer)?;
    if iss != issuer_for(x.issuer_host, tid_raw) {
        return Err(Reason::WrongIssuer);
    }
    if let Some(login_tenant) = x.login_tenant
        && *login_tenant != tid
    {
        return Err(Reason::TenantNotAllowed);
    }
    if !x.tenants.allows(&tid) {
        return Err(Reason::TenantNotAllowed);
    }
    Ok(tid)
}

/// Applies every claim rule. The order puts the checks that say most about
/// *who* issued the token first, so the reason is the most useful one.
pub fn check_id_token(c: &IdTokenClaims, x: &TokenExpectations<'_>) -> Result<VerifiedIdentity, Reason> {
    let tid = check_issuer_and_tenant(c, x)?;
    let aud_ok = match &c.aud {
        Some(Audience::One(a)) => a.eq_ignore_ascii_case(x.client_id.as_str()),
        Some(Audience::Many(v)) => !v.is_empty() && v.iter().all(|a| a.eq_ignore_ascii_case(x.client_id.as_str())),
        None => false,
    };
    if !aud_ok {
        return Err(Reason::WrongAudience);
    }
    if let Some(azp) = &c.azp
        && !azp.eq_ignore_ascii_case(x.client_id.as_str())
    {
        return Err(Reason::WrongAzp);
    }
    let exp = c.exp.ok_or(Reason::Expired)?;
    if exp + x.skew_secs < x.now {
        return Err(Reason::Expired);
    }
    if let Some(nbf) = c.nbf
        && nbf - x.skew_secs > x.now
    {
        return Err(Reason::NotYetValid);
    }
    let iat = c.iat.ok_or(Reason::IatMissing)?;
    if iat - x.skew_secs > x.now {
        return Err(Reason::IatInFuture);
    }
    let nonce = c.nonce.as_deref().ok_or(Reason::NonceMissing)?;
    if !constant_time_eq(nonce.as_bytes(), x.nonce.as_bytes()) {
        return Err(Reason::NonceMismatch);
    }
    let oid = c.oid.clone().filter(|o| !o.is_empty()).ok_or(Reason::OidMissing)?;
    Ok(VerifiedIdentity {
        tid: tid.clone(),
        oid,
        sub: c.sub.clone().unwrap_or_default(),
        // The issuer as checked above, with the tenant id lower-case as it is
        // stored everywhere else (Entra may write GUIDs in either case).
        issuer: issuer_for(x.issuer_host, tid.as_str()),
        name: c.name.clone(),
        email: c.email.clone(),
        preferred_username: c.preferred_username.clone(),
        sid: c.sid.clone(),
        login_hint: c.login_hint.clone(),
        email_domain_verified: matches!(&c.xms_edov, Some(serde_json::Value::Bool(true)))
            || matches!(&c.xms_edov, Some(serde_json::Value::String(s)) if s == "1" || s.eq_ignore_ascii_case("true")),
    })
}

/// A JWK's own `issuer` property (Entra publishes one per key) must name the
/// token's tenant too, when present. `{tenantid}` templates are accepted as
/// the common-endpoint form only when they expand to the token's issuer.
/// GUIDs and host names compare without regard to case (one tenant, however
/// its id is written).
pub fn check_jwk_issuer(jwk_issuer: Option<&str>, token_issuer: &str, tid: &str) -> Result<(), Reason> {
    match jwk_issuer {
        None => Ok(()),
        Some(i) if i.eq_ignore_ascii_case(token_issuer) => Ok(()),
        Some(i) if i.contains("{tenantid}") && i.replace("{tenantid}", tid).eq_ignore_ascii_case(token_issuer) => {
            Ok(())
        }
        Some(_) => Err(Reason::JwkIssuerMismatch),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "https://login.microsoftonline.com";
    const TID: &str = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa";
    const OTHER: &str = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb";
    const CID: &str = "11111111-1111-1111-1111-111111111111";
    const NOW: i64 = 1_800_000_000;

    fn good() -> IdTokenClaims {
        IdTokenClaims {
            iss: Some(format!("{HOST}/{TID}/v2.0")),
            aud: Some(Audience::One(CID.into())),
            exp: Some(NOW + 3600),
            nbf: Some(NOW - 10),
            iat: Some(NOW - 10),
            tid: Some(TID.into()),
            oid: Some("0000-oid".into()),
            sub: Some("pairwise".into()),
            nonce: Some("n-1".into()),
            ver: Some("2.0".into()),
            ..Default::default()
        }
    }

    fn check(c: &IdTokenClaims, tenants: &TenantPolicy) -> Result<VerifiedIdentity, Reason> {
        let cid: ClientId = CID.parse().unwrap();
        check_id_token(
            c,
            &TokenExpectations {
                issuer_host: HOST,
                client_id: &cid,
                tenants,
                login_tenant: None,
                nonce: "n-1",
                now: NOW,
                skew_secs: 300,
            },
        )
    }

    fn single() -> TenantPolicy {
        TenantPolicy::Single(TID.parse().unwrap())
    }

    #[test]
    fn accepts_a_good_token() {
        let id = check(&good(), &single()).unwrap();
        assert_eq!(id.tid.as_str(), TID);
        assert_eq!(id.oid, "0000-oid");
    }

    #[test]
    fn each_rule_refuses() {
        type Mutate = fn(&mut IdTokenClaims);
        let cases: Vec<(&str, Mutate, Reason)> = vec![
            ("no ver", |c| c.ver = None, Reason::WrongVersion),
            ("v1", |c| c.ver = Some("1.0".into()), Reason::WrongVersion),
            ("no tid", |c| c.tid = None, Reason::TidInvalid),
            ("tid not guid", |c| c.tid = Some("contoso".into()), Reason::TidInvalid),
            (
                "iss trailing slash",
                |c| c.iss = Some(format!("{HOST}/{TID}/v2.0/")),
                Reason::WrongIssuer,
            ),
            (
                "iss v1",
                |c| c.iss = Some(format!("https://sts.windows.net/{TID}/")),
                Reason::WrongIssuer,
            ),
            (
                "iss template",
                |c| c.iss = Some(format!("{HOST}/{{tenantid}}/v2.0")),
                Reason::WrongIssuer,
            ),
            (
                "iss organizations",
                |c| c.iss = Some(format!("{HOST}/organizations/v2.0")),
                Reason::WrongIssuer,
            ),
            (
                "iss other cloud",
                |c| c.iss = Some(format!("https://login.microsoftonline.us/{TID}/v2.0")),
                Reason::WrongIssuer,
            ),
            (
                "iss other tenant",
                |c| c.iss = Some(format!("{HOST}/{OTHER}/v2.0")),
                Reason::WrongIssuer,
            ),
            (
                "tid other than iss",
                |c| c.tid = Some(OTHER.into()),
                Reason::WrongIssuer,
            ),
            ("no iss", |c| c.iss = None, Reason::WrongIssuer),
            (
                "aud other",
                |c| c.aud = Some(Audience::One(OTHER.into())),
                Reason::WrongAudience,
            ),
            (
                "aud array with extra",
                |c| c.aud = Some(Audience::Many(vec![CID.into(), OTHER.into()])),
                Reason::WrongAudience,
            ),
            (
                "aud empty array",
                |c| c.aud = Some(Audience::Many(vec![])),
                Reason::WrongAudience,
            ),
            ("no aud", |c| c.aud = None, Reason::WrongAudience),
            ("azp other", |c| c.azp = Some(OTHER.into()), Reason::WrongAzp),
            ("expired", |c| c.exp = Some(NOW - 301), Reason::Expired),
            ("no exp", |c| c.exp = None, Reason::Expired),
            ("nbf future", |c| c.nbf = Some(NOW + 301), Reason::NotYetValid),
            ("no iat", |c| c.iat = None, Reason::IatMissing),
            ("iat future", |c| c.iat = Some(NOW + 301), Reason::IatInFuture),
            ("no nonce", |c| c.nonce = None, Reason::NonceMissing),
            ("wrong nonce", |c| c.nonce = Some("n-2".into()), Reason::NonceMismatch),
            ("no oid", |c| c.oid = None, Reason::OidMissing),
        ];
        for (name, mutate, want) in cases {
            let mut c = good();
            mutate(&mut c);
            assert_eq!(check(&c, &single()).unwrap_err(), want, "{name}");
        }
    }

    #[test]
    fn skew_is_honoured_at_the_edges() {
        let mut c = good();
        c.exp = Some(NOW - 299);
        c.nbf = Some(NOW + 299);
        c.iat = Some(NOW + 299);
        assert!(check(&c, &single()).is_ok());
    }

    #[test]
    fn aud_array_of_only_the_client_is_fine() {
        let mut c = good();
        c.aud = Some(Audience::Many(vec![CID.into()]));
        c.azp = Some(CID.into());
        assert!(check(&c, &single()).is_ok());
    }

    #[test]
    fn a_token_from_another_tenant_is_refused_in_single_tenant_mode() {
        let mut c = good();
        c.tid = Some(OTHER.into());
        c.iss = Some(format!("{HOST}/{OTHER}/v2.0"));
        assert_eq!(check(&c, &single()).unwrap_err(), Reason::TenantNotAllowed);
    }

    fn check_multi(c: &IdTokenClaims, tenants: &TenantPolicy, login: Option<&TenantId>) -> Result<(), Reason> {
        let cid: ClientId = CID.parse().unwrap();
        let x = TokenExpectations {
            issuer_host: HOST,
            client_id: &cid,
            tenants,
            login_tenant: login,
            nonce: "n-1",
            now: NOW,
            skew_secs: 300,
        };
        check_id_token(c, &x).map(|_| ())
    }

    #[test]
    fn multi_tenant_issuer_and_allow_list() {
        use std::collections::BTreeSet;
        let other: TenantId = OTHER.parse().unwrap();
        let consumers: TenantId = TenantId::CONSUMERS.parse().unwrap();
        let for_tenant = |tid: &str| {
            let mut c = good();
            c.tid = Some(tid.into());
            c.iss = Some(format!("{HOST}/{tid}/v2.0"));
            c
        };
        let restricted = TenantPolicy::Restricted([other.clone()].into());
        let all = TenantPolicy::All(BTreeSet::new());
        let all_with_consumers = TenantPolicy::All([consumers].into());
        let upper = OTHER.to_ascii_uppercase();
        let cases = [
            ("listed tenant", OTHER, &restricted, None, Ok(())),
            ("unlisted tenant", TID, &restricted, None, Err(Reason::TenantNotAllowed)),
            ("any tenant with all", TID, &all, None, Ok(())),
            (
                "consumers need listing",
                TenantId::CONSUMERS,
                &all,
                None,
                Err(Reason::TenantNotAllowed),
            ),
            (
                "consumers when listed",
                TenantId::CONSUMERS,
                &all_with_consumers,
                None,
                Ok(()),
            ),
            ("client tenant matches", OTHER, &all, Some(&other), Ok(())),
            (
                "client tenant differs",
                TID,
                &all,
                Some(&other),
                Err(Reason::TenantNotAllowed),
            ),
            ("upper-case tid", upper.as_str(), &restricted, None, Ok(())),
        ];
        for (name, tid, tenants, login, want) in cases {
            assert_eq!(check_multi(&for_tenant(tid), tenants, login), want, "{name}");
        }
    }

    #[test]
    fn jwk_issuer() {
        let iss = format!("{HOST}/{TID}/v2.0");
        assert!(check_jwk_issuer(None, &iss, TID).is_ok());
        assert!(check_jwk_issuer(Some(&iss), &iss, TID).is_ok());
        assert!(check_jwk_issuer(Some(&format!("{HOST}/{{tenantid}}/v2.0")), &iss, TID).is_ok());
        assert_eq!(
            check_jwk_issuer(Some(&format!("{HOST}/{OTHER}/v2.0")), &iss, TID),
            Err(Reason::JwkIssuerMismatch)
        );
        // A key published with the tenant's id in upper case is the same tenant.
        let upper_iss = format!("{HOST}/{}/v2.0", TID.to_ascii_uppercase());
        assert!(check_jwk_issuer(Some(&upper_iss), &iss, TID).is_ok());
    }

    #[test]
    fn upper_case_guids_are_accepted_and_kept_lower_case() {
        let upper = TID.to_ascii_uppercase();
        let mut c = good();
        c.tid = Some(upper.clone());
        c.iss = Some(format!("{HOST}/{upper}/v2.0"));
        let id = check(&c, &TenantPolicy::Single(TID.parse().unwrap())).expect("accepted");
        assert_eq!(id.tid.as_str(), TID);
        assert_eq!(id.issuer, format!("{HOST}/{TID}/v2.0"));
        // The iss must still name the token's own tid, whatever the case.
        c.iss = Some(format!("{HOST}/{TID}/v2.0"));
        assert_eq!(
            check(&c, &TenantPolicy::Single(TID.parse().unwrap())),
            Err(Reason::WrongIssuer)
        );
    }
}
