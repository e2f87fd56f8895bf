//! Header names the request path looks up, parsed once. `HeaderMap::get`
//! with a `&str` parses the name on every call before hashing it; with a
//! `&HeaderName` it only hashes.

use http::{HeaderMap, HeaderName};

/// A header's value as text; `None` when absent or not visible ASCII.
pub fn text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static(crate::access_log::REQUEST_ID);
pub static X_REQUESTED_WITH: HeaderName = HeaderName::from_static("x-requested-with");
pub static SEC_FETCH_MODE: HeaderName = HeaderName::from_static("sec-fetch-mode");
pub static SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");
