//! Real processes the tests start and always stop: the gateway binary and
//! throw-away `redis-server` instances on free loopback ports.

use crate::config::to_yaml;
use serde_json::Value;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port, bound then released, picked below the kernel's
/// ephemeral range (32768–60999 by default). Everything else the tests
/// start binds port 0 (the mock Entra, the app, Redis) and every outgoing
/// connection gets a local port from that range: picked from it, a released
/// port could be taken by one of those before the gateway binds it.
///
/// A port is handed out once per process: between the pick and the bind
/// (a gateway boots for a second or so) the port is free, and a second pick
/// of it (the same harness' metrics port, another test's) would collide.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Random per call and per process (tests run in several processes).
        let r = RandomState::new().hash_one((n, std::process::id()));
        let port = 20_000 + (r % 12_000) as u16;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.contains(&port) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free port in 20000-31999");
}

/// `target/<profile>/entra-gateway`, next to this test's `deps/` directory.
pub fn gateway_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join("entra-gateway");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace` (it builds the gateway binary)",
        bin.display()
    );
    bin
}

fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    false
}

/// Starts `redis-server` (no persistence, loopback, data in `dir`) with
/// `extra` arguments (a config file first, then options) and waits for its port.
pub(crate) fn spawn_redis(port: u16, extra: &[&str], dir: &std::path::Path) -> Child {
    let mut cmd = Command::new("redis-server");
    // A config file must come first on redis-server's command line.
    let (file, options) = match extra.first() {
        Some(f) if !f.starts_with("--") => (Some(*f), &extra[1..]),
        _ => (None, extra),
    };
    cmd.args(file);
    cmd.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
    ])
    .arg("--dir")
    .arg(dir)
    .args(options)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    let child = cmd
        .spawn()
        .expect("redis-server is installed (apt-get install redis-server; .ci/run does it)");
    assert!(
        wait_for_port(port, Duration::from_secs(10)),
        "redis-server did not start on {port}"
    );
    child
}

/// `redis-cli -p <port> <args>`, its output trimmed.
pub fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `redis-server` with no persistence, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    /// The options it was started with (kept for [`RedisServer::restart`]).
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        Self::start_on(free_port())
    }

    /// A server with extra options (e.g. `["--requirepass", "pw"]`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let port = free_port();
        let dir = tempfile::tempdir().expect("tempdir");
        let child = spawn_redis(port, extra, dir.path());
        RedisServer {
            child: Some(child),
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            dir,
        }
    }

    pub fn start_on(port: u16) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let child = spawn_redis(port, &[], dir.path());
        RedisServer {
            child: Some(child),
            port,
            extra: Vec::new(),
            dir,
        }
    }

    /// Kills it (SIGKILL: no shutdown save) and starts it again on the same
    /// port, options and data directory (with `--appendonly yes`, what
    /// was written survives).
    pub fn restart(&mut self) {
        self.stop();
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = Some(spawn_redis(self.port, &extra, self.dir.path()));
    }

    /// SIGSTOP: the port stays open, nothing answers (a hung server).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`RedisServer::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            let ok = Command::new("kill")
                .args([sig, &c.id().to_string()])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "kill {sig} redis-server");
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs `redis-cli` against this server and returns its output.
    pub fn cli(&self, args: &[&str]) -> String {
        redis_cli(self.port, args)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The real gateway binary, started with a config file, killed on drop.
pub struct GatewayProcess {
    child: Option<Child>,
    pub port: u16,
    pub metrics_port: u16,
    pub log: PathBuf,
    /// The main listener speaks TLS (`server.tls`): health is asked over https.
    tls: bool,
    dir: tempfile::TempDir,
}

impl GatewayProcess {
    pub async fn start(config: &Value, port: u16, metrics_port: u16) -> GatewayProcess {
        Self::start_with_env(config, port, metrics_port, &[]).await
    }

    /// With extra environment variables (e.g. `SSL_CERT_FILE` for a private CA).
    pub async fn start_with_env(
        config: &Value,
        port: u16,
        metrics_port: u16,
        env: &[(String, String)],
    ) -> GatewayProcess {
        Self::start_wrapped(config, port, metrics_port, env, None).await
    }

    /// Run under `wrap`: the gateway's command line is appended to it
    /// (e.g. `unshare -rm sh -c '... && exec "$@"' sh`, which execs the
    /// gateway in place: the process signalled and killed is the gateway).
    pub async fn start_wrapped(
        config: &Value,
        port: u16,
        metrics_port: u16,
        env: &[(String, String)],
        wrap: Option<&[String]>,
    ) -> GatewayProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("gateway.yaml");
        std::fs::write(&file, to_yaml(config)).expect("write config");
        let args = vec!["run".to_string(), "--config".to_string(), file.display().to_string()];
        let tls = config["server"]["tls"].is_object();
        Self::launch(args, env, wrap, tls, port, metrics_port, dir).await
    }

    /// `entra-gateway demo --listen 127.0.0.1:<port>`.
    pub async fn demo(port: u16) -> GatewayProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let args = vec!["demo".to_string(), "--listen".to_string(), format!("127.0.0.1:{port}")];
        Self::launch(args, &[], None, false, port, 0, dir).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn launch(
        args: Vec<String>,
        env: &[(String, String)],
        wrap: Option<&[String]>,
        tls: bool,
        port: u16,
        metrics_port: u16,
        dir: tempfile::TempDir,
    ) -> GatewayProcess {
        let log = dir.path().join("gateway.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = match wrap {
            Some([program, rest @ ..]) => {
                let mut c = Command::new(program);
                c.args(rest).arg(gateway_bin());
                c
            }
            _ => Command::new(gateway_bin()),
        };
        let child = command
            .args(&args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("gateway starts");
        let mut g = GatewayProcess {
            child: Some(child),
            port,
            metrics_port,
            log,
            tls,
            dir,
        };
        g.wait_healthy().await;
        g
    }

    async fn wait_healthy(&mut self) {
        let start = Instant::now();
        let scheme = if self.tls { "https" } else { "http" };
        let url = format!("{scheme}://127.0.0.1:{}/.well-known/entra-gateway/healthz", self.port);
        // Only "is it up": which certificate it serves is the test's to check.
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(self.tls)
            .build()
            .expect("client");
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("gateway exited with {status}:\n{}", self.logs());
            }
            if let Ok(r) = client.get(&url).send().await
                && r.status().is_success()
                && self.metrics_listening().await
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("gateway not healthy after 30 s:\n{}", self.logs());
    }

    /// The operator listener is a service of its own: on a busy machine it
    /// can start a moment after the proxy's listener answers healthz.
    async fn metrics_listening(&self) -> bool {
        self.metrics_port == 0
            || tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port))
                .await
                .is_ok()
    }

    /// The file the gateway was started with (a test rewrites it before SIGHUP).
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("gateway.yaml")
    }

    /// Sends a signal (`-TERM`, `-HUP`) to the gateway process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} gateway");
    }

    /// Waits for the process to exit; None if it is still running at `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < within {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    /// Resident memory of the gateway process, from /proc (KiB).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("running").id();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("proc status")
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
