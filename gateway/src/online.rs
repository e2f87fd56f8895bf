//! `check-config --online`: what only the network can tell about a valid
//! configuration — Entra's discovery and keys, the store, the client
//! credential — one named check per line, every one run even after a failure.

use crate::config::Config;
use crate::entra::{credential, discovery, http_client};

/// One check's outcome.
#[derive(Debug)]
pub struct Check {
    pub name: &'static str,
    pub outcome: Outcome,
}

#[derive(Debug)]
pub enum Outcome {
    Ok(String),
    /// Not applicable to this configuration (not a failure).
    Skipped(String),
    Failed(String),
}

impl Check {
    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Failed(_))
    }

    pub fn line(&self) -> String {
        let (word, text) = match &self.outcome {
            Outcome::Ok(t) => ("ok", t),
            Outcome::Skipped(t) => ("skipped", t),
            Outcome::Failed(t) => ("FAILED", t),
        };
        format!("online: {:<17} {word}: {text}", self.name)
    }
}

/// Runs every check on a small runtime of its own.
pub fn run(c: &Config) -> Vec<Check> {
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt.block_on(checks(c)),
        Err(e) => vec![Check {
            name: "runtime",
            outcome: Outcome::Failed(e.to_string()),
        }],
    }
}

async fn checks(c: &Config) -> Vec<Check> {
    let http = http_client();
    let mut out = Vec::new();
    let metadata = discovery::fetch(&http, &c.entra).await;
    out.push(Check {
        name: "discovery",
        outcome: match &metadata {
            Ok(doc) => Outcome::Ok(format!("{} (issuer {})", c.entra.discovery_url(), doc.issuer)),
            Err(e) => Outcome::Failed(e.to_string()),
        },
    });
    out.push(Check {
        name: "signing keys",
        outcome: match &metadata {
            Ok(doc) => jwks(&http, doc.jwks_uri.as_str()).await,
            Err(_) => Outcome::Skipped("discovery failed".into()),
        },
    });
    out.push(Check {
        name: "session store",
        outcome: store(c).await,
    });
    out.push(Check {
        name: "client credential",
        outcome: match credential::app_token(&http, c, &c.entra.graph_host).await {
            Ok(_) => Outcome::Ok(format!(
                "a client-credentials token was issued for {}/.default",
                c.entra.graph_host
            )),
            Err(credential::TokenError::NoCredential) => {
                Outcome::Skipped("no client credential: sign-in uses id_token + form_post".into())
            }
            Err(e) => Outcome::Failed(e.to_string()),
        },
    });
    out
}

/// Through the gateway's own JWKS cache: the same fetch and parse a sign-in uses.
async fn jwks(http: &reqwest::Client, uri: &str) -> Outcome {
    let cache = crate::entra::jwks::JwksCache::new(http.clone(), [uri.to_string()]);
    match cache.refresh(uri).await {
        Ok(0) => Outcome::Failed(format!("{uri} holds no keys")),
        Ok(n) => Outcome::Ok(format!("{n} key(s) at {uri}")),
        Err(e) => Outcome::Failed(format!("{uri}: {e}")),
    }
}

async fn store(c: &Config) -> Outcome {
    let describe = c.session.store.describe();
    let ping = async {
        let s = crate::server::connect_store(c).await.map_err(|e| e.to_string())?;
        s.ping().await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(10), ping).await {
        Ok(Ok(())) => Outcome::Ok(describe),
        Ok(Err(e)) => Outcome::Failed(format!("{describe}: {e}")),
        Err(_) => Outcome::Failed(format!("{describe}: no answer within 10 s")),
    }
}
