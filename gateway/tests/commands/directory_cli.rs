//! `entra-gateway directory import` / `directory list` against a real Redis:
//! counts, idempotence, all-or-nothing validation, exit codes.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_entra-gateway"))
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.yaml")
}

/// A free port below the kernel's ephemeral range (32768–60999): one from
/// that range, released, could become an outgoing connection's local port
/// before Redis binds it. Handed out once: two tests starting Redis at the
/// same time must not pick the same one.
fn free_port() -> u16 {
    use std::hash::{BuildHasher, RandomState};
    static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    for n in 0..1000u32 {
        let port = 20_000 + (RandomState::new().hash_one(n) % 12_000) as u16;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if !handed_out.contains(&port) && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return port;
        }
    }
    panic!("no free port in 20000-31999")
}

/// A throw-away `redis-server` without persistence, killed on drop.
struct Redis {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Redis {
    fn start() -> Redis {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (apt-get install redis-server; .ci/run does it)");
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "redis-server did not start");
            std::thread::sleep(Duration::from_millis(25));
        }
        Redis { child, port, _dir: dir }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The example configuration with a builtin directory in Redis on `port`.
fn config(dir: &Path, port: u16, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("  store: memory", "  store: redis")
        .replace("redis://127.0.0.1:6379/0", &format!("redis://127.0.0.1:{port}/0"))
        .replace("  kind: open", "  kind: builtin");
    let f = dir.join("gateway.yaml");
    std::fs::write(&f, edit(text)).unwrap();
    f
}

fn run(args: &[&str], config: &Path) -> Output {
    bin().args(args).arg("--config").arg(config).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn import(file: &Path, config: &Path) -> Output {
    bin()
        .args(["directory", "import"])
        .arg(file)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

const T1: &str = "11111111-1111-4111-8111-111111111111";

#[test]
fn import_is_idempotent_reports_changes_and_refuses_bad_files_whole() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), redis.port, |t| t);

    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        format!(
            "key,kind,email,tid,oid,name,client,disabled\n\
             carol,user,carol@contoso.com,,,Carol,contoso,\n\
             alice,agent,Alice@Contoso.com,{},A-OID,Alice,,no\n\
             bob,user,bob@fabrikam.com,,,\"Bob, B.\",,yes\n",
            T1.to_uppercase()
        ),
    )
    .unwrap();
    let out = stdout_ok(&import(&csv, &cfg));
    assert_eq!(
        out.trim(),
        format!("imported {}: 3 added, 0 updated, 0 unchanged", csv.display())
    );
    let out = stdout_ok(&import(&csv, &cfg));
    assert!(out.contains(": 0 added, 0 updated, 3 unchanged"), "{out}");

    // The same people as JSON, one of them renamed.
    let json = dir.path().join("users.json");
    std::fs::write(
        &json,
        format!(
            r#"[
  {{"key": "alice", "kind": "agent", "email": "Alice@Contoso.com", "tid": "{T1}", "oid": "A-OID", "name": "Alice"}},
  {{"key": "bob", "kind": "user", "email": "bob@fabrikam.com", "name": "Bob, B.", "disabled": true}},
  {{"key": "carol", "kind": "user", "email": "carol@contoso.com", "name": "Carol Jones", "client": "contoso"}}
]"#
        ),
    )
    .unwrap();
    let out = stdout_ok(&import(&json, &cfg));
    assert!(out.contains(": 0 added, 1 updated, 2 unchanged"), "{out}");

    // Two bad rows among good ones: both reported, nothing written.
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "key,kind,email,tid,oid,name,client,disabled\n\
         dave,user,dave@contoso.com,,,,,\n\
         erin,robot,erin@contoso.com,,,,,\n\
         carol,user,carol@contoso.com,,,Carol Renamed,,\n\
         frank,user,frank@contoso.com,x,o1,,,\n",
    )
    .unwrap();
    let before = stdout_ok(&run(&["directory", "list"], &cfg));
    let out = import(&bad, &cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("2 problem(s), nothing was imported"), "{err}");
    assert!(err.contains("row 3: kind \"robot\" is not agent or user"), "{err}");
    assert!(err.contains("row 5: tid \"x\" is not a GUID"), "{err}");
    assert_eq!(stdout_ok(&run(&["directory", "list"], &cfg)), before);

    // Sorted by key, every column, tenant ids lower-case.
    let lines: Vec<String> = before.lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        [
            "key\tkind\temail\ttid\toid\tname\tclient\tdisabled\ttwo_factor".to_string(),
            format!("alice\tagent\tAlice@Contoso.com\t{T1}\tA-OID\tAlice\t-\tfalse\tfalse"),
            "bob\tuser\tbob@fabrikam.com\t-\t-\tBob, B.\t-\ttrue\tfalse".to_string(),
            "carol\tuser\tcarol@contoso.com\t-\t-\tCarol Jones\tcontoso\tfalse\tfalse".to_string(),
        ]
    );
}

