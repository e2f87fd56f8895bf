//! Identity headers: removed from every client request, added by the gateway.

use http::HeaderMap;

pub const ASSERTION: &str = "x-auth-assertion";
pub const USER: &str = "x-auth-user";
pub const EMAIL: &str = "x-auth-email";
pub const NAME: &str = "x-auth-name";
pub const OID: &str = "x-auth-oid";
pub const TID: &str = "x-auth-tid";
pub const PORTAL: &str = "x-auth-portal";

/// Names of every client-sent header that must not reach the app: any
/// `X-Auth-*` (whatever its case or spelling), and `Authorization` when the
/// operator asked for it.
pub fn spoofable_headers(headers: &HeaderMap, strip_authorization: bool) -> Vec<http::HeaderName> {
    headers
        .keys()
        .filter(|k| {
            let n = k.as_str();
            n.starts_with("x-auth-") || (strip_authorization && n == "authorization")
        })
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
        h.insert("authorization", "Bearer x".parse().unwrap());
        h.insert("x-authority", "keep".parse().unwrap());
        let mut s: Vec<_> = spoofable_headers(&h, false).iter().map(|n| n.to_string()).collect();
        s.sort();
        assert_eq!(s, ["x-auth-email", "x-auth-whatever"]);
        assert_eq!(spoofable_headers(&h, true).len(), 3);
    }

    #[test]
    fn header_values_are_ascii() {
        assert_eq!(header_safe("Zoë 100%"), "Zo%C3%AB 100%25");
        assert_eq!(header_safe("a\r\nb"), "a%0D%0Ab");
    }
}
