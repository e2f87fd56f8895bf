//! "did you mean …" for an unknown key: the nearest key that is valid at the
//! same place. The valid keys come from `config.example.yaml`, which lists
//! every key (`check-config` runs on it in the tests, so it cannot hold an
//! invalid one); it is parsed only when a file has an unknown key.

use serde_json::Value;
use std::sync::LazyLock;

const EXAMPLE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.example.yaml"));

static KNOWN: LazyLock<Value> = LazyLock::new(|| serde_saphyr::from_str(EXAMPLE).unwrap_or(Value::Null));

/// The closest valid key next to `key` under `prefix` (`server`,
/// `portals[1]`, `` for the top level), when one is close enough to be a typo.
pub fn nearest(prefix: &str, key: &str) -> Option<&'static str> {
    let siblings = keys_at(&KNOWN, prefix);
    siblings
        .into_iter()
        .map(|k| (strsim::jaro_winkler(key, k), k))
        // clap's threshold for subcommands and flags: catches transpositions,
        // a dropped or doubled letter, `-` for `_`; not unrelated words.
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// The keys of the mapping at `path` (`a.b[3].c`); list items are merged,
/// as each portal or client may use different optional keys.
fn keys_at<'a>(root: &'a Value, path: &str) -> Vec<&'a str> {
    let mut nodes = vec![root];
    for seg in path.split('.').filter(|s| !s.is_empty()) {
        let name = seg.split('[').next().unwrap_or(seg);
        nodes = nodes
            .into_iter()
            .filter_map(|n| n.get(name))
            .flat_map(|n| match n {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            })
            .collect();
    }
    let mut keys: Vec<&str> = nodes
        .iter()
        .filter_map(|n| n.as_object())
        .flat_map(|m| m.keys().map(String::as_str))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_nearest_sibling() {
        assert_eq!(nearest("", "sesion"), Some("session"));
        assert_eq!(nearest("server", "trusted_proxy"), Some("trusted_proxies"));
        assert_eq!(nearest("server", "acces_log"), Some("access_log"));
        assert_eq!(nearest("portals[1]", "nmae"), Some("name"));
        assert_eq!(nearest("upstream", "strip-authorization"), Some("strip_authorization"));
    }

    #[test]
    fn no_suggestion_for_unrelated_words_or_unknown_places() {
        assert_eq!(nearest("server", "zzz"), None);
        assert_eq!(nearest("", "frobnicate"), None);
        assert_eq!(nearest("nowhere.at_all", "name"), None);
    }

    #[test]
    fn the_example_parses() {
        assert!(keys_at(&KNOWN, "").contains(&"server"));
        assert!(keys_at(&KNOWN, "session").contains(&"store"));
    }
}
