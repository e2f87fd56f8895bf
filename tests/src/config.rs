//! The gateway configuration of a test as data: a base document every
//! harness gateway shares, with the test's patches merged onto it.
//!
//! Data rather than YAML text, so a test says which keys it changes
//! (`json!({"sso": {"users": false}})`) instead of splicing lines and
//! indentation. It is written as JSON: JSON is YAML, so the gateway's own
//! YAML loader reads it as it reads an operator's file.

use serde_json::{Map, Value};
use std::net::SocketAddr;

/// Merges `patch` into `base` as a JSON Merge Patch (RFC 7386): objects
/// merge key by key, recursively; `null` removes a key; anything else,
/// arrays included, replaces what was there.
pub fn deep_merge(base: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *base = patch;
        return;
    };
    if !base.is_object() {
        *base = Value::Object(Map::new());
    }
    if let Value::Object(base) = base {
        for (key, value) in patch {
            if value.is_null() {
                base.remove(&key);
            } else {
                deep_merge(base.entry(key).or_insert(Value::Null), value);
            }
        }
    }
}

/// Where one gateway process listens and what it talks to: the part of a
/// configuration only known once the mock Entra and the app are up.
#[derive(Clone, Debug)]
pub struct Wiring {
    pub port: u16,
    pub metrics_port: u16,
    /// The agent portal's public URL.
    pub portal_url: String,
    /// The mock Entra's base URL.
    pub entra: String,
    /// The verifying app (the upstream).
    pub app: SocketAddr,
}

/// One change to the base configuration.
#[derive(Clone, Debug)]
pub enum Patch {
    Fixed(Value),
    /// Built from the wiring, for keys that name the mock or the ports.
    Wired(fn(&Wiring) -> Value),
}

impl Patch {
    pub fn value(&self, wiring: &Wiring) -> Value {
        match self {
            Patch::Fixed(v) => v.clone(),
            Patch::Wired(f) => f(wiring),
        }
    }
}

/// The configuration file's text (JSON, which is YAML).
pub fn to_yaml(config: &Value) -> String {
    serde_json::to_string_pretty(config).expect("a JSON value serialises")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(mut base: Value, patch: Value) -> Value {
        deep_merge(&mut base, patch);
        base
    }

    #[test]
    fn objects_merge_key_by_key_at_every_depth() {
        let base = json!({"server": {"listen": "a", "threads": 2}, "sso": {"users": true}});
        let patch = json!({"server": {"threads": 4, "login_rate": {"burst": 9}}});
        assert_eq!(
            merged(base, patch),
            json!({"server": {"listen": "a", "threads": 4, "login_rate": {"burst": 9}}, "sso": {"users": true}})
        );
    }

    #[test]
    fn null_removes_a_key() {
        let base = json!({"entra": {"tenant_id": "t", "client_secret": "s"}});
        assert_eq!(
            merged(base, json!({"entra": {"client_secret": null}})),
            json!({"entra": {"tenant_id": "t"}})
        );
        assert_eq!(merged(json!({"a": 1}), json!({"missing": null})), json!({"a": 1}));
    }

    #[test]
    fn arrays_and_scalars_replace() {
        let base = json!({"routes": {"public": ["/a/*", "/b"]}, "threads": 2});
        assert_eq!(
            merged(base, json!({"routes": {"public": ["/c"]}, "threads": "two"})),
            json!({"routes": {"public": ["/c"]}, "threads": "two"})
        );
    }

    #[test]
    fn an_object_replaces_a_scalar_and_keeps_no_nulls() {
        assert_eq!(
            merged(
                json!({"store": "memory"}),
                json!({"store": {"kind": "redis", "x": null}})
            ),
            json!({"store": {"kind": "redis"}})
        );
    }

    #[test]
    fn a_non_object_patch_replaces_the_whole_document() {
        assert_eq!(merged(json!({"a": 1}), json!([1, 2])), json!([1, 2]));
    }

    #[test]
    fn the_text_is_json() {
        let config = json!({"sso": {"users": false}, "routes": {"public": ["/public/*"]}});
        let text = to_yaml(&config);
        assert_eq!(serde_json::from_str::<Value>(&text).expect("JSON"), config);
    }
}
