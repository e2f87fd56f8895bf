//! Sessions and pending logins: the store traits ([`store`]) with an
//! in-memory and a Redis implementation, the records they hold, and
//! [`Sessions`], the cookie-to-session path with its local cache.

pub mod cache;
pub mod codec;
pub mod memory;
pub mod metered;
pub mod redis_conn;
pub mod redis_store;
pub mod sessions;
pub mod store;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use policy::two_factor::Mfa;
use policy::{PortalKind, TenantId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

pub use memory::MemoryStore;
pub use metered::MeteredStore;
pub use redis_store::RedisStore;
pub use sessions::Sessions;
pub use store::{LoginStates, Revocation, RevocationBus, SessionStore, SharedValues, Store, StoreError};

/// 256 random bits, base64url: opaque, unguessable, fixed length.
/// 32 random bytes as 43 base64url characters, held inline: an id is a map
/// key and an index entry several times over, and 43 bytes in place cost less
/// than a heap string per copy.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; SESSION_ID_LEN]);

const SESSION_ID_LEN: usize = 43;

/// A random token of `n` bytes, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::fill(bytes.as_mut_slice());
    URL_SAFE_NO_PAD.encode(bytes)
}

impl SessionId {
    pub fn generate() -> Self {
        Self::parse(&random_token(32)).expect("32 bytes are 43 base64url characters")
    }

    /// Accepts only what [`generate`](Self::generate) produces, so forged or
    /// truncated cookies never reach the store.
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; SESSION_ID_LEN] = s.as_bytes().try_into().ok()?;
        bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
            .then_some(SessionId(bytes))
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII gets in (see `parse`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never log a usable session id.
        write!(f, "SessionId({}…)", &self.as_str()[..6])
    }
}

impl SessionId {
    /// What everything past the cookie knows this session by.
    pub fn key(&self) -> SessionKey {
        SessionKey(Sha256::digest(self.0).into())
    }
}

/// SHA-256 of a [`SessionId`]: the name of a session in the store, its
/// indexes, the local caches and the revocation bus. Whoever reads Redis (a
/// replica, a backup, `MONITOR`, a subscriber of the bus) learns digests,
/// which cannot be turned back into a cookie that signs anyone in.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// Lower-case hex, as written to the store and the bus.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// Accepts exactly what [`to_hex`](Self::to_hex) writes.
    pub fn parse_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, pair) in s.as_bytes().chunks_exact(2).enumerate() {
            let nibble = |b: u8| match b {
                b'0'..=b'9' => Some(b - b'0'),
                b'a'..=b'f' => Some(b - b'a' + 10),
                _ => None,
            };
            out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(SessionKey(out))
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({}…)", &self.to_hex()[..8])
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// SHA-256 of a login `state`, hex: the state is a bearer secret for the
/// sign-in it started, so the store keeps only its digest.
pub fn state_digest(state: &str) -> String {
    hex(&Sha256::digest(state.as_bytes()))
}

/// A signed-in browser at one portal.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// Portal name, and its kind (agent|user) as the app is told.
    pub portal: String,
    pub portal_kind: PortalKind,
    #[serde(with = "crate::as_string")]
    pub tid: TenantId,
    pub oid: String,
    pub sub: String,
    pub issuer: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The ID token's `sid` (front-channel logout) and `login_hint` (logout_hint).
    pub sid: Option<String>,
    pub login_hint: Option<String>,
    /// The directory key the app knows this user by.
    pub user_key: String,
    /// The `clients[].name` whose host the session was made at (a name of
    /// the configuration's, not an Entra application id).
    pub client: Option<String>,
    pub created_at: i64,
    pub last_seen: i64,
    pub absolute_expiry: i64,
    pub idle_timeout_secs: i64,
    pub remember_me: bool,
    /// Protects the same-origin logout form.
    pub csrf: String,
    pub new_user: bool,
    /// The second factor: `pending` until the step is done (nothing reaches
    /// the app meanwhile), then what the assertion's `mfa` says. Absent in
    /// records written before 2FA (and whenever it is `none`).
    #[serde(default, skip_serializing_if = "Mfa::is_none")]
    pub mfa: Mfa,
}

impl Session {
    /// Seconds until this session ends if not used again.
    pub fn ttl_at(&self, now: i64) -> i64 {
        (self.last_seen + self.idle_timeout_secs).min(self.absolute_expiry) - now
    }

    pub fn is_live(&self, now: i64) -> bool {
        self.ttl_at(now) > 0
    }
}

/// What the callback needs to finish a login it did not start itself.
/// Anonymous clients create these: one-letter field names keep each record
/// a few hundred bytes (the return path, at most 512, is most of it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoginRecord {
    #[serde(rename = "p")]
    pub portal: String,
    #[serde(rename = "n")]
    pub nonce: String,
    /// Must equal the login cookie's value (binds the state to this browser).
    #[serde(rename = "b")]
    pub binding: String,
    #[serde(rename = "v", default, skip_serializing_if = "Option::is_none")]
    pub pkce_verifier: Option<String>,
    #[serde(rename = "r")]
    pub return_to: String,
    #[serde(rename = "m", default)]
    pub remember_me: bool,
    /// The tenant the login was sent to, if it named one.
    #[serde(
        rename = "t",
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::as_string::option"
    )]
    pub tenant: Option<TenantId>,
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// Exactly the redirect_uri sent (the code exchange must repeat it).
    #[serde(rename = "u")]
    pub redirect_uri: String,
    #[serde(rename = "s")]
    pub started_at: i64,
}

