//! The SQLite store: one database file, WAL mode, foreign keys on, versioned migrations.
//!
//! A single connection behind a mutex serialises writers (SQLite allows one at a time
//! anyway); calls run on tokio's blocking pool so a slow query never stalls the runtime.

mod devices;
mod fts;
mod knowledge;
mod memory;
pub mod migrations;
mod sessions;
mod usage;
mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use devices::Device;
pub use knowledge::{MAX_BODY_BYTES, MAX_TOPIC_CHARS, validate as validate_knowledge};
pub use memory::{MAX_MEMORY_BYTES, Memory};
pub use sessions::ToolCallRecord;
pub use usage::{HotTopic, ToolUsage};
pub use users::{LinkError, Person};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database was written by a newer Skynet (schema version {found}; this build knows up to {supported}).\nIt was left untouched. Upgrade skynet-gateway (`skynet-gateway update`), or point SKYNET_HOME elsewhere."
    )]
    NewerSchema { found: i64, supported: i64 },
    #[error("{} is not a usable SQLite database: {source}\nIf it is damaged, stop Skynet, move the file aside (keep it as a backup) and start again to create a fresh one.", path.display())]
    Corrupt { path: PathBuf, source: rusqlite::Error },
    #[error("cannot create the database {}: {source}\nMake its directory writable, or set SKYNET_HOME elsewhere.", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database worker stopped unexpectedly")]
    Worker,
}

#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let corrupt = |source| StoreError::Corrupt { path: path.to_path_buf(), source };
        // The database holds private data: create it owner-only; SQLite gives the WAL and
        // shared-memory files the same mode.
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|source| StoreError::Create { path: path.to_path_buf(), source })?;
        }
        let mut conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(corrupt)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Check the version before anything that writes (switching to WAL rewrites the header).
        let found = migrations::version(&conn).map_err(corrupt)?;
        if found > migrations::LATEST {
            return Err(StoreError::NewerSchema { found, supported: migrations::LATEST });
        }
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations::apply(&mut conn)?;
        Ok(Store { conn: Arc::new(Mutex::new(conn)), path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` with the connection on the blocking pool.
    pub async fn call<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard).map_err(StoreError::from)
        })
        .await
        .map_err(|_| StoreError::Worker)?
    }

    /// Folds the WAL back into the main file; done at shutdown so the database is one
    /// self-contained file while the gateway is stopped.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// The store in `dir` (created on first use).
    pub fn tempstore(dir: &tempfile::TempDir) -> Store {
        Store::open(&dir.path().join("t.db")).unwrap()
    }

    /// A fresh store holding these users, with ids 1, 2, ... in order.
    pub async fn store_with_users(names: &[&str]) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        store
            .call(move |c| {
                for n in &names {
                    c.execute("INSERT INTO users (name, role, created_at) VALUES (?1, 'user', 0)", [n])?;
                }
                Ok(())
            })
            .await
            .unwrap();
        (dir, store)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_in_wal_with_foreign_keys_and_latest_schema() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let c = store.conn.lock().unwrap();
        let mode: String = c.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        let fk: i64 = c.pragma_query_value(None, "foreign_keys", |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), fk), ("wal", 1));
        assert_eq!(migrations::version(&c).unwrap(), migrations::LATEST);
    }

    #[test]
    fn reopening_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        drop(Store::open(&p).unwrap());
        let store = Store::open(&p).unwrap();
        assert_eq!(migrations::version(&store.conn.lock().unwrap()).unwrap(), migrations::LATEST);
    }

    #[test]
    fn a_newer_database_is_refused_and_left_byte_for_byte_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 999;").unwrap();
        }
        let before = std::fs::read(&p).unwrap();
        let err = Store::open(&p).err().expect("must refuse");
        assert!(matches!(err, StoreError::NewerSchema { found: 999, .. }), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), before);
        assert!(!dir.path().join("t.db-wal").exists());
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.db");
        std::fs::write(&p, vec![b'x'; 4096]).unwrap();
        let err = Store::open(&p).err().expect("must refuse").to_string();
        assert!(err.contains("not a usable SQLite database"), "{err}");
    }

    #[tokio::test]
    async fn device_pairing_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let d = Device {
            id: "abc".into(),
            public_key: "pk".into(),
            client_id: "cli".into(),
            platform: "linux".into(),
            scopes: vec!["operator.read".into()],
            token_hash: "h".into(),
            paired_at: 1,
        };
        store.pair_device(d.clone()).await.unwrap();
        store.pair_device(Device { scopes: vec!["operator.admin".into()], ..d }).await.unwrap();
        let got = store.device("abc").await.unwrap().unwrap();
        assert_eq!(got.scopes, ["operator.admin"]);
        assert_eq!(store.device_count().await.unwrap(), 1);
        assert!(store.device("nope").await.unwrap().is_none());
    }
}
