//! SIGHUP: the configuration file is read and validated again; a valid one
//! replaces the running [`App`] for new requests (requests under way finish
//! with the one they loaded), sharing the store, sessions, signing keys and
//! pending sign-ins, so nobody is signed out and no connection is dropped.
//! An invalid one changes nothing; the errors are logged and counted.
//!
//! The TLS certificate and key files are read again, even under unchanged
//! names (cert-manager and certbot replace them in place): a valid pair is
//! served from the next handshake on; a pair that fails to load fails the
//! reload like any other invalid setting.
//!
//! Settings that only take effect at start (listeners, threads, turning TLS
//! on or off, the store, signing keys, the authority, the upstream) keep
//! their running values; a change to them is logged as needing a restart.

use crate::config::Config;
use crate::lifecycle::SharedApp;
use crate::metrics::METRICS;
use crate::server::Backend;
use crate::tls::CertResolver;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the configuration is invalid: {}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("{0}")]
    Unsupported(String),
    #[error("directory: {0}")]
    Directory(String),
}

/// Gives `new` the running values of every setting that needs a restart;
/// returns the names of those that differed (to log).
pub fn keep_restart_only(running: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut kept = Vec::new();
    // Debug renderings compare whole sections without a PartialEq on every
    // config type; they are compared, never logged.
    fn differs<T: std::fmt::Debug>(a: &T, b: &T) -> bool {
        format!("{a:?}") != format!("{b:?}")
    }
    macro_rules! keep {
        ($name:literal, $($field:tt)+) => {
            if differs(&running.$($field)+, &new.$($field)+) {
                kept.push($name);
                new.$($field)+ = running.$($field)+.clone();
            }
        };
    }
    keep!("server.listen", server.listen);
    keep!("server.metrics_listen", server.metrics_listen);
    keep!("server.threads", server.threads);
    // The certificate files themselves reload (the pair is the new file's);
    // TLS on or off is the listener itself.
    if running.server.tls.is_some() != new.server.tls.is_some() {
        kept.push("server.tls");
        new.server.tls = running.server.tls.clone();
    }
    keep!("server.shutdown_timeout", server.shutdown_timeout);
    keep!("server.login_rate", server.login_rate);
    keep!("server.max_pending_logins", server.max_pending_logins);
    keep!("upstream", upstream);
    keep!("session", session);
    keep!("identity", identity);
    // The authority: discovery and the keys fetched from it are shared.
    let authority = |c: &Config| {
        format!(
            "{:?}",
            (
                c.entra.authority(),
                &c.entra.cloud,
                &c.entra.issuer_host,
                c.entra.authority_overridden
            )
        )
    };
    if authority(running) != authority(new) {
        kept.push("entra.cloud/tenant_type/tenant_id/authority_host/issuer_host");
        let e = &running.entra;
        new.entra.cloud = e.cloud;
        new.entra.tenant_type = e.tenant_type;
        new.entra.tenant_id = e.tenant_id.clone();
        new.entra.authority_host = e.authority_host.clone();
        new.entra.issuer_host = e.issuer_host.clone();
        new.entra.graph_host = e.graph_host.clone();
        new.entra.authority_overridden = e.authority_overridden;
    }
    kept
}

/// Reads `path` and, if valid, swaps the running app and the listener's
/// certificate (`certificate`: the TLS listener's, if any). Returns the
/// settings that differ but need a restart.
pub async fn reload(
    shared: &SharedApp,
    path: &Path,
    backend: &Backend,
    certificate: Option<&CertResolver>,
) -> Result<Vec<&'static str>, ReloadError> {
    let mut config = Config::load(path).map_err(|e| ReloadError::Invalid(e.errors()))?;
    let unsupported = crate::server::unsupported_settings(&config);
    if !unsupported.is_empty() {
        return Err(ReloadError::Unsupported(format!(
            "this version does not implement: {}",
            unsupported.join(", ")
        )));
    }
    let running = shared.load_full();
    let kept = keep_restart_only(&running.config, &mut config);
    let directory = crate::server::directory_for(&config, backend, &running.http)
        .await
        .map_err(|e| ReloadError::Directory(e.to_string()))?;
    // Last, with nothing left to fail: the certificate and the app change
    // together or not at all.
    if let (Some(resolver), Some(tls)) = (certificate, &config.server.tls)
        && resolver.replace(tls.pair.clone())
    {
        tracing::info!(
            event = "tls_certificate_reloaded", cert = %tls.cert.display(), sha256 = tls.pair.fingerprint(),
            "new TLS handshakes get this certificate; open connections keep theirs"
        );
    }
    shared.store(Arc::new(running.reconfigured(config, directory)));
    Ok(kept)
}

