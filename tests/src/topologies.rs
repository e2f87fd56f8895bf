//! Real Redis Cluster and Sentinel deployments on loopback ports, started by
//! the tests and killed on drop, with the operations a failover test needs.

use crate::processes::{free_port, redis_cli, spawn_redis};
use std::process::Child;
use std::time::{Duration, Instant};

struct Node {
    port: u16,
    child: Option<Child>,
}

impl Node {
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn wait_until(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "{what}: not after {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Blocks until every replica of the master on `port` has the master's whole
/// replication stream, so a failover now loses nothing that was written.
fn wait_replicated(port: u16) {
    wait_until("replicas caught up", Duration::from_secs(10), || {
        let info = redis_cli(port, &["info", "replication"]);
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let Some(master) = field("master_repl_offset:") else {
            return false;
        };
        let replicas: Vec<&str> = info.lines().filter(|l| l.starts_with("slave")).collect();
        !replicas.is_empty()
            && replicas
                .iter()
                .all(|l| l.contains("state=online") && l.contains(&format!("offset={master},")))
    });
}

/// Three masters and three replicas (`redis-server --cluster-enabled`,
/// `redis-cli --cluster create`), node timeout 2 s.
pub struct RedisCluster {
    nodes: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut nodes = Vec::new();
        for i in 0..6 {
            let port = free_port();
            // The bus port is chosen too: port + 10000 may be taken or > 65535.
            let bus = free_port();
            let node_dir = dir.path().join(i.to_string());
            std::fs::create_dir_all(&node_dir).unwrap();
            let child = spawn_redis(
                port,
                &[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-port",
                    &bus.to_string(),
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    "2000",
                ],
                &node_dir,
            );
            nodes.push(Node {
                port,
                child: Some(child),
            });
        }
        let addrs: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let mut args = vec!["--cluster", "create"];
        args.extend(addrs.iter().map(String::as_str));
        args.extend(["--cluster-replicas", "1", "--cluster-yes"]);
        redis_cli(nodes[0].port, &args);
        let cluster = RedisCluster { nodes, _dir: dir };
        cluster.wait_ok();
        cluster
    }

    /// `session.redis_url` as a YAML list of every node.
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port))
            .collect()
    }

    fn live_port(&self) -> u16 {
        self.nodes
            .iter()
            .find(|n| n.child.is_some())
            .map(|n| n.port)
            .expect("a live node")
    }

    fn wait_ok(&self) {
        wait_until("cluster_state:ok on every live node", Duration::from_secs(30), || {
            self.nodes
                .iter()
                .filter(|n| n.child.is_some())
                .all(|n| redis_cli(n.port, &["cluster", "info"]).contains("cluster_state:ok"))
        });
    }

    /// Port of the master serving `key` now.
    pub fn master_of(&self, key: &str) -> u16 {
        self.serving(key).unwrap_or_else(|| panic!("no master serves {key}"))
    }

    /// The master serving `key`, if one is up (not during a failover).
    fn serving(&self, key: &str) -> Option<u16> {
        let port = self.live_port();
        let slot: u16 = redis_cli(port, &["cluster", "keyslot", key]).parse().expect("slot");
        let nodes = redis_cli(port, &["cluster", "nodes"]);
        for line in nodes.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 9 || !f[2].contains("master") || f[2].contains("fail") {
                continue;
            }
            let covers = f[8..].iter().any(|r| match r.split_once('-') {
                Some((a, b)) => a.parse::<u16>().is_ok_and(|a| a <= slot) && b.parse::<u16>().is_ok_and(|b| slot <= b),
                None => r.parse::<u16>().is_ok_and(|s| s == slot),
            });
            if covers {
                let addr = f[1].split('@').next().unwrap();
                return addr.rsplit(':').next().unwrap().parse().ok();
            }
        }
        None
    }

    /// Kills the master serving `key` once its replica has every write, and
    /// waits until the replica has taken over and the cluster is whole again.
    /// Returns how long the takeover took.
    pub fn fail_over_master_of(&mut self, key: &str) -> Duration {
        let old = self.master_of(key);
        wait_replicated(old);
        let start = Instant::now();
        self.nodes.iter_mut().find(|n| n.port == old).unwrap().kill();
        wait_until("a replica took over", Duration::from_secs(30), || {
            self.serving(key).is_some_and(|now| now != old)
        });
        self.wait_ok();
        start.elapsed()
    }

    /// All keys (across the masters) that start with `prefix`.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let pattern = format!("{prefix}*");
        let port = self.live_port();
        let nodes = redis_cli(port, &["cluster", "nodes"]);
        let mut keys = Vec::new();
        for line in nodes.lines().filter(|l| l.contains("master") && !l.contains("fail")) {
            let addr = line.split_whitespace().nth(1).unwrap().split('@').next().unwrap();
            let p: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
            let out = redis_cli(p, &["--scan", "--pattern", &pattern]);
            keys.extend(out.lines().filter(|l| !l.is_empty()).map(String::from));
        }
        keys
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            n.kill();
        }
    }
}

