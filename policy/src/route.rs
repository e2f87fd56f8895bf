//! Where a request goes, before anything is looked up: one of the gateway's
//! fixed endpoints, a refusal, or a portal (and then its `/auth/*` routes or
//! the application behind it).

use crate::PortalKind;
use crate::access::SsoSwitches;
use crate::portal::{self, PortalRoute};

/// A portal's public path patterns (`routes.public`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePattern {
    Exact(String),
    /// `"/assets/*"`: the prefix `/assets/`.
    Prefix(String),
}

impl RoutePattern {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            RoutePattern::Exact(p) => path == p,
            RoutePattern::Prefix(p) => path.starts_with(p.as_str()),
        }
    }
}

/// Everything routing depends on that comes from configuration, built once.
#[derive(Debug, Clone)]
pub struct Routing {
    pub portals: Vec<PortalRoute>,
    pub kinds: Vec<PortalKind>,
    /// Each client's own hosts (bare, lower-case).
    pub client_hosts: Vec<Vec<String>>,
    pub public: Vec<RoutePattern>,
    pub sso: SsoSwitches,
}

/// What classification needs of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    /// The request target exactly as sent.
    pub raw_target: &'a [u8],
    /// Its path (no query).
    pub path: &'a str,
    pub host: &'a str,
    pub https: bool,
}

/// The gateway's own endpoints, answered on every host (under its
/// `/.well-known/` prefix: every other path is the app's, `/healthz` too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fixed {
    Healthz,
    Readyz,
    Jwks,
}

/// A request refused before routing (400).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadTarget {
    /// Not origin-form (`/path`): an absolute-form target names a host of
    /// its own that the app might prefer over the Host header routed by.
    NotAPath,
    /// `.`/`..` segments: the app could resolve them into another portal.
    DotSegments,
}

impl BadTarget {
    /// The `bad_requests` metric label.
    pub fn label(self) -> &'static str {
        match self {
            BadTarget::NotAPath => "request_target",
            BadTarget::DotSegments => "path_not_normalized",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            BadTarget::NotAPath => "The request target must be a path.",
            BadTarget::DotSegments => "The path contains dot segments.",
        }
    }
}

/// A request that belongs to a portal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalRequest<'a> {
    pub portal: usize,
    /// The client whose own host the request came to.
    pub client: Option<usize>,
    /// The Host header, normalised (default port removed, lower-case).
    pub authority: std::borrow::Cow<'a, str>,
    /// The path inside the portal (`/auth/login`).
    pub rel_path: &'a str,
    /// Whether SSO is on for this portal (published and its kind switched on).
    pub sso: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Bad(BadTarget),
    Fixed(Fixed),
    /// No portal serves this host and path.
    NoPortal,
    /// `<portal>/auth/*` with SSO on: the gateway's own pages.
    Auth(PortalRequest<'a>),
    /// Everything else: the application's, behind the access decision.
    App {
        req: PortalRequest<'a>,
        public: bool,
    },
}

pub fn classify<'a>(routing: &Routing, r: &RequestFacts<'a>) -> Route<'a> {
    if !crate::paths::is_origin_form(r.method, r.raw_target) {
        return Route::Bad(BadTarget::NotAPath);
    }
    match r.path {
        "/.well-known/entra-gateway/healthz" => return Route::Fixed(Fixed::Healthz),
        "/.well-known/entra-gateway/readyz" => return Route::Fixed(Fixed::Readyz),
        "/.well-known/entra-gateway/jwks.json" => return Route::Fixed(Fixed::Jwks),
        _ => {}
    }
    if !crate::paths::is_normalized(r.path) {
        return Route::Bad(BadTarget::DotSegments);
    }
    let authority = portal::normalize_authority(r.host, r.https);
    // A client's own host is an alias of every portal's host.
    let client = portal::resolve_client(routing.client_hosts.iter().map(Vec::as_slice), &authority);
    let resolved = match client {
        Some(_) => portal::resolve_by_path(&routing.portals, r.path),
        None => portal::resolve(&routing.portals, &authority, r.path),
    };
    let Some(pi) = resolved else {
        return Route::NoPortal;
    };
    let rel_path = portal::relative_path(&routing.portals[pi], r.path);
    let sso = routing.sso.enabled_for(routing.kinds[pi]);
    let req = PortalRequest {
        portal: pi,
        client,
        authority,
        rel_path,
        sso,
    };
    // Without SSO on this portal, /auth/* is the app's like any path.
    if sso && rel_path.starts_with("/auth/") {
        return Route::Auth(req);
    }
    let public = routing.public.iter().any(|p| p.matches(rel_path));
    Route::App { req, public }
}