/// Logs and counts one reload.
async fn reload_and_report(shared: &SharedApp, path: &Path, backend: &Backend, certificate: Option<&CertResolver>) {
    match reload(shared, path, backend, certificate).await {
        // Counted after the log lines: whoever waits on the counter (an
        // operator's script, a test) finds them written.
        Ok(kept) => {
            for setting in &kept {
                tracing::warn!(
                    event = "config_reload_needs_restart",
                    setting,
                    "changed in the file but only applied at start: the running value stays"
                );
            }
            tracing::info!(event = "config_reload", result = "ok", path = %path.display(), needs_restart = kept.len());
            METRICS.config_reloads.with_label_values(&["ok"]).inc();
            METRICS.config_last_reload_success.set(crate::session::now_unix());
        }
        Err(e) => {
            match &e {
                ReloadError::Invalid(errors) => {
                    for error in errors {
                        tracing::error!(event = "config_reload_error", %error);
                    }
                }
                other => tracing::error!(event = "config_reload_error", error = %other),
            }
            tracing::error!(
                event = "config_reload", result = "failed", path = %path.display(),
                "the running configuration stays"
            );
            METRICS.config_reloads.with_label_values(&["failed"]).inc();
        }
    }
}

/// Reloads on every SIGHUP, on the control runtime (whose thread drives
/// the store connections a new directory may need). Without a file (`demo`)
/// SIGHUP is logged and ignored rather than ending the process.
pub fn watch(
    rt: &tokio::runtime::Runtime,
    shared: SharedApp,
    path: Option<PathBuf>,
    backend: Arc<Backend>,
    certificate: Option<Arc<CertResolver>>,
) {
    // Registered now, before Pingora starts: SIGHUP's default action ends
    // the process.
    let hup = rt.block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) });
    let mut hup = match hup {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(event = "signal_handler_failed", signal = "SIGHUP", error = %e);
            return;
        }
    };
    rt.spawn(async move {
        while hup.recv().await.is_some() {
            match &path {
                Some(path) => {
                    tracing::info!(event = "config_reload_requested", path = %path.display());
                    reload_and_report(&shared, path, &backend, certificate.as_deref()).await;
                }
                None => tracing::warn!(
                    event = "config_reload_unavailable",
                    "SIGHUP: no configuration file to read"
                ),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Config {
        config_with("", extra)
    }

    /// `server_extra`: more keys of `server` (`, tls: {...}`).
    fn config_with(server_extra: &str, extra: &str) -> Config {
        let yaml = format!(
            r#"
server: {{ listen: "127.0.0.1:8080", metrics_listen: "", insecure_dev_cookies: true{server_extra} }}
upstream: {{ url: "http://127.0.0.1:9000" }}
entra: {{ tenant_id: "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa", client_id: "11111111-1111-4111-8111-111111111111" }}
portals:
  - {{ name: agent, kind: agent, url: "http://127.0.0.1:8080", branding: {{ title: "Old" }} }}
identity: {{ audience: app }}
{extra}
"#
        );
        Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn restart_only_settings_keep_their_running_values_and_are_named() {
        let running = config("");
        let mut new = config("");
        new.server.listen = "127.0.0.1:9999".into();
        new.server.threads = 7;
        new.upstream.address = "127.0.0.1:1".into();
        new.entra.tenant_id = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb".parse().unwrap();
        new.portals[0].branding.title = Some("New".into());
        let kept = keep_restart_only(&running, &mut new);
        assert_eq!(
            kept,
            [
                "server.listen",
                "server.threads",
                "upstream",
                "entra.cloud/tenant_type/tenant_id/authority_host/issuer_host"
            ]
        );
        assert_eq!(new.server.listen, "127.0.0.1:8080");
        assert_eq!(new.server.threads, running.server.threads);
        assert_eq!(new.upstream.address, running.upstream.address);
        assert_eq!(new.entra.tenant_id, running.entra.tenant_id);
        // What reloads is left as the file says.
        assert_eq!(new.portals[0].branding.title.as_deref(), Some("New"));
    }

    #[test]
    fn tls_on_or_off_needs_a_restart_but_new_certificate_files_apply() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, ka) = crate::tls::tests::write_pair(dir.path(), "a");
        let (cb, kb) = crate::tls::tests::write_pair(dir.path(), "b");
        let tls = |c: &std::path::Path, k: &std::path::Path| {
            let tls = format!(
                ", tls: {{ cert: {:?}, key: {:?} }}",
                c.display().to_string(),
                k.display().to_string()
            );
            config_with(&tls, "")
        };
        let fingerprint = |c: &Config| c.server.tls.as_ref().map(|t| t.pair.fingerprint().to_string());
        let (plain, on_a, on_b) = (config(""), tls(&ca, &ka), tls(&cb, &kb));

        let mut new = on_a.clone();
        assert_eq!(keep_restart_only(&plain, &mut new), ["server.tls"]);
        assert!(new.server.tls.is_none(), "turning TLS on waits for a restart");
        let mut new = plain.clone();
        assert_eq!(keep_restart_only(&on_a, &mut new), ["server.tls"]);
        assert_eq!(fingerprint(&new), fingerprint(&on_a), "turning it off too");

        let mut new = on_b.clone();
        assert!(keep_restart_only(&on_a, &mut new).is_empty());
        assert_eq!(fingerprint(&new), fingerprint(&on_b), "other files: the new pair");
        assert_ne!(fingerprint(&on_a), fingerprint(&on_b));
    }

    #[test]
    fn an_unchanged_file_needs_no_restart() {
        let running = config("");
        let mut new = config("");
        assert!(keep_restart_only(&running, &mut new).is_empty());
    }
}
