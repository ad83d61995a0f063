//! The binary as a user meets it: first run, config layers and errors, the database
//! guard, doctor, logging, HTTP endpoints and graceful shutdown.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[test]
fn version_flag_prints_the_version() {
    let out = command(std::path::Path::new("/nonexistent")).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("skynet-gateway {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn first_run_writes_the_defaults_prints_the_token_and_serves_health() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("fresh");
    // No token in the environment: the first run must generate one.
    let mut cmd = command(&home);
    cmd.args(["run", "--port", "0"]).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut reader = std::io::BufReader::new(stdout);
    let lines: Vec<String> = {
        use std::io::BufRead;
        (&mut reader).lines().take(4).map(Result::unwrap).collect()
    };
    let addr = lines[0].strip_prefix("skynet-gateway listening on http://").unwrap().to_string();
    let token = lines[2].strip_prefix("  Auth token: ").unwrap().to_string();

    let config = fs::read_to_string(home.join("skynet.toml")).unwrap();
    assert!(config.contains(&format!("auth_token = \"{token}\"")), "the printed token is the stored one");
    assert_eq!(token.len(), 64);
    assert_eq!(fs::metadata(home.join("skynet.toml")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(fs::metadata(home.join("skynet.db")).unwrap().permissions().mode() & 0o777, 0o600);
    for f in ["SOUL.md", "IDENTITY.md", "AGENTS.md", "USER.md", "TOOLS.md", "MEMORY.md", "BOOTSTRAP.md"] {
        assert!(home.join("workspace").join(f).is_file(), "{f}");
    }
    assert!(fs::read_dir(home.join("knowledge")).unwrap().count() >= 2);

    let (status, body) = http_get(&addr, "/health", &[]);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status, 200);
    assert_eq!((v["ok"].as_bool(), v["status"].as_str()), (Some(true), Some("live")));
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["uptimeMs"].is_u64());
    let (status, _) = http_get(&addr, "/healthz", &[]);
    assert_eq!(status, 200);
    let (status, body) = http_get(&addr, "/readyz", &[]);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!((status, v["ready"].as_bool()), (200, Some(true)));
    assert_eq!(v["checks"]["store"]["ok"], true);
    child.kill().unwrap();
    child.wait().unwrap();
    drop(reader);
}

#[test]
fn a_closed_stdout_does_not_stop_the_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = command(&tmp.path().join("h"));
    cmd.env("SKYNET_GATEWAY__AUTH_TOKEN", TOKEN).args(["run", "--port", "0"]);
    // Read the address from the log instead, with stdout closed from the start.
    cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take());
    let stderr = child.stderr.take().unwrap();
    let addr = {
        use std::io::BufRead;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split("local=").nth(1).map(|a| a.trim().to_string()))
            .expect("the listening address is logged")
    };
    assert_eq!(http_get(&addr, "/health", &[]).0, 200);
    assert!(child.try_wait().unwrap().is_none(), "still running");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_edited_prompt_survives_a_restart_and_a_deleted_one_comes_back() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    drop(Gateway::start_in(&home, &[], &[]).unwrap());
    fs::write(home.join("workspace/SOUL.md"), "my soul").unwrap();
    fs::remove_file(home.join("workspace/TOOLS.md")).unwrap();
    let _g = Gateway::start_in(&home, &[], &[]).unwrap();
    assert_eq!(fs::read_to_string(home.join("workspace/SOUL.md")).unwrap(), "my soul");
    assert!(home.join("workspace/TOOLS.md").is_file());
}

fn start_failure(home: &std::path::Path, env: &[(&str, &str)]) -> String {
    match Gateway::start_in(home, env, &[]) {
        Ok(_) => panic!("the gateway must refuse to start"),
        Err((_, stderr)) => stderr,
    }
}

#[test]
fn a_bad_config_file_is_refused_naming_file_key_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    fs::write(home.join("skynet.toml"), "[gateway]\nbind = \"127.0.0.1\"\nport = \"not a port\"\n").unwrap();
    let err = start_failure(home, &[]);
    assert!(err.contains(&format!("{} line 3", home.join("skynet.toml").display())), "{err}");
    assert!(err.contains("gateway.port"), "{err}");

    fs::write(home.join("skynet.toml"), "[gateway\nport = 1\n").unwrap();
    let err = start_failure(home, &[]);
    assert!(err.contains("line 1 is not valid TOML"), "{err}");

    fs::write(home.join("skynet.toml"), vec![0xff, 0xfe, 0x00, 0x01]).unwrap();
    let err = start_failure(home, &[]);
    assert!(err.contains("skynet.toml"), "{err}");
    assert!(!home.join("skynet.db").exists(), "nothing is started half-configured");
}

