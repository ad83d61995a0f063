//! The shared knowledge base: documents by topic, searchable through `knowledge_fts` with
//! bm25 ranking (a topic hit weighs ten times a body hit) and highlighted snippets.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use super::fts::{self, Join};
use super::{Store, StoreError, now_ms};

pub const MAX_TOPIC_CHARS: usize = 200;
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KnowledgeHit {
    pub topic: String,
    /// Up to ~24 words of the body around the match, matched words in `**`.
    pub snippet: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KnowledgeDoc {
    pub topic: String,
    pub body: String,
    /// The seed file it came from, or who wrote it.
    pub source: Option<String>,
    /// Unix ms.
    pub updated_at: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("a knowledge topic needs a name: give a short title such as \"Home network\"")]
    NoTopic,
    #[error(
        "a knowledge topic is one line of at most {MAX_TOPIC_CHARS} characters (this one is {0}); use a short title"
    )]
    BadTopic(usize),
    #[error("the document is empty: give its text as the body")]
    EmptyBody,
    #[error("the document is {0} bytes; the limit is {MAX_BODY_BYTES} bytes (256 KiB). Split it into several topics")]
    BodyTooLarge(usize),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks and tidies a topic and body the way `write_knowledge` stores them.
pub fn validate(topic: &str, body: &str) -> Result<(String, String), KnowledgeError> {
    let topic = topic.trim();
    if topic.is_empty() {
        return Err(KnowledgeError::NoTopic);
    }
    let chars = topic.chars().count();
    if chars > MAX_TOPIC_CHARS || topic.chars().any(char::is_control) {
        return Err(KnowledgeError::BadTopic(chars));
    }
    if body.len() > MAX_BODY_BYTES {
        return Err(KnowledgeError::BodyTooLarge(body.len()));
    }
    let body = body.trim();
    if body.is_empty() {
        return Err(KnowledgeError::EmptyBody);
    }
    Ok((topic.to_string(), body.to_string()))
}

/// A word found in at least this many documents is common: ranking every document that
/// holds it would cost milliseconds per thousand documents, and bm25 gives it little weight.
const COMMON_DOCS: i64 = 2000;

const SNIPPET: &str = "snippet(knowledge_fts, 1, '**', '**', '…', 24)";

