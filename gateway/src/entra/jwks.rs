//! Signing keys of the authority, cached per JWKS URL.
//!
//! An unknown `kid` triggers one refetch, at most one per key set per
//! [`FORCED_REFETCH_INTERVAL`]: a flood of forged tokens with random kids
//! cannot turn the gateway into a load generator against Entra.

use crate::metrics::METRICS;
use jsonwebtoken::DecodingKey;
use policy::Reason;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

pub const FORCED_REFETCH_INTERVAL: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<RawJwk>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    kid: Option<String>,
    n: Option<String>,
    e: Option<String>,
    issuer: Option<String>,
}

/// One usable verification key.
#[derive(Clone)]
pub struct Key {
    pub kid: Option<String>,
    pub key: Arc<DecodingKey>,
    /// Entra's per-key `issuer` property, when published.
    pub issuer: Option<String>,
}

#[derive(Default)]
struct Entry {
    keys: Vec<Key>,
    fetched: bool,
    last_forced: Option<Instant>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot fetch JWKS: {0}")]
    Fetch(String),
    #[error("JWKS answered HTTP {0}")]
    Status(u16),
    #[error("JWKS is malformed: {0}")]
    Malformed(String),
}

pub struct JwksCache {
    http: reqwest::Client,
    entries: RwLock<HashMap<String, Arc<Mutex<Entry>>>>,
    /// Serialises fetches so concurrent misses cause one request, not many.
    fetch_lock: tokio::sync::Mutex<()>,
}

/// Keeps RSA signing keys; other key types and algorithms are ignored
/// (Entra's JWKs usually carry no `alg`; absent means RS256).
fn parse(body: &[u8]) -> Result<Vec<Key>, JwksError> {
    let raw: RawJwks = serde_json::from_slice(body).map_err(|e| JwksError::Malformed(e.to_string()))?;
    Ok(raw
        .keys
        .into_iter()
        .filter(|k| k.kty.as_deref() == Some("RSA"))
        .filter(|k| k.use_.as_deref().is_none_or(|u| u == "sig"))
        .filter(|k| k.alg.as_deref().is_none_or(|a| a == "RS256"))
        .filter_map(|k| {
            let key = DecodingKey::from_rsa_components(k.n.as_deref()?, k.e.as_deref()?).ok()?;
            Some(Key {
                kid: k.kid,
                key: Arc::new(key),
                issuer: k.issuer,
            })
        })
        .collect())
}

impl JwksCache {
    pub fn new(http: reqwest::Client) -> Self {
        JwksCache {
            http,
            entries: RwLock::new(HashMap::new()),
            fetch_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// Every key set fetched so far (for the scheduled refresh).
    pub fn known_uris(&self) -> Vec<String> {
        self.entries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn entry(&self, uri: &str) -> Arc<Mutex<Entry>> {
        if let Some(e) = self.entries.read().unwrap_or_else(|p| p.into_inner()).get(uri) {
            return e.clone();
        }
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(uri.to_string())
            .or_default()
            .clone()
    }

    async fn fetch(&self, uri: &str) -> Result<Vec<Key>, JwksError> {
        let result = async {
            let resp = self
                .http
                .get(uri)
                .send()
                .await
                .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
            if !resp.status().is_success() {
                return Err(JwksError::Status(resp.status().as_u16()));
            }
            let body = resp
                .bytes()
                .await
                .map_err(|e| JwksError::Fetch(e.without_url().to_string()))?;
            parse(&body)
        }
        .await;
        METRICS
            .jwks_refreshes
            .with_label_values(&[if result.is_ok() { "ok" } else { "error" }])
            .inc();
        result
    }

    /// (Re)loads a key set now: the first fetch and scheduled refreshes.
    pub async fn refresh(&self, uri: &str) -> Result<usize, JwksError> {
        let _guard = self.fetch_lock.lock().await;
        let keys = self.fetch(uri).await?;
        let n = keys.len();
        let entry = self.entry(uri);
        let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
        e.keys = keys;
        e.fetched = true;
        Ok(n)
    }

    fn find(&self, uri: &str, kid: Option<&str>) -> (Option<Result<Key, Reason>>, bool, Option<Instant>) {
        let entry = self.entry(uri);
        let e = entry.lock().unwrap_or_else(|p| p.into_inner());
        let found = match kid {
            Some(kid) => e.keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned().map(Ok),
            // No kid: acceptable only when there is no doubt which key it means.
            None if e.fetched => Some(match e.keys.as_slice() {
                [only] => Ok(only.clone()),
                _ => Err(Reason::AmbiguousKey),
            }),
            None => None,
        };
        (found, e.fetched, e.last_forced)
    }

    /// The key for `kid`, fetching the set when never fetched, and refetching
    /// once (rate-limited) when the kid is unknown.
    pub async fn key(&self, uri: &str, kid: Option<&str>) -> Result<Key, Reason> {
        let (found, fetched, last_forced) = self.find(uri, kid);
        if let Some(r) = found {
            return r;
        }
        if !fetched {
            self.refresh(uri).await.map_err(|_| Reason::MetadataUnavailable)?;
        } else {
            let _guard = self.fetch_lock.lock().await;
            // Another request may have refetched while we waited.
            let (found, _, last_forced_now) = self.find(uri, kid);
            if let Some(r) = found {
                return r;
            }
            if last_forced_now != last_forced || last_forced.is_some_and(|t| t.elapsed() < FORCED_REFETCH_INTERVAL) {
                return Err(Reason::UnknownKid);
            }
            let keys = self.fetch(uri).await;
            let entry = self.entry(uri);
            let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
            e.last_forced = Some(Instant::now());
            match keys {
                Ok(keys) => e.keys = keys,
                Err(_) => return Err(Reason::MetadataUnavailable),
            }
        }
        match self.find(uri, kid).0 {
            Some(r) => r,
            None => Err(Reason::UnknownKid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignores_keys_that_cannot_verify_rs256() {
        let body = br#"{"keys":[
            {"kty":"EC","crv":"P-256","x":"AA","y":"AA","kid":"ec"},
            {"kty":"RSA","use":"enc","n":"sXch","e":"AQAB","kid":"enc"},
            {"kty":"RSA","alg":"RS512","n":"sXch","e":"AQAB","kid":"rs512"},
            {"kty":"RSA","n":"sXch","e":"AQAB","kid":"good","issuer":"https://x/t/v2.0"}
        ]}"#;
        let keys = parse(body).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("good"));
        assert_eq!(keys[0].issuer.as_deref(), Some("https://x/t/v2.0"));
        assert!(parse(b"{}").is_err());
    }
}
