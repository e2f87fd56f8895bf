//! The gateway's header edits applied to the request Pingora sends upstream.
//!
//! Pingora keeps a second map beside the request's headers so that each name
//! reaches the app spelt as the client sent it (`X-Custom` stays `X-Custom`).
//! That map is cloned for every request, every gateway header is inserted
//! into it too and it is dropped after: ~2 µs of a ~35 µs request on the
//! benchmark machine (docs/performance.md). So by default
//! (`upstream.preserve_header_case: false`) it is dropped and the names go
//! in lower case (a few standard ones title-cased: `Host`, `Content-Type`,
//! …), as they do over HTTP/2 and from Envoy or HAProxy; HTTP names are
//! case-insensitive (RFC 9110 §5.1). `true` keeps it, for an app that
//! matches the client's header names case-sensitively (the gateway's own
//! are lower case either way, but for a rewritten `Cookie`).

use crate::identity::headers::Edit;
use http::HeaderName;
use pingora::http::RequestHeader;

/// Applies `edits` (in order) to `up`, keeping each name's spelling or not.
pub fn apply(up: &mut RequestHeader, edits: Vec<Edit>, preserve_case: bool) -> pingora::Result<()> {
    if preserve_case {
        for edit in edits {
            match edit {
                Edit::Remove(name) => {
                    up.remove_header(&name);
                }
                Edit::Set(name, value) => up.insert_header(name, value)?,
            }
        }
        return Ok(());
    }
    // Without its spelling map the request is `http::request::Parts`, which
    // keeps everything else but a request-target the URI does not reproduce
    // (absolute-form, say): those bytes are put back after. What the URI
    // reproduces is what `raw_path` reads from it when it keeps no bytes.
    let uri = &up.uri;
    let from_uri = uri
        .path_and_query()
        .map(|p| p.as_str())
        .or_else(|| uri.authority().map(|a| a.as_str()));
    let verbatim = (from_uri.map(str::as_bytes) != Some(up.raw_path())).then(|| up.raw_path().to_vec());
    let end_stream = up.send_end_stream();
    // An empty request takes its place for a moment: no allocation.
    let empty = RequestHeader::from(http::Request::new(()).into_parts().0);
    let mut parts: http::request::Parts = std::mem::replace(up, empty).into();
    parts.headers.reserve(edits.len());
    let mut applied = Ok(());
    for edit in edits {
        match edit {
            Edit::Remove(name) => {
                parts.headers.remove(&name);
            }
            Edit::Set(name, value) => match key(name) {
                Ok(name) => {
                    parts.headers.insert(name, value);
                }
                Err(e) => {
                    applied = Err(e);
                    break;
                }
            },
        }
    }
    // The request goes back whole even when an edit failed.
    *up = RequestHeader::from(parts);
    if let Some(target) = verbatim {
        up.set_raw_path(&target)?;
    }
    if let Some(end_stream) = end_stream {
        up.set_send_end_stream(end_stream);
    }
    applied
}

