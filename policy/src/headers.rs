//! Which client-sent request headers may reach the application (SPEC §5).
//!
//! Many application servers (CGI/PHP, WSGI, Rack, IIS server variables) turn
//! `X-Auth-User` and `X_Auth_User` into the same variable, so a header is
//! judged by its name after lower-casing and mapping `_` to `-`, and names
//! with `_` are dropped outright unless the operator lists them.

/// What the gateway knows when it filters one request's headers.
#[derive(Debug, Clone, Copy)]
pub struct HeaderRules<'a> {
    /// The peer is a trusted proxy: its forwarding headers are kept.
    pub trusted_peer: bool,
    /// `upstream.strip_authorization`.
    pub strip_authorization: bool,
    /// `upstream.allow_underscore_headers`, lower-case.
    pub allow_underscore: &'a [String],
}

/// Headers that name the client or the original request; only a trusted
/// proxy may send them.
const FORWARDING: [&str; 4] = ["forwarded", "x-real-ip", "x-original-url", "x-rewrite-url"];
const FORWARDED_PREFIX: &str = "x-forwarded-";
const IDENTITY_PREFIX: &str = "x-auth-";

/// Byte `b` of a header name as a CGI-style server sees it.
fn canon(b: u8) -> u8 {
    if b == b'_' { b'-' } else { b.to_ascii_lowercase() }
}

fn canon_starts_with(name: &str, prefix: &str) -> bool {
    name.len() >= prefix.len() && name.bytes().zip(prefix.bytes()).all(|(a, b)| canon(a) == b)
}

fn canon_eq(name: &str, other: &str) -> bool {
    name.len() == other.len() && canon_starts_with(name, other)
}

/// Whether a client-sent header must be removed before forwarding.
pub fn must_drop(name: &str, rules: &HeaderRules<'_>) -> bool {
    // The gateway's own headers: never from a client, whoever forwards it.
    if canon_starts_with(name, IDENTITY_PREFIX) {
        return true;
    }
    if name.contains('_') && !rules.allow_underscore.iter().any(|a| a.eq_ignore_ascii_case(name)) {
        return true;
    }
    if rules.strip_authorization && canon_eq(name, "authorization") {
        return true;
    }
    !rules.trusted_peer && (canon_starts_with(name, FORWARDED_PREFIX) || FORWARDING.iter().any(|f| canon_eq(name, f)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(trusted_peer: bool, allow: &[String]) -> HeaderRules<'_> {
        HeaderRules {
            trusted_peer,
            strip_authorization: false,
            allow_underscore: allow,
        }
    }

    #[test]
    fn table() {
        let allow = vec!["x_legacy_token".to_string()];
        // (name, dropped from an untrusted peer, dropped from a trusted proxy)
        let cases = [
            ("x-auth-user", true, true),
            ("X-Auth-User", true, true),
            ("x_auth_user", true, true),
            ("X_AUTH-Email", true, true),
            ("x-auth-anything", true, true),
            ("x-authority", false, false),
            ("x_legacy_token", false, false),
            ("X_Legacy_Token", false, false),
            ("x_other_token", true, true),
            ("x-forwarded-for", true, false),
            ("X-Forwarded-Host", true, false),
            ("x_forwarded_for", true, true),
            ("forwarded", true, false),
            ("x-real-ip", true, false),
            ("x_real_ip", true, true),
            ("x-original-url", true, false),
            ("x-rewrite-url", true, false),
            ("x-forwardedx", false, false),
            ("accept", false, false),
            ("authorization", false, false),
            ("cookie", false, false),
        ];
        for (name, untrusted, trusted) in cases {
            assert_eq!(must_drop(name, &rules(false, &allow)), untrusted, "{name} untrusted");
            assert_eq!(must_drop(name, &rules(true, &allow)), trusted, "{name} trusted");
        }
    }

    #[test]
    fn allow_listed_underscore_names_never_smuggle_identity() {
        let allow = vec!["x_auth_user".to_string(), "x_forwarded_for".to_string()];
        assert!(must_drop("x_auth_user", &rules(true, &allow)));
        assert!(must_drop("x_forwarded_for", &rules(false, &allow)));
    }

    #[test]
    fn authorization_only_when_configured() {
        let r = HeaderRules {
            trusted_peer: true,
            strip_authorization: true,
            allow_underscore: &[],
        };
        assert!(must_drop("authorization", &r));
        assert!(must_drop("Authorization", &r));
    }
}
