//! Identifiers parsed once, so an invalid one cannot exist.

use std::fmt;
use std::str::FromStr;

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("not a GUID: {0:?}")]
pub struct GuidError(pub String);

/// Parses the canonical hyphenated 36-character GUID form only (what Entra
/// uses in `tid`, `oid` and issuers); braces, URNs and the simple form are
/// refused so that a value can be compared byte for byte after lower-casing.
fn parse_guid(s: &str) -> Result<String, GuidError> {
    let ok = s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        });
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(GuidError(s.chars().take(64).collect()))
    }
}

macro_rules! guid_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
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
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
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
        self.0 == Self::CONSUMERS
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
    }
}
