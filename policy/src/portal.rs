//! Which portal a request belongs to: host, then the longest path prefix.

use std::borrow::Cow;

/// A portal's public URL reduced to what matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalRoute {
    /// Lower-case `host[:port]`, default ports removed.
    pub authority: String,
    /// `""` for the root, else `/portal` (no trailing slash).
    pub path_prefix: String,
}

/// Normalises a Host header for comparison: lower-case, default port removed.
/// Borrowed when the header is already in that form (every request reads
/// this; a browser's Host almost always is).
pub fn normalize_authority(host: &str, https: bool) -> Cow<'_, str> {
    let default = if https { ":443" } else { ":80" };
    let h = lower_trimmed(host);
    match h {
        Cow::Borrowed(b) => Cow::Borrowed(b.strip_suffix(default).unwrap_or(b)),
        Cow::Owned(o) => Cow::Owned(o.strip_suffix(default).map(str::to_string).unwrap_or(o)),
    }
}

/// `host` trimmed and lower-cased, copied only if that changes it.
fn lower_trimmed(host: &str) -> Cow<'_, str> {
    let t = host.trim();
    if t.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(t.to_ascii_lowercase())
    } else {
        Cow::Borrowed(t)
    }
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// A host as written in config or a Host header, without its default port,
/// lower-case: what client hosts are compared by.
pub fn bare_authority(host: &str) -> String {
    let h = lower_trimmed(host);
    match h.strip_suffix(":443").or_else(|| h.strip_suffix(":80")) {
        Some(b) => b.to_string(),
        None => h.into_owned(),
    }
}

/// Index of the client whose hosts include `authority`.
pub fn resolve_client<'a>(clients: impl IntoIterator<Item = &'a [String]>, authority: &str) -> Option<usize> {
    let h = lower_trimmed(authority);
    let a = h.strip_suffix(":443").or_else(|| h.strip_suffix(":80")).unwrap_or(&h);
    clients.into_iter().position(|hosts| hosts.iter().any(|x| x == a))
}

/// The portal for a request at a client's own host: the host is an alias of
/// every portal's host, so only the path decides.
pub fn resolve_by_path(portals: &[PortalRoute], path: &str) -> Option<usize> {
    unambiguous(portals.iter().enumerate(), path)
}

/// Index of the portal serving `authority` + `path`, if any.
pub fn resolve(portals: &[PortalRoute], authority: &str, path: &str) -> Option<usize> {
    unambiguous(
        portals.iter().enumerate().filter(|(_, p)| p.authority == authority),
        path,
    )
}

/// The longest-prefix portal for `path`, but `None` when the application
/// might route the same path to another portal: the gateway would otherwise
/// check one portal's session (or none) while the application serves another
/// portal's pages (`/PORTAL/x` on IIS, `/%70ortal/x`, `//portal/x`,
/// `/portal;x=1/y` on a servlet container all reach the `/portal` app).
fn unambiguous<'a>(candidates: impl Iterator<Item = (usize, &'a PortalRoute)> + Clone, path: &str) -> Option<usize> {
    let exact = candidates
        .clone()
        .filter(|(_, p)| prefix_matches(&p.path_prefix, path))
        .max_by_key(|(_, p)| p.path_prefix.len());
    // Every request runs this: spellings no server reads differently (the
    // common case) need none of the allocations below. The property test
    // `plain_paths_take_the_fast_path_to_the_same_answer` holds them equal.
    if is_plain(path) && candidates.clone().all(|(_, p)| is_plain(&p.path_prefix)) {
        return exact.map(|(i, _)| i);
    }
    let candidates: Vec<(usize, &PortalRoute)> = candidates.collect();
    full_check(&candidates, exact.as_ref(), path)
}

/// A path every application server reads as written (but for a trailing
/// `/`): lower-case ASCII, no percent-encoding, `;`, `\\`, empty or dot
/// segments, nor segments ending in `.`.
fn is_plain(path: &str) -> bool {
    !path.contains("//")
        && path.split('/').all(|seg| {
            seg != "."
                && seg != ".."
                && !seg.ends_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.~!$&'()*+,=:@".contains(&b))
        })
}

