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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Forward with the session's identity.
    Forward,
    /// Forward without identity (SSO off for this portal, or a public route).
    Transparent,
    /// Send the browser to sign in.
    StartLogin,
    /// 401 JSON.
    Unauthorized,
}

pub fn decide(sso_enabled: bool, public_route: bool, has_session: bool, navigation: bool) -> Access {
    match (sso_enabled, public_route, has_session, navigation) {
        (false, ..) | (_, true, false, _) => Access::Transparent,
        (true, _, true, _) => Access::Forward,
        (true, false, false, true) => Access::StartLogin,
        (true, false, false, false) => Access::Unauthorized,
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
        let cases = [
            ((false, false, false, true), Transparent),
            ((false, false, true, true), Transparent),
            ((true, true, false, true), Transparent),
            ((true, true, true, false), Forward),
            ((true, false, true, false), Forward),
            ((true, false, false, true), StartLogin),
            ((true, false, false, false), Unauthorized),
        ];
        for ((sso, public, session, nav), want) in cases {
            assert_eq!(
                decide(sso, public, session, nav),
                want,
                "{sso} {public} {session} {nav}"
            );
        }
    }
}
