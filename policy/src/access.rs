//! What to do with a request that is not one of the gateway's own routes.

/// The request facts the decision depends on, already extracted from HTTP.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestTraits<'a> {
    pub method: &'a str,
    pub sec_fetch_mode: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub x_requested_with: bool,
}

/// A top-level browser navigation may be redirected to a login page; anything
/// else (XHR, fetch, API clients, non-GET) must get a 401 it can handle.
pub fn is_browser_navigation(t: &RequestTraits<'_>) -> bool {
    if !(t.method == "GET" || t.method == "HEAD") || t.x_requested_with {
        return false;
    }
    match t.sec_fetch_mode {
        Some(mode) => mode == "navigate",
        // Browsers without Fetch Metadata: fall back to what they accept.
        None => t.accept.is_some_and(|a| a.contains("text/html")),
    }
}

/// Whether a sign-in goes straight to Entra (no login page): per portal kind,
/// and for user portals a client's own setting overrides the global one.
pub fn auto_redirect(kind: crate::PortalKind, agents: bool, users: bool, client_users: Option<bool>) -> bool {
    match kind {
        crate::PortalKind::Agent => agents,
        crate::PortalKind::User => client_users.unwrap_or(users),
    }
}

/// The SSO switches of the settings page that say where SSO applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SsoSwitches {
    pub published: bool,
    pub agents: bool,
    pub users: bool,
}

impl SsoSwitches {
    /// Whether a portal of this kind gets SSO at all.
    pub fn enabled_for(&self, kind: crate::PortalKind) -> bool {
        self.published
            && match kind {
                crate::PortalKind::Agent => self.agents,
                crate::PortalKind::User => self.users,
            }
    }
}

/// What the request's session cookie led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    /// No cookie, or one that names no live session valid here.
    None,
    /// A live session of this portal (and client).
    Valid,
    /// A live session whose second factor is still owed: never more
    /// privileged than no session (the public paths, and the 2FA page).
    Pending2fa,
}

/// Everything the access decision depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessFacts {
    /// SSO is on for the portal.
    pub sso: bool,
    /// The path matches `routes.public`.
    pub public: bool,
    pub session: SessionState,
    /// The browser chose "use a local account" (the app's own login).
    pub local_account: bool,
    /// A top-level browser navigation (may be redirected to sign in).
    pub navigation: bool,
    /// A sign-in skips the login page (see [`auto_redirect`]).
    pub auto_redirect: bool,
}

/// Why a request goes to the app without identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bypass {
    SsoOff,
    Public,
    LocalAccount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Forward with the session's identity.
    Forward,
    /// Forward without identity.
    Transparent(Bypass),
    /// Send the browser to sign in: straight to Entra, or the login page.
    StartLogin { auto_redirect: bool },
    /// 401 JSON.
    Unauthorized,
    /// Send the browser to the 2FA page (a navigation) or answer 401 JSON
    /// naming it (anything else).
    SecondFactor { navigation: bool },
}

pub fn decide(f: &AccessFacts) -> Access {
    let has_session = f.session == SessionState::Valid;
    if f.sso && has_session {
        return Access::Forward;
    }
    if f.public {
        return Access::Transparent(Bypass::Public);
    }
    if !f.sso {
        return Access::Transparent(Bypass::SsoOff);
    }
    // Signed in with Entra but the second factor is owed: neither identity
    // nor the local-account way round it.
    if f.session == SessionState::Pending2fa {
        return Access::SecondFactor {
            navigation: f.navigation,
        };
    }
    // "Use a local account": the app's own login, until an SSO sign-in.
    if f.local_account {
        return Access::Transparent(Bypass::LocalAccount);
    }
    if f.navigation {
        Access::StartLogin {
            auto_redirect: f.auto_redirect,
        }
    } else {
        Access::Unauthorized
    }
}

