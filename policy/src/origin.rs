//! Whether a request came from the portal's own pages (Fetch Metadata, then
//! `Origin`): cross-site forms must not start sign-ins, switch a browser to
//! its local account, or log it out.

/// The request facts the decision needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct OriginFacts<'a> {
    pub sec_fetch_site: Option<&'a str>,
    pub origin: Option<&'a str>,
    /// The portal's URL as this browser reaches it (`https://host[/prefix]`).
    pub portal_url: &'a str,
}

fn origin_matches(origin: &str, portal_url: &str) -> bool {
    portal_url.len() >= origin.len()
        && portal_url[..origin.len()].eq_ignore_ascii_case(origin)
        && portal_url[origin.len()..].chars().next().is_none_or(|c| c == '/')
}

/// A state-changing GET (logout link): same-origin, or typed/bookmarked by
/// the user (`Sec-Fetch-Site: none`). Without Fetch Metadata only a matching
/// `Origin` proves it; a bare GET does not.
pub fn get_is_same_origin(f: &OriginFacts<'_>) -> bool {
    match f.sec_fetch_site {
        Some(site) => site == "same-origin" || site == "none",
        None => f.origin.is_some_and(|o| origin_matches(o, f.portal_url)),
    }
}

/// A form POST: browsers send `Sec-Fetch-Site` or `Origin` with every POST,
/// so a request with neither is not a cross-site browser form (curl, tests,
/// old clients) and is let through; `Origin: null` (sandboxed or
/// privacy-redirected) is not.
pub fn post_is_same_origin(f: &OriginFacts<'_>) -> bool {
    match (f.sec_fetch_site, f.origin) {
        (Some(site), _) => site == "same-origin",
        (None, Some(o)) => origin_matches(o, f.portal_url),
        (None, None) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://halo.example.com/portal";

    fn f<'a>(site: Option<&'a str>, origin: Option<&'a str>) -> OriginFacts<'a> {
        OriginFacts {
            sec_fetch_site: site,
            origin,
            portal_url: URL,
        }
    }

    #[test]
    fn posts() {
        let cases = [
            (f(Some("same-origin"), None), true),
            (f(Some("same-site"), None), false),
            (f(Some("cross-site"), Some("https://halo.example.com")), false),
            (f(Some("none"), None), false),
            (f(None, Some("https://halo.example.com")), true),
            (f(None, Some("https://HALO.example.com")), true),
            (f(None, Some("https://halo.example.com.evil")), false),
            (f(None, Some("https://evil.example")), false),
            (f(None, Some("null")), false),
            (f(None, None), true),
        ];
        for (facts, want) in cases {
            assert_eq!(post_is_same_origin(&facts), want, "{facts:?}");
        }
    }

    #[test]
    fn gets() {
        let cases = [
            (f(Some("same-origin"), None), true),
            (f(Some("none"), None), true),
            (f(Some("cross-site"), None), false),
            (f(None, Some("https://halo.example.com")), true),
            (f(None, None), false),
        ];
        for (facts, want) in cases {
            assert_eq!(get_is_same_origin(&facts), want, "{facts:?}");
        }
    }
}
