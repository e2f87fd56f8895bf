//! Property tests of the gateway's parsers of request input (issue 9 §5); the
//! pure ones are in `policy`'s own `properties` module.
//!
//! Each property runs [`NORMAL`] cases in `cargo test`; its `long::` twin is
//! ignored and runs [`LONG`]:
//! `cargo test -p entra-gateway --lib -- --ignored properties::long`.

use crate::auth::{param, params};
use crate::entra::validate::{header, peek_claims};
use crate::respond::{cookie_value, find_cookie, request_cookies};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, header::CONTENT_TYPE, header::COOKIE};
use policy::Reason;
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};

const NORMAL: u32 = 10_000;
const LONG: u32 = 1_000_000;
/// What `peek_claims` (and the validation before `header`) refuses to read.
const MAX_TOKEN: usize = 16 * 1024;

fn run<S: Strategy>(cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let config = ProptestConfig {
        cases,
        // Runs driven by hand have no source file to keep regressions beside;
        // a failure prints its shrunk input instead.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if let Err(e) = TestRunner::new(config).run(&strategy, test) {
        panic!("{e}");
    }
}

macro_rules! properties {
    ($($name:ident),* $(,)?) => {
        mod normal {
            $(#[test] fn $name() { super::$name(super::NORMAL) })*
        }
        mod long {
            $(#[test] #[ignore = "long property run"] fn $name() { super::$name(super::LONG) })*
        }
    };
}

properties!(
    cookies_any_bytes,
    cookie_found_back,
    token_peeking_any_input,
    token_peeking_round_trip,
    params_any_input,
    params_first_value_wins,
    expand_any_input,
    expand_replaces_exactly,
    remembered_any_input,
    request_id_any_input,
    upstream_request_any_input,
);

fn pieces(tokens: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..max).prop_map(|v| v.concat())
}

/// Bytes as a client may send them: arbitrary, or made of the separators the
/// parser splits on, with obs-text (non-UTF-8) thrown in.
fn header_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        pieces(
            &[
                ";", "=", " ", "\t", "\"", ",", "%", "a", "b", "__Host-", "\u{e9}", "\u{0}"
            ],
            16
        )
        .prop_map(String::into_bytes),
        (
            pieces(&[";", "=", "a", " "], 8),
            prop::collection::vec(0x80u8..=0xff, 1..4)
        )
            .prop_map(|(s, hi)| [s.into_bytes(), hi].concat()),
    ]
}

fn cookie_headers(values: &[Vec<u8>]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for v in values {
        // Bytes no HTTP parser would let through never reach us.
        if let Ok(v) = HeaderValue::from_bytes(v) {
            h.append(COOKIE, v);
        }
    }
    h
}

fn cookies_any_bytes(cases: u32) {
    run(cases, prop::collection::vec(header_bytes(), 0..4), |values| {
        let headers = cookie_headers(&values);
        let cookies = request_cookies(&headers);
        for (name, value) in &cookies {
            prop_assert!(!name.is_empty());
            prop_assert!(!name.contains(';') && !value.contains(';'));
            prop_assert_eq!(name.trim(), name.as_str());
            // The first of a name wins, so a later duplicate cannot shadow it.
            let first = cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            prop_assert_eq!(find_cookie(&cookies, name), first);
            // The proxy's copy-free lookup reads exactly the same.
            prop_assert_eq!(cookie_value(&headers, name), first);
        }
        Ok(())
    });
}

fn cookie_found_back(cases: u32) {
    // Junk names start with `j`, the cookie's with `T`: no junk can be it.
    let junk = prop::collection::vec(
        prop_oneof![
            "j[!-:<-~]{0,12}",
            "=[!-:<-~]{0,6}",
            Just(String::new()),
            Just(" ".to_string())
        ],
        0..5,
    );
    let name = "(__Host-)?T[A-Za-z0-9!#$%&'*+.^_`|~-]{0,20}";
    // RFC 6265 cookie-octets.
    let value = "[!#-+\\--:<-\\[\\]-~]{0,40}";
    let other_header = header_bytes().prop_map(|b| {
        b.into_iter()
            .map(|c| if c == b'T' { b't' } else { c })
            .collect::<Vec<u8>>()
    });
    run(
        cases,
        (junk.clone(), name, value, junk, other_header, any::<bool>()),
        |(before, name, value, after, other, other_first)| {
            let line = before
                .iter()
                .cloned()
                .chain([format!("{name}={value}")])
                .chain(after)
                .collect::<Vec<_>>()
                .join("; ");
            let values = if other_first {
                vec![other, line.into_bytes()]
            } else {
                vec![line.into_bytes(), other]
            };
            let headers = cookie_headers(&values);
            let cookies = request_cookies(&headers);
            prop_assert_eq!(find_cookie(&cookies, &name), Some(value.as_str()));
            prop_assert_eq!(cookie_value(&headers, &name), Some(value.as_str()));
            Ok(())
        },
    );
}

