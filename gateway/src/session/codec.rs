//! How records are written in a shared store: a version tag, then JSON.
//! Instances of different versions share one Redis during a rolling
//! upgrade, so a reader must tell a record it cannot read from a missing
//! one: an unknown version or a record that does not decode is treated as
//! absent (the user signs in again; a login state is unknown), counted, and
//! never answered with a 503.

use super::StoreError;
use crate::metrics::METRICS;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The record shapes this version writes. Bump when a change to `Session`
/// or `LoginRecord` would make older instances misread new records.
pub const VERSION: &str = "v1";

/// Which record a decode failure was about (the metric's label).
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Session,
    Login,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Session => "session",
            Kind::Login => "login",
        }
    }
}

pub fn encode<T: Serialize>(v: &T) -> Result<String, StoreError> {
    let json = serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(format!("{VERSION}:{json}"))
}

/// Why a stored record was not used (logged, never its content).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum Unreadable {
    #[error("record version {0:?} is not one this version reads")]
    UnknownVersion(String),
    #[error("record does not decode: {0}")]
    Malformed(String),
}

fn decode_str<T: DeserializeOwned>(raw: &str) -> Result<T, Unreadable> {
    // Records written before versioning are bare JSON of the v1 shape.
    let json = match raw.split_once(':') {
        _ if raw.starts_with('{') => raw,
        Some((VERSION, json)) => json,
        Some((v, _)) if v.len() <= 8 => return Err(Unreadable::UnknownVersion(v.to_string())),
        _ => return Err(Unreadable::Malformed("no version tag".into())),
    };
    // serde_json's message names a line and column, never the content.
    serde_json::from_str(json).map_err(|e| Unreadable::Malformed(e.to_string()))
}

/// A stored record, or None when there is none or it cannot be read.
pub fn decode<T: DeserializeOwned>(raw: Option<String>, kind: Kind) -> Option<T> {
    let raw = raw?;
    match decode_str(&raw) {
        Ok(v) => Some(v),
        Err(e) => {
            METRICS.records_unreadable.with_label_values(&[kind.label()]).inc();
            tracing::warn!(event = "store_record_unreadable", kind = kind.label(), error = %e);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::LoginRecord;

    fn record() -> LoginRecord {
        LoginRecord {
            portal: "agent".into(),
            nonce: "n".into(),
            binding: "b".into(),
            pkce_verifier: None,
            return_to: "/".into(),
            remember_me: false,
            tenant: None,
            client: None,
            redirect_uri: "https://x/cb".into(),
            started_at: 1,
        }
    }

    #[test]
    fn round_trips_with_a_version_tag() {
        let s = encode(&record()).unwrap();
        assert!(s.starts_with("v1:{"), "{s}");
        assert_eq!(decode::<LoginRecord>(Some(s), Kind::Login), Some(record()));
    }

    #[test]
    fn reads_records_written_before_versioning() {
        let bare = serde_json::to_string(&record()).unwrap();
        assert_eq!(decode_str::<LoginRecord>(&bare), Ok(record()));
    }

    #[test]
    fn unknown_versions_and_garbage_are_absent_not_errors() {
        let future = encode(&record()).unwrap().replacen("v1:", "v2:", 1);
        assert_eq!(
            decode_str::<LoginRecord>(&future),
            Err(Unreadable::UnknownVersion("v2".into()))
        );
        assert!(decode::<LoginRecord>(Some(future), Kind::Login).is_none());
        for bad in ["", "v1:", "v1:{\"p\":1}", "{not json", "\u{0}\u{1}", "v1:{}"] {
            let before = METRICS.records_unreadable.with_label_values(&["login"]).get();
            assert!(
                decode::<LoginRecord>(Some(bad.to_string()), Kind::Login).is_none(),
                "{bad:?}"
            );
            assert!(METRICS.records_unreadable.with_label_values(&["login"]).get() > before);
        }
        assert!(decode::<LoginRecord>(None, Kind::Login).is_none());
    }
}
