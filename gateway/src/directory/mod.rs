//! The user directory (`directory.kind`): who the app knows, as records the
//! sign-in callback matches a verified Entra identity against
//! ([`policy::matching`] decides; this module only finds and stores).
//!
//! - [`builtin::BuiltinDirectory`]: records the gateway keeps ([`records`]:
//!   Redis hashes beside the sessions, or memory), filled by
//!   `entra-gateway directory import` ([`import`]) and from Entra by
//!   `directory sync` ([`sync`]).
//! - [`http::HttpDirectory`]: the app answers lookups and creates users itself.

pub mod builtin;
pub mod http;
pub mod import;
pub mod records;
pub mod redis_records;
pub mod sync;

use async_trait::async_trait;
use policy::matching::Candidate;
use policy::{PortalKind, TenantId};
use serde::{Deserialize, Serialize};

/// One person the app knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    /// What the app calls this user (sent as `X-Auth-User`).
    pub key: String,
    /// Which portal the user may use: agents the agent app, users the self-service portal.
    pub kind: PortalKind,
    pub email: Option<String>,
    /// The Entra identity this record is bound to (both, or only `tid` to pin
    /// the record to a tenant before the first sign-in).
    #[serde(default, with = "crate::as_string::option")]
    pub tid: Option<TenantId>,
    pub oid: Option<String>,
    pub name: Option<String>,
    /// The `clients[].name` this user belongs to, if any.
    pub client: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    /// Must take the gateway's second factor under `two_factor.required_for:
    /// listed` (beside `two_factor.listed_users`). Absent when false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub two_factor: bool,
}

pub(crate) const OID_WITHOUT_TID: &str = "oid is given without tid";

/// Longest key accepted: keys end up in headers, store keys and log lines.
pub const MAX_KEY_LEN: usize = 256;

impl UserRecord {
    /// The record as matching sees it.
    pub fn candidate(&self) -> Candidate {
        Candidate {
            key: self.key.clone(),
            kind: self.kind,
            email: self.email.clone(),
            tid: self.tid.clone(),
            oid: self.oid.clone(),
            disabled: self.disabled,
        }
    }

    /// Everything wrong with this record, one message per problem (empty: valid).
    pub fn problems(&self) -> Vec<String> {
        let mut v = Vec::new();
        if self.key.trim().is_empty() {
            v.push("key is empty".to_string());
        } else if self.key.trim() != self.key || self.key.chars().any(char::is_control) {
            v.push(format!(
                "key {:?} has surrounding spaces or control characters",
                self.key
            ));
        } else if self.key.len() > MAX_KEY_LEN {
            v.push(format!("key is longer than {MAX_KEY_LEN} bytes"));
        }
        if let Some(e) = &self.email
            && !plausible_email(e)
        {
            v.push(format!("email {e:?} is not an email address"));
        }
        match &self.oid {
            Some(o) if o.trim().is_empty() => v.push("oid is empty".to_string()),
            Some(o) if o.chars().any(|c| c.is_whitespace() || c.is_control()) => {
                v.push(format!("oid {o:?} contains spaces"))
            }
            // An object id means nothing outside its tenant: a binding is (tid, oid).
            Some(_) if self.tid.is_none() => v.push(OID_WITHOUT_TID.to_string()),
            _ => {}
        }
        v
    }
}

