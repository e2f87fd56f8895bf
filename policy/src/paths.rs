//! Return paths: only same-origin relative paths, so the gateway can never be
//! used as an open redirector.

/// Return paths travel in login records that anonymous clients create: kept short.
pub const MAX_LEN: usize = 512;

/// Returns `candidate` when it is a safe same-origin path, else `fallback`.
pub fn safe_return_path(candidate: Option<&str>, fallback: &str) -> String {
    match candidate {
        Some(p) if is_safe(p) => p.to_string(),
        _ => fallback.to_string(),
    }
}

fn is_safe(p: &str) -> bool {
    p.len() <= MAX_LEN
        && p.starts_with('/')
        // `//host` and `/\host` are scheme-relative URLs to a browser.
        && !p.starts_with("//")
        && !p.contains('\\')
        && !p.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Whether a request path is free of dot segments (`.`/`..`, also
/// percent-encoded) and backslashes. Portals are told apart by path prefix;
/// a path the application would normalise into another portal
/// (`/portal/../admin`) must not be matched to the first one.
pub fn is_normalized(path: &str) -> bool {
    if !path.contains('%') {
        // Nothing percent-encoded (most requests): the segments are as
        // written, so they are read in place, with no copy per request.
        return !path.contains('\\') && path.split('/').all(|seg| !is_dot_segment(seg));
    }
    let lower = path.to_ascii_lowercase();
    if lower.contains('\\') || lower.contains("%5c") {
        return false;
    }
    lower
        .replace("%2f", "/")
        .split('/')
        .all(|seg| !is_dot_segment(&seg.replace("%2e", ".").replace("%3b", ";")))
}

/// `.` or `..`, also with `;parameters`: servlet containers drop those
/// before resolving dot segments, so `/portal/..;/admin` is `/admin` to them.
fn is_dot_segment(seg: &str) -> bool {
    let bare = seg.split(';').next().unwrap_or_default();
    bare == "." || bare == ".."
}

/// Whether a request target is origin-form (`/path?query`), or `OPTIONS *`
/// (asterisk-form). Absolute-form (`http://host/path`) and anything else is
/// refused: the gateway routes by the Host header alone.
/// `raw_target` is the request line's target as the client wrote it.
pub fn is_origin_form(method: &str, raw_target: &[u8]) -> bool {
    raw_target.starts_with(b"/") || (method == "OPTIONS" && raw_target == b"*")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The version before the in-place fast path: it copied the path and
    /// each segment on every request.
    fn is_normalized_copying(path: &str) -> bool {
        let lower = path.to_ascii_lowercase();
        if lower.contains('\\') || lower.contains("%5c") {
            return false;
        }
        lower.replace("%2f", "/").split('/').all(|seg| {
            let decoded = seg.replace("%2e", ".").replace("%3b", ";");
            let bare = decoded.split(';').next().unwrap_or_default();
            bare != "." && bare != ".."
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(10_000))]
        /// Paths built from the characters that matter (dots, slashes,
        /// semicolons, backslashes, percent signs and the hex of %2e, %2f,
        /// %3b, %5c in both cases) and any others.
        #[test]
        fn the_in_place_check_is_the_copying_one(path in "(/|\\.|;|\\\\|%|2|e|E|f|F|3|b|B|5|c|C|a|\\PC){0,24}") {
            proptest::prop_assert_eq!(is_normalized(&path), is_normalized_copying(&path), "{:?}", path);
        }
    }

    #[test]
    fn request_targets() {
        assert!(is_origin_form("GET", b"/x"));
        assert!(is_origin_form("GET", b"/"));
        assert!(is_origin_form("OPTIONS", b"*"));
        assert!(!is_origin_form("GET", b"*"));
        assert!(!is_origin_form("GET", b"http://evil.example/x"));
        assert!(!is_origin_form("CONNECT", b"evil.example:443"));
        assert!(!is_origin_form("GET", b"x"));
        assert!(!is_origin_form("GET", b""));
    }

    #[test]
    fn dot_segments() {
        for ok in ["/", "/a/b", "/a.b/c..d", "/portal/", "/x?y=../z"] {
            assert!(is_normalized(ok.split('?').next().unwrap()), "{ok}");
        }
        for bad in [
            "/portal/../admin",
            "/./x",
            "/a/..",
            "/a/%2e%2e/b",
            "/a/%2E./b",
            "/a%2f..%2fb",
            "/a\\..\\b",
            "/a%5cb",
            "/portal/..;/admin",
            "/portal/..;x=1/admin",
            "/a/.%3bx/b",
        ] {
            assert!(!is_normalized(bad), "{bad}");
        }
    }

    #[test]
    fn table() {
        let cases = [
            (Some("/tickets/42?x=1#f"), "/tickets/42?x=1#f"),
            (Some("//evil.example"), "/"),
            (Some("//evil.example/path"), "/"),
            (Some("/\\evil.example"), "/"),
            (Some("https://evil.example/"), "/"),
            (Some("javascript:alert(1)"), "/"),
            (Some("evil.example"), "/"),
            (Some("/ok\r\nSet-Cookie: x=1"), "/"),
            (Some("/\t/evil.example"), "/"),
            (Some(""), "/"),
            (None, "/"),
        ];
        for (input, want) in cases {
            assert_eq!(safe_return_path(input, "/"), want, "{input:?}");
        }
        let long = format!("/{}", "a".repeat(MAX_LEN));
        assert_eq!(safe_return_path(Some(&long), "/"), "/");
    }
}
