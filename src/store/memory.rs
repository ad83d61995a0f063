//! Per-user memory: short facts the agent saves about a person, shared by all of that
//! person's channels, searchable through the `memories_fts` index.
//!
//! Limits: an entry is at most `MAX_MEMORY_BYTES` (a fact, not a document: documents go in
//! the knowledge base), and a person holds at most `MAX_MEMORIES_PER_USER` entries. A full
//! memory refuses new entries rather than silently dropping the oldest: losing a fact
//! nobody chose to forget is worse than asking the agent to tidy up.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::fts::{self, Join};
use super::{Store, StoreError, now_ms};

pub const MAX_MEMORY_BYTES: usize = 4096;
pub const MAX_MEMORIES_PER_USER: i64 = 500;
/// Forgetting by text removes at most this many entries; more means the words were vague.
pub const MAX_FORGET_MATCHES: usize = 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Memory {
    pub id: i64,
    pub text: String,
    /// Unix ms.
    pub created_at: i64,
}

/// What `save_memory` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved {
    pub id: i64,
    /// The same text was already saved; nothing new was written.
    pub duplicate: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("there is nothing to save: give the fact as text")]
    Empty,
    #[error(
        "this memory entry is {bytes} bytes; the limit is {MAX_MEMORY_BYTES} bytes (4 KiB). Save one short fact in a sentence or two; put long documents in the knowledge base (knowledge_write)"
    )]
    TooLong { bytes: usize },
    #[error(
        "this person's memory is full ({MAX_MEMORIES_PER_USER} entries). Forget outdated or duplicate entries with memory_forget, then save again"
    )]
    Full,
    #[error("user {0} does not exist, so there is no memory to use")]
    UnknownUser(i64),
    #[error(
        "{0} entries match those words; forgetting is limited to {MAX_FORGET_MATCHES} at a time. Use more specific words, or forget by id (memory_search shows ids)"
    )]
    TooManyMatches(usize),
    #[error("say which memory to forget: an id, or words from the entry")]
    NothingToForget,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for MemoryError {
    fn from(e: rusqlite::Error) -> Self {
        MemoryError::Store(e.into())
    }
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Memory> {
    Ok(Memory { id: r.get(0)?, text: r.get(1)?, created_at: r.get(2)? })
}

fn user_exists(c: &rusqlite::Connection, user_id: i64) -> rusqlite::Result<bool> {
    Ok(c.query_row("SELECT 1 FROM users WHERE id = ?1", [user_id], |_| Ok(())).optional()?.is_some())
}

impl Store {
    /// Saves one fact for `user_id` (trimmed). An identical fact is not saved twice.
    pub async fn save_memory(&self, user_id: i64, text: &str) -> Result<Saved, MemoryError> {
        let text = text.trim().to_string();
        if text.is_empty() {
            return Err(MemoryError::Empty);
        }
        if text.len() > MAX_MEMORY_BYTES {
            return Err(MemoryError::TooLong { bytes: text.len() });
        }
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || -> Result<Saved, MemoryError> {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            if !user_exists(&tx, user_id)? {
                return Err(MemoryError::UnknownUser(user_id));
            }
            let existing: Option<i64> = tx
                .query_row("SELECT id FROM memories WHERE user_id = ?1 AND text = ?2", params![user_id, text], |r| {
                    r.get(0)
                })
                .optional()?;
            if let Some(id) = existing {
                return Ok(Saved { id, duplicate: true });
            }
            let count: i64 =
                tx.query_row("SELECT count(*) FROM memories WHERE user_id = ?1", [user_id], |r| r.get(0))?;
            if count >= MAX_MEMORIES_PER_USER {
                return Err(MemoryError::Full);
            }
            tx.execute(
                "INSERT INTO memories (user_id, text, created_at) VALUES (?1, ?2, ?3)",
                params![user_id, text, now_ms()],
            )?;
            let id = tx.last_insert_rowid();
            tx.commit()?;
            Ok(Saved { id, duplicate: false })
        })
        .await
        .map_err(|_| MemoryError::Store(StoreError::Worker))?
    }

    /// The user's memories matching any word of `query`, best first; with no searchable
    /// word, the most recent ones.
    pub async fn search_memories(&self, user_id: i64, query: &str, limit: usize) -> Result<Vec<Memory>, StoreError> {
        let Some(q) = fts::query(query, Join::Any) else {
            return self.recent_memories(user_id, limit).await;
        };
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT m.id, m.text, m.created_at FROM memories_fts f JOIN memories m ON m.id = f.rowid
                 WHERE memories_fts MATCH ?1 AND m.user_id = ?2 ORDER BY f.rank, m.id DESC LIMIT ?3",
            )?;
            stmt.query_map(params![q, user_id, limit as i64], row)?.collect()
        })
        .await
    }

    /// The user's `limit` newest memories, newest first.
    pub async fn recent_memories(&self, user_id: i64, limit: usize) -> Result<Vec<Memory>, StoreError> {
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, text, created_at FROM memories WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
            )?;
            stmt.query_map(params![user_id, limit as i64], row)?.collect()
        })
        .await
    }

    pub async fn memory_count(&self, user_id: i64) -> Result<i64, StoreError> {
        self.call(move |c| c.query_row("SELECT count(*) FROM memories WHERE user_id = ?1", [user_id], |r| r.get(0)))
            .await
    }

    /// Forgets the user's entry `id`; returns it, or `None` when the user has no such entry
    /// (another person's id included).
    pub async fn forget_memory(&self, user_id: i64, id: i64) -> Result<Option<Memory>, StoreError> {
        self.call(move |c| {
            c.query_row(
                "DELETE FROM memories WHERE id = ?1 AND user_id = ?2 RETURNING id, text, created_at",
                params![id, user_id],
                row,
            )
            .optional()
        })
        .await
    }

    /// Forgets the user's entries containing every word of `query`; returns them.
    pub async fn forget_matching(&self, user_id: i64, query: &str) -> Result<Vec<Memory>, MemoryError> {
        let q = fts::query(query, Join::All).ok_or(MemoryError::NothingToForget)?;
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<Memory>, MemoryError> {
            let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
            let tx = guard.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let found: Vec<Memory> = tx
                .prepare(
                    "SELECT m.id, m.text, m.created_at FROM memories_fts f JOIN memories m ON m.id = f.rowid
                     WHERE memories_fts MATCH ?1 AND m.user_id = ?2 ORDER BY m.id",
                )?
                .query_map(params![q, user_id], row)?
                .collect::<rusqlite::Result<_>>()?;
            if found.len() > MAX_FORGET_MATCHES {
                return Err(MemoryError::TooManyMatches(found.len()));
            }
            for m in &found {
                tx.execute("DELETE FROM memories WHERE id = ?1", [m.id])?;
            }
            tx.commit()?;
            Ok(found)
        })
        .await
        .map_err(|_| MemoryError::Store(StoreError::Worker))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{store_with_users, tempstore};

    #[tokio::test]
    async fn saved_facts_are_found_by_any_word_and_only_by_their_owner() {
        let (_dir, store) = store_with_users(&["alice", "bob"]).await;
        store.save_memory(1, "Alice's dog is called Rex").await.unwrap();
        store.save_memory(1, "Alice prefers tea over coffee").await.unwrap();
        store.save_memory(2, "Bob's dog is called Fido").await.unwrap();

        let hits = store.search_memories(1, "what is my dog called?", 10).await.unwrap();
        assert_eq!(hits.len(), 1, "{hits:?}");
        assert_eq!(hits[0].text, "Alice's dog is called Rex");
        let bob = store.search_memories(2, "dog", 10).await.unwrap();
        assert_eq!(bob.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["Bob's dog is called Fido"]);
        assert!(store.search_memories(2, "tea coffee", 10).await.unwrap().is_empty());
        assert!(store.search_memories(3, "dog", 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn hostile_query_syntax_never_errors() {
        let (_dir, store) = store_with_users(&["alice"]).await;
        store.save_memory(1, "Lives near the river (north bank) and likes \"quotes\"").await.unwrap();
        for q in [
            "\"unbalanced",
            "NEAR(a b",
            "*",
            "a AND OR",
            "(((",
            "col:value",
            "text:river",
            "😀🎉",
            "river*",
            "NOT river",
            "^river",
            "-river +bank",
            "\u{0345}",
            "'; DROP TABLE memories; --",
            "\0",
        ] {
            let got = store.search_memories(1, q, 5).await;
            assert!(got.is_ok(), "{q:?}: {got:?}");
        }
        let hits = store.search_memories(1, "NEAR(river", 5).await.unwrap();
        assert_eq!(hits.len(), 1, "the words still count");
        assert_eq!(store.search_memories(1, "\"quotes\"", 5).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn an_empty_query_lists_the_most_recent() {
        let (_dir, store) = store_with_users(&["alice"]).await;
        for t in ["one", "two", "three"] {
            store.save_memory(1, t).await.unwrap();
        }
        let got: Vec<String> = store.search_memories(1, "  ", 2).await.unwrap().into_iter().map(|m| m.text).collect();
        assert_eq!(got, ["three", "two"]);
    }

    #[tokio::test]
    async fn oversized_empty_and_duplicate_entries() {
        let (_dir, store) = store_with_users(&["alice"]).await;
        let huge = "x".repeat(1 << 20);
        let err = store.save_memory(1, &huge).await.unwrap_err();
        assert!(matches!(err, MemoryError::TooLong { bytes: 1_048_576 }), "{err}");
        assert!(err.to_string().contains("Save one short fact"), "{err}");
        assert!(store.save_memory(1, &"y".repeat(MAX_MEMORY_BYTES)).await.is_ok(), "exactly the limit fits");
        assert!(matches!(store.save_memory(1, " \n ").await, Err(MemoryError::Empty)));
        let a = store.save_memory(1, "likes jazz").await.unwrap();
        let b = store.save_memory(1, "  likes jazz ").await.unwrap();
        assert_eq!((b.id, b.duplicate), (a.id, true));
        assert_eq!(store.memory_count(1).await.unwrap(), 2);
        assert!(matches!(store.save_memory(42, "x").await, Err(MemoryError::UnknownUser(42))));
    }

    #[tokio::test]
    async fn a_full_memory_refuses_until_something_is_forgotten() {
        let (_dir, store) = store_with_users(&["alice"]).await;
        store
            .call(|c| {
                let mut stmt = c.prepare("INSERT INTO memories (user_id, text, created_at) VALUES (1, ?1, 0)")?;
                for i in 0..MAX_MEMORIES_PER_USER {
                    stmt.execute([format!("fact {i}")])?;
                }
                Ok(())
            })
            .await
            .unwrap();
        let err = store.save_memory(1, "one more").await.unwrap_err();
        assert!(matches!(err, MemoryError::Full), "{err}");
        assert!(err.to_string().contains("memory_forget"), "{err}");
        assert!(store.forget_memory(1, 1).await.unwrap().is_some());
        assert!(store.save_memory(1, "one more").await.is_ok());
    }

    #[tokio::test]
    async fn forgetting_touches_only_the_owners_entries() {
        let (_dir, store) = store_with_users(&["alice", "bob"]).await;
        let a = store.save_memory(1, "Alice's birthday is 3 May").await.unwrap();
        let b = store.save_memory(2, "Bob's birthday is 9 June").await.unwrap();
        assert_eq!(store.forget_memory(1, b.id).await.unwrap(), None, "bob's entry is not alice's to forget");
        assert!(store.forget_matching(1, "Bob's birthday").await.unwrap().is_empty());
        assert_eq!(store.memory_count(2).await.unwrap(), 1);

        let gone = store.forget_matching(1, "birthday May").await.unwrap();
        assert_eq!(gone.iter().map(|m| m.id).collect::<Vec<_>>(), [a.id]);
        assert!(store.search_memories(1, "birthday", 5).await.unwrap().is_empty(), "the index forgot it too");
        assert!(matches!(store.forget_matching(1, "***").await, Err(MemoryError::NothingToForget)));
    }

    #[tokio::test]
    async fn vague_forgetting_is_refused() {
        let (_dir, store) = store_with_users(&["alice"]).await;
        for i in 0..=MAX_FORGET_MATCHES {
            store.save_memory(1, &format!("note {i} about work")).await.unwrap();
        }
        let err = store.forget_matching(1, "work").await.unwrap_err();
        assert!(matches!(err, MemoryError::TooManyMatches(11)), "{err}");
        assert_eq!(store.memory_count(1).await.unwrap(), 11, "nothing was forgotten");
    }

    #[tokio::test]
    async fn memory_survives_reopening_the_database() {
        let (dir, store) = store_with_users(&["alice"]).await;
        store.save_memory(1, "takes the 8:15 train").await.unwrap();
        drop(store);
        let store = tempstore(&dir);
        assert_eq!(store.search_memories(1, "train", 5).await.unwrap()[0].text, "takes the 8:15 train");
    }
}