/// What became of a request: the `outcome` label of the requests metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Failed before anything else was decided.
    Error,
    BadRequest,
    /// One of the gateway's fixed endpoints.
    Gateway,
    NoPortal,
    /// The gateway's own `/auth/*` pages.
    Auth,
    Forwarded,
    Public,
    LocalAccount,
    Transparent,
    Login,
    Unauthorized,
    /// Sent to the second factor (redirect or 401).
    TwoFactor,
    StoreUnavailable,
    /// Forwarded, but the upstream failed.
    UpstreamError,
}

impl Outcome {
    /// Every outcome, each at its own discriminant (see the test).
    pub const ALL: [Outcome; 14] = [
        Outcome::Error,
        Outcome::BadRequest,
        Outcome::Gateway,
        Outcome::NoPortal,
        Outcome::Auth,
        Outcome::Forwarded,
        Outcome::Public,
        Outcome::LocalAccount,
        Outcome::Transparent,
        Outcome::Login,
        Outcome::Unauthorized,
        Outcome::TwoFactor,
        Outcome::StoreUnavailable,
        Outcome::UpstreamError,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Outcome::Error => "error",
            Outcome::BadRequest => "bad_request",
            Outcome::Gateway => "gateway",
            Outcome::NoPortal => "no_portal",
            Outcome::Auth => "auth",
            Outcome::Forwarded => "forwarded",
            Outcome::Public => "public",
            Outcome::LocalAccount => "local_account",
            Outcome::Transparent => "transparent",
            Outcome::Login => "login",
            Outcome::Unauthorized => "unauthorized",
            Outcome::TwoFactor => "two_factor",
            Outcome::StoreUnavailable => "store_unavailable",
            Outcome::UpstreamError => "upstream_error",
        }
    }

    /// Whether the request was handed to the upstream.
    pub fn is_proxied(self) -> bool {
        matches!(
            self,
            Outcome::Forwarded | Outcome::Public | Outcome::LocalAccount | Outcome::Transparent
        )
    }
}