fn json_segment() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        Just(serde_json::json!(["a", 1])),
        Just(serde_json::json!({"k": "v"})),
    ];
    prop::collection::vec(
        (
            prop::sample::select(&["alg", "kid", "crit", "iss", "tid", "aud", "exp", "nonce", "x"][..]),
            field,
        ),
        0..5,
    )
    .prop_map(|kv| {
        URL_SAFE_NO_PAD
            .encode(serde_json::Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()).to_string())
    })
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9_-]{0,80}",
        "[A-Za-z0-9_=+/.-]{0,20}",
        prop::collection::vec(any::<u8>(), 0..60).prop_map(|b| URL_SAFE_NO_PAD.encode(b)),
        json_segment(),
    ]
}

fn token_like() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<String>(),
        8 => prop::collection::vec(segment(), 1..5).prop_map(|s| s.join(".")),
        // Valid claims around the size limit, and far past it.
        1 => (prop_oneof![MAX_TOKEN - 8..MAX_TOKEN + 8, Just(1 << 20)], json_segment()).prop_map(|(n, h)| {
            // `{"x":"…"}` is 8 bytes more than its filler, base64 4/3 of that.
            let filler = "a".repeat((n.saturating_sub(h.len() + 2) * 3 / 4).saturating_sub(8));
            let claims = URL_SAFE_NO_PAD.encode(serde_json::json!({ "x": filler }).to_string());
            format!("{h}.{claims}.")
        }),
    ]
}

fn token_peeking_any_input(cases: u32) {
    run(cases, token_like(), |token| {
        let parts = token.split('.').count();
        let h = header(&token);
        if parts != 3 {
            prop_assert!(h.is_err());
        }
        match peek_claims(&token) {
            Ok(_) => prop_assert!(parts >= 2 && token.len() <= MAX_TOKEN),
            Err(reason) => prop_assert_eq!(reason, Reason::TokenMalformed),
        }
        if token.len() > MAX_TOKEN {
            prop_assert!(peek_claims(&token).is_err());
        }
        Ok(())
    });
}

fn token_peeking_round_trip(cases: u32) {
    let opt = || prop::option::of(any::<String>());
    run(
        cases,
        (opt(), opt(), opt(), opt(), "[A-Za-z0-9_-]{0,40}"),
        |(alg, kid, tid, nonce, signature)| {
            let enc = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
            let h = enc(serde_json::json!({ "alg": alg, "kid": kid, "typ": "JWT" }));
            let c = enc(serde_json::json!({ "tid": tid, "nonce": nonce, "ver": "2.0" }));
            let token = format!("{h}.{c}.{signature}");
            let head = header(&token).map_err(|r| TestCaseError::fail(format!("{r:?}")))?;
            prop_assert_eq!(head.alg, alg);
            prop_assert_eq!(head.kid, kid);
            prop_assert!(head.crit.is_none());
            let four_parts = format!("{token}.");
            prop_assert!(header(&four_parts).is_err());
            match peek_claims(&token) {
                Ok(claims) => {
                    prop_assert!(token.len() <= MAX_TOKEN);
                    prop_assert_eq!(claims.tid, tid);
                    prop_assert_eq!(claims.nonce, nonce);
                    prop_assert_eq!(claims.ver.as_deref(), Some("2.0"));
                }
                Err(_) => prop_assert!(token.len() > MAX_TOKEN),
            }
            Ok(())
        },
    );
}

fn request(method: Method, query: &str, content_type: Option<&str>, body: Vec<u8>) -> Option<Request<Bytes>> {
    let uri = if query.is_empty() {
        "/auth/login".to_string()
    } else {
        format!("/auth/login?{query}")
    };
    let mut b = Request::builder().method(method).uri(uri);
    if let Some(ct) = content_type {
        b = b.header(CONTENT_TYPE, ct);
    }
    // A query no HTTP parser would accept never reaches us.
    b.body(Bytes::from(body)).ok()
}

const FORM: &str = "application/x-www-form-urlencoded";

fn content_type() -> impl Strategy<Value = Option<&'static str>> {
    prop::option::of(prop::sample::select(
        &[
            FORM,
            "application/x-www-form-urlencoded; charset=utf-8",
            "text/plain",
            "multipart/form-data",
        ][..],
    ))
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![Method::GET, Method::POST, Method::PUT])
}

