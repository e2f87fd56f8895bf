//! Starting a gateway: the async start-up (store, discovery, keys) on a small
//! control runtime, then Pingora's own server, which owns `main`'s thread.

use crate::app::App;
use crate::config::{Config, StoreConfig, TwoFactorRequired};
use crate::directory::builtin::BuiltinDirectory;
use crate::directory::records::{MemoryRecords, RecordStore};
use crate::entra::{self, discovery};
use crate::identity::AssertionSigner;
use crate::identity::signer::generate_pem;
use crate::proxy::GatewayProxy;
use crate::session::{MemoryStore, RedisStore, SharedValues, Store};
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Unsupported(String),
    #[error("session store: {0}")]
    Store(String),
    #[error("Entra discovery: {0}")]
    Discovery(String),
    #[error("identity signing key: {0}")]
    SigningKey(String),
    #[error("cannot start: {0}")]
    Runtime(String),
}

/// Settings accepted by the configuration whose feature this build does not
/// have yet. Running with them would silently weaken what the operator asked
/// for, so `run` refuses instead (check-config only reports them).
pub fn unsupported_settings(c: &Config) -> Vec<String> {
    let mut v = Vec::new();
    if c.two_factor.required_for != TwoFactorRequired::Nobody {
        v.push("two_factor.required_for other than nobody".to_string());
    }
    v
}

/// The control runtime: start-up and background work. Connections made here
/// (Redis) are driven by its thread and used from Pingora's worker threads.
fn control_runtime() -> Result<&'static tokio::runtime::Runtime, StartError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("gateway-control")
        .enable_all()
        .build()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    Ok(Box::leak(Box::new(rt)))
}

/// The store `session.store` names, and the builtin directory's records
/// beside it (same server, same prefix).
struct Backend {
    store: Arc<dyn Store>,
    records: Arc<dyn RecordStore>,
}

async fn connect_backend(c: &Config) -> Result<Backend, StartError> {
    Ok(match &c.session.store {
        StoreConfig::Memory => Backend {
            store: Arc::new(MemoryStore::new()),
            records: Arc::new(MemoryRecords::new()),
        },
        StoreConfig::Redis(target) => {
            let store = RedisStore::connect(target, &c.session.key_prefix)
                .await
                .map_err(|e| StartError::Store(e.to_string()))?;
            Backend {
                records: Arc::new(store.directory_records()),
                store: Arc::new(store),
            }
        }
    })
}

pub async fn connect_store(c: &Config) -> Result<Arc<dyn Store>, StartError> {
    connect_backend(c).await.map(|b| b.store)
}

/// The builtin directory of a configuration, a directory an earlier version
/// wrote moved in first (see [`BuiltinDirectory::migrate_legacy`]).
pub async fn open_builtin_directory(config: &Config) -> Result<BuiltinDirectory, StartError> {
    let b = connect_backend(config).await?;
    builtin_directory(&b).await
}

async fn builtin_directory(b: &Backend) -> Result<BuiltinDirectory, StartError> {
    let dir = BuiltinDirectory::new(b.records.clone());
    dir.migrate_legacy(b.store.as_ref())
        .await
        .map_err(|e| StartError::Store(format!("moving the builtin directory to its new layout: {e}")))?;
    Ok(dir)
}

