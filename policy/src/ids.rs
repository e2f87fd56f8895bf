//! Identifiers parsed once, so an invalid one cannot exist.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("not a GUID: {0:?}")]
pub struct GuidError(pub String);

/// The canonical hyphenated form's length.
const GUID_LEN: usize = 36;

/// Parses the canonical hyphenated 36-character GUID form only (what Entra
/// uses in `tid`, `oid` and issuers); braces, URNs and the simple form are
/// refused so that a value can be compared byte for byte after lower-casing.
/// Kept as its 36 ASCII bytes in place: a tenant id is in every session,
/// and a heap string would cost a pointer, a length and an allocation more.
fn parse_guid(s: &str) -> Result<[u8; GUID_LEN], GuidError> {
    let ok = s.len() == GUID_LEN
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    match <[u8; GUID_LEN]>::try_from(s.as_bytes()) {
        Ok(mut bytes) if ok => {
            bytes.make_ascii_lowercase();
            Ok(bytes)
        }
        _ => Err(GuidError(s.chars().take(64).collect())),
    }
}

macro_rules! guid_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; GUID_LEN]);

        impl $name {
            pub fn as_str(&self) -> &str {
                // Only ASCII gets in (see `parse_guid`).
                std::str::from_utf8(&self.0).unwrap_or_default()
            }
        }

        impl FromStr for $name {
            type Err = GuidError;
            fn from_str(s: &str) -> Result<Self, GuidError> {
                parse_guid(s).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.as_str())
            }
        }
    };
}

guid_type!(
    /// An Entra tenant id, stored lower-case.
    TenantId
);
guid_type!(
    /// An Entra application (client) id, stored lower-case.
    ClientId
);

impl TenantId {
    /// The tenant of personal Microsoft accounts; never allowed implicitly.
    pub const CONSUMERS: &'static str = "9188040d-6c67-4c5b-b112-36a304b66dad";

    pub fn is_consumers(&self) -> bool {
        self.as_str() == Self::CONSUMERS
    }
}

/// Which application a portal fronts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PortalKind {
    Agent,
    User,
}

impl PortalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PortalKind::Agent => "agent",
            PortalKind::User => "user",
        }
    }
}

impl FromStr for PortalKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "agent" => Ok(PortalKind::Agent),
            "user" => Ok(PortalKind::User),
            other => Err(format!("unknown portal kind {other:?} (expected agent or user)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_forms() {
        let cases = [
            ("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", true),
            ("AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE", true),
            ("{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}", false),
            ("aaaaaaaabbbbccccddddeeeeeeeeeeee", false),
            ("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeeg", false),
            ("{tenantid}", false),
            ("organizations", false),
            ("", false),
            ("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeee\u{e9}", false),
        ];
        for (s, ok) in cases {
            assert_eq!(s.parse::<TenantId>().is_ok(), ok, "{s}");
        }
        let t: TenantId = "AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE".parse().unwrap();
        assert_eq!(t.as_str(), "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
        assert_eq!(t.to_string(), t.as_str());
        assert_eq!(format!("{t:?}"), "TenantId(aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee)");
        // Ordered as the strings are.
        let u: TenantId = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeef".parse().unwrap();
        assert!(t < u && t.as_str() < u.as_str());
        // Held in place: no heap string per id.
        assert_eq!(std::mem::size_of::<TenantId>(), 36);
    }
}