fn full_check(
    candidates: &[(usize, &PortalRoute)],
    exact: Option<&(usize, &PortalRoute)>,
    path: &str,
) -> Option<usize> {
    // Servlet containers drop `;parameters` before decoding (so `;x%2Fy` goes
    // whole), others after (if at all): both readings must agree.
    let agrees = |params_first: bool| {
        let seen = app_view(path, params_first);
        let loose = candidates
            .iter()
            .map(|(_, p)| app_view(&p.path_prefix, params_first))
            .filter(|view| prefix_matches(view, &seen))
            .max_by_key(String::len);
        // Portals the application cannot tell apart (`/a` and `/A`) are one
        // application: the exact spelling decides between them.
        loose == exact.map(|(_, p)| app_view(&p.path_prefix, params_first))
    };
    if agrees(false) && agrees(true) {
        exact.map(|(i, _)| *i)
    } else {
        None
    }
}

/// How an application server may read a path before routing it, at its most
/// lenient: percent-decoded once, `\` as `/`, empty segments merged, dot
/// segments resolved, `;parameters` dropped (servlet containers), trailing
/// dots and spaces dropped (Windows), case folded (IIS). For comparing only.
fn app_view(path: &str, params_first: bool) -> String {
    let decoded = if params_first {
        let bare: Vec<&str> = path
            .split('/')
            .map(|s| s.split(';').next().unwrap_or_default())
            .collect();
        percent_decode(&bare.join("/"))
    } else {
        percent_decode(path)
    };
    let mut segments: Vec<String> = Vec::new();
    for seg in decoded.split(['/', '\\']) {
        let seg = seg.split(';').next().unwrap_or_default();
        match seg {
            "." => {}
            ".." => {
                segments.pop();
            }
            _ => {
                let seg = seg.trim_end_matches(['.', ' ']);
                if !seg.is_empty() {
                    // Upper then lower: `ſ` is `S` and the Kelvin sign `k` to
                    // a case-insensitive comparison.
                    segments.push(
                        seg.chars()
                            .flat_map(char::to_uppercase)
                            .flat_map(char::to_lowercase)
                            .collect(),
                    );
                }
            }
        }
    }
    segments.iter().map(|s| format!("/{s}")).collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |j: usize| b.get(j).and_then(|c| (*c as char).to_digit(16));
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The path inside the portal (`/portal/auth/login` → `/auth/login`).
pub fn relative_path<'a>(portal: &PortalRoute, path: &'a str) -> &'a str {
    let rest = &path[portal.path_prefix.len().min(path.len())..];
    if rest.is_empty() { "/" } else { rest }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10_000, ..ProptestConfig::default() })]
        /// The fast path only answers where the full check would answer the same.
        #[test]
        fn plain_paths_take_the_fast_path_to_the_same_answer(
            path in "(/[a-zA-Z0-9.;%_ -]{0,4}){0,4}/?",
            prefixes in prop::collection::vec("(/[a-zA-Z0-9._-]{1,3}){0,2}", 1..4),
        ) {
            let routes: Vec<PortalRoute> = prefixes.iter().map(|x| p("h", x)).collect();
            let candidates: Vec<(usize, &PortalRoute)> = routes.iter().enumerate().collect();
            let exact = candidates
                .iter()
                .filter(|(_, r)| prefix_matches(&r.path_prefix, &path))
                .max_by_key(|(_, r)| r.path_prefix.len());
            let full = full_check(&candidates, exact, &path);
            prop_assert_eq!(resolve(&routes, "h", &path), full, "{} {:?}", path, prefixes);
        }

        /// Borrowing where nothing changes gives what copying always did.
        #[test]
        fn host_normalisation_is_the_copying_one(
            host in "[ \t]?[a-zA-Z0-9.:-]{0,12}(:80|:443)?[ \t]?",
            https: bool,
            clients in prop::collection::vec(prop::collection::vec("[a-z0-9.]{1,6}(:80|:443|:8443)?", 0..3), 0..3),
        ) {
            let copied = |h: &str| h.trim().to_ascii_lowercase();
            let default = if https { ":443" } else { ":80" };
            let c = copied(&host);
            let normal = c.strip_suffix(default).map(str::to_string).unwrap_or(c.clone());
            prop_assert_eq!(normalize_authority(&host, https), normal);
            let bare = c.strip_suffix(":443").or_else(|| c.strip_suffix(":80")).unwrap_or(&c).to_string();
            prop_assert_eq!(bare_authority(&host), bare.clone());
            let client = clients.iter().position(|hosts| hosts.contains(&bare));
            prop_assert_eq!(resolve_client(clients.iter().map(Vec::as_slice), &host), client);
        }
    }

    fn p(a: &str, prefix: &str) -> PortalRoute {
        PortalRoute {
            authority: a.into(),
            path_prefix: prefix.into(),
        }
    }

    #[test]
    fn table() {
        let portals = [p("halo.example.com", ""), p("halo.example.com", "/portal")];
        let cases = [
            ("halo.example.com", "/", Some(0)),
            ("halo.example.com", "/tickets", Some(0)),
            ("halo.example.com", "/portal", Some(1)),
            ("halo.example.com", "/portal/auth/login", Some(1)),
            ("halo.example.com", "/portalx", Some(0)),
            ("other.example.com", "/portal", None),
        ];
        for (host, path, want) in cases {
            assert_eq!(resolve(&portals, host, path), want, "{host}{path}");
        }
        assert_eq!(relative_path(&portals[1], "/portal/auth/login"), "/auth/login");
        assert_eq!(relative_path(&portals[1], "/portal"), "/");
        assert_eq!(relative_path(&portals[0], "/x"), "/x");
    }

    #[test]
    fn clients_by_host() {
        let clients = [
            vec!["contoso.halo.example.com".to_string()],
            vec!["fabrikam.example".to_string()],
        ];
        let hosts = clients.iter().map(|v| v.as_slice());
        assert_eq!(resolve_client(hosts.clone(), "Contoso.Halo.Example.com:443"), Some(0));
        assert_eq!(resolve_client(hosts.clone(), "fabrikam.example"), Some(1));
        assert_eq!(resolve_client(hosts, "halo.example.com"), None);
        let portals = [p("halo.example.com", ""), p("halo.example.com", "/portal")];
        assert_eq!(resolve_by_path(&portals, "/portal/x"), Some(1));
        assert_eq!(resolve_by_path(&portals, "/x"), Some(0));
    }

    /// Found by the portal property: spellings an application reads as
    /// `/portal/...` used to resolve to the root portal.
    #[test]
    fn ambiguous_spellings_are_refused() {
        let portals = [p("h", ""), p("h", "/portal"), p("h", "/portal/admin")];
        for path in [
            "/PORTAL/x",
            "/Portal",
            "/%70ortal/x",
            "/portal%2Fadmin",
            "//portal/x",
            "/portal;x=1/y",
            "/portal;x%2Fy/z",
            "/portal./x",
            "/portal/ADMIN",
            "/portal//admin/x",
        ] {
            assert_eq!(resolve(&portals, "h", path), None, "{path}");
            assert_eq!(resolve_by_path(&portals, path), None, "{path}");
        }
        // Non-ASCII case folding: the long s upper-cases to `S`, the Kelvin
        // sign lower-cases to `k`.
        let portals2 = [p("h", ""), p("h", "/support"), p("h", "/kb")];
        for path in ["/\u{17f}upport/x", "/%C5%BFupport", "/\u{212a}b/x", "/%E2%84%AAb"] {
            assert_eq!(resolve(&portals2, "h", path), None, "{path}");
        }
        for (path, want) in [
            ("/portalx/y", 0),
            ("/x/PORTAL", 0),
            ("/portal/x%20y", 1),
            ("/portal/adminx", 1),
            ("/portal/admin/X", 2),
        ] {
            assert_eq!(resolve(&portals, "h", path), Some(want), "{path}");
        }
    }

    #[test]
    fn authority_normalisation() {
        assert_eq!(normalize_authority("Halo.Example.com:443", true), "halo.example.com");
        assert_eq!(normalize_authority("halo.example.com:80", false), "halo.example.com");
        assert_eq!(normalize_authority("127.0.0.1:8080", false), "127.0.0.1:8080");
    }
}
