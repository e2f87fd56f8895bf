//! Reason codes: one per way a request or sign-in can be refused. The same
//! code shows up in the page, the JSON body, the log line and the metric label.

/// Why something was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    // login state
    StateMissing,
    StateUnknown,
    StateCookieMissing,
    StateCookieMismatch,
    // the identity provider said no
    IdpError,
    // token shape and signature
    TokenMissing,
    TokenMalformed,
    AlgNotAllowed,
    CritHeader,
    UnknownKid,
    AmbiguousKey,
    BadSignature,
    // claims
    WrongVersion,
    TidInvalid,
    WrongIssuer,
    JwkIssuerMismatch,
    WrongAudience,
    WrongAzp,
    TenantNotAllowed,
    Expired,
    NotYetValid,
    IatMissing,
    IatInFuture,
    NonceMissing,
    NonceMismatch,
    OidMissing,
    CHashMismatch,
    // code flow
    CodeExchangeFailed,
    /// The keys of a tenant nobody vouched for (not the home tenant, not
    /// listed) could not be fetched: a refusal, not an outage, as anyone can
    /// name any tenant (`sign_in_scope: all`).
    TenantKeysUnavailable,
    // infrastructure the sign-in depends on
    MetadataUnavailable,
    StoreUnavailable,
    // directory and matching
    NotSetUp,
    AccountDisabled,
    PortalNotAllowed,
    EmailNotVerified,
    BoundToAnother,
    RecordWithoutOid,
    DirectoryUnavailable,
    // requests
    NoSession,
    BadRequest,
    NoPortal,
    CsrfMismatch,
    /// A form posted from another site (login, local account).
    CrossSite,
    /// An ID token, code or access token in a callback's query string.
    TokenInQuery,
    /// Too many sign-ins started from one client address.
    LoginRateLimited,
    /// Too many sign-ins pending on this instance.
    TooManyPendingLogins,
    /// Signed in, but the second factor is still owed (XHR/API: 401 naming
    /// the 2FA page).
    TwoFactorRequired,
    /// Too many wrong second-factor codes from this user or address.
    TwoFactorLocked,
}