impl From<Access> for Outcome {
    fn from(a: Access) -> Self {
        match a {
            Access::Forward => Outcome::Forwarded,
            Access::Transparent(Bypass::SsoOff) => Outcome::Transparent,
            Access::Transparent(Bypass::Public) => Outcome::Public,
            Access::Transparent(Bypass::LocalAccount) => Outcome::LocalAccount,
            Access::StartLogin { .. } => Outcome::Login,
            Access::Unauthorized => Outcome::Unauthorized,
            Access::SecondFactor { .. } => Outcome::TwoFactor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn navigation_table() {
        let t = |method, mode, accept, xrw| RequestTraits {
            method,
            sec_fetch_mode: mode,
            accept,
            x_requested_with: xrw,
        };
        let cases = [
            (t("GET", Some("navigate"), Some("text/html"), false), true),
            (t("GET", Some("cors"), Some("text/html"), false), false),
            (t("GET", Some("no-cors"), None, false), false),
            (t("GET", None, Some("text/html,application/xhtml+xml"), false), true),
            (t("GET", None, Some("application/json"), false), false),
            (t("GET", None, None, false), false),
            (t("GET", None, Some("text/html"), true), false),
            (t("POST", Some("navigate"), Some("text/html"), false), false),
            (t("HEAD", Some("navigate"), None, false), true),
        ];
        for (traits, want) in cases {
            assert_eq!(is_browser_navigation(&traits), want, "{traits:?}");
        }
    }

    #[test]
    fn auto_redirect_precedence() {
        use crate::PortalKind::{Agent, User};
        let cases = [
            ((Agent, true, false, None), true),
            ((Agent, false, true, Some(true)), false),
            ((User, false, true, None), true),
            ((User, true, false, None), false),
            ((User, false, false, Some(true)), true),
            ((User, false, true, Some(false)), false),
        ];
        for ((kind, agents, users, client), want) in cases {
            assert_eq!(
                auto_redirect(kind, agents, users, client),
                want,
                "{kind:?} {agents} {users} {client:?}"
            );
        }
    }

    #[test]
    fn decision_table() {
        use Access::*;
        use SessionState::{None as NoSession, Pending2fa, Valid};
        let f = |sso, public, session, local_account, navigation| AccessFacts {
            sso,
            public,
            session,
            local_account,
            navigation,
            auto_redirect: true,
        };
        let cases = [
            (f(false, false, NoSession, false, true), Transparent(Bypass::SsoOff)),
            (f(false, false, Valid, false, true), Transparent(Bypass::SsoOff)),
            (f(false, true, NoSession, false, true), Transparent(Bypass::Public)),
            (f(true, true, NoSession, false, true), Transparent(Bypass::Public)),
            (f(true, true, Valid, false, false), Forward),
            (f(true, false, Valid, false, false), Forward),
            (
                f(true, false, NoSession, false, true),
                StartLogin { auto_redirect: true },
            ),
            (f(true, false, NoSession, false, false), Unauthorized),
            // A local-account browser reaches the app's own login...
            (f(true, false, NoSession, true, true), Transparent(Bypass::LocalAccount)),
            (
                f(true, false, NoSession, true, false),
                Transparent(Bypass::LocalAccount),
            ),
            (f(true, true, NoSession, true, false), Transparent(Bypass::Public)),
            // ...until it signs in with SSO: then identity goes with it.
            (f(true, false, Valid, true, true), Forward),
            // Second factor owed: the 2FA page or a 401 naming it, never the
            // app with identity, nor the local-account way round it...
            (
                f(true, false, Pending2fa, false, true),
                SecondFactor { navigation: true },
            ),
            (
                f(true, false, Pending2fa, false, false),
                SecondFactor { navigation: false },
            ),
            (
                f(true, false, Pending2fa, true, true),
                SecondFactor { navigation: true },
            ),
            // ...but public paths stay public, and SSO off is SSO off.
            (f(true, true, Pending2fa, false, true), Transparent(Bypass::Public)),
            (f(false, false, Pending2fa, false, true), Transparent(Bypass::SsoOff)),
        ];
        for (facts, want) in cases {
            assert_eq!(decide(&facts), want, "{facts:?}");
        }
        let page = AccessFacts {
            auto_redirect: false,
            ..f(true, false, NoSession, false, true)
        };
        assert_eq!(decide(&page), StartLogin { auto_redirect: false });
    }

    #[test]
    fn outcomes_follow_the_access_decision() {
        assert_eq!(Outcome::from(Access::Forward).label(), "forwarded");
        assert_eq!(Outcome::from(Access::Transparent(Bypass::Public)).label(), "public");
        assert_eq!(
            Outcome::from(Access::Transparent(Bypass::LocalAccount)).label(),
            "local_account"
        );
        assert_eq!(
            Outcome::from(Access::Transparent(Bypass::SsoOff)).label(),
            "transparent"
        );
        assert_eq!(
            Outcome::from(Access::StartLogin { auto_redirect: false }).label(),
            "login"
        );
        assert!(Outcome::Forwarded.is_proxied() && !Outcome::Login.is_proxied());
        assert_eq!(
            Outcome::from(Access::SecondFactor { navigation: true }).label(),
            "two_factor"
        );
        assert!(!Outcome::TwoFactor.is_proxied());
    }

    #[test]
    fn sso_switches() {
        use crate::PortalKind::{Agent, User};
        let s = |published, agents, users| SsoSwitches {
            published,
            agents,
            users,
        };
        assert!(s(true, true, false).enabled_for(Agent));
        assert!(!s(true, true, false).enabled_for(User));
        assert!(s(true, false, true).enabled_for(User));
        assert!(!s(false, true, true).enabled_for(Agent));
        assert!(!s(false, true, true).enabled_for(User));
    }

    #[test]
    fn every_outcome_is_listed_at_its_discriminant() {
        for (i, o) in Outcome::ALL.iter().enumerate() {
            assert_eq!(*o as usize, i, "{o:?}");
        }
        // A variant added without listing it would sit past the end.
        let labels: std::collections::HashSet<_> = Outcome::ALL.iter().map(|o| o.label()).collect();
        assert_eq!(labels.len(), Outcome::ALL.len());
    }
}
