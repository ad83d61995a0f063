//! Conversations: sessions by key, and their messages. A turn (the user's message, the
//! model's tool calls, the tool results and the final answer) is written in one
//! transaction after its role order is checked, so the history never holds two assistant
//! messages in a row or a tool result without its call, even after a crash.

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};
use serde_json::Value;

use super::{Store, StoreError};
use crate::agent::types::{Block, Message, Role};

#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub key: String,
    pub model: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub message_count: i64,
}

#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub seq: i64,
    pub message: Message,
    pub meta: Value,
    pub created_at: i64,
}

/// One finished tool call, for usage statistics.
#[derive(Debug, Clone, Default)]
pub struct ToolCallRecord {
    pub name: String,
    pub session_id: Option<String>,
    pub user_id: Option<i64>,
    pub topic: Option<String>,
    pub duration_ms: u64,
    pub error: Option<String>,
}

/// Why a turn was not written.
#[derive(Debug, thiserror::Error)]
pub enum TurnError {
    #[error("turn rejected: {0}")]
    Order(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for TurnError {
    fn from(e: rusqlite::Error) -> Self {
        TurnError::Store(e.into())
    }
}

fn role_str(r: Role) -> &'static str {
    match r {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}

/// Checks a turn appended after a message of role `prev` (None: empty session).
pub fn check_turn(prev: Option<Role>, turn: &[Message]) -> Result<(), String> {
    let first = turn.first().ok_or("a turn needs at least one message")?;
    if first.role != Role::User || prev == Some(Role::User) {
        return Err("a turn must start with a user message after an assistant message".into());
    }
    if turn.last().map(|m| m.role) != Some(Role::Assistant) {
        return Err("a turn must end with an assistant message".into());
    }
    for pair in turn.windows(2) {
        if pair[0].role == pair[1].role {
            return Err(format!("two {} messages in a row", role_str(pair[1].role)));
        }
        if let Role::User = pair[1].role {
            let calls: Vec<&str> = pair[0]
                .content
                .iter()
                .filter_map(|b| if let Block::ToolUse { id, .. } = b { Some(id.as_str()) } else { None })
                .collect();
            let results: Vec<&str> = pair[1]
                .content
                .iter()
                .filter_map(|b| {
                    if let Block::ToolResult { tool_use_id, .. } = b { Some(tool_use_id.as_str()) } else { None }
                })
                .collect();
            if results.iter().any(|r| !calls.contains(r)) || calls.iter().any(|c| !results.contains(c)) {
                return Err("every tool call needs exactly its result in the next message".into());
            }
        }
    }
    if first.content.iter().any(|b| matches!(b, Block::ToolResult { .. })) {
        return Err("a turn cannot open with a tool result".into());
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The active session for `key`, created when missing.
fn active_session(tx: &Transaction<'_>, key: &str) -> rusqlite::Result<String> {
    if let Some(id) =
        tx.query_row("SELECT id FROM sessions WHERE key = ?1 AND active = 1", [key], |r| r.get(0)).optional()?
    {
        return Ok(id);
    }
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    tx.execute(
        "INSERT INTO sessions (id, key, active, created_at, updated_at) VALUES (?1, ?2, 1, ?3, ?3)",
        params![id, key, now],
    )?;
    Ok(id)
}

impl Store {
    /// The messages of the active session for `key`, oldest first (the last `limit`).
    pub async fn history(&self, key: &str, limit: usize) -> Result<(Option<String>, Vec<StoredMessage>), StoreError> {
        let key = key.to_string();
        self.call(move |c| {
            let Some(id) = c
                .query_row("SELECT id FROM sessions WHERE key = ?1 AND active = 1", [&key], |r| r.get::<_, String>(0))
                .optional()?
            else {
                return Ok((None, Vec::new()));
            };
            let mut stmt = c.prepare(
                "SELECT seq, role, content, meta, created_at FROM
                   (SELECT * FROM messages WHERE session_id = ?1 ORDER BY seq DESC LIMIT ?2)
                 ORDER BY seq",
            )?;
            let rows = stmt.query_map(params![id, limit as i64], |r| {
                let role: String = r.get(1)?;
                let content: String = r.get(2)?;
                let meta: Option<String> = r.get(3)?;
                Ok(StoredMessage {
                    seq: r.get(0)?,
                    message: Message {
                        role: if role == "user" { Role::User } else { Role::Assistant },
                        content: serde_json::from_str(&content).unwrap_or_default(),
                    },
                    meta: meta.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or(Value::Null),
                    created_at: r.get(4)?,
                })
            })?;
            let messages = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok((Some(id), messages))
        })
        .await
    }

    /// Appends a whole turn atomically after checking its role order against the session.
    /// `meta` is stored with the final assistant message; `user_id` marks whose session it is.
    pub async fn append_turn(
        &self,
        key: &str,
        turn: Vec<Message>,
        meta: Value,
        user_id: Option<i64>,
    ) -> Result<(), TurnError> {
        let key = key.to_string();
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || -> Result<(), TurnError> {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = active_session(&tx, &key)?;
            let last: Option<(i64, String)> = tx
                .query_row("SELECT seq, role FROM messages WHERE session_id = ?1 ORDER BY seq DESC LIMIT 1", [&id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?;
            let prev = last.as_ref().map(|(_, r)| if r == "user" { Role::User } else { Role::Assistant });
            check_turn(prev, &turn).map_err(TurnError::Order)?;
            let mut seq = last.map(|(s, _)| s).unwrap_or(0);
            let now = now_ms();
            let n = turn.len();
            for (i, m) in turn.into_iter().enumerate() {
                seq += 1;
                let content = serde_json::to_string(&m.content).expect("blocks serialise");
                let meta = (i + 1 == n).then(|| meta.to_string());
                tx.execute(
                    "INSERT INTO messages (session_id, seq, role, content, meta, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![id, seq, role_str(m.role), content, meta, now],
                )?;
            }
            tx.execute(
                "UPDATE sessions SET updated_at = ?2, user_id = coalesce(?3, user_id) WHERE id = ?1",
                params![id, now, user_id],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
        .map_err(|_| TurnError::Store(StoreError::Worker))?
    }

    pub async fn list_sessions(&self, limit: usize) -> Result<Vec<SessionInfo>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare(
                "SELECT s.id, s.key, s.model, s.created_at, s.updated_at,
                        (SELECT count(*) FROM messages m WHERE m.session_id = s.id)
                 FROM sessions s WHERE s.active = 1 ORDER BY s.updated_at DESC LIMIT ?1",
            )?;
            let rows = stmt.query_map([limit as i64], |r| {
                Ok(SessionInfo {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    model: r.get(2)?,
                    created_at: r.get(3)?,
                    updated_at: r.get(4)?,
                    message_count: r.get(5)?,
                })
            })?;
            rows.collect()
        })
        .await
    }

    pub async fn session_count(&self) -> Result<i64, StoreError> {
        self.call(|c| c.query_row("SELECT count(*) FROM sessions WHERE active = 1", [], |r| r.get(0))).await
    }

    /// Starts a fresh session under `key`; the old transcript is kept, inactive.
    /// Returns the new session id.
    pub async fn reset_session(&self, key: &str) -> Result<String, StoreError> {
        let key = key.to_string();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute("UPDATE sessions SET active = 0 WHERE key = ?1 AND active = 1", [&key])?;
            let id = active_session(&tx, &key)?;
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    /// The model chosen for this session (`/model`), if any.
    pub async fn session_model(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.call(move |c| {
            Ok(c.query_row("SELECT model FROM sessions WHERE key = ?1 AND active = 1", [&key], |r| r.get(0))
                .optional()?
                .flatten())
        })
        .await
    }

    /// Sets (or clears) the session's own model, creating the session if needed.
    pub async fn set_session_model(&self, key: &str, model: Option<String>) -> Result<(), StoreError> {
        let key = key.to_string();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let id = active_session(&tx, &key)?;
            tx.execute("UPDATE sessions SET model = ?2 WHERE id = ?1", params![id, model])?;
            tx.commit()
        })
        .await
    }

    /// Deletes every session (and transcript) under `key`; returns whether any existed.
    pub async fn delete_session(&self, key: &str) -> Result<bool, StoreError> {
        let key = key.to_string();
        self.call(move |c| Ok(c.execute("DELETE FROM sessions WHERE key = ?1", [&key])? > 0)).await
    }

    /// Records one tool call for usage statistics (and the hot knowledge index).
    pub async fn record_tool_call(&self, call: ToolCallRecord) -> Result<(), StoreError> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO tool_calls (name, session_id, user_id, topic, duration_ms, ok, error, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    call.name,
                    call.session_id,
                    call.user_id,
                    call.topic,
                    call.duration_ms as i64,
                    call.error.is_none(),
                    call.error,
                    now_ms()
                ],
            )
            .map(drop)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(text: &str) -> Message {
        Message { role: Role::User, content: vec![Block::Text { text: text.into() }] }
    }

    fn asst(text: &str) -> Message {
        Message { role: Role::Assistant, content: vec![Block::Text { text: text.into() }] }
    }

    fn tool_round(id: &str) -> [Message; 2] {
        [
            Message {
                role: Role::Assistant,
                content: vec![Block::ToolUse { id: id.into(), name: "t".into(), input: json!({}) }],
            },
            Message {
                role: Role::User,
                content: vec![Block::ToolResult { tool_use_id: id.into(), content: "r".into(), is_error: false }],
            },
        ]
    }

    #[test]
    fn turn_order_rules() {
        assert!(check_turn(None, &[user("hi"), asst("yo")]).is_ok());
        let [call, result] = tool_round("a");
        assert!(check_turn(Some(Role::Assistant), &[user("x"), call.clone(), result.clone(), asst("done")]).is_ok());
        assert!(check_turn(None, &[user("hi")]).is_err(), "must end with assistant");
        assert!(check_turn(Some(Role::User), &[user("x"), asst("y")]).is_err());
        assert!(check_turn(None, &[user("x"), asst("a"), asst("b")]).is_err());
        let [call_b, _] = tool_round("b");
        assert!(check_turn(None, &[user("x"), call_b, result, asst("done")]).is_err(), "result without its call");
        assert!(check_turn(None, &[user("x"), call, asst("done")]).is_err(), "call without result");
    }

    #[tokio::test]
    async fn turns_append_atomically_and_reset_keeps_the_old_transcript() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        store.append_turn("k", vec![user("one"), asst("1")], json!({"runId": "r1"}), None).await.unwrap();
        let bad = store.append_turn("k", vec![user("two"), user("oops")], json!({}), None).await;
        assert!(matches!(bad, Err(TurnError::Order(_))));
        let (id, msgs) = store.history("k", 100).await.unwrap();
        assert_eq!(msgs.len(), 2, "the bad turn left nothing behind");
        assert_eq!(msgs[1].meta["runId"], "r1");
        let new_id = store.reset_session("k").await.unwrap();
        assert_ne!(Some(new_id), id);
        assert!(store.history("k", 100).await.unwrap().1.is_empty());
        assert!(store.delete_session("k").await.unwrap());
        assert_eq!(store.session_count().await.unwrap(), 0);
    }
}
