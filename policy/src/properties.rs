//! Property tests of the parsers that see request input (issue 9 §5).
//!
//! Each property runs [`NORMAL`] cases in `cargo test`; its `long::` twin is
//! ignored and runs [`LONG`]: `cargo test -p policy -- --ignored properties::long`.

use crate::paths::{MAX_LEN, is_normalized, safe_return_path};
use crate::portal::{PortalRoute, relative_path, resolve, resolve_by_path};
use crate::state::{STATE_TAG_LEN, is_valid_state, login_cookie_value, parse_login_cookie};
use proptest::prelude::*;
use proptest::test_runner::{TestCaseError, TestRunner};
use std::sync::atomic::{AtomicUsize, Ordering};

const NORMAL: u32 = 10_000;
const LONG: u32 = 1_000_000;

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
    state_shape,
    login_cookie_parse,
    login_cookie_round_trip,
    return_path,
    portal_resolution
);

/// Strings built from pieces that matter to the parser under test, so the
/// interesting cases are not left to chance among arbitrary Unicode.
fn pieces(tokens: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(tokens), 0..max).prop_map(|v| v.concat())
}

fn base64url(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = String> {
    prop::string::string_regex(&format!("[A-Za-z0-9_-]{{{},{}}}", len.start(), len.end())).expect("a valid regex")
}

fn state_shape(cases: u32) {
    let input = prop_oneof![any::<String>(), base64url(0..=70), "[A-Za-z0-9_=.+/é-]{8,66}"];
    run(cases, input, |s| {
        if is_valid_state(&s) {
            prop_assert!((STATE_TAG_LEN..=64).contains(&s.len()));
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            // The callback slices the tag off by bytes.
            prop_assert!(s.is_char_boundary(STATE_TAG_LEN));
        } else {
            prop_assert!(
                !(STATE_TAG_LEN..=64).contains(&s.len())
                    || s.bytes().any(|b| !b.is_ascii_alphanumeric() && b != b'-' && b != b'_')
            );
        }
        Ok(())
    });
}

fn login_cookie_parse(cases: u32) {
    let input = prop_oneof![
        any::<String>(),
        "[0-9+-]{0,22}[.][A-Za-z0-9_=. -]{0,12}",
        pieces(
            &["0", "1", "9", "-", "+", ".", "a", "_", "=", " ", "%2E", "é", "\u{0}"],
            12
        ),
    ];
    run(cases, input, |v| {
        if let Some((started, binding)) = parse_login_cookie(&v) {
            prop_assert!(started >= 0);
            prop_assert!(!binding.is_empty());
            prop_assert!(
                binding
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            );
            // What was accepted is what the gateway would have written.
            let again = login_cookie_value(started, binding);
            prop_assert_eq!(parse_login_cookie(&again), Some((started, binding)));
            prop_assert_eq!(again.trim_start_matches('0'), v.trim_start_matches('0'));
        }
        Ok(())
    });
}

fn login_cookie_round_trip(cases: u32) {
    run(cases, (any::<i64>(), base64url(0..=64)), |(started, binding)| {
        let value = login_cookie_value(started, &binding);
        let parsed = parse_login_cookie(&value);
        if started >= 0 && !binding.is_empty() {
            prop_assert_eq!(parsed, Some((started, binding.as_str())));
        } else {
            prop_assert_eq!(parsed, None);
        }
        Ok(())
    });
}

fn return_path(cases: u32) {
    let tricky = || {
        pieces(
            &[
                "/",
                "//",
                "\\",
                "/\\",
                ".",
                "..",
                "%2f",
                "%5c",
                "%09",
                "@",
                ":",
                "http:",
                "https://",
                "javascript:",
                "evil.example",
                "a",
                "?",
                "#",
                "\t",
                "\n",
                "\r",
                " ",
                "\u{0}",
                "\u{7f}",
                "\u{85}",
                "\u{a0}",
                "\u{2028}",
                "\u{3000}",
                "\u{feff}",
                "\u{ff0f}",
                "\u{2215}",
            ],
            10,
        )
    };
    let long = (MAX_LEN - 4..MAX_LEN + 4).prop_map(|n| format!("/{}", "a".repeat(n - 1)));
    let input = prop_oneof![any::<String>(), tricky(), tricky().prop_map(|s| format!("/{s}")), long];
    let bases: Vec<url::Url> = ["https://gw.example/", "https://gw.example/portal/x?y=1#z"]
        .iter()
        .map(|b| url::Url::parse(b).expect("a valid base"))
        .collect();
    run(cases, input, |candidate| {
        let r = safe_return_path(Some(&candidate), "/");
        prop_assert!(r == candidate || r == "/");
        prop_assert!(r.starts_with('/') && !r.starts_with("//"));
        prop_assert!(!r.contains('\\'));
        prop_assert!(!r.chars().any(|c| c.is_control() || c.is_whitespace()));
        prop_assert!(r.len() <= MAX_LEN);
        for base in &bases {
            let joined = base.join(&r).map_err(|e| TestCaseError::fail(format!("{r:?}: {e}")))?;
            prop_assert_eq!(joined.origin(), base.origin(), "{:?} left the origin: {}", r, joined);
            prop_assert_eq!(joined.username(), "");
            prop_assert_eq!(joined.password(), None);
        }
        Ok(())
    });
}

/// How one kind of application server reads a path before routing it. The
/// gateway forwards the raw path, so it must pick the portal this server
/// would serve.
#[derive(Clone, Copy)]
struct AppServer {
    name: &'static str,
    /// `;params` are dropped from each segment before decoding (Tomcat, Jetty).
    path_params: bool,
    /// `%XX` decoded once (almost every server), `%2F` included.
    decode: bool,
    /// `\` is a separator and trailing dots and spaces of a segment are
    /// ignored (Windows).
    windows: bool,
    /// `//` is `/` (nginx, Apache, Tomcat with `mergeSlashes`).
    merge_slashes: bool,
    /// Case-insensitive (IIS compares upper-case; others lower-case).
    fold: Option<fn(&str) -> String>,
}

const PLAIN: AppServer = AppServer {
    name: "decoding, case-sensitive",
    path_params: false,
    decode: true,
    windows: false,
    merge_slashes: false,
    fold: None,
};

const SERVERS: [AppServer; 7] = [
    AppServer {
        name: "raw",
        decode: false,
        ..PLAIN
    },
    PLAIN,
    AppServer {
        name: "nginx/Apache",
        merge_slashes: true,
        ..PLAIN
    },
    AppServer {
        name: "Tomcat",
        path_params: true,
        merge_slashes: true,
        ..PLAIN
    },
    AppServer {
        name: "IIS",
        windows: true,
        merge_slashes: true,
        fold: Some(|s| s.to_uppercase()),
        ..PLAIN
    },
    AppServer {
        name: "lower-casing",
        windows: true,
        fold: Some(|s| s.to_lowercase()),
        ..PLAIN
    },
    AppServer {
        name: "Tomcat, case-insensitive",
        path_params: true,
        fold: Some(|s| s.to_ascii_lowercase()),
        ..PLAIN
    },
];

impl AppServer {
    /// The path's segments after this server's normalisation, dot segments
    /// removed as RFC 3986 §5.2.4 says.
    fn segments(&self, path: &str) -> Vec<String> {
        let mut p = path.to_string();
        if self.path_params {
            p = p
                .split('/')
                .map(|s| s.split(';').next().unwrap_or_default())
                .collect::<Vec<_>>()
                .join("/");
        }
        if self.decode {
            p = decode(&p);
        }
        if self.windows {
            p = p.replace('\\', "/");
        }
        let mut out: Vec<String> = Vec::new();
        let raw: Vec<&str> = p.split('/').skip(1).collect();
        for (i, seg) in raw.iter().enumerate() {
            let seg = if self.windows && *seg != "." && *seg != ".." {
                seg.trim_end_matches(['.', ' '])
            } else {
                seg
            };
            match seg {
                "." => {}
                ".." => {
                    out.pop();
                }
                "" if self.merge_slashes || i + 1 == raw.len() => {}
                s => out.push(self.fold.map_or_else(|| s.to_string(), |f| f(s))),
            }
        }
        out
    }

    /// The prefix of the portal this server would serve, as it reads it.
    fn portal(&self, portals: &[PortalRoute], path: &str) -> Option<Vec<String>> {
        let seen = self.segments(path);
        portals
            .iter()
            .map(|p| self.segments(&p.path_prefix))
            .filter(|prefix| seen.starts_with(prefix))
            .max_by_key(Vec::len)
    }
}

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && hex(i + 1) && hex(i + 2) {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).expect("two hex digits"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Spellings an application may read as a portal's name.
const TRICKY: &[&str] = &[
    "portal",
    "PORTAL",
    "Portal",
    "admin",
    "ADMIN",
    "a",
    "x",
    "%70",
    "%50",
    "ortal",
    "%2f",
    "%2F",
    "%5c",
    "\\",
    ";",
    ";x=1",
    "%3b",
    ".",
    "..",
    "%2e",
    "%2E",
    " ",
    "%20",
    "support",
    "\u{17f}",
    "%C5%BF",
    "upport",
    "kb",
    "\u{212a}",
    "%E2%84%AA",
    "%",
    "%%",
    "%zz",
    "%2",
];
const WORDS: &[&str] = &["portal", "admin", "a", "support", "kb", "x", "x%20y", "a%2Fb", "a;b"];
const SEPARATORS: &[&str] = &["/", "/", "/", "/", "//", "\\", "%2f", "%2F", "/./", "/../", "/..;/"];

/// Paths near the configured prefixes: mostly plain words, some spelled
/// otherwise, joined mostly by `/`.
fn request_path() -> impl Strategy<Value = String> {
    let segment = prop_oneof![3 => prop::sample::select(WORDS).prop_map(String::from), 2 => pieces(TRICKY, 3)];
    let rest = prop::collection::vec((prop::sample::select(SEPARATORS), segment.clone()), 0..4);
    (segment, rest, any::<bool>()).prop_map(|(first, rest, slash)| {
        let mut p = format!("/{first}");
        for (sep, seg) in rest {
            p.push_str(sep);
            p.push_str(&seg);
        }
        if slash {
            p.push('/');
        }
        p
    })
}

fn portal_resolution(cases: u32) {
    // Prefixes as configuration makes them: the path of a parsed portal URL.
    let prefix = prop::collection::vec(
        prop::sample::select(&["portal", "Portal", "admin", "a", "support", "kb", "x y", "a%2Fb", "a;b"][..]),
        1..3,
    )
    .prop_map(|segs| format!("/{}", segs.join("/")));
    let prefixes = prop::collection::vec(prefix, 0..4);
    // Half of the paths start with a configured prefix, as written.
    let path = (any::<bool>(), any::<prop::sample::Index>(), request_path());
    let under_portal = AtomicUsize::new(0);
    run(
        cases,
        (prefixes, any::<bool>(), path),
        |(prefixes, root, (prefixed, index, path))| {
            let path = match prefixed && !prefixes.is_empty() {
                true => format!("{}{path}", index.get(&prefixes)),
                false => path,
            };
            let mut portals: Vec<PortalRoute> = Vec::new();
            for raw in prefixes.iter().map(String::as_str).chain(root.then_some("")) {
                let url =
                    url::Url::parse(&format!("https://h{raw}")).map_err(|e| TestCaseError::fail(e.to_string()))?;
                let path_prefix = url.path().trim_end_matches('/').to_string();
                if !portals.iter().any(|p| p.path_prefix == path_prefix) {
                    portals.push(PortalRoute {
                        authority: "h".into(),
                        path_prefix,
                    });
                }
            }
            let by_host = resolve(&portals, "h", &path);
            prop_assert_eq!(by_host, resolve_by_path(&portals, &path));
            prop_assert_eq!(resolve(&portals, "other", &path), None);
            let Some(i) = by_host.filter(|_| is_normalized(&path)) else {
                return Ok(());
            };
            let portal = &portals[i];
            let rel = relative_path(portal, &path);
            let rejoined = format!("{}{}", portal.path_prefix, rel);
            prop_assert!(rejoined == path || (rel == "/" && path == portal.path_prefix));
            if !portal.path_prefix.is_empty() {
                under_portal.fetch_add(1, Ordering::Relaxed);
            }
            for app in &SERVERS {
                prop_assert_eq!(
                    app.portal(&portals, &path),
                    Some(app.segments(&portal.path_prefix)),
                    "{} serves {:?} from another portal than {:?}",
                    app.name,
                    path,
                    portal.path_prefix
                );
            }
            Ok(())
        },
    );
    // Guards against a generator (or a `resolve`) that never reaches a portal.
    let hits = under_portal.load(Ordering::Relaxed);
    assert!(
        hits * 50 > cases as usize,
        "only {hits} of {cases} paths reached a non-root portal"
    );
}
