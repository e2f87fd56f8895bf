//! Sessions and pending logins: the store traits ([`store`]) with an
//! in-memory and a Redis implementation, the records they hold, and
//! [`Sessions`], the cookie-to-session path with its local cache.

pub mod cache;
pub mod codec;
pub mod intern;
pub mod memory;
pub mod metered;
pub mod redis_conn;
pub mod redis_store;
pub mod sessions;
pub mod store;
mod texts;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use intern::intern;
use policy::two_factor::Mfa;
use policy::{PortalKind, TenantId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::sync::Arc;
use texts::{Field, Texts};

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

/// Lower-case hex of `bytes` (digests in keys, logs and fingerprints).
pub fn hex(bytes: &[u8]) -> String {
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

/// A signed-in browser at one portal, as held in memory: compact, because
/// every cached session is one of these (issue 13's "≤ 1 KiB RSS per session
/// at 100,000 sessions"). Values sessions share (portal, client, issuer) are
/// interned, the tenant id is held in place, and the session's own strings
/// are one heap block ([`texts`]). It is stored and built as a
/// [`SessionRecord`], the JSON shape every version reads and writes.
#[derive(Clone, PartialEq)]
pub struct Session {
    portal: Arc<str>,
    /// Its kind (agent|user) as the app is told.
    pub portal_kind: PortalKind,
    pub tid: TenantId,
    issuer: Arc<str>,
    client: Option<Arc<str>>,
    /// user_key, oid (absent when the key is `tid:oid`, see [`Session::oid`]),
    /// sub, name, email, sid, login_hint, csrf.
    texts: Texts,
    pub created_at: i64,
    pub last_seen: i64,
    pub absolute_expiry: i64,
    pub idle_timeout_secs: i64,
    pub remember_me: bool,
    pub new_user: bool,
    /// The second factor: `pending` until the step is done (nothing reaches
    /// the app meanwhile), then what the assertion's `mfa` says.
    pub mfa: Mfa,
}

/// A session as stored (the `v1` JSON shape: these names in this order) and
/// as built at sign-in. `S` is `String` to build or read one, `&str` to
/// write one out of a [`Session`] without copying its strings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionRecord<S = String> {
    /// Portal name, and its kind (agent|user) as the app is told.
    pub portal: S,
    pub portal_kind: PortalKind,
    #[serde(with = "crate::as_string")]
    pub tid: TenantId,
    pub oid: S,
    pub sub: S,
    pub issuer: S,
    pub name: Option<S>,
    pub email: Option<S>,
    /// The ID token's `sid` (front-channel logout) and `login_hint` (logout_hint).
    pub sid: Option<S>,
    pub login_hint: Option<S>,
    /// The directory key the app knows this user by.
    pub user_key: S,
    /// The `clients[].name` whose host the session was made at (a name of
    /// the configuration's, not an Entra application id).
    pub client: Option<S>,
    pub created_at: i64,
    pub last_seen: i64,
    pub absolute_expiry: i64,
    pub idle_timeout_secs: i64,
    pub remember_me: bool,
    /// Protects the same-origin logout form.
    pub csrf: S,
    pub new_user: bool,
    /// Absent in records written before 2FA (and whenever it is `none`).
    #[serde(default, skip_serializing_if = "Mfa::is_none")]
    pub mfa: Mfa,
}

impl SessionRecord<String> {
    /// The same record, borrowing its strings.
    pub fn as_ref(&self) -> SessionRecord<&str> {
        SessionRecord {
            portal: &self.portal,
            portal_kind: self.portal_kind,
            tid: self.tid.clone(),
            oid: &self.oid,
            sub: &self.sub,
            issuer: &self.issuer,
            name: self.name.as_deref(),
            email: self.email.as_deref(),
            sid: self.sid.as_deref(),
            login_hint: self.login_hint.as_deref(),
            user_key: &self.user_key,
            client: self.client.as_deref(),
            created_at: self.created_at,
            last_seen: self.last_seen,
            absolute_expiry: self.absolute_expiry,
            idle_timeout_secs: self.idle_timeout_secs,
            remember_me: self.remember_me,
            csrf: &self.csrf,
            new_user: self.new_user,
            mfa: self.mfa,
        }
    }
}

/// A session's strings together exceed what [`Texts`] can index (4 GiB):
/// nothing an ID token carries comes close.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the session's strings are too long")]
pub struct SessionTooLarge;

impl<S: AsRef<str>> TryFrom<SessionRecord<S>> for Session {
    type Error = SessionTooLarge;

    fn try_from(r: SessionRecord<S>) -> Result<Self, SessionTooLarge> {
        let (oid, user_key) = (r.oid.as_ref(), r.user_key.as_ref());
        // The usual key (auth/matching.rs) is `tid:oid`: then the oid is
        // read out of the key instead of being held twice.
        let oid_in_key = key_oid(&r.tid, user_key) == Some(oid);
        let texts = Texts::new([
            Some(user_key),
            (!oid_in_key).then_some(oid),
            Some(r.sub.as_ref()),
            r.name.as_ref().map(AsRef::as_ref),
            r.email.as_ref().map(AsRef::as_ref),
            r.sid.as_ref().map(AsRef::as_ref),
            r.login_hint.as_ref().map(AsRef::as_ref),
            Some(r.csrf.as_ref()),
        ])
        .ok_or(SessionTooLarge)?;
        Ok(Session {
            portal: intern(r.portal.as_ref()),
            portal_kind: r.portal_kind,
            tid: r.tid,
            issuer: intern(r.issuer.as_ref()),
            client: r.client.as_ref().map(|c| intern(c.as_ref())),
            texts,
            created_at: r.created_at,
            last_seen: r.last_seen,
            absolute_expiry: r.absolute_expiry,
            idle_timeout_secs: r.idle_timeout_secs,
            remember_me: r.remember_me,
            new_user: r.new_user,
            mfa: r.mfa,
        })
    }
}

/// The oid part of a `tid:oid` user key of this tenant, if it is one.
fn key_oid<'a>(tid: &TenantId, user_key: &'a str) -> Option<&'a str> {
    user_key.strip_prefix(tid.as_str())?.strip_prefix(':')
}

