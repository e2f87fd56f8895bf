//! The command line: exit codes and what check-config prints.

use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_entra-gateway"))
}

fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config.example.yaml")
}

#[test]
fn check_config_passes_on_the_example_and_prints_what_to_register() {
    let out = bin()
        .arg("check-config")
        .arg("--config")
        .arg(example())
        .env_remove("ENTRA_CLIENT_SECRET")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for expected in [
        "authority:       https://login.microsoftonline.com/aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa",
        "discovery URL:   https://login.microsoftonline.com/aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa/v2.0/.well-known/openid-configuration",
        "redirect URI:             https://halo.example.com/auth/account/azureresponse",
        "redirect URI:             https://halo.example.com/portal/auth/account/azureresponse",
        "front-channel logout URL: https://halo.example.com/auth/account/frontchannel-logout",
        "redirect URI:             https://halo.example.com/portal/auth/logged-out   (post-logout redirect URI)",
        "xms_edov",
        "ID tokens (implicit and hybrid flows): on",
    ] {
        assert!(stdout.contains(expected), "missing {expected:?} in\n{stdout}");
    }
    // An App Registration holds exactly one front-channel logout URL.
    assert_eq!(stdout.matches("front-channel logout URL").count(), 1, "{stdout}");
}

#[test]
fn app_registration_prints_the_manifest_and_keys_generate_a_usable_key() {
    let out = bin()
        .args(["app-registration", "--format", "json", "--config"])
        .arg(example())
        .env_remove("ENTRA_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        manifest["web"]["logoutUrl"],
        "https://halo.example.com/auth/account/frontchannel-logout"
    );
    assert_eq!(manifest["web"]["implicitGrantSettings"]["enableIdTokenIssuance"], true);
    let script = bin()
        .args(["app-registration", "--config"])
        .arg(example())
        .env_remove("ENTRA_CLIENT_SECRET")
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&script.stdout);
    assert!(script.starts_with("#!/usr/bin/env bash"), "{script}");
    assert!(script.contains("az rest --method PATCH"), "{script}");

    let key = bin().args(["keys", "generate"]).output().unwrap();
    assert!(key.status.success());
    let pem = String::from_utf8(key.stdout).unwrap();
    assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
    let again = bin().args(["keys", "generate"]).output().unwrap();
    assert_ne!(pem.as_bytes(), again.stdout.as_slice(), "a new key each time");
}

#[test]
fn check_config_reports_every_error_with_its_key_path_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        r#"
server: { listen: "nowhere", bogus: 1 }
upstream: { url: "ftp://x" }
entra: { tenant_id: "not-a-guid", client_id: "11111111-1111-4111-8111-111111111111", clock_skew: "5 minutes",
         sign_in_scope: all, client_secret: "${SURELY_UNSET_VARIABLE_XYZ}" }
sso: { match_by: name }
portals: [ { name: "bad name!", kind: robot, url: "http://halo.example.com" } ]
session: { store: redis, idle_timeout: "48h", absolute_timeout: "24h" }
identity: { audience: "" }
unknown_top: true
"#,
    )
    .unwrap();
    let out = bin().arg("check-config").arg("--config").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in [
        "server.listen:",
        "server.bogus: unknown key",
        "upstream.url:",
        "entra.tenant_id:",
        "entra.clock_skew:",
        "entra.sign_in_scope: only applies to entra.tenant_type: multi",
        "entra.client_secret: environment variable SURELY_UNSET_VARIABLE_XYZ is not set",
        "sso.match_by:",
        "portals[0].name:",
        "portals[0].kind:",
        "portals[0].url: must be https",
        "session.redis_url: required",
        "session.idle_timeout: must not exceed",
        "identity.audience:",
        "unknown_top: unknown key",
    ] {
        assert!(err.contains(path), "missing {path:?} in\n{err}");
    }
}

#[test]
fn unreadable_or_unparsable_files_exit_2() {
    let out = bin()
        .args(["check-config", "--config", "/nonexistent/x.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.yaml");
    std::fs::write(&f, "server: [unclosed").unwrap();
    let out = bin().arg("check-config").arg("--config").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // A syntax error names the file, with the line and column.
    std::fs::write(&f, "server:\n  listen: \"a\n").unwrap();
    let out = bin().arg("check-config").arg("--config").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:", f.display())), "{err}");
    assert!(!err.contains("<input>"), "{err}");
}

#[test]
fn an_unknown_key_gets_the_nearest_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("typos.yaml");
    let example = std::fs::read_to_string(example()).unwrap();
    let typos = example
        .replace("  trusted_proxies:", "  trusted_proxy:")
        .replace("\nsession:", "\nsesion:")
        .replace("server:", "server:\n  zzz_nothing_like_it: 1");
    std::fs::write(&f, typos).unwrap();
    let out = bin().arg("check-config").arg("--config").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "server.trusted_proxy: unknown key (did you mean `trusted_proxies`?)",
        "sesion: unknown key (did you mean `session`?)",
        "server.zzz_nothing_like_it: unknown key\n",
    ] {
        assert!(err.contains(want), "missing {want:?} in\n{err}");
    }
}

/// 2FA without its key would have nowhere safe to keep TOTP secrets: a
/// configuration error (exit 2) for `run` and `check-config` alike, and a
/// short key is refused too.
#[test]
fn two_factor_needs_an_encryption_key() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("2fa.yaml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("required_for: nobody", "required_for: everyone");
    std::fs::write(&f, &text).unwrap();
    for cmd in ["run", "check-config"] {
        let out = bin().arg(cmd).arg("--config").arg(&f).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {stderr}");
        assert!(
            stderr.contains("two_factor.encryption_key: required"),
            "{cmd}: {stderr}"
        );
    }
    std::fs::write(
        &f,
        text.replace("  encryption_key: \"\"", "  encryption_key: \"short\""),
    )
    .unwrap();
    let out = bin().arg("check-config").arg("--config").arg(&f).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("two_factor.encryption_key: too short"), "{stderr}");
    // With a key from a file it is accepted.
    let key = dir.path().join("totp.key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef0123\n").unwrap();
    std::fs::write(
        &f,
        text.replace(
            "  encryption_key_file: \"\"",
            &format!("  encryption_key_file: {key:?}"),
        ),
    )
    .unwrap();
    let out = bin().arg("check-config").arg("--config").arg(&f).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_config_prints_the_clouds_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("china.yaml");
    let text = std::fs::read_to_string(example())
        .unwrap()
        .replace("cloud: global", "cloud: china");
    std::fs::write(&f, text).unwrap();
    let out = bin().arg("check-config").arg("--config").arg(&f).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let hosts = "cloud:           china (login https://login.chinacloudapi.cn, \
                 issuer https://login.partner.microsoftonline.cn, graph https://microsoftgraph.chinacloudapi.cn)";
    assert!(stdout.contains(hosts), "{stdout}");
    assert!(stdout.contains("authority:       https://login.chinacloudapi.cn/aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"));
}

#[test]
fn config_file_may_come_from_the_environment() {
    let out = bin()
        .arg("check-config")
        .env("ENTRA_GATEWAY_CONFIG", example())
        .output()
        .unwrap();
    assert!(out.status.success());
}
