//! Cookie security and naming (SPEC §3, §6).

/// Cookies are `Secure` whenever the browser talks https to us (TLS here, or
/// a trusted TLS terminator), and also on plain http unless the operator
/// explicitly opted into insecure development cookies: a misconfigured
/// production deployment then fails closed (no cookie) instead of leaking one.
pub fn cookies_secure(request_is_https: bool, insecure_dev_cookies: bool) -> bool {
    request_is_https || !insecure_dev_cookies
}

/// `__Host-` makes the browser refuse the cookie unless it is Secure, has
/// `Path=/` and no `Domain`, which pins it to exactly this origin.
pub fn prefixed(name: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{name}")
    } else {
        name.to_string()
    }
}

/// The session cookie of one portal.
pub fn session_cookie_name(base: &str, portal: &str, secure: bool) -> String {
    prefixed(&format!("{base}_{portal}"), secure)
}

/// The login-state cookie of one pending login: its name carries a short tag
/// of the state so that several logins in one browser each find theirs.
pub fn login_cookie_name(base: &str, state_tag: &str, secure: bool) -> String {
    prefixed(&format!("{base}_login_{state_tag}"), secure)
}

/// The "use a local account" marker of one portal.
pub fn local_cookie_name(base: &str, portal: &str, secure: bool) -> String {
    prefixed(&format!("{base}_local_{portal}"), secure)
}

/// The "don't ask again" cookie of the second factor: one per browser (not
/// per portal), naming the user it was issued to.
pub fn two_factor_cookie_name(base: &str, secure: bool) -> String {
    prefixed(&format!("{base}_2fa"), secure)
}

/// Whether a cookie name is one of the gateway's own (never forwarded).
pub fn is_gateway_cookie(name: &str, base: &str) -> bool {
    let bare = name.strip_prefix("__Host-").unwrap_or(name);
    bare.strip_prefix(base).is_some_and(|rest| rest.starts_with('_'))
}

/// SameSite of the login-state cookie: Entra's form_post is a cross-site POST,
/// which only carries `SameSite=None` cookies, and those must be Secure.
pub fn login_cookie_same_site(secure: bool) -> &'static str {
    if secure { "None" } else { "Lax" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_table() {
        assert!(cookies_secure(true, false));
        assert!(cookies_secure(true, true));
        assert!(cookies_secure(false, false));
        assert!(!cookies_secure(false, true));
    }

    #[test]
    fn names() {
        assert_eq!(session_cookie_name("entra_gw", "agent", true), "__Host-entra_gw_agent");
        assert_eq!(session_cookie_name("entra_gw", "agent", false), "entra_gw_agent");
        assert!(is_gateway_cookie("__Host-entra_gw_agent", "entra_gw"));
        assert!(is_gateway_cookie("entra_gw_login_abc", "entra_gw"));
        assert!(!is_gateway_cookie("entra_gwx", "entra_gw"));
        assert!(!is_gateway_cookie("app_session", "entra_gw"));
        assert_eq!(login_cookie_same_site(true), "None");
        assert_eq!(login_cookie_same_site(false), "Lax");
    }
}