impl Session {
    /// The record this session is stored as, borrowing its strings.
    pub fn record(&self) -> SessionRecord<&str> {
        SessionRecord {
            portal: self.portal(),
            portal_kind: self.portal_kind,
            tid: self.tid.clone(),
            oid: self.oid(),
            sub: self.sub(),
            issuer: self.issuer(),
            name: self.name(),
            email: self.email(),
            sid: self.sid(),
            login_hint: self.login_hint(),
            user_key: self.user_key(),
            client: self.client(),
            created_at: self.created_at,
            last_seen: self.last_seen,
            absolute_expiry: self.absolute_expiry,
            idle_timeout_secs: self.idle_timeout_secs,
            remember_me: self.remember_me,
            csrf: self.csrf(),
            new_user: self.new_user,
            mfa: self.mfa,
        }
    }

    /// The portal's name.
    pub fn portal(&self) -> &str {
        &self.portal
    }

    /// The ID token's issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `clients[].name` whose host the session was made at.
    pub fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// The directory key the app knows this user by.
    pub fn user_key(&self) -> &str {
        self.texts.get(Field::UserKey).unwrap_or_default()
    }

    /// The user's Entra object id.
    pub fn oid(&self) -> &str {
        match self.texts.get(Field::Oid) {
            Some(oid) => oid,
            // Not held on its own: the key is `tid:oid` (see `try_from`).
            None => key_oid(&self.tid, self.user_key()).unwrap_or_default(),
        }
    }

    /// The ID token's `sub`.
    pub fn sub(&self) -> &str {
        self.texts.get(Field::Sub).unwrap_or_default()
    }

    pub fn name(&self) -> Option<&str> {
        self.texts.get(Field::Name)
    }

    pub fn email(&self) -> Option<&str> {
        self.texts.get(Field::Email)
    }

    /// The ID token's `sid` (front-channel logout).
    pub fn sid(&self) -> Option<&str> {
        self.texts.get(Field::Sid)
    }

    /// The ID token's `login_hint` (sent back as `logout_hint`).
    pub fn login_hint(&self) -> Option<&str> {
        self.texts.get(Field::LoginHint)
    }

    /// Protects the same-origin logout form.
    pub fn csrf(&self) -> &str {
        self.texts.get(Field::Csrf).unwrap_or_default()
    }

    /// Seconds until this session ends if not used again.
    pub fn ttl_at(&self, now: i64) -> i64 {
        (self.last_seen + self.idle_timeout_secs).min(self.absolute_expiry) - now
    }

    pub fn is_live(&self, now: i64) -> bool {
        self.ttl_at(now) > 0
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.record().fmt(f)
    }
}

