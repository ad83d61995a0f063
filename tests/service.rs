//! `service` and `health` through the real binary. The generated unit is checked by
//! systemd's own `systemd-analyze verify` and the plist by Python's plistlib; install and
//! the lifecycle commands run against a `systemctl` stand-in first on PATH that records
//! its arguments (this machine runs no systemd), with the user config dir in a temp dir.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

struct Sandbox {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    /// The binary, copied to a path with a space and a percent sign.
    exe: PathBuf,
}

impl Sandbox {
    fn new() -> Sandbox {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        let dir = root.join("my apps 100%");
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("skynet-gateway");
        std::fs::copy(BIN, &exe).unwrap();
        std::fs::create_dir_all(root.join("bin")).unwrap();
        Sandbox { _tmp: tmp, root, exe }
    }

    /// A `systemctl` that logs its arguments and exits with $FAKE_STATUS for `status`.
    fn fake_systemctl(&self) {
        let script = format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\n[ \"$2\" = status ] && exit \"${{FAKE_STATUS:-0}}\"\nexit 0\n",
            self.log().display()
        );
        let path = self.root.join("bin/systemctl");
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn log(&self) -> PathBuf {
        self.root.join("systemctl.log")
    }

    fn calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.log()).unwrap_or_default().lines().map(str::to_string).collect()
    }

    fn unit_path(&self) -> PathBuf {
        self.root.join("cfg/systemd/user/skynet-gateway.service")
    }

    /// Runs the copy (so the unit names a path with a space and a percent sign) with a
    /// clean SKYNET_* environment and the sandbox's HOME, config dir and PATH.
    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(&self.exe);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("SKYNET_") || k == "SUDO_USER") {
            cmd.env_remove(k);
        }
        cmd.env("SKYNET_HOME", self.root.join("home"))
            .env("XDG_CONFIG_HOME", self.root.join("cfg"))
            .env("HOME", &self.root)
            .env("PATH", format!("{}:/usr/bin:/bin", self.root.join("bin").display()))
            .env("USER", "ann")
            .envs(env.iter().copied())
            .args(args);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        spawn_retrying(&mut cmd).wait_with_output().unwrap()
    }
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn dry_run_prints_a_unit_that_systemd_verifies_and_installs_nothing() {
    let s = Sandbox::new();
    let out = s.run(&["service", "install", "--dry-run"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let exe = s.exe.to_string_lossy().replace('%', "%%");
    assert!(stdout.contains(&format!("ExecStart=\"{exe}\" run\n")), "{stdout}");
    let home = s.root.join("home").to_string_lossy().into_owned();
    assert!(stdout.contains(&format!("Environment=\"SKYNET_HOME={home}\"")), "{stdout}");
    assert!(stdout.contains("Restart=on-failure") && stdout.contains("WantedBy=default.target"), "{stdout}");
    assert!(stderr.contains(&s.unit_path().display().to_string()), "says where it would go: {stderr}");
    assert!(!s.unit_path().exists() && !s.root.join("home").exists(), "nothing written");

    let dir = s.root.join("verify");
    std::fs::create_dir_all(&dir).unwrap();
    let unit = dir.join("skynet-gateway.service");
    std::fs::write(&unit, &stdout).unwrap();
    match Command::new("systemd-analyze").arg("verify").arg(&unit).output() {
        Ok(v) => {
            let (o, e) = text(&v);
            assert!(v.status.success() && !e.contains("skynet-gateway"), "systemd-analyze verify:\n{o}\n{e}");
        }
        Err(_) => eprintln!("systemd-analyze is not installed; the unit was not verified by systemd"),
    }
}

#[test]
fn a_system_unit_runs_as_the_invoking_user_at_boot() {
    let s = Sandbox::new();
    let out = s.run(&["service", "install", "--system", "--dry-run"], &[("SUDO_USER", "bob")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("\nUser=bob\n") && stdout.contains("WantedBy=multi-user.target"), "{stdout}");
    assert!(stderr.contains("/etc/systemd/system/skynet-gateway.service"), "{stderr}");
}

#[test]
fn the_launchd_plist_is_valid_and_restarts_only_after_a_crash() {
    let s = Sandbox::new();
    let out = s.run(&["service", "install", "--dry-run"], &[("SKYNET_SERVICE_MANAGER", "launchd")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Library/LaunchAgents/ai.skynet.gateway.plist"), "{stderr}");
    let plist = s.root.join("p.plist");
    std::fs::write(&plist, &stdout).unwrap();
    let check = Command::new("python3")
        .arg("-c")
        .arg(
            "import json, plistlib, sys; p = plistlib.load(open(sys.argv[1], 'rb')); \
             print(json.dumps([p['Label'], p['ProgramArguments'], p['KeepAlive'], p['EnvironmentVariables']]))",
        )
        .arg(&plist)
        .output()
        .unwrap();
    let (o, e) = text(&check);
    assert!(check.status.success(), "plistlib rejected it: {e}\n{stdout}");
    let parsed: serde_json::Value = serde_json::from_str(&o).unwrap();
    assert_eq!(parsed[0], "ai.skynet.gateway");
    assert_eq!(parsed[1], serde_json::json!([s.exe.to_string_lossy(), "run"]));
    assert_eq!(parsed[2], serde_json::json!({"SuccessfulExit": false}));
    assert_eq!(parsed[3]["SKYNET_HOME"], s.root.join("home").to_string_lossy().as_ref());
}

#[test]
fn install_status_restart_and_uninstall_drive_systemctl() {
    let s = Sandbox::new();
    s.fake_systemctl();
    let out = s.run(&["service", "install"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("journalctl --user -u skynet-gateway") && stdout.contains("enable-linger ann"), "{stdout}");
    let unit = std::fs::read_to_string(s.unit_path()).unwrap();
    assert!(unit.contains("Restart=on-failure"), "{unit}");
    let unit_path = s.unit_path().display().to_string();
    assert_eq!(
        s.calls(),
        [format!("--user enable {unit_path}"), "--user daemon-reload".into(), "--user start skynet-gateway".into()]
    );

    let out = s.run(&["service", "status"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out).0.contains("installed and running"));
    let out = s.run(&["service", "status"], &[("FAKE_STATUS", "3")]);
    assert_eq!(out.status.code(), Some(3), "LSB: stopped");
    assert!(text(&out).0.contains("not running"));

    std::fs::remove_file(s.log()).unwrap();
    assert!(s.run(&["service", "restart"], &[]).status.success());
    assert_eq!(s.calls(), ["--user stop skynet-gateway", "--user start skynet-gateway"]);

    std::fs::remove_file(s.log()).unwrap();
    let out = s.run(&["service", "uninstall"], &[]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(!s.unit_path().exists(), "unit removed");
    assert_eq!(
        s.calls(),
        [
            "--user stop skynet-gateway".to_string(),
            format!("--user disable {unit_path}"),
            "--user daemon-reload".into()
        ]
    );
    let out = s.run(&["service", "start"], &[]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("not installed: run `skynet-gateway service install` first"), "{:?}", text(&out));
}

#[test]
fn without_systemctl_the_error_says_what_to_do_instead() {
    let s = Sandbox::new();
    let out = s.run(&["service", "install"], &[("PATH", s.root.join("bin").to_str().unwrap())]);
    assert!(!out.status.success());
    let (_, stderr) = text(&out);
    assert!(stderr.contains("`systemctl` was not found") && stderr.contains("skynet-gateway run"), "{stderr}");
    assert!(!s.unit_path().exists());
}

#[test]
fn health_exits_zero_only_when_the_gateway_answers() {
    let g = Gateway::start(&[]);
    let url = format!("http://{}/health", g.addr);
    let out = command(&g.home).args(["health", "--url", &url]).output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    assert!(text(&out).0.starts_with("healthy: {") && text(&out).0.contains("\"ok\":true"), "{:?}", text(&out));
    // Without --url it reads the port from the configuration.
    let port = g.port().to_string();
    let out = command(&g.home).env("SKYNET_GATEWAY__PORT", &port).arg("health").output().unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    let out = command(&g.home).args(["health", "--url", &format!("http://{}/nope", g.addr)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a 404 is unhealthy");
    drop(g);
    let out = command(Path::new("/nonexistent")).args(["health", "--url", &url]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("nothing answers"), "{:?}", text(&out));
}