/// Deliberately loose: the directory is not a mail validator, it only refuses
/// what cannot be an address (so a column mix-up in a CSV is caught).
fn plausible_email(e: &str) -> bool {
    match e.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && !domain.is_empty() && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// How emails are indexed and compared.
pub fn email_key(email: &str) -> String {
    email.to_lowercase()
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The directory cannot answer now (store down, app down or answering
    /// nonsense): the sign-in gets a 503 page, never a guess.
    #[error("directory unavailable: {0}")]
    Unavailable(String),
    /// Another record already holds what this write wants (an email, an
    /// identity, the key itself), or the record is bound elsewhere: taking it
    /// over is never done (SPEC §6).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The directory cannot do this by configuration (auto-create with an
    /// http directory that has no `create_url`): not an outage, and nobody
    /// else's record is in the way either.
    #[error("not configured: {0}")]
    NotConfigured(&'static str),
    /// The record named does not exist (it went away between lookup and write).
    #[error("no record {0:?}")]
    NotFound(String),
    /// The record itself is not valid (see [`UserRecord::problems`]).
    #[error("invalid record: {0}")]
    Invalid(String),
}

impl DirectoryError {
    /// The refusal a sign-in gets when the directory answers this.
    pub fn reason(&self) -> policy::Reason {
        use policy::Reason;
        match self {
            DirectoryError::Unavailable(_) => Reason::DirectoryUnavailable,
            DirectoryError::Conflict(_) => Reason::BoundToAnother,
            // Nobody can set this person up automatically: they are simply
            // not (yet) a user of the app.
            DirectoryError::NotConfigured(_) | DirectoryError::NotFound(_) | DirectoryError::Invalid(_) => {
                Reason::NotSetUp
            }
        }
    }
}

impl From<crate::session::StoreError> for DirectoryError {
    fn from(e: crate::session::StoreError) -> Self {
        DirectoryError::Unavailable(e.to_string())
    }
}

/// Where records are found. Lookups return candidates only; whether one is
/// the person signing in is decided by [`policy::matching::decide`].
#[async_trait]
pub trait Directory: Send + Sync + 'static {
    /// The record bound to this Entra identity.
    async fn by_id(&self, tid: &str, oid: &str) -> Result<Option<UserRecord>, DirectoryError>;
    /// The record carrying this email (compared case-insensitively); `tid` is
    /// the token's tenant, passed on for directories that scope by tenant.
    async fn by_email(&self, email: &str, tid: &str) -> Result<Option<UserRecord>, DirectoryError>;
    /// Binds a record to (tid, oid) after a first email match.
    async fn bind(&self, key: &str, tid: &str, oid: &str) -> Result<(), DirectoryError>;
    /// Creates a record (auto-create); returns it as stored.
    async fn create(&self, rec: &UserRecord) -> Result<UserRecord, DirectoryError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn record(key: &str) -> UserRecord {
        UserRecord {
            key: key.into(),
            kind: PortalKind::User,
            email: Some(format!("{key}@contoso.com")),
            tid: None,
            oid: None,
            name: None,
            client: None,
            disabled: false,
            two_factor: false,
        }
    }

    #[test]
    fn problems_of_records() {
        let t = "AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA";
        let cases: Vec<(UserRecord, &[&str])> = vec![
            (record("ann"), &[]),
            (
                UserRecord {
                    tid: Some(t.parse().unwrap()),
                    oid: Some("o1".into()),
                    ..record("ann")
                },
                &[],
            ),
            (
                UserRecord {
                    email: None,
                    ..record("")
                },
                &["key is empty"],
            ),
            (
                UserRecord {
                    email: None,
                    ..record(" ann")
                },
                &["surrounding spaces"],
            ),
            (
                UserRecord {
                    email: Some("ann".into()),
                    ..record("ann")
                },
                &["email \"ann\" is not an email address"],
            ),
            (
                UserRecord {
                    email: Some("@contoso.com".into()),
                    ..record("ann")
                },
                &["not an email address"],
            ),
            (
                UserRecord {
                    oid: Some("o1".into()),
                    ..record("ann")
                },
                &["oid is given without tid"],
            ),
            (
                UserRecord {
                    tid: Some(t.parse().unwrap()),
                    oid: Some(" ".into()),
                    ..record("ann")
                },
                &["oid is empty"],
            ),
            (
                UserRecord {
                    key: "k".repeat(MAX_KEY_LEN + 1),
                    ..record("ann")
                },
                &["longer than"],
            ),
        ];
        for (rec, want) in cases {
            let got = rec.problems();
            assert_eq!(got.len(), want.len(), "{rec:?}: {got:?}");
            for (g, w) in got.iter().zip(want.iter()) {
                assert!(g.contains(w), "{g:?} should contain {w:?}");
            }
        }
    }

    #[test]
    fn candidate_carries_a_parsed_tenant() {
        let rec = UserRecord {
            tid: Some("AAAAAAAA-AAAA-4AAA-8AAA-AAAAAAAAAAAA".parse().unwrap()),
            oid: Some("o1".into()),
            disabled: true,
            ..record("ann")
        };
        let c = rec.candidate();
        assert_eq!(
            c.tid.map(|t| t.to_string()).as_deref(),
            Some("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
        );
        assert_eq!(c.oid.as_deref(), Some("o1"));
        assert!(c.disabled);
        assert_eq!(c.key, "ann");
        // A tenant that is not a GUID never becomes a record (the import
        // reports it, an http directory's answer is refused).
        let bad = r#"{"key":"a","kind":"user","email":null,"tid":"nope","oid":null,"name":null,"client":null}"#;
        assert!(
            serde_json::from_str::<UserRecord>(bad)
                .unwrap_err()
                .to_string()
                .contains("not a GUID")
        );
    }

    #[test]
    fn records_serialize_with_optional_disabled() {
        let rec: UserRecord = serde_json::from_str(
            r#"{"key":"a","kind":"agent","email":null,"tid":null,"oid":null,"name":null,"client":null}"#,
        )
        .unwrap();
        assert_eq!(rec.kind, PortalKind::Agent);
        assert!(!rec.disabled);
        // The tenant, typed, is written as the same string (and read back
        // lower-case, as `directory import` always stored it).
        let json = r#"{"key":"a","kind":"user","email":"a@contoso.com","tid":"aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa","oid":"o1","name":null,"client":"contoso","disabled":true}"#;
        let typed: UserRecord = serde_json::from_str(json).unwrap();
        assert_eq!(
            typed.tid.as_ref().map(TenantId::as_str),
            Some("aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa")
        );
        assert_eq!(serde_json::to_string(&typed).unwrap(), json);
        let no_tid: UserRecord = serde_json::from_str(r#"{"key":"a","kind":"user"}"#).unwrap();
        assert_eq!(no_tid.tid, None);
        let back: UserRecord = serde_json::from_str(&serde_json::to_string(&rec).unwrap()).unwrap();
        assert_eq!(back, rec);
    }
}
