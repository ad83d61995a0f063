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
    // 3: people. A user has a role and any number of channel identities (a web device, a
    // Telegram id, a Discord id); link codes join an identity to an existing user. Memory
    // (per user) and the shared knowledge base are searchable with FTS5 (external-content
    // tables kept in step by triggers).
    r#"
    CREATE TABLE users (
        id         INTEGER PRIMARY KEY,
        name       TEXT NOT NULL UNIQUE,
        role       TEXT NOT NULL CHECK (role IN ('admin', 'user', 'child')),
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE identities (
        channel      TEXT NOT NULL,          -- webchat, telegram, discord, openai-api, ...
        external_id  TEXT NOT NULL,          -- the channel's own id for the sender
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        display_name TEXT,
        linked_at    INTEGER NOT NULL,
        PRIMARY KEY (channel, external_id)
    ) STRICT;
    CREATE INDEX identities_user ON identities(user_id);
    CREATE TABLE link_codes (
        code_hash  TEXT PRIMARY KEY,         -- hex SHA-256 of the code; the code is never stored
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used_at    INTEGER
    ) STRICT;
    CREATE TABLE link_failures (
        identity TEXT NOT NULL,              -- channel:external_id that entered a wrong code
        at       INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX link_failures_identity ON link_failures(identity, at);
    CREATE TABLE memories (
        id         INTEGER PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        text       TEXT NOT NULL,
        created_at INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX memories_user ON memories(user_id, id);
    CREATE VIRTUAL TABLE memories_fts USING fts5(text, content='memories', content_rowid='id');
    CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
        INSERT INTO memories_fts(rowid, text) VALUES (new.id, new.text);
    END;
    CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
        INSERT INTO memories_fts(memories_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END;
    CREATE TABLE knowledge (
        id         INTEGER PRIMARY KEY,
        topic      TEXT NOT NULL UNIQUE,
        body       TEXT NOT NULL,
        source     TEXT,                     -- seed file name, or the user who wrote it
        updated_at INTEGER NOT NULL
    ) STRICT;
    CREATE VIRTUAL TABLE knowledge_fts USING fts5(topic, body, content='knowledge', content_rowid='id');
    CREATE TRIGGER knowledge_ai AFTER INSERT ON knowledge BEGIN
        INSERT INTO knowledge_fts(rowid, topic, body) VALUES (new.id, new.topic, new.body);
    END;
    CREATE TRIGGER knowledge_ad AFTER DELETE ON knowledge BEGIN
        INSERT INTO knowledge_fts(knowledge_fts, rowid, topic, body) VALUES ('delete', old.id, old.topic, old.body);
    END;
    CREATE TRIGGER knowledge_au AFTER UPDATE ON knowledge BEGIN
        INSERT INTO knowledge_fts(knowledge_fts, rowid, topic, body) VALUES ('delete', old.id, old.topic, old.body);
        INSERT INTO knowledge_fts(rowid, topic, body) VALUES (new.id, new.topic, new.body);
    END;
    ALTER TABLE sessions ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE SET NULL;
    ALTER TABLE tool_calls ADD COLUMN user_id INTEGER;
    ALTER TABLE tool_calls ADD COLUMN topic TEXT;     -- e.g. the knowledge topic a tool read
    CREATE INDEX tool_calls_topic ON tool_calls(topic) WHERE topic IS NOT NULL;
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
