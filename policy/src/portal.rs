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

/// A host as written in config or a Host header, without its default port,
/// lower-case: what client hosts are compared by.
pub fn bare_authority(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    match h.strip_suffix(":443").or_else(|| h.strip_suffix(":80")) {
        Some(b) => b.to_string(),
        None => h,
    }
}

/// Index of the client whose hosts include `authority`.
pub fn resolve_client<'a>(clients: impl IntoIterator<Item = &'a [String]>, authority: &str) -> Option<usize> {
    let a = bare_authority(authority);
    clients.into_iter().position(|hosts| hosts.contains(&a))
}

/// The portal for a request at a client's own host: the host is an alias of
/// every portal's host, so only the path decides.
pub fn resolve_by_path(portals: &[PortalRoute], path: &str) -> Option<usize> {
    portals
        .iter()
        .enumerate()
        .filter(|(_, p)| prefix_matches(&p.path_prefix, path))
        .max_by_key(|(_, p)| p.path_prefix.len())
        .map(|(i, _)| i)
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

    #[test]
    fn authority_normalisation() {
        assert_eq!(normalize_authority("Halo.Example.com:443", true), "halo.example.com");
        assert_eq!(normalize_authority("halo.example.com:80", false), "halo.example.com");
        assert_eq!(normalize_authority("127.0.0.1:8080", false), "127.0.0.1:8080");
    }
}
