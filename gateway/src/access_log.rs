//! The access log: one line per request (target `access`), and the request
//! id that ties that line to the application's own logs (`X-Request-Id`).
//!
//! The line carries what an operator needs to follow a request and nothing a
//! log reader could replay: the path without its query string (which may hold
//! codes, tokens or personal data), never a header, cookie or token value.

use http::HeaderValue;
use std::net::IpAddr;
use std::time::Duration;

/// The tracing target of access lines (`RUST_LOG=info,access=off` silences them).
pub const TARGET: &str = "access";

/// The header the request id travels in, to the app (and from a trusted proxy).
pub const REQUEST_ID: &str = "x-request-id";

/// Longest request id taken from a trusted proxy (longer ones are replaced).
const MAX_FORWARDED_ID: usize = 128;

/// This request's id: a trusted proxy's `X-Request-Id` when it sent a sane
/// one (so one id follows the request through every hop), else a fresh
/// random 128-bit id. An untrusted client's value is never kept: it could
/// forge another request's id in the app's logs.
pub fn request_id(trusted_peer: bool, sent: Option<&HeaderValue>) -> HeaderValue {
    if trusted_peer
        && let Some(v) = sent
        && is_sane_id(v.as_bytes())
    {
        return v.clone();
    }
    generate()
}

/// 32 lower-case hex digits from the thread-local CSPRNG (unguessable, so
/// an id never tells how many requests came before it).
fn generate() -> HeaderValue {
    hex_id(rand::random::<u128>())
}

/// `n` as 32 lower-case hex digits, written into a buffer (`format!` costs
/// more than drawing the random number).
fn hex_id(n: u128) -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = [0u8; 32];
    for (i, c) in id.iter_mut().enumerate() {
        *c = HEX[((n >> (124 - 4 * i)) & 0xf) as usize];
    }
    HeaderValue::from_bytes(&id).expect("hex digits are a valid header value")
}

/// Ids as proxies and tracing systems write them (UUIDs, hex, base64, ULIDs,
/// `Root=1-...;Parent=...`): visible ASCII without spaces, quotes or
/// backslashes, so a log line can never be broken or spoofed by one.
fn is_sane_id(v: &[u8]) -> bool {
    (1..=MAX_FORWARDED_ID).contains(&v.len()) && v.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:;=+/@".contains(b))
}

/// What one access line says.
pub struct Entry<'a> {
    pub request_id: Option<&'a HeaderValue>,
    pub client_ip: Option<IpAddr>,
    pub portal: &'a str,
    pub method: &'a str,
    /// The path alone: the caller passes `uri.path()`, never the query.
    pub path: &'a str,
    /// The status the client got (none when the connection failed first).
    pub status: Option<u16>,
    pub outcome: &'static str,
    pub duration: Duration,
    /// The signed-in user's key (`X-Auth-User`), when there is one.
    pub user: Option<&'a str>,
}

/// Whether an access line would be written at all: checked before the
/// line's fields are gathered, so a filtered-out log costs nothing more.
pub fn enabled() -> bool {
    tracing::enabled!(target: TARGET, tracing::Level::INFO)
}

pub fn write(e: &Entry<'_>) {
    tracing::info!(
        target: TARGET,
        request_id = e.request_id.and_then(|v| v.to_str().ok()).unwrap_or(""),
        client_ip = e.client_ip.map(tracing::field::display),
        portal = e.portal,
        method = e.method,
        path = e.path,
        status = e.status,
        outcome = e.outcome,
        duration_ms = (e.duration.as_secs_f64() * 1e6).round() / 1e3,
        user = e.user,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_random_hex() {
        let a = request_id(false, None);
        let b = request_id(true, None);
        for id in [&a, &b] {
            let s = id.to_str().unwrap();
            assert_eq!(s.len(), 32);
            assert!(s.bytes().all(|c| c.is_ascii_hexdigit()), "{s}");
        }
        assert_ne!(a, b);
        for n in [0, 1, 0xfedc_ba98_7654_3210_0123_4567_89ab_cdef, u128::MAX] {
            assert_eq!(hex_id(n).to_str().unwrap(), format!("{n:032x}"));
        }
    }

    #[test]
    fn only_a_trusted_peers_sane_id_is_kept() {
        let sent = HeaderValue::from_static("req-42.abc");
        assert_eq!(request_id(true, Some(&sent)), sent);
        // An untrusted client's id is replaced, however well-formed.
        assert_ne!(request_id(false, Some(&sent)), sent);
        // Even a trusted proxy's id is replaced when it could break a log line.
        for bad in ["", "a b", "x\"y", "a\\b", &"a".repeat(MAX_FORWARDED_ID + 1)] {
            let v = HeaderValue::from_str(bad).unwrap();
            let got = request_id(true, Some(&v));
            assert_ne!(got, v, "{bad:?} kept");
            assert_eq!(got.len(), 32);
        }
        let longest = HeaderValue::from_str(&"a".repeat(MAX_FORWARDED_ID)).unwrap();
        assert_eq!(request_id(true, Some(&longest)), longest);
    }
}