impl Reason {
    /// Stable snake_case code (metric label, log field, page text).
    pub fn code(self) -> &'static str {
        use Reason::*;
        match self {
            StateMissing => "state_missing",
            StateUnknown => "state_unknown",
            StateCookieMissing => "state_cookie_missing",
            StateCookieMismatch => "state_cookie_mismatch",
            IdpError => "idp_error",
            TokenMissing => "token_missing",
            TokenMalformed => "token_malformed",
            AlgNotAllowed => "alg_not_allowed",
            CritHeader => "crit_header",
            UnknownKid => "unknown_kid",
            AmbiguousKey => "ambiguous_key",
            BadSignature => "bad_signature",
            WrongVersion => "wrong_version",
            TidInvalid => "tid_invalid",
            WrongIssuer => "wrong_issuer",
            JwkIssuerMismatch => "jwk_issuer_mismatch",
            WrongAudience => "wrong_audience",
            WrongAzp => "wrong_azp",
            TenantNotAllowed => "tenant_not_allowed",
            Expired => "expired",
            NotYetValid => "not_yet_valid",
            IatMissing => "iat_missing",
            IatInFuture => "iat_in_future",
            NonceMissing => "nonce_missing",
            NonceMismatch => "nonce_mismatch",
            OidMissing => "oid_missing",
            CHashMismatch => "c_hash_mismatch",
            CodeExchangeFailed => "code_exchange_failed",
            TenantKeysUnavailable => "tenant_keys_unavailable",
            MetadataUnavailable => "metadata_unavailable",
            StoreUnavailable => "store_unavailable",
            NotSetUp => "not_set_up",
            AccountDisabled => "account_disabled",
            PortalNotAllowed => "portal_not_allowed",
            EmailNotVerified => "email_not_verified",
            BoundToAnother => "bound_to_another",
            RecordWithoutOid => "record_without_oid",
            DirectoryUnavailable => "directory_unavailable",
            NoSession => "no_session",
            BadRequest => "bad_request",
            NoPortal => "no_portal",
            CsrfMismatch => "csrf_mismatch",
            CrossSite => "cross_site",
            TokenInQuery => "token_in_query",
            LoginRateLimited => "login_rate_limited",
            TooManyPendingLogins => "too_many_pending_logins",
            TwoFactorRequired => "two_factor_required",
            TwoFactorLocked => "two_factor_locked",
        }
    }

    /// HTTP status of the refusal. Only dependencies being down give a 5xx.
    pub fn status(self) -> u16 {
        use Reason::*;
        match self {
            NoSession | TwoFactorRequired => 401,
            LoginRateLimited | TooManyPendingLogins | TwoFactorLocked => 429,
            TenantNotAllowed | CsrfMismatch | CrossSite | NotSetUp | AccountDisabled | PortalNotAllowed
            | EmailNotVerified | BoundToAnother | RecordWithoutOid => 403,
            NoPortal => 421,
            MetadataUnavailable | StoreUnavailable | DirectoryUnavailable => 503,
            _ => 400,
        }
    }

    /// One sentence for the person who sees the page.
    pub fn explain(self) -> &'static str {
        use Reason::*;
        match self {
            StateMissing | StateUnknown => "This sign-in has expired or was already used. Please start again.",
            StateCookieMissing | StateCookieMismatch => {
                "This sign-in was not started in this browser (or its cookies were blocked). Please start again."
            }
            IdpError => "Microsoft Entra ID reported an error during sign-in.",
            TokenMissing | TokenMalformed | AlgNotAllowed | CritHeader | UnknownKid | AmbiguousKey | BadSignature => {
                "The sign-in response could not be verified as coming from Microsoft Entra ID."
            }
            WrongVersion | TidInvalid | WrongIssuer | JwkIssuerMismatch | WrongAudience | WrongAzp | OidMissing
            | CHashMismatch => "The sign-in response was not issued for this application.",
            TenantNotAllowed => "Your organisation (tenant) is not allowed to sign in here.",
            Expired | NotYetValid | IatMissing | IatInFuture => {
                "The sign-in response is outside its validity period. Check this computer's clock and try again."
            }
            NonceMissing | NonceMismatch => {
                "The sign-in response does not belong to this sign-in attempt. Please start again."
            }
            CodeExchangeFailed => "The sign-in could not be completed with Microsoft Entra ID.",
            TenantKeysUnavailable => {
                "The signing keys of your organisation (tenant) could not be obtained from Microsoft Entra ID, so this sign-in cannot be verified. Please try again later."
            }
            MetadataUnavailable => "Microsoft Entra ID cannot be reached right now. Please try again in a moment.",
            StoreUnavailable => {
                "Sign-in is temporarily unavailable (session storage is down). Please try again in a moment."
            }
            NotSetUp => "Your account is not set up in this application; contact your administrator.",
            AccountDisabled => "Your account in this application is disabled; contact your administrator.",
            PortalNotAllowed => "Your account cannot use this portal; use the portal meant for you.",
            EmailNotVerified => {
                "Your organisation has not verified the email address it sent, so it cannot identify you here; contact your administrator."
            }
            BoundToAnother => {
                "The account with this email address is linked to a different Microsoft identity; contact your administrator."
            }
            RecordWithoutOid => {
                "Your account here is not linked to a Microsoft identity yet; contact your administrator."
            }
            DirectoryUnavailable => "Sign-in is temporarily unavailable (the user directory cannot be reached).",
            NoSession => "You need to sign in.",
            BadRequest => "The request was not understood.",
            NoPortal => "This address is not served by this gateway.",
            CsrfMismatch => "The form has expired. Please try again.",
            CrossSite => {
                "This form was sent from another site, so it was not accepted. Please use this site's own page."
            }
            TokenInQuery => {
                "The sign-in response arrived in the address instead of a form post, so it was not accepted. Please start again."
            }
            LoginRateLimited => "Too many sign-ins were started from your network. Please wait a moment and try again.",
            TooManyPendingLogins => "Too many sign-ins are in progress right now. Please wait a moment and try again.",
            TwoFactorRequired => "Your sign-in needs its second step: a code from your authenticator app.",
            TwoFactorLocked => "Too many wrong codes were entered. Please wait before trying again.",
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_never_5xx_unless_a_dependency_is_down() {
        for r in [
            Reason::BadSignature,
            Reason::StateUnknown,
            Reason::TenantNotAllowed,
            Reason::TenantKeysUnavailable,
        ] {
            assert!((400..500).contains(&r.status()), "{r}");
        }
        assert_eq!(Reason::StoreUnavailable.status(), 503);
    }
}
