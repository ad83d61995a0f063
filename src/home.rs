//! The `~/.skynet` layout and first-run materialisation of the embedded defaults.
//!
//! Defaults are written when missing. A manifest records the hash of every file we wrote,
//! so a later version may refresh a default the user never touched, and never overwrites
//! one they edited.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use crate::config::{Config, DEFAULT_TOML};
use crate::fsutil::{create_private_dir, write_atomic};

#[derive(RustEmbed)]
#[folder = "defaults/"]
#[include = "workspace/*"]
#[include = "knowledge/*"]
struct Embedded;

/// Records which defaults we wrote, and their hashes at the time.
const MANIFEST: &str = ".defaults.json";

#[derive(Debug, Clone)]
pub struct Home {
    root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error(
        "cannot find your home directory to put ~/.skynet in.\nSet SKYNET_HOME to the directory Skynet should use."
    )]
    NoHomeDir,
    #[error("the Skynet home {} is not usable: {source}\nMake it writable by the user running Skynet (e.g. `chown -R $USER {}`), or set SKYNET_HOME to another directory.", path.display(), path.display())]
    Unwritable { path: PathBuf, source: io::Error },
}

/// What `prepare` did, so the caller can tell the user.
#[derive(Debug, Default)]
pub struct Prepared {
    /// A fresh `skynet.toml` with a newly generated auth token was written.
    pub generated_config: bool,
    /// Default files (relative paths) that were written or refreshed.
    pub written: Vec<String>,
}

impl Home {
    /// `$SKYNET_HOME` if set, else `~/.skynet`.
    pub fn resolve() -> Result<Home, HomeError> {
        if let Some(dir) = std::env::var_os("SKYNET_HOME").filter(|v| !v.is_empty()) {
            return Ok(Home::at(PathBuf::from(dir)));
        }
        let base = directories::BaseDirs::new().ok_or(HomeError::NoHomeDir)?;
        Ok(Home::at(base.home_dir().join(".skynet")))
    }

    pub fn at(root: PathBuf) -> Home {
        Home { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_path(&self) -> PathBuf {
        Config::file_path(&self.root)
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("skynet.db")
    }

    /// Creates the home directory and writes every missing default.
    pub fn prepare(&self) -> Result<Prepared, HomeError> {
        let unusable = |source| HomeError::Unwritable { path: self.root.clone(), source };
        create_private_dir(&self.root).map_err(unusable)?;
        probe_writable(&self.root).map_err(unusable)?;

        let mut prepared = Prepared::default();
        let config_path = self.config_path();
        if !config_path.exists() {
            let text = config_with_token(&generate_token().map_err(unusable)?);
            write_atomic(&config_path, text.as_bytes(), 0o600).map_err(unusable)?;
            prepared.generated_config = true;
        }

        let manifest_path = self.root.join(MANIFEST);
        let mut manifest: BTreeMap<String, String> =
            fs::read(&manifest_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        for rel in Embedded::iter() {
            let file = Embedded::get(&rel).expect("listed by iter");
            let target = self.root.join(rel.as_ref());
            let embedded_hash = sha256_hex(&file.data);
            let write = match fs::read(&target) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => true,
                Err(e) => return Err(unusable(e)),
                // Refresh only a default the user left exactly as we wrote it.
                Ok(current) => manifest
                    .get(rel.as_ref())
                    .is_some_and(|recorded| *recorded == sha256_hex(&current) && *recorded != embedded_hash),
            };
            if write {
                if let Some(parent) = target.parent() {
                    create_private_dir(parent).map_err(unusable)?;
                }
                write_atomic(&target, &file.data, 0o644).map_err(unusable)?;
                manifest.insert(rel.to_string(), embedded_hash);
                prepared.written.push(rel.to_string());
            }
        }
        if !prepared.written.is_empty() {
            let json = serde_json::to_vec_pretty(&manifest).expect("a map of strings serialises");
            write_atomic(&manifest_path, &json, 0o600).map_err(unusable)?;
        }
        Ok(prepared)
    }
}

/// The default config with a freshly generated token filled in.
pub fn config_with_token(token: &str) -> String {
    DEFAULT_TOML.replacen("auth_token = \"\"", &format!("auth_token = \"{token}\""), 1)
}

/// A 256-bit random token, hex encoded.
pub fn generate_token() -> io::Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(hex::encode(bytes))
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn probe_writable(dir: &Path) -> io::Result<()> {
    let probe = dir.join(format!(".write-test-{}", std::process::id()));
    fs::write(&probe, b"")?;
    fs::remove_file(&probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPTS: [&str; 7] =
        ["SOUL.md", "IDENTITY.md", "AGENTS.md", "USER.md", "TOOLS.md", "MEMORY.md", "BOOTSTRAP.md"];

    #[test]
    fn first_run_writes_config_prompts_and_knowledge() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().join("h"));
        let p = home.prepare().unwrap();
        assert!(p.generated_config);
        for name in PROMPTS {
            assert!(home.root().join("workspace").join(name).is_file(), "{name} missing");
        }
        assert!(fs::read_dir(home.root().join("knowledge")).unwrap().count() > 0);
        let text = fs::read_to_string(home.config_path()).unwrap();
        let cfg: toml::Table = text.parse().unwrap();
        assert_eq!(cfg["gateway"]["auth_token"].as_str().unwrap().len(), 64);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(fs::metadata(home.config_path()).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn edited_and_deleted_files_are_handled_without_losing_edits() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf());
        home.prepare().unwrap();
        let soul = home.root().join("workspace").join("SOUL.md");
        let user = home.root().join("workspace").join("USER.md");
        fs::write(&soul, "my own soul").unwrap();
        fs::remove_file(&user).unwrap();
        let token_before = fs::read_to_string(home.config_path()).unwrap();

        let p = home.prepare().unwrap();
        assert!(!p.generated_config);
        assert_eq!(p.written, ["workspace/USER.md"]);
        assert_eq!(fs::read_to_string(&soul).unwrap(), "my own soul");
        assert_eq!(fs::read_to_string(home.config_path()).unwrap(), token_before);
    }

    #[test]
    fn an_untouched_outdated_default_is_refreshed() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf());
        home.prepare().unwrap();
        // Pretend an older release wrote a different SOUL.md and the user never touched it.
        let soul = home.root().join("workspace").join("SOUL.md");
        fs::write(&soul, "old default").unwrap();
        let manifest_path = home.root().join(MANIFEST);
        let mut m: BTreeMap<String, String> = serde_json::from_slice(&fs::read(&manifest_path).unwrap()).unwrap();
        m.insert("workspace/SOUL.md".into(), sha256_hex(b"old default"));
        fs::write(&manifest_path, serde_json::to_vec(&m).unwrap()).unwrap();

        home.prepare().unwrap();
        assert_eq!(fs::read(&soul).unwrap(), Embedded::get("workspace/SOUL.md").unwrap().data.as_ref());
    }

    #[test]
    fn generated_config_loads_as_a_valid_config() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf());
        home.prepare().unwrap();
        let cfg = Config::load(home.root(), &Default::default()).unwrap();
        assert_eq!(cfg.gateway.port, 18789);
    }
}