/// Ranks the documents holding any of the query's selective (not common) words. Only when
/// every word is common are the newest `COMMON_DOCS` documents holding one of them ranked,
/// so the cost stays bounded however large the knowledge base grows. On a small knowledge
/// base no word is common and this is plain bm25 over all matches.
fn search(c: &rusqlite::Connection, terms: &[String], limit: usize) -> rusqlite::Result<Vec<KnowledgeHit>> {
    let (mut selective, mut common) = (Vec::new(), Vec::new());
    {
        let mut probe = c.prepare_cached(
            "SELECT count(*) FROM (SELECT 1 FROM knowledge_fts WHERE knowledge_fts MATCH ?1 LIMIT ?2)",
        )?;
        for t in terms {
            match probe.query_row(params![t, COMMON_DOCS], |r| r.get::<_, i64>(0))? {
                0 => {}
                n if n < COMMON_DOCS => selective.push(t.clone()),
                _ => common.push(t.clone()),
            }
        }
    }
    let hit = |r: &rusqlite::Row<'_>| Ok(KnowledgeHit { topic: r.get(0)?, snippet: r.get(1)? });
    if !selective.is_empty() {
        // `rank MATCH` swaps in the weighted bm25 on FTS5's `ORDER BY rank LIMIT` path.
        let mut stmt = c.prepare_cached(&format!(
            "SELECT topic, {SNIPPET} FROM knowledge_fts
             WHERE knowledge_fts MATCH ?1 AND rank MATCH 'bm25(10.0, 1.0)' ORDER BY rank LIMIT ?2"
        ))?;
        return stmt.query_map(params![fts::join(&selective, Join::Any), limit as i64], hit)?.collect();
    }
    if common.is_empty() {
        return Ok(Vec::new());
    }
    let q = fts::join(&common, Join::Any);
    let ids: Vec<i64> = c
        .prepare_cached(
            "SELECT id FROM (SELECT rowid AS id, bm25(knowledge_fts, 10.0, 1.0) AS score FROM knowledge_fts
                             WHERE knowledge_fts MATCH ?1 ORDER BY rowid DESC LIMIT ?2)
             ORDER BY score, id DESC LIMIT ?3",
        )?
        .query_map(params![q, COMMON_DOCS, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut one = c.prepare_cached(&format!(
        "SELECT topic, {SNIPPET} FROM knowledge_fts WHERE knowledge_fts MATCH ?1 AND rowid = ?2"
    ))?;
    ids.into_iter().map(|id| one.query_row(params![q, id], hit)).collect()
}

impl Store {
    /// Creates or replaces the document `topic`; returns whether it was new.
    pub async fn write_knowledge(&self, topic: &str, body: &str, source: Option<&str>) -> Result<bool, KnowledgeError> {
        let (topic, body) = validate(topic, body)?;
        let source = source.map(str::to_string);
        Ok(self
            .call(move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let existed =
                    tx.query_row("SELECT 1 FROM knowledge WHERE topic = ?1", [&topic], |_| Ok(())).optional()?;
                tx.execute(
                    "INSERT INTO knowledge (topic, body, source, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (topic) DO UPDATE SET body = excluded.body, source = excluded.source,
                                                       updated_at = excluded.updated_at",
                    params![topic, body, source, now_ms()],
                )?;
                tx.commit()?;
                Ok(existed.is_none())
            })
            .await?)
    }

    /// Adds the documents whose topic is not there yet, leaving existing ones (and any
    /// edits to them) alone; returns how many were added. Invalid documents are skipped.
    pub async fn seed_knowledge(&self, docs: Vec<(String, String, String)>) -> Result<usize, StoreError> {
        let docs: Vec<_> =
            docs.into_iter().filter_map(|(t, b, s)| validate(&t, &b).ok().map(|(t, b)| (t, b, s))).collect();
        self.call(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut added = 0;
            {
                let mut stmt = tx.prepare(
                    "INSERT INTO knowledge (topic, body, source, updated_at) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (topic) DO NOTHING",
                )?;
                let now = now_ms();
                for (topic, body, source) in &docs {
                    added += stmt.execute(params![topic, body, source, now])?;
                }
            }
            tx.commit()?;
            Ok(added)
        })
        .await
    }

    /// Documents matching any word of `query`, best first (bm25, topic weighted 10:1).
    pub async fn search_knowledge(&self, query: &str, limit: usize) -> Result<Vec<KnowledgeHit>, StoreError> {
        let terms = fts::terms(query);
        if terms.is_empty() {
            return Ok(Vec::new());
        }
        self.call(move |c| search(c, &terms, limit)).await
    }

    /// The document named exactly `topic` (case-insensitively when no exact match).
    pub async fn knowledge(&self, topic: &str) -> Result<Option<KnowledgeDoc>, StoreError> {
        let topic = topic.trim().to_string();
        self.call(move |c| {
            let get = |sql: &str| {
                c.query_row(sql, [&topic], |r| {
                    Ok(KnowledgeDoc { topic: r.get(0)?, body: r.get(1)?, source: r.get(2)?, updated_at: r.get(3)? })
                })
                .optional()
            };
            // The exact lookup uses the index; the case-blind one scans, so it comes second.
            match get("SELECT topic, body, source, updated_at FROM knowledge WHERE topic = ?1")? {
                Some(d) => Ok(Some(d)),
                None => get(
                    "SELECT topic, body, source, updated_at FROM knowledge WHERE topic = ?1 COLLATE NOCASE ORDER BY id LIMIT 1",
                ),
            }
        })
        .await
    }

    pub async fn knowledge_count(&self) -> Result<i64, StoreError> {
        self.call(|c| c.query_row("SELECT count(*) FROM knowledge", [], |r| r.get(0))).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::tempstore;

    fn doc(topic: &str, body: &str) -> (String, String, String) {
        (topic.into(), body.into(), "seed.md".into())
    }

    #[tokio::test]
    async fn search_ranks_topic_hits_first_and_highlights_the_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        store.write_knowledge("Garden", "Water the tomatoes daily. Backups are elsewhere.", None).await.unwrap();
        store.write_knowledge("Backups", "Copy the home directory while the gateway is stopped.", None).await.unwrap();
        let hits = store.search_knowledge("backups", 5).await.unwrap();
        assert_eq!(hits.iter().map(|h| h.topic.as_str()).collect::<Vec<_>>(), ["Backups", "Garden"]);
        assert!(hits[1].snippet.contains("**Backups**"), "{hits:?}");
        assert!(store.search_knowledge("", 5).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn words_in_most_documents_stay_cheap_and_rarer_words_decide() {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        let docs = (0..COMMON_DOCS + 100)
            .map(|i| {
                let body = if i % 1000 == 7 { format!("common rare {i}") } else { format!("common filler {i}") };
                doc(&format!("doc {i}"), &body)
            })
            .collect();
        store.seed_knowledge(docs).await.unwrap();
        let rare = store.search_knowledge("common rare", 5).await.unwrap();
        let mut topics: Vec<&str> = rare.iter().map(|h| h.topic.as_str()).collect();
        topics.sort();
        assert_eq!(topics, ["doc 1007", "doc 2007", "doc 7"]);
        let common = store.search_knowledge("common", 5).await.unwrap();
        assert_eq!(common.len(), 5);
        assert!(common.iter().all(|h| h.snippet.contains("**common**")), "{common:?}");
    }

    #[tokio::test]
    async fn hostile_query_syntax_never_errors() {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        store.write_knowledge("Syntax", "NEAR and AND and OR are words here (really).", None).await.unwrap();
        for q in ["\"unbalanced", "NEAR(a b", "*", "a AND OR", "(((", "col:value", "topic:Syntax", "🙂", "\u{0345}"] {
            let got = store.search_knowledge(q, 5).await;
            assert!(got.is_ok(), "{q:?}: {got:?}");
        }
        assert_eq!(store.search_knowledge("NEAR(", 5).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn writes_replace_by_topic_and_keep_the_index_in_step() {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        assert!(store.write_knowledge(" Wifi ", "password on the fridge", Some("user:1")).await.unwrap());
        assert!(!store.write_knowledge("Wifi", "the network is called attic", None).await.unwrap());
        assert!(store.search_knowledge("fridge", 5).await.unwrap().is_empty(), "the old body left the index");
        assert_eq!(store.search_knowledge("attic", 5).await.unwrap()[0].topic, "Wifi");
        let d = store.knowledge("wifi").await.unwrap().unwrap();
        assert_eq!((d.topic.as_str(), d.body.as_str(), d.source), ("Wifi", "the network is called attic", None));
        assert_eq!(store.knowledge_count().await.unwrap(), 1);
    }

    #[tokio::test]
    async fn limits_on_topic_and_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        let big = "b".repeat(MAX_BODY_BYTES + 1);
        assert!(matches!(store.write_knowledge("t", &big, None).await, Err(KnowledgeError::BodyTooLarge(_))));
        assert!(store.write_knowledge("t", &"b".repeat(MAX_BODY_BYTES), None).await.is_ok());
        let long = "t".repeat(MAX_TOPIC_CHARS + 1);
        assert!(matches!(store.write_knowledge(&long, "x", None).await, Err(KnowledgeError::BadTopic(201))));
        assert!(matches!(store.write_knowledge("two\nlines", "x", None).await, Err(KnowledgeError::BadTopic(_))));
        assert!(matches!(store.write_knowledge("  ", "x", None).await, Err(KnowledgeError::NoTopic)));
        assert!(matches!(store.write_knowledge("t", " ", None).await, Err(KnowledgeError::EmptyBody)));
    }

    #[tokio::test]
    async fn seeding_is_idempotent_and_never_overwrites_an_edit() {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        let seed = vec![doc("Configuring", "layers of settings"), doc("Privacy", "data stays home")];
        assert_eq!(store.seed_knowledge(seed.clone()).await.unwrap(), 2);
        assert_eq!(store.seed_knowledge(seed.clone()).await.unwrap(), 0);
        store.write_knowledge("Privacy", "my own notes", Some("user:1")).await.unwrap();
        let mut more = seed;
        more.push(doc("New", "arrived in an update"));
        assert_eq!(store.seed_knowledge(more).await.unwrap(), 1);
        assert_eq!(store.knowledge("Privacy").await.unwrap().unwrap().body, "my own notes");
        assert_eq!(store.knowledge_count().await.unwrap(), 3);
    }
}
