//! How this copy of Skynet was installed, which decides what "update" means.

use std::path::{Path, PathBuf};

#[derive(Debug, PartialEq, Eq)]
pub enum InstallMode {
    /// A release binary (install.sh, or copied by hand): replaced in place.
    Binary,
    /// Built from a git checkout: `git pull` and `cargo build`.
    Source { repo: PathBuf },
    /// Inside a container: the image is updated, never the binary in it.
    Docker,
}

impl InstallMode {
    /// `SKYNET_INSTALL_MODE=docker|binary` wins; else an executable in
    /// `<repo>/target/{release,debug}/` of a git checkout means source (also in a dev
    /// container); else `/.dockerenv` means Docker.
    pub fn detect(exe: &Path) -> InstallMode {
        match std::env::var("SKYNET_INSTALL_MODE").as_deref() {
            Ok("docker") => return InstallMode::Docker,
            Ok("binary") => return InstallMode::Binary,
            _ => {}
        }
        match source_checkout(exe) {
            Some(repo) => InstallMode::Source { repo },
            None if Path::new("/.dockerenv").exists() => InstallMode::Docker,
            None => InstallMode::Binary,
        }
    }

    /// One line on how to update in this mode.
    pub fn how_to_update(&self) -> String {
        match self {
            InstallMode::Binary => "run `skynet-gateway update`".into(),
            InstallMode::Source { repo } => {
                format!("run `skynet-gateway update` (git pull and cargo build in {})", repo.display())
            }
            InstallMode::Docker => format!("run `{DOCKER_UPDATE}` where your docker-compose.yml is"),
        }
    }
}

pub const DOCKER_UPDATE: &str = "docker compose pull && docker compose up -d";

fn source_checkout(exe: &Path) -> Option<PathBuf> {
    let profile_dir = exe.parent()?;
    let profile = profile_dir.file_name()?;
    let target = profile_dir.parent()?;
    if !(profile == "release" || profile == "debug") || target.file_name()? != "target" {
        return None;
    }
    let repo = target.parent()?;
    // `.git` is a file in a worktree, a directory otherwise.
    (repo.join(".git").exists() && repo.join("Cargo.toml").is_file()).then(|| repo.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_under_target_of_a_checkout_is_a_source_install() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("skynet");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("target/release")).unwrap();
        std::fs::write(repo.join("Cargo.toml"), "").unwrap();
        assert_eq!(source_checkout(&repo.join("target/release/skynet-gateway")), Some(repo.clone()));
        assert_eq!(source_checkout(&repo.join("target/debug/skynet-gateway")), Some(repo.clone()));
        assert_eq!(source_checkout(&repo.join("bin/skynet-gateway")), None);
        std::fs::remove_dir(repo.join(".git")).unwrap();
        assert_eq!(source_checkout(&repo.join("target/release/skynet-gateway")), None, "not a git checkout");
    }
}
