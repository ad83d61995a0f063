//! Clients nobody here wrote: the published `openclaw-node` SDK, 0.1.0 (protocol 3) and
//! 0.14.0 (protocol 4), connect to the real gateway, call `health` and `status`, and are
//! refused with a wrong token. Needs Node >= 22 and `tests/clients/node_modules`;
//! `tests/setup-clients.sh` provides both (tests/run.sh calls it).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use serde_json::Value;

fn clients_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// The Node binary: $SKYNET_TEST_NODE, else the one setup-clients.sh unpacked, else `node`.
fn node() -> PathBuf {
    let local = clients_dir().join(".node/bin/node");
    let node = std::env::var_os("SKYNET_TEST_NODE").map(PathBuf::from).unwrap_or(if local.exists() {
        local
    } else {
        PathBuf::from("node")
    });
    let version = Command::new(&node).arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).to_string());
    let major: u32 = version
        .as_deref()
        .ok()
        .and_then(|v| v.trim().trim_start_matches('v').split('.').next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 22,
        "these tests need Node >= 22 (found {version:?} at {}); run tests/setup-clients.sh first",
        node.display()
    );
    assert!(
        clients_dir().join("node_modules/ocn3").exists() && clients_dir().join("node_modules/ocn4").exists(),
        "the openclaw-node packages are missing; run tests/setup-clients.sh first"
    );
    node
}

fn check(g: &Gateway, lib: &str, token: &str, expect: &str, extra: &[&str]) -> Value {
    let out = Command::new(node())
        .arg(clients_dir().join("openclaw_check.mjs"))
        .args(["--lib", lib, "--url", &g.ws_url(), "--token", token, "--expect", expect])
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().last().unwrap_or_default();
    let v: Value = serde_json::from_str(line).unwrap_or_else(|_| {
        panic!("no JSON result from the client:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr))
    });
    assert!(out.status.success(), "openclaw-node {lib} expected {expect}: {v}");
    v
}

#[test]
fn openclaw_node_v3_connects_calls_health_and_status() {
    let g = Gateway::start(&[]);
    let v = check(&g, "v3", TOKEN, "ok", &[]);
    assert_eq!(v["protocol"], 3);
    assert_eq!(v["health"]["ok"], true);
    assert!(v["statusKeys"].as_array().unwrap().iter().any(|k| k == "runtimeVersion"));
}

#[test]
fn openclaw_node_v4_connects_calls_health_and_status() {
    let g = Gateway::start(&[]);
    let v = check(&g, "v4", TOKEN, "ok", &[]);
    assert_eq!(v["protocol"], 4);
    assert_eq!(v["health"]["ok"], true);
}

#[test]
fn openclaw_node_v4_reconnects_with_the_device_token_it_was_issued() {
    let g = Gateway::start(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let identity = tmp.path().join("identity.json");
    let identity = identity.to_str().unwrap();
    let first = check(&g, "v4", TOKEN, "ok", &["--identity", identity]);
    assert_eq!(first["deviceTokenIssued"], true);
    // The SDK now presents the saved device token instead of the gateway token.
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(identity).unwrap()).unwrap();
    assert!(saved["deviceToken"].is_string(), "{saved}");
    let second = check(&g, "v4", TOKEN, "ok", &["--identity", identity]);
    assert_eq!(second["health"]["ok"], true);
    // Gateway-token logins always get a fresh device token; this one authenticated with the
    // device token, so none was issued.
    assert_eq!(second["deviceTokenIssued"], false, "{second}");
}

#[test]
fn openclaw_node_v3_and_v4_are_refused_with_a_wrong_token() {
    let g = Gateway::start(&[]);
    for lib in ["v3", "v4"] {
        let v = check(&g, lib, "definitely-the-wrong-token", "refused", &[]);
        assert_eq!(v["connectError"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
        assert_eq!(v["closeCode"], 1008);
    }
}
