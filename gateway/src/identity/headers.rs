//! Identity headers: removed from every client request, added by the gateway.

use http::HeaderMap;
use policy::headers::{HeaderRules, must_drop};

pub const ASSERTION: &str = "x-auth-assertion";
pub const USER: &str = "x-auth-user";
pub const EMAIL: &str = "x-auth-email";
pub const NAME: &str = "x-auth-name";
pub const OID: &str = "x-auth-oid";
pub const TID: &str = "x-auth-tid";
pub const PORTAL: &str = "x-auth-portal";

/// Names of every client-sent header that must not reach the app (see
/// `policy::headers`): identity headers in any spelling, names with `_`
/// unless listed, the forwarding family from untrusted peers, and
/// `Authorization` when the operator asked for it.
pub fn headers_to_drop(headers: &HeaderMap, rules: &HeaderRules<'_>) -> Vec<http::HeaderName> {
    headers
        .keys()
        .filter(|k| must_drop(k.as_str(), rules))
        .cloned()
        .collect()
}

/// Header values must be visible ASCII; names with other characters are
/// carried in the signed assertion only, and percent-encoded here.
pub fn header_safe(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'%' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_x_auth_header() {
        let mut h = HeaderMap::new();
        h.insert("x-auth-email", "evil@example.com".parse().unwrap());
        h.insert("X-Auth-Whatever", "1".parse().unwrap());
        h.insert("x_auth_user", "victim".parse().unwrap());
        h.insert("authorization", "Bearer x".parse().unwrap());
        h.insert("x-authority", "keep".parse().unwrap());
        h.insert("x-forwarded-for", "6.6.6.6".parse().unwrap());
        let mut rules = HeaderRules {
            trusted_peer: true,
            strip_authorization: false,
            allow_underscore: &[],
        };
        let mut s: Vec<_> = headers_to_drop(&h, &rules).iter().map(|n| n.to_string()).collect();
        s.sort();
        assert_eq!(s, ["x-auth-email", "x-auth-whatever", "x_auth_user"]);
        rules.strip_authorization = true;
        rules.trusted_peer = false;
        assert_eq!(headers_to_drop(&h, &rules).len(), 5);
    }

    #[test]
    fn header_values_are_ascii() {
        assert_eq!(header_safe("Zoë 100%"), "Zo%C3%AB 100%25");
        assert_eq!(header_safe("a\r\nb"), "a%0D%0Ab");
    }
}
