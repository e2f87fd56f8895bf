//! The mock's own small helpers (it does not depend on the gateway, whose
//! session module has the same two).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// `n` random bytes, base64url: codes, `kid`s, access tokens.
pub(crate) fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(bytes.as_mut_slice());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A session id as Entra writes it in `sid`: a GUID (random, version 4).
pub(crate) fn random_sid() -> String {
    let mut b = [0u8; 16];
    rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

pub(crate) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_sid_is_a_version_4_guid() {
        for _ in 0..64 {
            let sid = super::random_sid();
            let parts: Vec<&str> = sid.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{sid}");
            assert!(sid.chars().all(|c| c == '-' || c.is_ascii_hexdigit()), "{sid}");
            assert!(parts[2].starts_with('4'), "{sid}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{sid}");
        }
    }
}
