//! Starting a gateway: the async start-up (store, discovery, keys) on a small
//! control runtime, then Pingora's own server, which owns `main`'s thread.

use crate::app::App;
use crate::config::{Config, StoreConfig};
use crate::directory::builtin::BuiltinDirectory;
use crate::directory::records::{MemoryRecords, RecordStore};
use crate::directory::sync::{self, SyncOptions, SyncReport, SyncTenant};
use crate::entra::{self, discovery};
use crate::identity::AssertionSigner;
use crate::identity::signer::generate_pem;
use crate::lifecycle::{SharedApp, Signals};
use crate::proxy::GatewayProxy;
use crate::session::{MemoryStore, RedisStore, SharedValues, Store};
use arc_swap::ArcSwap;
use pingora::prelude::*;
use pingora::server::RunArgs;
use pingora::server::configuration::ServerConf;
use std::path::Path;
use std::sync::{Arc, OnceLock};
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
pub fn unsupported_settings(_c: &Config) -> Vec<String> {
    // None today (two_factor.required_for was the last, until 2FA landed).
    Vec::new()
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
/// beside it (same server, same prefix). Kept for the life of the process:
/// a reload builds its directory on it.
pub struct Backend {
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

/// First discovery at start: one attempt. A document that fails the checks
/// (SPEC §6: wrong issuer, endpoints off the cloud's hosts) is a
/// configuration error and stops the start; Entra not answering (network,
/// 5xx, a garbled answer) does not: the gateway serves its sessions and
/// [`discover_in_background`] keeps trying.
async fn first_discovery(
    http: &reqwest::Client,
    c: &Config,
) -> Result<Option<discovery::DiscoveryDocument>, StartError> {
    match discovery::fetch(http, &c.entra).await {
        Ok(doc) => Ok(Some(doc)),
        Err(e) if is_transient(&e) => {
            tracing::warn!(
                event = "discovery_pending", error = %e,
                "Entra cannot be reached: serving sessions, sign-ins answer 503 until discovery succeeds"
            );
            Ok(None)
        }
        Err(e) => Err(StartError::Discovery(e.to_string())),
    }
}

fn is_transient(e: &discovery::DiscoveryError) -> bool {
    matches!(
        e,
        discovery::DiscoveryError::Fetch { .. }
            | discovery::DiscoveryError::Status { .. }
            | discovery::DiscoveryError::Malformed { .. }
    )
}

/// Where the first discovery retry waits, doubling to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// `base` with up to ±20% jitter, so a fleet restarted together does not
/// retry in step.
fn jittered(base: Duration) -> Duration {
    let factor = 0.8 + rand::random::<f64>() * 0.4;
    base.mul_f64(factor)
}

/// Retries discovery until it succeeds, then loads the home tenant's keys.
/// A document that fails the checks is logged as an error and retried at
/// the longest interval (the operator must fix the configuration).
async fn discover_in_background(shared: SharedApp) {
    let mut delay = FIRST_BACKOFF;
    loop {
        tokio::time::sleep(jittered(delay)).await;
        let app = shared.load_full();
        match discovery::fetch(&app.http, &app.config.entra).await {
            Ok(doc) => {
                app.tenants.set_metadata(doc);
                tracing::info!(event = "discovery_ok", "Entra reached: sign-ins are open");
                load_home_keys(&app).await;
                return;
            }
            Err(e) if is_transient(&e) => {
                tracing::warn!(event = "discovery_retry", error = %e, next_in_s = delay.as_secs());
                delay = (delay * 2).min(MAX_BACKOFF);
            }
            Err(e) => {
                tracing::error!(event = "discovery_refused", error = %e, "the document fails the checks");
                delay = MAX_BACKOFF;
            }
        }
    }
}

/// Single-tenant: the home keys before the first sign-in needs them
/// (multi-tenant keys are fetched per token tenant, once it is allowed).
async fn load_home_keys(app: &App) {
    if app.config.entra.tenant_type != crate::config::TenantType::Single {
        return;
    }
    if let Some(m) = app.tenants.metadata()
        && let Err(e) = app.tenants.jwks.refresh(m.jwks_uri.as_str()).await
    {
        // Not fatal: the first sign-in fetches again.
        tracing::warn!(event = "jwks_initial_fetch_failed", error = %e);
    }
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

/// The directory `config.directory` names, on the running backend.
pub async fn directory_for(
    config: &Config,
    backend: &Backend,
    http: &reqwest::Client,
) -> Result<Option<Arc<dyn crate::directory::Directory>>, StartError> {
    Ok(match &config.directory {
        crate::config::Directory::Open => None,
        crate::config::Directory::Builtin => Some(Arc::new(builtin_directory(backend).await?)),
        crate::config::Directory::Http { lookup_url, create_url } => Some(Arc::new(
            crate::directory::http::HttpDirectory::new(http.clone(), lookup_url.clone(), create_url.clone()),
        )),
    })
}

/// The running gateway's state and what outlives reloads.
pub struct Started {
    pub app: SharedApp,
    pub backend: Arc<Backend>,
    /// False while Entra has not answered (see [`discover_in_background`]).
    pub discovered: bool,
}

/// Builds the shared state (async part of start-up).
pub async fn build_app(config: Config) -> Result<Started, StartError> {
    crate::crypto::install();
    let http = entra::http_client();
    let backend = connect_backend(&config).await?;
    let metadata = first_discovery(&http, &config).await?;
    let discovered = metadata.is_some();
    let signer = load_signer(&config, backend.store.as_ref()).await?;
    let directory = directory_for(&config, &backend, &http).await?;
    let cell = Arc::new(metadata.map(OnceLock::from).unwrap_or_default());
    let app = Arc::new(App::new(config, backend.store.clone(), http, cell, signer, directory));
    // Every instance drops what any instance revoked (Redis pub/sub).
    let follower = app.clone();
    tokio::spawn(async move { follower.sessions.follow_revocations().await });
    load_home_keys(&app).await;
    let shared: SharedApp = Arc::new(ArcSwap::new(app.clone()));
    // Users from Graph (`directory.sync`): the loop follows reloads of its
    // settings; turning it on for the first time takes a restart.
    if app.config.directory_sync.enabled && matches!(app.config.directory, crate::config::Directory::Builtin) {
        let dir = Arc::new(builtin_directory(&backend).await?);
        tokio::spawn(directory_sync_loop(shared.clone(), dir));
    }
    Ok(Started {
        app: shared,
        backend: Arc::new(backend),
        discovered,
    })
}

/// The CSP sync: one instance (holding the lease) asks Graph every
/// interval; every instance picks the shared list up from the store.
/// The running app is loaded on every round: a reload may switch the sync
/// on or off or change its interval.
async fn csp_loop(shared: SharedApp) {
    let mut next_sync = tokio::time::Instant::now();
    loop {
        let app = shared.load_full();
        let interval = app.config.entra.csp_sync.interval;
        let poll = Duration::from_secs(30).min(interval);
        if !app.config.entra.csp_sync.enabled {
            tokio::time::sleep(poll).await;
            continue;
        }
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

/// `directory.sync`: every instance polls, and the one that takes the
/// current interval's lease runs the sync. Intervals are aligned on the Unix
/// epoch and each has a lease key of its own, so every interval is synced
/// exactly once among all instances, whoever started when.
async fn directory_sync_loop(shared: SharedApp, dir: Arc<BuiltinDirectory>) {
    let mut done: Option<u64> = None;
    loop {
        let app = shared.load_full();
        let interval = app.config.directory_sync.interval;
        let secs = interval.as_secs().max(1);
        let poll = (interval / 5).clamp(Duration::from_secs(1), Duration::from_secs(30));
        if !app.config.directory_sync.enabled {
            tokio::time::sleep(poll).await;
            continue;
        }
        // What the last run (on any instance) achieved: readiness follows it.
        if let Ok(Some(v)) = app.store.get_value(sync::STATUS_KEY).await
            && let Ok(o) = serde_json::from_str::<sync::SharedOutcome>(&v)
        {
            app.directory_sync.adopt(o);
        }
        let window = u64::try_from(crate::session::now_unix()).unwrap_or_default() / secs;
        if done != Some(window) {
            // Held past the window's end: nobody can take this window again.
            match app
                .store
                .try_lease(&format!("directory_sync:{window}"), interval * 2)
                .await
            {
                Ok(won) => {
                    done = Some(window);
                    if won {
                        let result = directory_sync_once(&app, &dir).await;
                        let outcome = app.directory_sync.record(&result);
                        if let Ok(v) = serde_json::to_string(&outcome) {
                            let _ = app.store.put_value(sync::STATUS_KEY, &v).await;
                        }
                    }
                }
                // The store is down: try again at the next poll.
                Err(e) => tracing::warn!(event = "directory_sync_lease_failed", error = %e),
            }
        }
        tokio::time::sleep(poll).await;
    }
}

async fn directory_sync_once(app: &App, dir: &BuiltinDirectory) -> Result<SyncReport, sync::SyncError> {
    let customers = if app.config.entra.csp_sync.enabled {
        app.tenants.csp_refresh_from_store().await;
        app.tenants.csp_status().tenants
    } else {
        Vec::new()
    };
    let tenants = SyncTenant::all(&app.config, &customers);
    sync::run(&app.http, &app.config, dir, &tenants, SyncOptions::default()).await
}

/// `entra-gateway directory sync`: one run against the store the
/// configuration names (whose builtin directory the gateways use).
pub fn directory_sync(config: Config, options: SyncOptions) -> Result<SyncReport, StartError> {
    if config.entra.credential.is_none() {
        return Err(StartError::Unsupported(
            "directory sync reads Graph with the app's own token: set entra.client_secret (or client_secret_file, \
             client_certificate, federated_token_file)"
                .into(),
        ));
    }
    let rt = control_runtime()?;
    rt.block_on(async {
        let backend = connect_backend(&config).await?;
        let dir = builtin_directory(&backend).await?;
        let http = entra::http_client();
        let customers = if config.entra.csp_sync.enabled {
            // The list the gateways use; Graph's own when none is stored yet.
            match backend.store.get_value(crate::entra::csp::STORE_KEY).await {
                Ok(Some(v)) => crate::entra::csp::decode(&v),
                Ok(None) => {
                    crate::entra::csp::fetch(&http, &config)
                        .await
                        .map_err(|e| StartError::Runtime(format!("the CSP customer list: {e}")))?
                        .tenants
                }
                Err(e) => return Err(StartError::Store(e.to_string())),
            }
        } else {
            Vec::new()
        };
        let tenants = SyncTenant::all(&config, &customers);
        sync::run(&http, &config, &dir, &tenants, options)
            .await
            .map_err(|e| StartError::Store(e.to_string()))
    })
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

/// What `two-factor reset` and `two-factor status` do to a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwoFactorCommand {
    Reset,
    Status,
}

/// `entra-gateway two-factor reset|status --user KEY`: the user's record in
/// the shared store. Reset voids the enrolment and every remembered browser
/// (the next sign-in enrols anew); status prints it, never a secret.
pub fn two_factor(config: Config, user: &str, cmd: TwoFactorCommand) -> Result<String, StartError> {
    if matches!(config.session.store, StoreConfig::Memory) {
        return Err(StartError::Unsupported(
            "session.store: memory lives inside the running gateway; two-factor records are shared only with \
             session.store: redis"
                .into(),
        ));
    }
    let rt = control_runtime()?;
    rt.block_on(async {
        let store = connect_store(&config).await?;
        let factors = crate::two_factor::Factors::new(&config.two_factor, store);
        let err = |e: crate::two_factor::FactorError| StartError::Store(e.to_string());
        match cmd {
            TwoFactorCommand::Reset => {
                let generation = factors.reset(user).await.map_err(err)?;
                tracing::info!(event = "two_factor", result = "reset", user, generation);
                Ok(format!(
                    "two-factor reset for {user}: enrolment and remembered browsers void; the next sign-in enrols anew"
                ))
            }
            TwoFactorCommand::Status => {
                let r = factors.record(user).await.map_err(err)?;
                let now = crate::session::now_unix();
                let lock = r
                    .attempts()
                    .locked(now)
                    .map(|s| format!("locked for {s}s"))
                    .unwrap_or("no".into());
                Ok(format!(
                    "user:            {user}\nrequired:        {}\nenrolled:        {}\nenrolled at:     {}\n\
                     recovery codes:  {} left\nfailed attempts: {}\nlocked:          {lock}\nresets:          {}",
                    if config.two_factor.applies_to(user, false) {
                        "yes"
                    } else {
                        "by configuration: no"
                    },
                    if r.enrolled { "yes" } else { "no" },
                    r.enrolled_at.map(|t| t.to_string()).unwrap_or("-".into()),
                    r.recovery.len(),
                    r.failures,
                    r.generation,
                ))
            }
        }
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

/// Serves until SIGTERM/SIGINT. Never returns on success. `path`: the
/// configuration file, read again on SIGHUP (none: reloads are not offered).
pub fn run(config: Config, path: Option<&Path>) -> Result<(), StartError> {
    let unsupported = unsupported_settings(&config);
    if !unsupported.is_empty() {
        return Err(StartError::Unsupported(format!(
            "this version does not implement: {} (see docs/configuration.md)",
            unsupported.join(", ")
        )));
    }
    let rt = control_runtime()?;
    let started = rt.block_on(build_app(config))?;
    let shared = started.app.clone();
    crate::metrics::METRICS
        .config_last_reload_success
        .set(crate::session::now_unix());
    if !started.discovered {
        rt.spawn(discover_in_background(shared.clone()));
    }

    // Scheduled key refresh: picks up Entra's rotations before tokens use them
    // (only for key sets in use: the rest are dropped, see entra::jwks). The
    // key cache outlives reloads.
    let jwks = shared.load().tenants.jwks.clone();
    rt.spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(3600));
        tick.tick().await;
        loop {
            tick.tick().await;
            for uri in jwks.refresh_due() {
                if let Err(e) = jwks.refresh(&uri).await {
                    tracing::warn!(event = "jwks_refresh_failed", error = %e);
                }
            }
        }
    });
    rt.spawn(csp_loop(shared.clone()));
    // The listener's certificate, which a reload may replace (the pair was
    // read and checked with the configuration: no panic in pingora's build).
    let certificate = shared
        .load()
        .config
        .server
        .tls
        .as_ref()
        .map(|t| Arc::new(crate::tls::CertResolver::new(t.pair.clone())));
    crate::reload::watch(
        rt,
        shared.clone(),
        path.map(Path::to_path_buf),
        started.backend.clone(),
        certificate.clone(),
    );

    let app = shared.load_full();
    let c = &app.config;
    let shutdown_timeout = c.server.shutdown_timeout;
    let conf = ServerConf {
        threads: c.server.threads,
        // Only a cap: the process exits as soon as no request is in flight
        // (see lifecycle). The drain before it is ours, not Pingora's.
        grace_period_seconds: Some(shutdown_timeout.as_secs().max(1)),
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
    // The upstream's addresses: resolved and health-checked by pingora's
    // balancer in its background service, never on a request's path.
    let upstream = Arc::new(crate::upstream::Upstreams::new(&c.upstream));
    server.add_service(pingora::services::background::GenBackgroundService::new(
        "BG upstream".into(),
        upstream.balancer(),
    ));
    let gateway = GatewayProxy {
        app: shared.clone(),
        upstream,
    };
    let mut proxy = http_proxy_service(&server.configuration, gateway);
    match (&c.server.tls, certificate) {
        (Some(tls), Some(resolver)) => {
            // The paths are only informative: the resolver serves the pair.
            let mut settings = pingora::listeners::tls::TlsSettings::intermediate(
                &tls.cert.display().to_string(),
                &tls.key.display().to_string(),
            )
            .map_err(|e| StartError::Runtime(format!("TLS: {e}")))?;
            settings.set_cert_resolver(resolver);
            proxy.add_tls_with_settings(&c.server.listen, None, settings);
        }
        _ => proxy.add_tcp(&c.server.listen),
    }
    server.add_service(proxy);
    // Registered now, not on first use: a scrape before the first request
    // sees every series (build_info among them).
    std::sync::LazyLock::force(&crate::metrics::METRICS);
    if let Some(m) = &c.server.metrics_listen {
        let mut health = crate::health::service(shared.clone());
        health.add_tcp(m);
        server.add_service(health);
    }
    tracing::info!(
        event = "started", listen = %c.server.listen, metrics = ?c.server.metrics_listen,
        store = app.store.kind(), authority = %c.entra.authority(), entra_metadata = if started.discovered { "ok" } else { "pending" }
    );
    drop(app);
    server.run(RunArgs {
        shutdown_signal: Box::new(Signals {
            app: shared,
            shutdown_timeout,
        }),
    });
    std::process::exit(0)
}