/// Microseconds: login cookies opened by one browser in the same
/// millisecond (scripted tabs, fast clients) still order truly.
pub fn now_unix_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_unique_and_parse_strictly() {
        let a = SessionId::generate();
        let b = SessionId::generate();
        assert_ne!(a, b);
        assert_eq!(SessionId::parse(a.as_str()), Some(a));
        assert!(SessionId::parse(&a.as_str()[..42]).is_none());
        assert!(SessionId::parse(&format!("{}=", &a.as_str()[..42])).is_none());
        assert!(SessionId::parse("").is_none());
        assert!(!format!("{a:?}").contains(a.as_str()));
    }

    #[test]
    fn login_records_are_small() {
        let record = |return_to: String| LoginRecord {
            portal: "portal".into(),
            nonce: random_token(32),
            binding: random_token(16),
            pkce_verifier: Some(random_token(32)),
            return_to,
            remember_me: true,
            tenant: Some("aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa".parse().unwrap()),
            client: Some("contoso".into()),
            redirect_uri: "https://contoso.halo.example.com/portal/auth/account/azureresponse".into(),
            started_at: now_unix(),
        };
        let typical = serde_json::to_string(&record("/tickets/42".into())).unwrap();
        assert!(typical.len() < 400, "{} bytes: {typical}", typical.len());
        let longest = serde_json::to_string(&record(format!("/{}", "a".repeat(policy::paths::MAX_LEN - 1)))).unwrap();
        assert!(longest.len() < 1024, "{} bytes", longest.len());
    }

    /// Records in the JSON the version before typed fields wrote (all strings,
    /// same names and order): they must still decode, and encode back the same.
    #[test]
    fn records_written_before_typed_fields_still_decode() {
        let session = r#"{"portal":"agent","portal_kind":"agent","tid":"aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa","oid":"o1","sub":"s1","issuer":"https://login.microsoftonline.com/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa/v2.0","name":"Ann","email":"ann@contoso.com","sid":"sid1","login_hint":"hint","user_key":"ann","client":"contoso","created_at":1000,"last_seen":1010,"absolute_expiry":2000,"idle_timeout_secs":600,"remember_me":false,"csrf":"c1","new_user":true}"#;
        let s: Session = serde_json::from_str(session).unwrap();
        assert_eq!(s.portal_kind, PortalKind::Agent);
        assert_eq!(s.tid.as_str(), "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa");
        assert_eq!(serde_json::to_string(&s).unwrap(), session);

        let login = r#"{"p":"portal","n":"n1","b":"b1","v":"v1","r":"/x","m":true,"t":"aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa","c":"contoso","u":"https://x/portal/auth/account/azureresponse","s":5}"#;
        let r: LoginRecord = serde_json::from_str(login).unwrap();
        assert_eq!(
            r.tenant.as_ref().map(TenantId::as_str),
            Some("aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa")
        );
        assert_eq!(serde_json::to_string(&r).unwrap(), login);
        // The optional fields absent, as a login without tenant wrote them.
        let bare = r#"{"p":"portal","n":"n1","b":"b1","r":"/x","m":false,"u":"https://x/","s":5}"#;
        let r: LoginRecord = serde_json::from_str(bare).unwrap();
        assert_eq!(r.tenant, None);
        assert_eq!(serde_json::to_string(&r).unwrap(), bare);
        // A tenant that is not a GUID was never written; it is corrupt.
        assert!(
            serde_json::from_str::<Session>(
                &session.replace("aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa\",\"oid", "x\",\"oid")
            )
            .is_err()
        );
    }

    #[test]
    fn session_keys_are_digests_that_round_trip_through_hex() {
        let a = SessionId::generate();
        let k = a.key();
        assert_eq!(k, SessionId::parse(a.as_str()).unwrap().key(), "stable");
        assert_ne!(k, SessionId::generate().key());
        let h = k.to_hex();
        assert_eq!(h.len(), 64);
        assert!(!h.contains(a.as_str()));
        assert_eq!(SessionKey::parse_hex(&h), Some(k));
        assert_eq!(SessionKey::parse_hex(&h.to_uppercase()), None, "only what we write");
        assert_eq!(SessionKey::parse_hex(&h[..63]), None);
        assert_eq!(SessionKey::parse_hex(a.as_str()), None, "a cookie value is not a key");
        // Known answer: SHA-256 of the empty string.
        assert_eq!(
            hex(&Sha256::digest(b"")),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(state_digest(""), hex(&Sha256::digest(b"")));
    }
}