fn params_any_input(cases: u32) {
    let query = prop_oneof![
        "[A-Za-z0-9%&=+;._~!$'()*,/:@?-]{0,60}",
        pieces(
            &[
                "&",
                "=",
                "%",
                "%ff",
                "%FE",
                "%2",
                "+",
                "a",
                "state",
                "%00",
                "%C3%A9",
                "%ED%A0%80"
            ],
            16
        ),
    ];
    let body = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..200),
        pieces(&["&", "=", "%", "%ff", "+", "a", "state", "\u{e9}"], 16).prop_map(String::into_bytes),
        prop::collection::vec(0x80u8..=0xff, 0..20),
    ];
    run(
        cases,
        (method(), query, content_type(), body),
        |(method, query, ct, body)| {
            let form_body = method == Method::POST && ct.is_some_and(|c| c.starts_with(FORM));
            let Some(req) = request(method, &query, ct, body.clone()) else {
                return Ok(());
            };
            let p = params(&req);
            let from_query = form_urlencoded::parse(query.as_bytes()).count();
            let from_body = if form_body {
                form_urlencoded::parse(&body).count()
            } else {
                0
            };
            prop_assert_eq!(p.len(), from_query + from_body);
            for (name, _) in &p {
                let first = p.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                prop_assert_eq!(param(&p, name), first);
            }
            Ok(())
        },
    );
}

fn params_first_value_wins(cases: u32) {
    // A small name alphabet, so names repeat across query and body.
    let pairs = || prop::collection::vec(("[ab=&+% é]{0,2}", any::<String>()), 0..5);
    run(
        cases,
        (method(), pairs(), content_type(), pairs()),
        |(method, in_query, ct, in_body)| {
            let encode = |pairs: &[(String, String)]| {
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(pairs)
                    .finish()
            };
            let form_body = method == Method::POST && ct.is_some_and(|c| c.starts_with(FORM));
            let req = request(method, &encode(&in_query), ct, encode(&in_body).into_bytes())
                .ok_or_else(|| TestCaseError::fail("an encoded query is a valid URI"))?;
            let p = params(&req);
            // The query comes first; the body counts only for a form POST.
            let seen: Vec<&(String, String)> = in_query.iter().chain(in_body.iter().filter(|_| form_body)).collect();
            prop_assert_eq!(p.iter().collect::<Vec<_>>(), seen.clone());
            for (name, _) in in_query.iter().chain(&in_body) {
                let first = seen.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
                prop_assert_eq!(param(&p, name), first);
            }
            Ok(())
        },
    );
}

fn expand_any_input(cases: u32) {
    let value = prop_oneof![
        any::<String>(),
        pieces(&["$", "{", "}", "${", ":-", "A", "_", "1", "é", " ", "$$", "${}"], 12),
    ];
    run(cases, value, |value| {
        let none = |_: &str| None;
        let some = |n: &str| Some(format!("<{n}>"));
        let unset = crate::config::expand(&value, &none);
        let set = crate::config::expand(&value, &some);
        if !value.contains("${") {
            prop_assert_eq!(unset, Some(value.clone()));
            prop_assert_eq!(set, Some(value));
        } else if let Some(v) = unset {
            // Only defaults can fill a reference to an unset variable.
            prop_assert!(value.contains(":-"), "{:?} expanded to {:?} with nothing set", value, v);
        }
        Ok(())
    });
}

fn expand_replaces_exactly(cases: u32) {
    let text = || any::<String>().prop_map(|s| s.replace('$', ""));
    let default = || prop::option::of(any::<String>().prop_map(|s| s.replace(['$', '}'], "")));
    run(
        cases,
        (
            text(),
            "[A-Za-z_][A-Za-z0-9_]{0,12}",
            any::<String>(),
            any::<bool>(),
            default(),
            text(),
        ),
        |(before, name, set_to, is_set, default, after)| {
            let reference = match &default {
                Some(d) => format!("${{{name}:-{d}}}"),
                None => format!("${{{name}}}"),
            };
            let env = |n: &str| (is_set && n == name).then(|| set_to.clone());
            let got = crate::config::expand(&format!("{before}{reference}{after}"), &env);
            // The variable's own value is never expanded again.
            let want = match (is_set, &default) {
                (true, _) => Some(format!("{before}{set_to}{after}")),
                (false, Some(d)) => Some(format!("{before}{d}{after}")),
                (false, None) => None,
            };
            prop_assert_eq!(got, want);
            Ok(())
        },
    );
}