#[test]
fn environment_overrides_the_file_and_flags_override_both() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    fs::create_dir(&home).unwrap();
    fs::write(home.join("skynet.toml"), "[gateway]\nbind = \"127.0.0.3\"\n").unwrap();
    let g = Gateway::start_in(&home, &[("SKYNET_GATEWAY__BIND", "127.0.0.2")], &[]).unwrap();
    assert!(g.addr.starts_with("127.0.0.2:"), "{}", g.addr);
    drop(g);
    let g = Gateway::start_in(&home, &[("SKYNET_GATEWAY__BIND", "127.0.0.2")], &["--bind", "127.0.0.4"]).unwrap();
    assert!(g.addr.starts_with("127.0.0.4:"), "{}", g.addr);
    let err = start_failure(&home, &[("SKYNET_GATEWAY__PORT", "ninety")]);
    assert!(err.contains("environment variable SKYNET_GATEWAY__PORT"), "{err}");
}

#[test]
fn an_unusable_home_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    fs::write(&file, "").unwrap();
    let err = start_failure(&file.join("home"), &[]);
    assert!(err.contains("is not usable") && err.contains("SKYNET_HOME"), "{err}");
}

#[test]
fn a_database_from_a_newer_version_is_refused_and_not_modified() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    let db = home.join("skynet.db");
    rusqlite::Connection::open(&db).unwrap().execute_batch("CREATE TABLE x (y); PRAGMA user_version = 77;").unwrap();
    let before = fs::read(&db).unwrap();
    let err = start_failure(home, &[]);
    assert!(err.contains("newer Skynet") && err.contains("schema version 77"), "{err}");
    assert_eq!(fs::read(&db).unwrap(), before);

    let out = command(home).arg("doctor").output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(report.contains("FAIL database") && report.contains("newer Skynet"), "{report}");
    assert_eq!(fs::read(&db).unwrap(), before, "doctor does not touch it either");
}

#[test]
fn doctor_says_what_is_wrong_in_plain_words() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    drop(Gateway::start_in(&home, &[], &[]).unwrap());
    let out = command(&home).env("SKYNET_GATEWAY__AUTH_TOKEN", TOKEN).arg("doctor").output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("configuration loads") && report.contains("is intact"), "{report}");

    fs::set_permissions(home.join("skynet.toml"), fs::Permissions::from_mode(0o644)).unwrap();
    let text = fs::read_to_string(home.join("skynet.toml")).unwrap();
    fs::write(home.join("skynet.toml"), text.replace("tick_interval_ms = 30000", "tick_interval_ms = 5")).unwrap();
    let out = command(&home).arg("doctor").output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(report.contains("chmod 600"), "{report}");
    assert!(report.contains("gateway.tick_interval_ms") && report.contains("line"), "{report}");
    assert!(report.contains("2 problems found"), "{report}");
}

#[test]
fn json_log_format_writes_one_json_object_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Gateway::start_in(&tmp.path().join("h"), &[], &["--log-format", "json"]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let log = g.stderr();
    let lines: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).expect(l)).collect();
    assert!(lines.iter().any(|l| l["message"] == "gateway listening"), "{log}");
    assert!(lines.iter().all(|l| l["level"].is_string()));
}

#[test]
fn unknown_paths_get_a_json_404_and_root_describes_the_gateway() {
    let g = Gateway::start(&[]);
    let (status, body) = g.get("/nope");
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"], "not found");
    let (status, body) = g.get("/");
    assert_eq!(status, 200);
    assert!(body.contains("Skynet gateway"));
}

#[tokio::test]
async fn sigterm_announces_shutdown_closes_clients_checkpoints_and_exits_zero() {
    let mut g = Gateway::start(&[]);
    let (mut c, _) = Client::backend(&g, 3).await;
    assert_eq!(c.call("health", json!({})).await["ok"], true);
    g.signal("TERM");
    let ev = c.next_event("shutdown").await;
    assert_eq!(ev["payload"]["reason"], "gateway shutting down");
    assert_eq!(c.closed().await.0, Some(1012));
    let status = g.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "{}", g.stderr());
    let wal = g.home.join("skynet.db-wal");
    assert!(!wal.exists() || fs::metadata(&wal).unwrap().len() == 0, "WAL was checkpointed");
    assert!(g.stderr().contains("database checkpointed"));
    // The listener is gone.
    assert!(std::net::TcpStream::connect(&g.addr).is_err());
}

#[test]
fn sigint_stops_an_idle_gateway_with_exit_zero() {
    let mut g = Gateway::start(&[]);
    g.signal("INT");
    assert_eq!(g.wait_exit(Duration::from_secs(15)).code(), Some(0));
}