/// Fetches discovery, retrying briefly on network errors (a gateway started
/// together with its network should not crash-loop) but never on a document
/// that fails the checks.
async fn load_metadata(http: &reqwest::Client, c: &Config) -> Result<discovery::DiscoveryDocument, StartError> {
    let mut delay = Duration::from_millis(200);
    for attempt in 1.. {
        match discovery::fetch(http, &c.entra).await {
            Ok(doc) => return Ok(doc),
            Err(e @ (discovery::DiscoveryError::Fetch { .. } | discovery::DiscoveryError::Status { .. }))
                if attempt < 6 =>
            {
                tracing::warn!(event = "discovery_retry", attempt, error = %e);
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => return Err(StartError::Discovery(e.to_string())),
        }
    }
    unreachable!("the loop returns")
}

async fn load_signer(c: &Config, store: &dyn SharedValues) -> Result<AssertionSigner, StartError> {
    let files = c.identity.key_files();
    let pems: Vec<String> = if files.is_empty() {
        // Shared through the store so every instance signs with one key.
        tracing::warn!(
            event = "signing_key_in_store",
            "identity.signing_key is not set: the assertion signing key is generated and kept in the \
             session store, where anyone who can read the store can sign assertions; prefer a key file \
             or mounted secret (docs/security.md)"
        );
        let candidate = generate_pem().map_err(|e| StartError::SigningKey(e.to_string()))?;
        vec![
            store
                .get_or_init("assertion_signing_key", &candidate)
                .await
                .map_err(|e| StartError::Store(e.to_string()))?,
        ]
    } else {
        files
            .iter()
            .map(|path| {
                std::fs::read_to_string(path).map_err(|e| StartError::SigningKey(format!("{}: {e}", path.display())))
            })
            .collect::<Result<_, _>>()?
    };
    let pems: Vec<&str> = pems.iter().map(String::as_str).collect();
    AssertionSigner::from_pems(&pems, &c.identity).map_err(|e| StartError::SigningKey(e.to_string()))
}

/// Builds the shared state (async part of start-up).
pub async fn build_app(config: Config) -> Result<Arc<App>, StartError> {
    crate::crypto::install();
    let http = entra::http_client();
    let backend = connect_backend(&config).await?;
    let metadata = load_metadata(&http, &config).await?;
    let signer = load_signer(&config, backend.store.as_ref()).await?;
    let directory: Option<Arc<dyn crate::directory::Directory>> = match &config.directory {
        crate::config::Directory::Open => None,
        crate::config::Directory::Builtin => Some(Arc::new(builtin_directory(&backend).await?)),
        crate::config::Directory::Http { lookup_url, create_url } => Some(Arc::new(
            crate::directory::http::HttpDirectory::new(http.clone(), lookup_url.clone(), create_url.clone()),
        )),
    };
    let app = Arc::new(App::new(config, backend.store, http, metadata, signer, directory));
    // Every instance drops what any instance revoked (Redis pub/sub).
    let follower = app.clone();
    tokio::spawn(async move { follower.sessions.follow_revocations().await });
    // Multi-tenant keys are fetched per token tenant, once it is allowed.
    if app.config.entra.tenant_type == crate::config::TenantType::Single
        && let Err(e) = app.tenants.jwks.refresh(app.tenants.metadata.jwks_uri.as_str()).await
    {
        // Not fatal: the first sign-in fetches again.
        tracing::warn!(event = "jwks_initial_fetch_failed", error = %e);
    }
    Ok(app)
}

/// The CSP sync: one instance (holding the lease) asks Graph every
/// interval; every instance picks the shared list up from the store.
async fn csp_loop(app: Arc<App>) {
    let interval = app.config.entra.csp_sync.interval;
    let poll = Duration::from_secs(30).min(interval);
    let mut next_sync = tokio::time::Instant::now();
    loop {
        app.tenants.csp_refresh_from_store().await;
        if tokio::time::Instant::now() >= next_sync {
            let lease = interval
                .saturating_sub(Duration::from_secs(5))
                .max(Duration::from_secs(1));
            if let Ok(true) = app.store.try_lease("csp_sync", lease).await {
                let _ = app.csp_sync().await;
            }
            next_sync = tokio::time::Instant::now() + interval;
        }
        tokio::time::sleep(poll).await;
    }
}

/// `entra-gateway sessions revoke`: ends a user's sessions (or those of one
/// Entra `sid`) in the shared store and tells every instance over the bus.
pub fn revoke_sessions(config: Config, user: Option<&str>, sid: Option<&str>) -> Result<usize, StartError> {
    if matches!(config.session.store, StoreConfig::Memory) {
        return Err(StartError::Unsupported(
            "session.store: memory lives inside the running gateway; revoking needs session.store: redis".into(),
        ));
    }
    let rt = control_runtime()?;
    rt.block_on(async {
        let store = connect_store(&config).await?;
        let store_err = |e: crate::session::StoreError| StartError::Store(e.to_string());
        let ids = match (user, sid) {
            (Some(u), _) => store.sessions_by_user(u).await.map_err(store_err)?,
            (None, Some(s)) => store.sessions_by_sid(s).await.map_err(store_err)?,
            (None, None) => Vec::new(),
        };
        for id in &ids {
            store.delete_session(id).await.map_err(store_err)?;
            store.publish_revocation(id).await.map_err(store_err)?;
        }
        // Run by an operator, not a browser: no client address to record.
        tracing::info!(
            event = "revoke",
            user = user.unwrap_or(""),
            by_sid = sid.is_some(),
            ended = ids.len()
        );
        Ok(ids.len())
    })
}

/// `entra-gateway tenants sync`: one sync, written to the store every
/// instance reads.
pub fn tenants_sync(config: Config) -> Result<crate::entra::csp::SyncResult, StartError> {
    if !config.entra.csp_sync.enabled {
        return Err(StartError::Unsupported(
            "entra.csp_sync.enabled is false in this configuration".into(),
        ));
    }
    let rt = control_runtime()?;
    rt.block_on(async {
        let store = connect_store(&config).await?;
        let result = crate::entra::csp::fetch(&entra::http_client(), &config)
            .await
            .map_err(|e| StartError::Runtime(format!("CSP sync failed (the stored list is unchanged): {e}")))?;
        store
            .put_value(
                crate::entra::csp::STORE_KEY,
                &crate::entra::csp::encode(&result.tenants),
            )
            .await
            .map_err(|e| StartError::Store(e.to_string()))?;
        Ok(result)
    })
}

/// Serves until SIGTERM/SIGINT. Never returns on success.
pub fn run(config: Config) -> Result<(), StartError> {
    let unsupported = unsupported_settings(&config);
    if !unsupported.is_empty() {
        return Err(StartError::Unsupported(format!(
            "this version does not implement: {} (see docs/configuration.md)",
            unsupported.join(", ")
        )));
    }
    let rt = control_runtime()?;
    let app = rt.block_on(build_app(config))?;

    // Scheduled key refresh: picks up Entra's rotations before tokens use them
    // (only for key sets in use: the rest are dropped, see entra::jwks).
    let bg = app.clone();
    rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        tick.tick().await;
        loop {
            tick.tick().await;
            for uri in bg.tenants.jwks.refresh_due() {
                if let Err(e) = bg.tenants.jwks.refresh(&uri).await {
                    tracing::warn!(event = "jwks_refresh_failed", error = %e);
                }
            }
        }
    });

    if app.config.entra.csp_sync.enabled {
        rt.spawn(csp_loop(app.clone()));
    }

    let c = &app.config;
    let conf = ServerConf {
        threads: c.server.threads,
        grace_period_seconds: Some(1),
        graceful_shutdown_timeout_seconds: Some(1),
        pid_file: std::env::temp_dir()
            .join(format!("entra-gateway-{}.pid", std::process::id()))
            .display()
            .to_string(),
        upgrade_sock: std::env::temp_dir()
            .join(format!("entra-gateway-{}.sock", std::process::id()))
            .display()
            .to_string(),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(&server.configuration, GatewayProxy { app: app.clone() });
    match &c.server.tls {
        Some(tls) => proxy
            .add_tls(
                &c.server.listen,
                &tls.cert.display().to_string(),
                &tls.key.display().to_string(),
            )
            .map_err(|e| StartError::Runtime(format!("TLS: {e}")))?,
        None => proxy.add_tcp(&c.server.listen),
    }
    server.add_service(proxy);
    if let Some(m) = &c.server.metrics_listen {
        let mut metrics = pingora_prometheus::prometheus_http_service();
        metrics.add_tcp(m);
        server.add_service(metrics);
    }
    tracing::info!(
        event = "started", listen = %c.server.listen, metrics = ?c.server.metrics_listen,
        store = app.store.kind(), authority = %c.entra.authority()
    );
    server.run_forever()
}
