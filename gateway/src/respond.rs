//! Building the gateway's own responses: redirects, pages, JSON, cookies.

use crate::config::Portal;
use crate::pages;
use bytes::Bytes;
use cookie::{Cookie, SameSite};
use http::{HeaderValue, Response, StatusCode, header};
use policy::Reason;

pub type Resp = Response<Bytes>;

fn base(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(body.into());
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Nothing the gateway says about a login may be cached or framed.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    r
}

pub fn html(status: u16, body: String) -> Resp {
    html_posting_to(status, body, None)
}

/// A page whose forms may end up at `authority` (CSP `form-action` also
/// governs the redirects that follow a submission: the login button's POST
/// is answered with a redirect to Entra).
pub fn html_posting_to(status: u16, body: String, authority: Option<&str>) -> Resp {
    let mut r = base(status, "text/html; charset=utf-8", body);
    let h = r.headers_mut();
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    let origin = authority
        .and_then(|a| url::Url::parse(a).ok())
        .map(|u| format!(" {}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https:; form-action 'self'{origin}; frame-ancestors 'none'"
    );
    h.insert(
        "content-security-policy",
        HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'")),
    );
    r
}

pub fn json(status: u16, value: &serde_json::Value) -> Resp {
    base(status, "application/json", value.to_string())
}

pub fn text(status: u16, body: &'static str) -> Resp {
    base(status, "text/plain; charset=utf-8", body)
}

/// `location` is always built by the gateway (authority URL or a checked
/// same-origin path); invalid bytes fall back to `/`.
pub fn redirect(status: u16, location: &str) -> Resp {
    let mut r = base(status, "text/plain; charset=utf-8", Bytes::new());
    r.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
    );
    r
}

pub fn add_cookie(r: &mut Resp, c: &Cookie<'_>) {
    if let Ok(v) = HeaderValue::from_str(&c.encoded().to_string()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// A cookie with the gateway's fixed attributes: HttpOnly, Path=/, no Domain
/// (so `__Host-` holds), Secure when `secure`.
pub fn cookie(
    name: String,
    value: String,
    secure: bool,
    same_site: SameSite,
    max_age_secs: Option<i64>,
) -> Cookie<'static> {
    let mut c = Cookie::new(name, value);
    c.set_http_only(true);
    c.set_path("/");
    c.set_secure(secure);
    c.set_same_site(same_site);
    if let Some(secs) = max_age_secs {
        c.set_max_age(cookie::time::Duration::seconds(secs));
    }
    c
}

pub fn expired_cookie(name: String, secure: bool) -> Cookie<'static> {
    cookie(name, String::new(), secure, SameSite::Lax, Some(0))
}

/// The refusal answer of SPEC §6: a page for a browser navigation, JSON
/// otherwise, with the reason code in both; never a redirect.
pub fn refusal(reason: Reason, detail: Option<&str>, portal: Option<&Portal>, navigation: bool) -> Resp {
    let mut r = refusal_body(reason, detail, portal, navigation);
    if r.status() == StatusCode::TOO_MANY_REQUESTS {
        // Buckets refill within seconds; a client that honours this backs off.
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("10"));
    } else if r.status() == StatusCode::SERVICE_UNAVAILABLE {
        // Entra, the store or the directory is being retried in the
        // background (discovery: within a minute at the longest backoff).
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    }
    r
}

fn refusal_body(reason: Reason, detail: Option<&str>, portal: Option<&Portal>, navigation: bool) -> Resp {
    let status = reason.status();
    if !navigation {
        return json(
            status,
            &serde_json::json!({ "error": reason.code(), "message": reason.explain() }),
        );
    }
    let back = portal.map(|p| p.path("/")).unwrap_or_else(|| "/".into());
    let heading = match status {
        401 => "Sign-in required",
        403 => "Access denied",
        429 => "Too many requests",
        503 => "Temporarily unavailable",
        _ => "Sign-in failed",
    };
    html(
        status,
        pages::error(&pages::ErrorPage {
            heading,
            message: reason.explain(),
            detail,
            reason: reason.code(),
            back_url: &back,
            back_label: "Start again",
            color: portal.and_then(|p| p.branding.color.as_deref()),
        }),
    )
}

/// Cookies of a request, parsed leniently: a malformed pair is skipped.
pub fn request_cookies(headers: &http::HeaderMap) -> Vec<(String, String)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .map(|c| (c.name().to_string(), c.value().to_string()))
        .collect()
}

/// The value of the first cookie called `name`, parsed as
/// [`request_cookies`] parses (the property tests hold them equal) but
/// without copying anything: this runs on every proxied request.
pub fn cookie_value<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            (n.trim() == name && !name.is_empty()).then(|| v.trim())
        })
}

/// 401 for a request that cannot be redirected to sign in (XHR, API):
/// JSON with the login URL, in a header too.
pub fn unauthorized(portal: &Portal) -> Resp {
    let mut r = refusal(Reason::NoSession, None, Some(portal), false);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Cookie realm=\"entra-gateway\""),
    );
    if let Ok(v) = HeaderValue::from_str(&portal.path("/auth/login")) {
        r.headers_mut().insert("x-auth-login-url", v);
    }
    r
}

pub fn find_cookie<'a>(cookies: &'a [(String, String)], name: &str) -> Option<&'a str> {
    cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}