impl Serialize for Session {
    fn serialize<Ser: serde::Serializer>(&self, s: Ser) -> Result<Ser::Ok, Ser::Error> {
        self.record().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Session {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SessionRecord::<String>::deserialize(d)?
            .try_into()
            .map_err(serde::de::Error::custom)
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

    /// A record as main wrote it before the compact `Session` (from a real
    /// sign-in: the key is `tid:oid`, the second factor done): it decodes,
    /// reads back field for field, and encodes back byte for byte, so
    /// instances before and after this change share one store.
    #[test]
    fn records_written_before_the_compact_session_decode_and_encode_the_same() {
        let raw = r#"{"portal":"agent","portal_kind":"agent","tid":"aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa","oid":"a11ce000-0000-4000-8000-000000000001","sub":"Xq3kZ0lV8sYp1mQwE4rT6uI9oP2aS5dF7gH0jK3lZ8x","issuer":"https://login.microsoftonline.com/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa/v2.0","name":"Zoë \"Z\" Ünicode","email":"zoe@contoso.example","sid":"00aa11bb-2222-4333-8444-555566667777","login_hint":"O.CiQ4YWE","user_key":"aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa:a11ce000-0000-4000-8000-000000000001","client":null,"created_at":1700000000,"last_seen":1700000100,"absolute_expiry":1700086400,"idle_timeout_secs":28800,"remember_me":true,"csrf":"q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6","new_user":false,"mfa":"totp"}"#;
        let s: Session = serde_json::from_str(raw).unwrap();
        assert_eq!(s.portal(), "agent");
        assert_eq!(s.tid.as_str(), "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa");
        assert_eq!(s.oid(), "a11ce000-0000-4000-8000-000000000001");
        assert_eq!(s.sub(), "Xq3kZ0lV8sYp1mQwE4rT6uI9oP2aS5dF7gH0jK3lZ8x");
        assert_eq!(
            s.issuer(),
            "https://login.microsoftonline.com/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa/v2.0"
        );
        assert_eq!(s.name(), Some("Zoë \"Z\" Ünicode"));
        assert_eq!(s.email(), Some("zoe@contoso.example"));
        assert_eq!(s.sid(), Some("00aa11bb-2222-4333-8444-555566667777"));
        assert_eq!(s.login_hint(), Some("O.CiQ4YWE"));
        assert_eq!(s.user_key(), format!("{}:{}", s.tid, s.oid()));
        assert_eq!(s.client(), None);
        assert_eq!(s.csrf(), "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6");
        assert_eq!(
            (s.created_at, s.last_seen, s.absolute_expiry),
            (1700000000, 1700000100, 1700086400)
        );
        assert_eq!((s.idle_timeout_secs, s.remember_me, s.new_user), (28800, true, false));
        assert_eq!(s.mfa, Mfa::Totp);
        // The oid is read out of the `tid:oid` key, not held twice.
        assert_eq!(s.texts.get(Field::Oid), None);
        assert_eq!(serde_json::to_string(&s).unwrap(), raw);
        // What the old derived decoder would have read is what is read now.
        let record: SessionRecord = serde_json::from_str(raw).unwrap();
        assert_eq!(s.record(), record.as_ref());
    }

    /// The key is `tid:oid` only when it is exactly that: a directory key,
    /// another tenant's prefix, a different case or a missing colon keep
    /// their own oid.
    #[test]
    fn the_oid_is_shared_with_the_key_only_when_the_key_is_tid_colon_oid() {
        let tid = "aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa";
        let oid = "a11ce000-0000-4000-8000-000000000001";
        let record = |user_key: &str, oid: &str| SessionRecord::<String> {
            portal: "agent".into(),
            portal_kind: PortalKind::Agent,
            tid: tid.parse().unwrap(),
            oid: oid.into(),
            sub: "s".into(),
            issuer: "i".into(),
            name: None,
            email: Some(String::new()),
            sid: None,
            login_hint: None,
            user_key: user_key.into(),
            client: Some("contoso".into()),
            created_at: 1,
            last_seen: 2,
            absolute_expiry: 3,
            idle_timeout_secs: 4,
            remember_me: false,
            csrf: "c".into(),
            new_user: true,
            mfa: Mfa::Pending,
        };
        let cases = [
            (format!("{tid}:{oid}"), oid, true),
            (format!("{tid}:{oid}"), "other-oid", false),
            ("ann@contoso.example".into(), oid, false),
            (format!("{}:{oid}", tid.to_uppercase()), oid, false),
            (format!("{tid}{oid}"), oid, false),
            (format!("bbbbbbbb-1111-4111-8111-aaaaaaaaaaaa:{oid}"), oid, false),
            (format!("{tid}:"), "", true),
        ];
        for (key, oid, shared) in cases {
            let r = record(&key, oid);
            let s = Session::try_from(r.clone()).unwrap();
            assert_eq!(s.oid(), oid, "{key}");
            assert_eq!(s.user_key(), key);
            assert_eq!(s.texts.get(Field::Oid).is_none(), shared, "{key}");
            assert_eq!(s.record(), r.as_ref());
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, serde_json::to_string(&r).unwrap());
            assert_eq!(serde_json::from_str::<Session>(&json).unwrap(), s);
        }
    }

    #[test]
    fn sessions_share_their_portal_client_and_issuer_and_are_small() {
        let raw = r#"{"portal":"agent","portal_kind":"agent","tid":"aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa","oid":"o1","sub":"s1","issuer":"https://login.microsoftonline.com/aaaaaaaa-1111-4111-8111-aaaaaaaaaaaa/v2.0","name":null,"email":null,"sid":null,"login_hint":null,"user_key":"ann","client":"contoso","created_at":1,"last_seen":1,"absolute_expiry":2,"idle_timeout_secs":1,"remember_me":false,"csrf":"c","new_user":false}"#;
        let a: Session = serde_json::from_str(raw).unwrap();
        let b: Session = serde_json::from_str(raw).unwrap();
        assert!(Arc::ptr_eq(&a.portal, &b.portal));
        assert!(Arc::ptr_eq(&a.issuer, &b.issuer));
        assert!(Arc::ptr_eq(a.client.as_ref().unwrap(), b.client.as_ref().unwrap()));
        // Every cached session is one of these (issue 13: ≤ 1 KiB each with
        // its strings and cache entry); 13 strings in place were 352 bytes.
        assert!(
            std::mem::size_of::<Session>() <= 192,
            "{}",
            std::mem::size_of::<Session>()
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