/// A master, one replica and three sentinels watching them (quorum 2,
/// down-after 1 s).
pub struct RedisSentinels {
    pub master_name: String,
    servers: Vec<Node>,
    sentinels: Vec<Node>,
    _dir: tempfile::TempDir,
}

impl RedisSentinels {
    pub fn start() -> RedisSentinels {
        let dir = tempfile::tempdir().expect("tempdir");
        let master = free_port();
        let replica = free_port();
        let servers = vec![
            Node {
                port: master,
                child: Some(spawn_redis(master, &[], dir.path())),
            },
            Node {
                port: replica,
                child: Some(spawn_redis(
                    replica,
                    &["--replicaof", "127.0.0.1", &master.to_string()],
                    dir.path(),
                )),
            },
        ];
        let name = "gwmaster".to_string();
        let mut sentinels = Vec::new();
        for i in 0..3 {
            let port = free_port();
            // Sentinel rewrites its config file: each needs its own.
            let conf = dir.path().join(format!("sentinel-{i}.conf"));
            std::fs::write(
                &conf,
                format!(
                    "sentinel resolve-hostnames no\n\
                     sentinel monitor {name} 127.0.0.1 {master} 2\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 5000\n\
                     sentinel parallel-syncs {name} 1\n"
                ),
            )
            .unwrap();
            let conf = conf.display().to_string();
            let child = spawn_redis(port, &[&conf, "--sentinel"], dir.path());
            sentinels.push(Node {
                port,
                child: Some(child),
            });
        }
        let group = RedisSentinels {
            master_name: name,
            servers,
            sentinels,
            _dir: dir,
        };
        wait_until("sentinels see each other", Duration::from_secs(30), || {
            group.sentinels.iter().all(|s| {
                let info = redis_cli(s.port, &["sentinel", "master", &group.master_name]);
                let mut lines = info.lines();
                while let Some(l) = lines.next() {
                    if l == "num-other-sentinels" {
                        return lines.next() == Some("2");
                    }
                }
                false
            })
        });
        wait_until("replica linked", Duration::from_secs(30), || {
            redis_cli(replica, &["info", "replication"]).contains("master_link_status:up")
        });
        group
    }

    /// `redis+sentinel://` URL naming every sentinel and the master.
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        format!("redis+sentinel://{}/{}", hosts.join(","), self.master_name)
    }

    /// The master's port as the sentinels report it.
    pub fn master_port(&self) -> u16 {
        let s = self.sentinels[0].port;
        let out = redis_cli(s, &["sentinel", "get-master-addr-by-name", &self.master_name]);
        out.lines().nth(1).and_then(|p| p.parse().ok()).expect("master port")
    }

    /// Kills the master once the replica has every write; waits until the
    /// sentinels promoted the replica. Returns how long that took.
    pub fn kill_master(&mut self) -> Duration {
        let old = self.master_port();
        wait_replicated(old);
        let start = Instant::now();
        self.servers.iter_mut().find(|n| n.port == old).unwrap().kill();
        wait_until("sentinels promoted the replica", Duration::from_secs(30), || {
            let now = self.master_port();
            now != old && redis_cli(now, &["role"]).starts_with("master")
        });
        start.elapsed()
    }

    /// Keys starting with `prefix` on the current master.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        redis_cli(self.master_port(), &["--scan", "--pattern", &format!("{prefix}*")])
            .lines()
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect()
    }
}

impl Drop for RedisSentinels {
    fn drop(&mut self) {
        for n in self.sentinels.iter_mut().chain(self.servers.iter_mut()) {
            n.kill();
        }
    }
}

/// A standalone `redis-server` serving TLS only, with a certificate for
/// `localhost` and 127.0.0.1 issued by a throw-away CA.
pub struct TlsRedis {
    pub port: u16,
    /// The CA's certificate (PEM): what `SSL_CERT_FILE` must name to trust it.
    pub ca_file: std::path::PathBuf,
    node: Node,
    _dir: tempfile::TempDir,
}

impl TlsRedis {
    pub fn start() -> TlsRedis {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca_cert = ca_params.self_signed(&ca_key).unwrap();
        let ca = Issuer::new(ca_params, ca_key);
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(path("server.pem"), cert.pem()).unwrap();
        std::fs::write(path("server.key"), key.serialize_pem()).unwrap();
        let port = free_port();
        let (cert_file, key_file) = (
            path("server.pem").display().to_string(),
            path("server.key").display().to_string(),
        );
        let child = spawn_redis(
            port,
            &[
                "--port",
                "0",
                "--tls-port",
                &port.to_string(),
                "--tls-cert-file",
                &cert_file,
                "--tls-key-file",
                &key_file,
                "--tls-auth-clients",
                "no",
            ],
            dir.path(),
        );
        TlsRedis {
            port,
            ca_file: path("ca.pem"),
            node: Node {
                port,
                child: Some(child),
            },
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("rediss://localhost:{}/0", self.port)
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        self.node.kill();
    }
}