/// The portal's public URL as this browser reaches it: at a client's own
/// host, that host (same scheme as the portal) with the portal's path.
pub fn portal_url_at(portal_url: &str, portal_https: bool, prefix: &str, client_authority: Option<&str>) -> String {
    match client_authority {
        Some(a) => format!(
            "{}://{}{prefix}",
            if portal_https { "https" } else { "http" },
            portal::bare_authority(a)
        ),
        None => portal_url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routing(published: bool) -> Routing {
        Routing {
            portals: vec![
                PortalRoute {
                    authority: "halo.example.com".into(),
                    path_prefix: "".into(),
                },
                PortalRoute {
                    authority: "halo.example.com".into(),
                    path_prefix: "/portal".into(),
                },
            ],
            kinds: vec![PortalKind::Agent, PortalKind::User],
            client_hosts: vec![vec!["contoso.example.com".into()]],
            public: vec![RoutePattern::Prefix("/assets/".into())],
            sso: SsoSwitches {
                published,
                agents: true,
                users: false,
            },
        }
    }

    fn facts<'a>(method: &'a str, target: &'a str, host: &'a str) -> RequestFacts<'a> {
        RequestFacts {
            method,
            raw_target: target.as_bytes(),
            path: target.split('?').next().unwrap_or(target),
            host,
            https: true,
        }
    }

    #[test]
    fn fixed_routes_answer_on_any_host() {
        let r = routing(true);
        assert_eq!(
            classify(&r, &facts("GET", "/.well-known/entra-gateway/healthz", "anything")),
            Route::Fixed(Fixed::Healthz)
        );
        assert_eq!(
            classify(&r, &facts("GET", "/.well-known/entra-gateway/readyz", "")),
            Route::Fixed(Fixed::Readyz)
        );
        assert_eq!(
            classify(&r, &facts("GET", "/.well-known/entra-gateway/jwks.json", "x")),
            Route::Fixed(Fixed::Jwks)
        );
    }

    #[test]
    fn healthz_and_readyz_without_the_prefix_are_the_apps() {
        let r = routing(true);
        for path in ["/healthz", "/readyz"] {
            assert!(
                matches!(
                    classify(&r, &facts("GET", path, "halo.example.com")),
                    Route::App {
                        req: PortalRequest { portal: 0, .. },
                        ..
                    }
                ),
                "{path}"
            );
            assert_eq!(
                classify(&r, &facts("GET", path, "unknown.example.com")),
                Route::NoPortal
            );
        }
    }

    #[test]
    fn bad_targets_are_refused_first() {
        let r = routing(true);
        assert_eq!(
            classify(&r, &facts("GET", "http://evil/healthz", "halo.example.com")),
            Route::Bad(BadTarget::NotAPath)
        );
        assert_eq!(
            classify(&r, &facts("GET", "/portal/../admin", "halo.example.com")),
            Route::Bad(BadTarget::DotSegments)
        );
        assert_eq!(
            classify(&r, &facts("GET", "/x", "unknown.example.com")),
            Route::NoPortal
        );
    }

    #[test]
    fn auth_paths_are_the_gateways_only_with_sso_on() {
        let on = routing(true);
        match classify(&on, &facts("GET", "/auth/login?rd=/x", "halo.example.com:443")) {
            Route::Auth(p) => {
                assert_eq!((p.portal, p.client, p.rel_path, p.sso), (0, None, "/auth/login", true));
                assert_eq!(p.authority, "halo.example.com");
            }
            other => panic!("{other:?}"),
        }
        // The user portal's kind is switched off: its /auth/* is the app's.
        assert_eq!(
            classify(&on, &facts("GET", "/portal/auth/login", "halo.example.com")),
            Route::App {
                req: PortalRequest {
                    portal: 1,
                    client: None,
                    authority: "halo.example.com".into(),
                    rel_path: "/auth/login",
                    sso: false
                },
                public: false
            }
        );
        let off = routing(false);
        assert!(matches!(
            classify(&off, &facts("GET", "/auth/login", "halo.example.com")),
            Route::App {
                req: PortalRequest { sso: false, .. },
                ..
            }
        ));
    }

    #[test]
    fn client_hosts_route_by_path_and_public_patterns_apply_inside_the_portal() {
        let r = routing(true);
        match classify(&r, &facts("GET", "/portal/assets/a.css", "Contoso.Example.com")) {
            Route::App { req, public } => {
                assert_eq!((req.portal, req.client, req.rel_path), (1, Some(0), "/assets/a.css"));
                assert!(public);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            classify(&r, &facts("GET", "/tickets", "halo.example.com")),
            Route::App { public: false, .. }
        ));
    }

    #[test]
    fn portal_url_at_a_client_host_keeps_the_portals_scheme_and_path() {
        assert_eq!(
            portal_url_at(
                "https://halo.example.com/portal",
                true,
                "/portal",
                Some("contoso.example.com:443")
            ),
            "https://contoso.example.com/portal"
        );
        assert_eq!(
            portal_url_at("https://halo.example.com/portal", true, "/portal", None),
            "https://halo.example.com/portal"
        );
    }
}
