//! Versioned schema migrations, tracked in `PRAGMA user_version`.
//!
//! Each entry upgrades the schema by one version. All pending ones are applied in a
//! single transaction, so a crash mid-way leaves the previous version intact. Never edit
//! a released migration; append a new one.

use rusqlite::{Connection, TransactionBehavior};

use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: gateway basics: key/value metadata and paired devices.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) STRICT;
    CREATE TABLE devices (
        id           TEXT PRIMARY KEY,      -- hex SHA-256 of the raw Ed25519 public key
        public_key   TEXT NOT NULL,         -- base64url, no padding
        client_id    TEXT NOT NULL,
        platform     TEXT NOT NULL,
        scopes       TEXT NOT NULL,         -- JSON array of approved scopes
        token_hash   TEXT NOT NULL,         -- hex SHA-256 of the issued device token
        paired_at    INTEGER NOT NULL,      -- unix ms
        last_seen_at INTEGER NOT NULL
    ) STRICT;
    "#,
    // 2: conversations. A session key (e.g. `agent:main:main`) names a conversation; a reset
    // starts a new session under the same key and keeps the old transcript.
    r#"
    CREATE TABLE sessions (
        id         TEXT PRIMARY KEY,        -- uuid, the protocol's sessionId
        key        TEXT NOT NULL,
        active     INTEGER NOT NULL DEFAULT 1,
        model      TEXT,                    -- per-session model override
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE UNIQUE INDEX sessions_active_key ON sessions(key) WHERE active = 1;
    CREATE TABLE messages (
        id         INTEGER PRIMARY KEY,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        seq        INTEGER NOT NULL,
        role       TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content    TEXT NOT NULL,           -- JSON array of content blocks
        meta       TEXT,                    -- JSON: runId, provider, model, usage, stopReason
        created_at INTEGER NOT NULL,
        UNIQUE (session_id, seq)
    ) STRICT;
    CREATE TABLE tool_calls (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL,
        session_id  TEXT,
        duration_ms INTEGER NOT NULL,
        ok          INTEGER NOT NULL,
        error       TEXT,
        created_at  INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX tool_calls_name ON tool_calls(name);
    "#,
];

/// The schema version this build writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Applies every pending migration; refuses a database written by a newer Skynet.
pub fn apply(conn: &mut Connection) -> Result<i64, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > LATEST {
        return Err(StoreError::NewerSchema { found, supported: LATEST });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
    }
    tx.commit()?;
    Ok(found)
}