/// The "don't ask again" cookie is client input: whatever a browser sends,
/// reading it never panics and never lets anyone skip the step; a cookie the
/// gateway signed works for its user only, and one flipped byte voids it.
fn remembered_any_input(cases: u32) {
    let settings = crate::two_factor::tests::settings();
    let f = crate::two_factor::Factors::new(&settings, std::sync::Arc::new(crate::session::MemoryStore::new()));
    let signed = f.remember_cookie("ann", 1, 2_000).expect("signs");
    let any = prop_oneof![
        any::<String>(),
        pieces(&[".", "e30", "eyJ1IjoiYW5uIn0", "-", "_", "=", "a"], 12),
        (0..signed.len(), any::<u8>()).prop_map({
            let signed = signed.clone();
            move |(i, b)| {
                let mut v = signed.clone().into_bytes();
                v[i] = if v[i] == b { b.wrapping_add(1) } else { b };
                String::from_utf8_lossy(&v).into_owned()
            }
        }),
    ];
    run(cases, any, |value| {
        prop_assert!(
            !f.remembered(&value, "ann", 1, 1_000),
            "{value:?} is not the signed cookie"
        );
        prop_assert!(f.remembered(&signed, "ann", 1, 1_000));
        prop_assert!(!f.remembered(&signed, "bob", 1, 1_000));
        Ok(())
    });
}

/// `X-Request-Id` is client input that reaches the app and the log: from an
/// untrusted peer it is always replaced; from a trusted one, kept only when
/// it is a short run of visible ASCII without spaces, quotes or backslashes.
fn request_id_any_input(cases: u32) {
    use crate::access_log::request_id;
    run(cases, (any::<bool>(), header_bytes()), |(trusted, bytes)| {
        let Ok(sent) = HeaderValue::from_bytes(&bytes) else {
            return Ok(());
        };
        let id = request_id(trusted, Some(&sent));
        let b = id.as_bytes();
        prop_assert!(!b.is_empty() && b.len() <= 128);
        prop_assert!(
            b.iter().all(|c| c.is_ascii_graphic() && !b"\"\\' ".contains(c)),
            "{id:?}"
        );
        if !trusted || id != sent {
            prop_assert_eq!(b.len(), 32);
            prop_assert!(b.iter().all(|c| c.is_ascii_hexdigit()));
        }
        if !trusted {
            prop_assert_ne!(&id, &sent, "an untrusted peer's id is never kept");
        }
        Ok(())
    });
}

/// The request Pingora sends the app, from any request target and client
/// header names: with the spelling map dropped (`preserve_header_case:
/// false`) it has the same request line, and the same headers read
/// case-insensitively, as with it kept; a spoofed identity header is gone
/// either way.
fn upstream_request_any_input(cases: u32) {
    use crate::identity::headers::{ASSERTION, Edit};
    use crate::upstream::request::apply;
    use pingora::http::RequestHeader;
    let target = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        pieces(
            &[
                "/",
                "?",
                "#",
                "*",
                ":",
                "%",
                "2e",
                "..",
                "http://",
                "a.example",
                "\u{e9}",
                "@",
                ";"
            ],
            10
        )
        .prop_map(String::into_bytes),
    ];
    let name = "[A-Za-z][A-Za-z0-9-]{0,12}";
    let method = prop::sample::select(&["GET", "POST", "OPTIONS", "CONNECT", "PUT"][..]);
    run(
        cases,
        (method, target, prop::collection::vec(name, 0..6)),
        |(method, target, names)| {
            let build = || -> Option<RequestHeader> {
                let mut r = RequestHeader::build(method, &target, None).ok()?;
                for n in &names {
                    r.append_header(n.clone(), "v").ok()?;
                }
                r.append_header("X-Auth-Assertion", "spoofed").ok()?;
                Some(r)
            };
            let Some(mut kept) = build() else { return Ok(()) };
            let mut lower = build().expect("built once, builds again");
            let edits = || {
                vec![
                    Edit::Remove(http::HeaderName::from_static(ASSERTION)),
                    Edit::Set(ASSERTION, HeaderValue::from_static("a.b.c")),
                ]
            };
            apply(&mut kept, edits(), true).expect("applied with the spelling kept");
            apply(&mut lower, edits(), false).expect("applied without it");
            prop_assert_eq!(kept.raw_path(), lower.raw_path());
            prop_assert_eq!(kept.raw_path_is_utf8(), lower.raw_path_is_utf8());
            prop_assert_eq!(&kept.uri, &lower.uri);
            prop_assert_eq!(&kept.method, &lower.method);
            prop_assert_eq!(&kept.headers, &lower.headers);
            prop_assert_eq!(lower.headers.get_all(ASSERTION).iter().count(), 1);
            prop_assert_eq!(lower.headers.get(ASSERTION), Some(&HeaderValue::from_static("a.b.c")));
            Ok(())
        },
    );
}