/// `name` as a map key: without a copy when it is already lower case (all the
/// gateway's names but the standard `Cookie`, spelt as Pingora spells it).
fn key(name: &'static str) -> pingora::Result<HeaderName> {
    // `from_static` also refuses names longer than http's 64 KiB limit.
    let lower = (1..=1024).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if lower {
        // Only lower-case letters, digits and '-': a valid name, no panic.
        return Ok(HeaderName::from_static(name));
    }
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        pingora::Error::explain(
            pingora::ErrorType::InvalidHTTPHeader,
            format!("not a header name: {name:?}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn request(target: &[u8]) -> RequestHeader {
        let mut r = RequestHeader::build("GET", target, None).unwrap();
        r.append_header("Host", "app.example").unwrap();
        r.append_header("User-Agent", "test/1").unwrap();
        r.append_header("X-Custom-Thing", "1").unwrap();
        r.append_header("Cookie", "eg=secret; app=2").unwrap();
        r.append_header("X-Auth-User", "spoofed").unwrap();
        r
    }

    fn edits() -> Vec<Edit> {
        vec![
            Edit::Remove(HeaderName::from_static("x-auth-user")),
            Edit::Remove(http::header::COOKIE),
            Edit::Set("Cookie", HeaderValue::from_static("app=2")),
            Edit::Set("x-forwarded-for", HeaderValue::from_static("192.0.2.1")),
            Edit::Set(crate::identity::headers::ASSERTION, HeaderValue::from_static("a.b.c")),
            Edit::Set(crate::identity::headers::USER, HeaderValue::from_static("ann")),
        ]
    }

    fn wire(r: &RequestHeader) -> String {
        let mut buf = Vec::new();
        r.header_to_h1_wire(&mut buf);
        String::from_utf8(buf).unwrap()
    }

    /// Each header line, its name lower-cased, sorted: what an app reading
    /// names case-insensitively sees.
    fn lines(wire: &str) -> Vec<String> {
        let mut v: Vec<String> = wire
            .lines()
            .map(|l| {
                let (n, rest) = l.split_once(':').unwrap();
                format!("{}:{rest}", n.to_ascii_lowercase())
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn both_modes_send_the_same_headers_one_keeping_the_clients_spelling() {
        let mut kept = request(b"/a%20b?q=1");
        apply(&mut kept, edits(), true).unwrap();
        let mut lower = request(b"/a%20b?q=1");
        apply(&mut lower, edits(), false).unwrap();
        let (kw, lw) = (wire(&kept), wire(&lower));
        assert!(
            kw.contains("X-Custom-Thing: 1\r\n") && kw.contains("User-Agent: test/1\r\n"),
            "{kw}"
        );
        assert!(kw.contains("Cookie: app=2\r\n"), "{kw}");
        assert!(
            lw.contains("x-custom-thing: 1\r\n") && lw.contains("user-agent: test/1\r\n"),
            "{lw}"
        );
        assert!(lw.contains("Host: app.example\r\n"), "standard names title-cased: {lw}");
        assert_eq!(lines(&kw), lines(&lw), "the same headers and values either way");
        assert!(!lw.contains("spoofed") && !lw.contains("secret"), "{lw}");
        assert!(
            lw.contains("x-auth-assertion: a.b.c\r\n") && lw.contains("x-auth-user: ann\r\n"),
            "{lw}"
        );
        assert_eq!(kept.raw_path(), lower.raw_path());
        assert_eq!(lower.raw_path(), b"/a%20b?q=1");
        assert_eq!(lower.method, http::Method::GET);
    }

    #[test]
    fn the_request_line_is_the_same_in_both_modes() {
        let targets = [
            (&b"http://app.example/x?y=1"[..], "GET"),
            (b"/caf\xc3\xa9", "GET"),
            (b"/%ZZ/\xff", "GET"),
            (b"*", "OPTIONS"),
            (b"?q=1", "GET"),
            (b"/upload", "POST"),
            (b"app.example:443", "CONNECT"),
        ];
        for (target, method) in targets {
            let build = || {
                let mut r = request(b"/");
                r.set_method(method.parse().unwrap());
                r.set_raw_path(target).unwrap();
                r
            };
            let before = build();
            let mut lower = build();
            apply(&mut lower, edits(), false).unwrap();
            let t = String::from_utf8_lossy(target);
            assert_eq!(lower.raw_path(), before.raw_path(), "{t}");
            assert_eq!(lower.raw_path_is_utf8(), before.raw_path_is_utf8(), "{t}");
            assert_eq!(lower.uri, before.uri, "{t}");
            assert_eq!(lower.method, before.method, "{t}");
        }
        // A URI with an authority alone (an HTTP/2 CONNECT), no bytes kept.
        let mut r = request(b"/");
        r.set_uri("app.example:443".parse().unwrap());
        let before = r.uri.clone();
        apply(&mut r, edits(), false).unwrap();
        assert_eq!(r.uri, before);
        assert_eq!(r.raw_path(), b"app.example:443");
    }

    #[test]
    fn extensions_and_version_survive() {
        let mut r = request(b"/");
        r.set_version(http::Version::HTTP_10);
        r.extensions_mut().insert(42u32);
        apply(&mut r, edits(), false).unwrap();
        assert_eq!(r.version, http::Version::HTTP_10);
        assert_eq!(r.extensions.get::<u32>(), Some(&42));
    }

    #[test]
    fn names_become_keys_without_panicking() {
        assert_eq!(key("x-auth-user").unwrap(), "x-auth-user");
        assert_eq!(key("Cookie").unwrap(), http::header::COOKIE);
        assert!(key("").is_err());
        let long: &'static str = Box::leak("x".repeat(70_000).into_boxed_str());
        assert!(key(long).is_err());
        assert!(key("bad name").is_err());
    }
}
