//! install.sh and packaging/release.sh, run for real: install.sh against a fake release
//! server on loopback, release.sh with stand-ins for the 12-minute cargo build.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::BIN;
use common::fake_github::{FakeGitHub, asset_name, sha256_hex, sums, tarball};

const REPO_ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// A PATH without the install directory, with the tools install.sh needs.
const SYSTEM_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Release v0.1.0 holding the real binary.
fn release() -> (FakeGitHub, Vec<u8>) {
    let binary = fs::read(BIN).unwrap();
    let tgz = tarball(&binary);
    let sums = sums(&[(&asset_name(), &tgz)]);
    (FakeGitHub::start("v0.1.0", vec![(asset_name(), tgz), ("SHA256SUMS".into(), sums)]), binary)
}

fn install_sh(server: &FakeGitHub, home: &Path, env: &[(&str, &str)]) -> Output {
    fs::create_dir_all(home).unwrap();
    Command::new("sh")
        .arg(Path::new(REPO_ROOT).join("install.sh"))
        .env_clear()
        .env("HOME", home)
        .env("PATH", SYSTEM_PATH)
        .env("SKYNET_INSTALL_BASE_URL", server.releases_url())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

fn text(out: &Output) -> (String, String) {
    (String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn install_sh_verifies_installs_the_latest_and_prints_a_path_line_instead_of_editing_profiles() {
    let (server, binary) = release();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let out = install_sh(&server, &home, &[]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let installed = home.join(".local/bin/skynet-gateway");
    assert!(fs::read(&installed).unwrap() == binary, "the release's binary is installed");
    assert_eq!(fs::metadata(&installed).unwrap().permissions().mode() & 0o777, 0o755);
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("skynet-gateway {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(stdout.contains("checksum verified"), "{stdout}");
    assert!(stdout.contains(&format!("export PATH=\"{}:$PATH\"", home.join(".local/bin").display())), "{stdout}");
    assert!(stdout.contains("does not edit shell profiles"), "{stdout}");
    assert!(stdout.contains("skynet-gateway setup"), "setup is suggested, not run, off a terminal: {stdout}");
    assert_eq!(entries(&home), [".local"], "no profile was written");
    assert_eq!(entries(&home.join(".local/bin")), ["skynet-gateway"], "no temporary files left");
    let requests = server.requests();
    assert!(
        requests.iter().any(|r| r.ends_with(&format!("/releases/latest/download/{}", asset_name()))),
        "{requests:?}"
    );
}

#[test]
fn install_sh_honours_a_pinned_version_and_install_dir() {
    let (server, binary) = release();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("opt bin");
    let path = format!("{}:{SYSTEM_PATH}", dir.display());
    let out = install_sh(
        &server,
        &tmp.path().join("home"),
        &[("SKYNET_VERSION", "0.1.0"), ("SKYNET_INSTALL_DIR", dir.to_str().unwrap()), ("PATH", &path)],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(fs::read(dir.join("skynet-gateway")).unwrap() == binary);
    assert!(!stdout.contains("export PATH"), "the directory is on PATH already: {stdout}");
    assert!(server.requests().iter().any(|r| r.contains("/releases/download/v0.1.0/")));
}

#[test]
fn install_sh_refuses_a_tampered_download_and_installs_nothing() {
    let good = tarball(b"#!/bin/sh\necho skynet-gateway 0.1.0\n");
    let evil = tarball(b"#!/bin/sh\necho pwned\n");
    let tmp = tempfile::tempdir().unwrap();
    let cases = [
        (
            vec![(asset_name(), evil.clone()), ("SHA256SUMS".into(), sums(&[(&asset_name(), &good)]))],
            "checksum mismatch",
        ),
        (vec![(asset_name(), good.clone()), ("SHA256SUMS".into(), sums(&[("other.tar.gz", &good)]))], "no line for"),
        (vec![(asset_name(), good)], "refusing to install without a checksum"),
    ];
    for (assets, expected) in cases {
        let server = FakeGitHub::start("v0.1.0", assets);
        let home = tmp.path().join(format!("home-{}", sha256_hex(expected.as_bytes())));
        let out = install_sh(&server, &home, &[]);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "{stdout}\n{stderr}");
        assert!(stderr.contains(expected) && stderr.contains("Nothing was installed"), "{stderr}");
        assert!(!home.join(".local").exists(), "nothing installed for {expected:?}");
    }
}

/// A stand-in `cargo` that logs its arguments and "builds" a small `skynet-gateway` into
/// the `--root` it is given, as `cargo install --root` does.
fn fake_cargo(dir: &Path, log: &Path) {
    fs::create_dir_all(dir).unwrap();
    write_script(
        &dir.join("cargo"),
        &format!(
            r#"echo "$*" >> '{}'
root=; prev=
for a in "$@"; do [ "$prev" = --root ] && root=$a; prev=$a; done
mkdir -p "$root/bin"
printf '#!/bin/sh\necho skynet-gateway 0.0.0-from-source\n' > "$root/bin/skynet-gateway"
chmod 755 "$root/bin/skynet-gateway""#,
            log.display()
        ),
    );
}

/// A release with a build for some other platform only.
fn release_without_this_platform() -> FakeGitHub {
    let name = "skynet-gateway-riscv64gc-unknown-freebsd.tar.gz";
    let tgz = tarball(b"#!/bin/sh\necho not for this machine\n");
    let sums = sums(&[(name, &tgz)]);
    FakeGitHub::start("v0.1.0", vec![(name.into(), tgz), ("SHA256SUMS".into(), sums)])
}

#[test]
fn install_sh_builds_from_source_with_cargo_when_no_release_fits() {
    let server = release_without_this_platform();
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("fakebin");
    let log = tmp.path().join("cargo.log");
    fake_cargo(&fake, &log);
    let path = format!("{}:{SYSTEM_PATH}", fake.display());
    let home = tmp.path().join("home");
    let out = install_sh(&server, &home, &[("PATH", &path)]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(&format!("release latest has no build for {}", common::fake_github::release_target())));
    assert!(stdout.contains("building skynet-gateway from source with cargo instead"), "{stdout}");
    assert!(stdout.contains("running: cargo install --locked --root "), "{stdout}");
    let installed = home.join(".local/bin/skynet-gateway");
    let version = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&version.stdout).trim(), "skynet-gateway 0.0.0-from-source");
    assert_eq!(fs::metadata(&installed).unwrap().permissions().mode() & 0o777, 0o755);
    assert!(stdout.contains(&format!("installed skynet-gateway 0.0.0-from-source as {}", installed.display())));
    assert_eq!(entries(&home.join(".local/bin")), ["skynet-gateway"], "no temporary files left");
    assert_eq!(entries(&home), [".local"], "cargo's root was a private temporary one");
    // The default source is the project's git repository, the package named.
    let args = fs::read_to_string(&log).unwrap();
    let args: Vec<&str> = args.trim().split(' ').collect();
    assert_eq!(args[..4], ["install", "--locked", "--root", args[3]]);
    assert!(!args[3].starts_with(home.to_str().unwrap()), "{args:?}");
    assert_eq!(args[4..], ["--git", "https://github.com/skynet-gateway/skynet", "skynet-gateway"]);
    assert!(server.requests().iter().any(|r| r.ends_with(&format!("/latest/download/{}", asset_name()))));

    // SKYNET_SOURCE_URL: a local source directory is built with --path; a pinned version of
    // a git repository is its tag. SKYNET_INSTALL_FROM_SOURCE builds even when a release fits.
    let (with_asset, _) = release();
    let src = tmp.path().join("src");
    fs::create_dir(&src).unwrap();
    let cases = [
        (&server, vec![("SKYNET_SOURCE_URL", src.to_str().unwrap())], vec!["--path", src.to_str().unwrap()]),
        (
            &server,
            vec![("SKYNET_SOURCE_URL", "file:///srv/skynet.git"), ("SKYNET_VERSION", "0.1.0")],
            vec!["--git", "file:///srv/skynet.git", "--tag", "v0.1.0", "skynet-gateway"],
        ),
        (
            &with_asset,
            vec![("SKYNET_INSTALL_FROM_SOURCE", "1")],
            vec!["--git", "https://github.com/skynet-gateway/skynet", "skynet-gateway"],
        ),
    ];
    for (i, (server, env, expected)) in cases.into_iter().enumerate() {
        fs::remove_file(&log).unwrap();
        let home = tmp.path().join(format!("home{i}"));
        let mut env = env;
        env.push(("PATH", path.as_str()));
        let out = install_sh(server, &home, &env);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(home.join(".local/bin/skynet-gateway").is_file(), "{stdout}");
        let args = fs::read_to_string(&log).unwrap();
        let args: Vec<&str> = args.trim().split(' ').collect();
        assert_eq!(args[4..], expected, "{env:?}");
    }
    assert!(
        !with_asset.requests().iter().any(|r| r.contains("/download/")),
        "nothing is downloaded when building from source was asked for"
    );
}

#[test]
fn install_sh_without_a_release_or_cargo_says_how_to_get_rust_and_installs_nothing() {
    if SYSTEM_PATH.split(':').any(|d| Path::new(d).join("cargo").exists()) {
        eprintln!("SKIPPED: cargo is installed system-wide, so a PATH without it cannot be made");
        return;
    }
    let server = release_without_this_platform();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let out = install_sh(&server, &home, &[]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("has no build for") && stderr.contains("cargo is not installed"), "{stderr}");
    assert!(stderr.contains("rustup") && stderr.contains("https://sh.rustup.rs"), "{stderr}");
    assert!(stderr.contains("Nothing was installed"), "{stderr}");
    assert!(!home.join(".local").exists(), "nothing installed");
}

#[test]
fn install_sh_piped_from_a_web_server_into_sh_and_bash_installs() {
    let (server, binary) = release();
    let script = fs::read(Path::new(REPO_ROOT).join("install.sh")).unwrap();
    server.serve_file("/install.sh", script);
    let url = format!("http://{}/install.sh", server.addr);
    let tmp = tempfile::tempdir().unwrap();
    for shell in ["sh", "bash"] {
        let home = tmp.path().join(format!("home-{shell}"));
        let prefix = tmp.path().join(format!("prefix-{shell}/bin"));
        fs::create_dir_all(&home).unwrap();
        // Run from another directory: nothing may depend on where the script "is".
        let out = Command::new(shell)
            .arg("-c")
            .arg(format!("curl -fsSL '{url}' | {shell}"))
            .current_dir(tmp.path())
            .env_clear()
            .env("HOME", &home)
            .env("PATH", SYSTEM_PATH)
            .env("SKYNET_INSTALL_BASE_URL", server.releases_url())
            .env("SKYNET_INSTALL_DIR", &prefix)
            .env("SKYNET_NO_SETUP", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{shell}: {stdout}\n{stderr}");
        assert!(fs::read(prefix.join("skynet-gateway")).unwrap() == binary, "{shell}");
        assert!(stdout.contains("checksum verified") && stdout.contains("installed skynet-gateway"), "{stdout}");
        assert_eq!(entries(&prefix), ["skynet-gateway"]);
    }
    let requests = server.requests();
    assert_eq!(requests.iter().filter(|r| *r == "GET /install.sh").count(), 2, "{requests:?}");
}

#[test]
fn the_shell_scripts_pass_shellcheck() {
    let Ok(out) = Command::new("shellcheck")
        .args(["-s", "sh", "install.sh", "packaging/release.sh"])
        .current_dir(REPO_ROOT)
        .output()
    else {
        eprintln!("shellcheck is not installed (apt-get install shellcheck): skipping this check");
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}

fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn release_sh_packages_each_buildable_target_and_writes_sha256sums() {
    let tmp = tempfile::tempdir().unwrap();
    let fake = tmp.path().join("fakebin");
    fs::create_dir(&fake).unwrap();
    // rustup says both targets are installed; cargo "builds" by copying the debug binary.
    write_script(&fake.join("rustup"), "printf 'x86_64-unknown-linux-musl\\naarch64-apple-darwin\\n'");
    write_script(
        &fake.join("cargo"),
        r#"echo "$*" >> "$CARGO_LOG"
t=; prev=
for a in "$@"; do [ "$prev" = --target ] && t=$a; prev=$a; done
mkdir -p "$CARGO_TARGET_DIR/$t/release" && cp "$FAKE_BINARY" "$CARGO_TARGET_DIR/$t/release/skynet-gateway""#,
    );
    for cc in ["musl-gcc", "x86_64-linux-musl-gcc"] {
        write_script(&fake.join(cc), "exit 0");
    }
    let dist: PathBuf = tmp.path().join("dist");
    let out = Command::new("sh")
        .arg(Path::new(REPO_ROOT).join("packaging/release.sh"))
        .env("PATH", format!("{}:{SYSTEM_PATH}", fake.display()))
        .env("SKYNET_RELEASE_TARGETS", "x86_64-unknown-linux-musl aarch64-apple-darwin")
        .env("SKYNET_DIST_DIR", &dist)
        .env("CARGO_TARGET_DIR", tmp.path().join("target"))
        .env("CARGO_LOG", tmp.path().join("cargo.log"))
        .env("FAKE_BINARY", BIN)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");

    let name = "skynet-gateway-x86_64-unknown-linux-musl.tar.gz";
    if !cfg!(target_os = "macos") {
        assert_eq!(entries(&dist), ["SHA256SUMS", name]);
        assert!(stdout.contains("skipping aarch64-apple-darwin: macOS targets build only on macOS"), "{stdout}");
    }
    let log = fs::read_to_string(tmp.path().join("cargo.log")).unwrap();
    assert!(log.contains("build --release --locked --target x86_64-unknown-linux-musl"), "{log}");
    let sums = fs::read_to_string(dist.join("SHA256SUMS")).unwrap();
    let tgz = fs::read(dist.join(name)).unwrap();
    assert!(sums.lines().any(|l| l == format!("{}  {name}", sha256_hex(&tgz))), "{sums}");
    let check = Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(&dist).output().unwrap();
    assert!(check.status.success(), "sha256sum -c accepts it: {}", String::from_utf8_lossy(&check.stdout));
    // The tarball holds exactly the binary, under the name install.sh and update expect.
    let listing = Command::new("tar").arg("-tzf").arg(dist.join(name)).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&listing.stdout).trim(), "skynet-gateway");
    assert!(stdout.contains("gh release create v"), "{stdout}");

    // Without the required target's toolchain the script stops instead of publishing less.
    write_script(&fake.join("rustup"), "echo aarch64-apple-darwin");
    let out = Command::new("sh")
        .arg(Path::new(REPO_ROOT).join("packaging/release.sh"))
        .env("PATH", format!("{}:{SYSTEM_PATH}", fake.display()))
        .env("SKYNET_DIST_DIR", &dist)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).1.contains("rustup target add x86_64-unknown-linux-musl"), "{}", text(&out).1);
}
