//! `skynet-gateway update` against a fake GitHub Releases server on loopback. Every test
//! runs a copy of the real binary in a temporary directory, so the build artifact is never
//! the one replaced.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::fake_github::{self, FakeGitHub, asset_name, fake_binary, sums, tarball};
use common::{BIN, Gateway, spawn_retrying};

/// A copy of the real binary in `<tmp>/bin/skynet-gateway`, with its own home.
struct Installed {
    tmp: tempfile::TempDir,
    exe: PathBuf,
    original: Vec<u8>,
}

impl Installed {
    fn new() -> Installed {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("bin")).unwrap();
        let exe = tmp.path().join("bin/skynet-gateway");
        fs::copy(BIN, &exe).unwrap();
        let original = fs::read(&exe).unwrap();
        Installed { tmp, exe, original }
    }

    fn bak(&self) -> PathBuf {
        self.tmp.path().join("bin/skynet-gateway.bak")
    }

    /// Runs the copy with `SKYNET_UPDATE__API_URL` pointing at `api`, stdin closed, and
    /// the install mode forced to a plain binary (this may run in a container).
    fn run(&self, api: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(&self.exe);
        for (k, _) in std::env::vars() {
            if k.starts_with("SKYNET_") || k == "RUST_LOG" || k == "GH_TOKEN" || k == "GITHUB_TOKEN" {
                cmd.env_remove(k);
            }
        }
        cmd.env("SKYNET_HOME", self.tmp.path().join("home"))
            .env("SKYNET_UPDATE__API_URL", api)
            .env("SKYNET_UPDATE__REPO", format!("{}/{}", fake_github::OWNER, fake_github::REPO))
            .env("SKYNET_INSTALL_MODE", "binary")
            .envs(env.iter().copied())
            .arg("update")
            .args(args);
        run_with_deadline(cmd)
    }

    /// The bin directory holds exactly these names (no temporary files left behind).
    fn assert_bin_dir(&self, names: &[&str]) {
        let mut found: Vec<String> = fs::read_dir(self.tmp.path().join("bin"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        found.sort();
        assert_eq!(found, names);
    }

    fn assert_unchanged(&self) {
        assert!(fs::read(&self.exe).unwrap() == self.original, "the installed binary changed");
        self.assert_bin_dir(&["skynet-gateway"]);
    }
}

fn run_with_deadline(mut cmd: Command) -> Output {
    let mut child = spawn_retrying(cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("update did not finish within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Release v9.9.9 with this platform's asset holding `binary`, and SHA256SUMS.
fn release_of(binary: &[u8]) -> FakeGitHub {
    let tgz = tarball(binary);
    let sums = sums(&[(&asset_name(), &tgz)]);
    FakeGitHub::start("v9.9.9", vec![(asset_name(), tgz), ("SHA256SUMS".into(), sums)])
}

#[test]
fn check_reports_the_newer_release_and_changes_nothing() {
    let server = release_of(&fake_binary("9.9.9"));
    let app = Installed::new();
    let out = app.run(&server.api_url(), &["--check"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("Installed: skynet-gateway {}", env!("CARGO_PKG_VERSION"))), "{stdout}");
    assert!(stdout.contains("Latest:    skynet-gateway 9.9.9"), "{stdout}");
    assert!(stdout.contains("An update is available"), "{stdout}");
    app.assert_unchanged();
    let requests = server.requests();
    assert_eq!(requests, [format!("GET /repos/{}/{}/releases/latest", fake_github::OWNER, fake_github::REPO)]);
}

#[test]
fn check_says_up_to_date_when_the_latest_release_is_this_version() {
    let tgz = tarball(&fake_binary(env!("CARGO_PKG_VERSION")));
    let server = FakeGitHub::start(&format!("v{}", env!("CARGO_PKG_VERSION")), vec![(asset_name(), tgz)]);
    let app = Installed::new();
    for args in [&["--check"][..], &["--yes"][..]] {
        let out = app.run(&server.api_url(), args, &[]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("up to date"), "{stdout}");
    }
    app.assert_unchanged();
}

#[test]
fn update_yes_swaps_the_binary_and_keeps_the_old_one_as_bak() {
    let new = fake_binary("9.9.9");
    let server = release_of(&new);
    let app = Installed::new();
    let out = app.run(&server.api_url(), &["--yes"], &[("INVOCATION_ID", "")]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Updated to skynet-gateway 9.9.9"), "{stdout}");
    assert!(stdout.contains("skynet-gateway.bak") && stdout.contains("--rollback"), "{stdout}");
    assert!(stdout.contains("Restart the gateway to use the new version."), "{stdout}");

    assert_eq!(fs::read(&app.exe).unwrap(), new, "the new binary is in place");
    assert!(fs::read(app.bak()).unwrap() == app.original, "the .bak is the old binary, byte for byte");
    let version = Command::new(&app.exe).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "skynet-gateway 9.9.9");
    app.assert_bin_dir(&["skynet-gateway", "skynet-gateway.bak"]);
    // The asset came from its API url with Accept: application/octet-stream, then the redirect.
    let requests = server.requests();
    assert!(requests.iter().any(|r| r.contains("/releases/assets/1")), "{requests:?}");
    assert!(requests.iter().any(|r| r.ends_with(&format!("/releases/download/v9.9.9/{}", asset_name()))));
}

#[test]
fn rollback_puts_the_kept_binary_back() {
    let app = Installed::new();
    let older = fake_binary("0.0.9");
    fs::write(app.bak(), &older).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(app.bak(), fs::Permissions::from_mode(0o755)).unwrap();

    // Installed as a user service: the rollback restarts it through systemctl (a stand-in
    // that records its calls; this machine runs no systemd).
    let sys = tempfile::tempdir().unwrap();
    let unit_dir = sys.path().join("config/systemd/user");
    fs::create_dir_all(&unit_dir).unwrap();
    fs::write(unit_dir.join("skynet-gateway.service"), "[Service]\n").unwrap();
    fs::create_dir_all(sys.path().join("bin")).unwrap();
    let log = sys.path().join("systemctl.log");
    fs::write(sys.path().join("bin/systemctl"), format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display())).unwrap();
    fs::set_permissions(sys.path().join("bin/systemctl"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", sys.path().join("bin").display());
    let xdg = sys.path().join("config");
    let env = [("XDG_CONFIG_HOME", xdg.to_str().unwrap()), ("PATH", path.as_str())];
    let out = app.run("http://127.0.0.1:1", &["--rollback", "--yes"], &env);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("Rolled back to skynet-gateway 0.0.9"), "{stdout}");
    assert!(stdout.contains("The Skynet service was restarted"), "{stdout}");
    assert_eq!(fs::read_to_string(&log).unwrap(), "--user stop skynet-gateway\n--user start skynet-gateway\n");
    assert_eq!(fs::read(&app.exe).unwrap(), older, "the .bak's bytes are back in place");
    assert!(!app.bak().exists());
    let mode = fs::metadata(&app.exe).unwrap().permissions().mode();
    assert_eq!(mode & 0o111, 0o111, "still executable");
}

#[test]
fn rollback_without_a_bak_says_so_and_changes_nothing() {
    let app = Installed::new();
    let out = app.run("http://127.0.0.1:1", &["--rollback", "--yes"], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("no previous version to roll back to") && stderr.contains(".bak"), "{stderr}");
    app.assert_unchanged();
}

#[test]
fn a_checksum_mismatch_is_refused_and_changes_nothing() {
    let good = tarball(&fake_binary("9.9.9"));
    let tampered = tarball(&fake_binary("6.6.6-evil"));
    let sums = sums(&[(&asset_name(), &good)]);
    let server = FakeGitHub::start("v9.9.9", vec![(asset_name(), tampered), ("SHA256SUMS".into(), sums)]);
    let app = Installed::new();
    let out = app.run(&server.api_url(), &["--yes"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("does not match its sum in SHA256SUMS"), "{stderr}");
    assert!(stderr.contains("not changed"), "{stderr}");
    app.assert_unchanged();
}

#[test]
fn a_missing_sum_is_refused_and_changes_nothing() {
    let tgz = tarball(&fake_binary("9.9.9"));
    let other_sums = sums(&[("skynet-gateway-riscv64gc-unknown-linux-musl.tar.gz", b"other")]);
    let app = Installed::new();
    // SHA256SUMS without a line for this asset, then no SHA256SUMS at all.
    for assets in [vec![(asset_name(), tgz.clone()), ("SHA256SUMS".into(), other_sums)], vec![(asset_name(), tgz)]] {
        let server = FakeGitHub::start("v9.9.9", assets);
        let out = app.run(&server.api_url(), &["--yes"], &[]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{stdout}\n{stderr}");
        assert!(stderr.contains("refusing to install") && stderr.contains("no usable SHA-256 sum"), "{stderr}");
        app.assert_unchanged();
        assert!(
            !server.requests().iter().any(|r| r.contains("/download/v9.9.9/skynet-gateway-")),
            "the binary is not even downloaded without a sum to check it against"
        );
    }
}

#[test]
fn a_release_without_this_platform_is_refused() {
    let tgz = tarball(&fake_binary("9.9.9"));
    let name = "skynet-gateway-riscv64gc-unknown-freebsd.tar.gz";
    let sums = sums(&[(name, &tgz)]);
    let server = FakeGitHub::start("v9.9.9", vec![(name.into(), tgz), ("SHA256SUMS".into(), sums)]);
    let app = Installed::new();
    let out = app.run(&server.api_url(), &["--yes"], &[]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("no download for this platform") && stderr.contains(&asset_name()), "{stderr}");
    app.assert_unchanged();
}

#[test]
fn a_404_from_the_release_api_is_a_clear_error() {
    let app = Installed::new();
    // A repository that does not exist, and one that has published no release yet: both are
    // GitHub's JSON 404 for /releases/latest.
    let with_release = release_of(&fake_binary("9.9.9"));
    let without_release = FakeGitHub::start("", vec![]);
    for (server, repo) in [(&with_release, "test-owner/no-such-repo"), (&without_release, "test-owner/test-repo")] {
        for args in [&["--check"][..], &["--yes"][..]] {
            let out = app.run(&server.api_url(), args, &[("SKYNET_UPDATE__REPO", repo)]);
            let (stdout, stderr) = text(&out);
            assert!(!out.status.success(), "{stdout}\n{stderr}");
            assert!(stderr.contains(&format!("/repos/{repo}/releases/latest (HTTP 404)")), "{stderr}");
            assert!(stderr.contains("Check [update] repo and api_url"), "{stderr}");
            assert!(stderr.contains("The installed binary was not changed."), "{stderr}");
        }
        assert!(!server.requests().iter().any(|r| r.contains("/download/")), "{:?}", server.requests());
    }
    app.assert_unchanged();
}

#[test]
fn a_download_cut_short_is_refused_and_leaves_nothing_behind() {
    let server = release_of(&fake_binary("9.9.9"));
    server.truncate(&asset_name());
    // The server really does cut it short: it declares more bytes than it sends.
    let url = format!("{}/download/v9.9.9/{}", server.releases_url(), asset_name());
    let curl = Command::new("curl").args(["-fsS", "-o", "/dev/null", "-w", "%{size_download}", &url]).output().unwrap();
    assert!(!curl.status.success(), "curl notices the short body");
    let sent: usize = String::from_utf8_lossy(&curl.stdout).parse().unwrap();
    let full = tarball(&fake_binary("9.9.9")).len();
    assert!(sent < full, "sent {sent} of {full} bytes");

    let app = Installed::new();
    let out = app.run(&server.api_url(), &["--yes"], &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("was cut short") && stderr.contains("end of file before message length"), "{stderr}");
    assert!(stderr.contains("Try again") && stderr.contains("The installed binary was not changed."), "{stderr}");
    assert!(!stdout.contains("Updated to"), "{stdout}");
    // Byte for byte the same, no .bak, no temporary file next to it.
    app.assert_unchanged();
    assert!(server.requests().iter().any(|r| r.ends_with(&format!("/download/v9.9.9/{}", asset_name()))));
}

#[test]
fn an_unreachable_release_server_is_a_clear_error() {
    let app = Installed::new();
    for args in [&["--check"][..], &["--yes"][..]] {
        let out = app.run("http://127.0.0.1:1", args, &[]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success());
        assert!(stderr.contains("cannot reach the release server http://127.0.0.1:1"), "{stderr}");
        assert!(stderr.contains("Check the network connection"), "{stderr}");
    }
    app.assert_unchanged();
}

#[test]
fn without_yes_and_without_a_terminal_it_refuses_instead_of_waiting() {
    let server = release_of(&fake_binary("9.9.9"));
    let app = Installed::new();
    let out = app.run(&server.api_url(), &[], &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("not a terminal") && stderr.contains("--yes"), "{stderr}");
    app.assert_unchanged();
}

#[test]
fn in_docker_it_prints_the_compose_command_and_changes_nothing() {
    let server = release_of(&fake_binary("9.9.9"));
    let app = Installed::new();
    for args in [&["--yes"][..], &["--rollback", "--yes"][..]] {
        let out = app.run(&server.api_url(), args, &[("SKYNET_INSTALL_MODE", "docker")]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("docker compose pull && docker compose up -d"), "{stdout}");
    }
    app.assert_unchanged();
    assert!(server.requests().is_empty(), "nothing is downloaded in Docker");
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_source_checkout_is_updated_with_git_pull_and_cargo_build() {
    let tmp = tempfile::tempdir().unwrap();
    let (origin, repo, other) = (tmp.path().join("origin.git"), tmp.path().join("skynet"), tmp.path().join("other"));
    fs::create_dir(&origin).unwrap();
    git(&origin, &["init", "--bare", "-q"]);
    git(tmp.path(), &["clone", "-q", origin.to_str().unwrap(), "other"]);
    fs::write(other.join("Cargo.toml"), "[package]\n").unwrap();
    git(&other, &["add", "."]);
    git(&other, &["commit", "-qm", "one"]);
    git(&other, &["push", "-q", "origin", "HEAD"]);
    git(tmp.path(), &["clone", "-q", origin.to_str().unwrap(), "skynet"]);
    // Upstream moves on after this checkout was built.
    fs::write(other.join("NEWS"), "two\n").unwrap();
    git(&other, &["add", "."]);
    git(&other, &["commit", "-qm", "two"]);
    git(&other, &["push", "-q", "origin", "HEAD"]);

    fs::create_dir_all(repo.join("target/release")).unwrap();
    let exe = repo.join("target/release/skynet-gateway");
    fs::copy(BIN, &exe).unwrap();
    // A stand-in `cargo` that records how it was called instead of building for minutes.
    let fake_bin = tmp.path().join("fakebin");
    fs::create_dir(&fake_bin).unwrap();
    let log = tmp.path().join("cargo.log");
    fs::write(fake_bin.join("cargo"), format!("#!/bin/sh\necho \"$(pwd) $*\" >> '{}'\n", log.display())).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(fake_bin.join("cargo"), fs::Permissions::from_mode(0o755)).unwrap();

    let mut cmd = Command::new(&exe);
    cmd.env_remove("SKYNET_INSTALL_MODE")
        .env("SKYNET_HOME", tmp.path().join("home"))
        .env("PATH", format!("{}:{}", fake_bin.display(), std::env::var("PATH").unwrap()))
        .args(["update", "--yes"]);
    let out = run_with_deadline(cmd);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("git -C {} pull --ff-only && cargo build --release --locked", repo.display())));
    assert_eq!(fs::read_to_string(repo.join("NEWS")).unwrap(), "two\n", "git pull ran");
    assert_eq!(fs::read_to_string(&log).unwrap().trim(), format!("{} build --release --locked", repo.display()));
}

#[test]
fn the_gateway_checks_for_a_release_once_a_day_after_it_listens_and_only_logs() {
    let server = release_of(&fake_binary("9.9.9"));
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let env = [("SKYNET_UPDATE__CHECK_ON_START", "true"), ("SKYNET_UPDATE__API_URL", &server.api_url())];
    let repo = format!("{}/{}", fake_github::OWNER, fake_github::REPO);
    let env = [env[0], env[1], ("SKYNET_UPDATE__REPO", &repo)];
    let g = Gateway::start_in(&home, &env, &[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !g.stderr().contains("a newer skynet-gateway is available") {
        assert!(Instant::now() < deadline, "no update notice logged:\n{}", g.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = g.stderr();
    let notice = log.lines().find(|l| l.contains("a newer skynet-gateway is available")).unwrap();
    assert!(notice.contains("INFO") && notice.contains("9.9.9"), "{notice}");
    assert!(home.join(".update-check").is_file());
    assert_eq!(g.get("/health").0, 200);
    drop(g);
    assert_eq!(server.requests().len(), 1);

    // Within a day the next start does not ask again.
    let g = Gateway::start_in(&home, &env, &[]).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(g.get("/health").0, 200);
    assert_eq!(server.requests().len(), 1, "checked again within 24 h");
}

#[test]
fn an_unreachable_release_server_at_start_up_is_neither_a_warning_nor_a_delay() {
    let tmp = tempfile::tempdir().unwrap();
    let env = [("SKYNET_UPDATE__CHECK_ON_START", "true"), ("SKYNET_UPDATE__API_URL", "http://127.0.0.1:1")];
    let started = Instant::now();
    let g = Gateway::start_in(&tmp.path().join("home"), &env, &[]).unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(g.get("/health").0, 200);
    std::thread::sleep(Duration::from_millis(500));
    let log = g.stderr();
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    assert!(tmp.path().join("home/.update-check").is_file(), "the attempt is recorded");
}