#[test]
fn an_email_held_by_a_record_outside_the_file_is_refused() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), redis.port, |t| t);
    let first = dir.path().join("first.csv");
    std::fs::write(&first, "key,kind,email\nann,user,ann@contoso.com\n").unwrap();
    stdout_ok(&import(&first, &cfg));
    let second = dir.path().join("second.csv");
    std::fs::write(
        &second,
        "key,kind,email\nbob,user,bob@contoso.com\nann2,user,ANN@contoso.com\n",
    )
    .unwrap();
    let out = import(&second, &cfg);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("already used by record \"ann\""),
        "{}",
        text(&out.stderr)
    );
    let list = stdout_ok(&run(&["directory", "list"], &cfg));
    assert_eq!(list.lines().count(), 2, "{list}");
}

#[test]
fn configuration_and_argument_errors_exit_2_runtime_errors_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let csv = dir.path().join("users.csv");
    std::fs::write(&csv, "key,kind\nann,user\n").unwrap();

    let open = config(dir.path(), port, |t| t.replace("  kind: builtin", "  kind: open"));
    for args in [
        &["directory", "list"][..],
        &["directory", "import", csv.to_str().unwrap()],
    ] {
        let out = run(args, &open);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("directory.kind"), "{}", text(&out.stderr));
    }

    let memory = config(dir.path(), port, |t| t.replace("  store: redis", "  store: memory"));
    let out = import(&csv, &memory);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("session.store"), "{}", text(&out.stderr));

    let cfg = config(dir.path(), port, |t| t);
    let txt = dir.path().join("users.txt");
    std::fs::write(&txt, "key,kind\nann,user\n").unwrap();
    let out = import(&txt, &cfg);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(".csv or .json"), "{}", text(&out.stderr));
    let out = import(&dir.path().join("missing.csv"), &cfg);
    assert_eq!(out.status.code(), Some(2));

    // Nothing listens on `port`: the store is down.
    let out = import(&csv, &cfg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = run(&["directory", "list"], &cfg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed with redis-server");
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).trim().to_string()
}

#[test]
fn a_directory_in_the_previous_layout_is_moved_into_the_hashes() {
    let redis = Redis::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), redis.port, |t| t);
    // As the version before the hashes left it: JSON values, a JSON key list
    // (naming one key whose record was never written), index values.
    let ann = format!(
        r#"{{"key":"ann","kind":"agent","email":"ann@contoso.com","tid":"{T1}","oid":"A-OID","name":"Ann","client":null,"disabled":false}}"#
    );
    redis_cli(redis.port, &["SET", "entra_gw:v:dir:u:ann", &ann]);
    redis_cli(redis.port, &["SET", "entra_gw:v:dir:email:ann@contoso.com", "ann"]);
    redis_cli(redis.port, &["SET", "entra_gw:v:dir:keys", r#"["ann","ghost"]"#]);

    let list = stdout_ok(&run(&["directory", "list"], &cfg));
    assert_eq!(
        list.lines().nth(1),
        Some(format!("ann\tagent\tann@contoso.com\t{T1}\tA-OID\tAnn\t-\tfalse\tfalse").as_str()),
        "{list}"
    );
    assert_eq!(list.lines().count(), 2, "{list}");
    assert_eq!(redis_cli(redis.port, &["HGET", "entra_gw:dir:{d}:users", "ann"]), ann);
    assert_eq!(
        redis_cli(redis.port, &["HGET", "entra_gw:dir:{d}:emails", "ann@contoso.com"]),
        "ann"
    );
    assert_eq!(
        redis_cli(redis.port, &["HGET", "entra_gw:dir:{d}:ids", &format!("{T1}:a-oid")]),
        "ann"
    );
    // Moved once: the legacy list is emptied, the legacy record kept.
    assert_eq!(redis_cli(redis.port, &["GET", "entra_gw:v:dir:keys"]), "[]");
    assert_eq!(redis_cli(redis.port, &["GET", "entra_gw:v:dir:u:ann"]), ann);

    // And the moved record is a record like any other: importing it again
    // changes nothing.
    let csv = dir.path().join("users.csv");
    std::fs::write(
        &csv,
        format!("key,kind,email,tid,oid,name\nann,agent,ann@contoso.com,{T1},A-OID,Ann\n"),
    )
    .unwrap();
    assert!(stdout_ok(&import(&csv, &cfg)).contains("0 added, 0 updated, 1 unchanged"));
}
