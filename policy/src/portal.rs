//! Which portal a request belongs to: host, then the longest path prefix.

/// A portal's public URL reduced to what matching needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalRoute {
    /// Lower-case `host[:port]`, default ports removed.
    pub authority: String,
    /// `""` for the root, else `/portal` (no trailing slash).
    pub path_prefix: String,
}

/// Normalises a Host header for comparison: lower-case, default port removed.
pub fn normalize_authority(host: &str, https: bool) -> String {
    let h = host.trim().to_ascii_lowercase();
    let default = if https { ":443" } else { ":80" };
    h.strip_suffix(default).map(str::to_string).unwrap_or(h)
}

fn prefix_matches(prefix: &str, path: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'/'))
}

/// Index of the portal serving `authority` + `path`, if any.
pub fn resolve(portals: &[PortalRoute], authority: &str, path: &str) -> Option<usize> {
    portals
        .iter()
        .enumerate()
        .filter(|(_, p)| p.authority == authority && prefix_matches(&p.path_prefix, path))
        .max_by_key(|(_, p)| p.path_prefix.len())
        .map(|(i, _)| i)
}

/// The path inside the portal (`/portal/auth/login` → `/auth/login`).
pub fn relative_path<'a>(portal: &PortalRoute, path: &'a str) -> &'a str {
    let rest = &path[portal.path_prefix.len().min(path.len())..];
    if rest.is_empty() { "/" } else { rest }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            relative_path(&portals[1], "/portal/auth/login"),
            "/auth/login"
        );
        assert_eq!(relative_path(&portals[1], "/portal"), "/");
        assert_eq!(relative_path(&portals[0], "/x"), "/x");
    }

    #[test]
    fn authority_normalisation() {
        assert_eq!(
            normalize_authority("Halo.Example.com:443", true),
            "halo.example.com"
        );
        assert_eq!(
            normalize_authority("halo.example.com:80", false),
            "halo.example.com"
        );
        assert_eq!(
            normalize_authority("127.0.0.1:8080", false),
            "127.0.0.1:8080"
        );
    }
}
