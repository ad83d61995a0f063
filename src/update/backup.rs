//! The binary an update replaces, kept as `<exe>.bak` for `--rollback`, and the
//! `--version` smoke test every binary passes before it is installed or restored.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::release::BIN_NAME;

/// `<exe>.bak`, next to the binary (so restoring it is a rename on one filesystem).
pub fn backup_path(exe: &Path) -> PathBuf {
    let mut name = exe.file_name().unwrap_or_default().to_os_string();
    name.push(".bak");
    exe.with_file_name(name)
}

/// Copies `exe` to `<exe>.bak` through a temporary file and a rename, so a crash never
/// leaves half a backup in place of a whole one.
pub fn keep(exe: &Path) -> io::Result<PathBuf> {
    let bak = backup_path(exe);
    let tmp = exe.with_file_name(format!(".{}.bak-{}", BIN_NAME, std::process::id()));
    let result = fs::copy(exe, &tmp).and_then(|_| fs::rename(&tmp, &bak));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map(|()| bak)
}

/// Puts `<exe>.bak` back in place of `exe` with one atomic rename; the running process
/// keeps its (now unlinked) file and is unaffected.
pub fn restore(exe: &Path) -> io::Result<()> {
    fs::rename(backup_path(exe), exe)
}

/// Checks that `new_exe` runs here and calls itself `skynet-gateway <version>`.
pub fn smoke_test(new_exe: &Path, version: &str) -> Result<(), String> {
    // Archives do not always keep the executable bit; self_update sets the final mode.
    fs::set_permissions(new_exe, fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot make the downloaded binary executable: {e}"))?;
    let expected = format!("{BIN_NAME} {version}");
    match version_of(new_exe) {
        Some(said) if said == expected => Ok(()),
        Some(said) => Err(format!("the downloaded binary calls itself {said:?}, but the release is {version}")),
        None => Err("the downloaded binary does not run on this machine (`--version` failed)".into()),
    }
}

/// The first line `<path> --version` prints, or `None` when it fails or takes over 10 s.
pub fn version_of(path: &Path) -> Option<String> {
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    };
    let mut out = String::new();
    io::Read::read_to_string(&mut child.stdout.take()?, &mut out).ok()?;
    let line = out.lines().next()?.trim().to_string();
    (status.success() && !line.is_empty()).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn keep_and_restore_round_trip_the_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let exe = script(dir.path(), "skynet-gateway", "echo skynet-gateway 1.0.0");
        let original = fs::read(&exe).unwrap();
        assert_eq!(keep(&exe).unwrap(), dir.path().join("skynet-gateway.bak"));
        fs::write(&exe, "new").unwrap();
        restore(&exe).unwrap();
        assert_eq!(fs::read(&exe).unwrap(), original);
        assert!(!backup_path(&exe).exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary files left");
    }

    #[test]
    fn smoke_test_wants_the_release_version_from_a_binary_that_runs() {
        let dir = tempfile::tempdir().unwrap();
        let good = script(dir.path(), "good", "echo skynet-gateway 9.9.9");
        assert_eq!(smoke_test(&good, "9.9.9"), Ok(()));
        let err = smoke_test(&good, "9.9.10").unwrap_err();
        assert!(err.contains("calls itself"), "{err}");
        let broken = script(dir.path(), "broken", "exit 3");
        assert!(smoke_test(&broken, "9.9.9").unwrap_err().contains("does not run"));
    }
}
