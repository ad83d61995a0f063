//! The memory and knowledge tools the model calls. Memory tools act for the person the run
//! answers (`ToolCtx::user_id`) and never see anyone else's entries; knowledge tools work on
//! the shared knowledge base and report the topic they used, which feeds the hot index.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::agent::prompt::format_utc;
use crate::agent::tools::{Tool, ToolCtx, ToolOutput};
use crate::agent::types::ToolSpec;
use crate::store::{MAX_BODY_BYTES, MAX_MEMORY_BYTES, MAX_TOPIC_CHARS, Memory, Store};

const NO_USER: &str = "memory needs a known user, and this conversation has none (an anonymous API call). \
Answer without memory; the person can use a linked channel for it to be remembered.";

/// Every memory and knowledge tool, working on `store`.
pub fn tools(store: &Store) -> Vec<Arc<dyn Tool>> {
    vec![
        Arc::new(MemorySave(store.clone())),
        Arc::new(MemorySearch(store.clone())),
        Arc::new(MemoryForget(store.clone())),
        Arc::new(KnowledgeSearch(store.clone())),
        Arc::new(KnowledgeRead(store.clone())),
        Arc::new(KnowledgeWrite(store.clone())),
    ]
}

fn spec(name: &str, description: &str, properties: Value, required: &[&str]) -> ToolSpec {
    ToolSpec {
        name: name.into(),
        description: description.into(),
        input_schema: json!({"type": "object", "properties": properties, "required": required}),
    }
}

fn parse<T: DeserializeOwned>(tool: &str, example: &str, input: Value) -> Result<T, String> {
    serde_json::from_value(input).map_err(|e| format!("{tool} takes arguments like {example}: {e}"))
}

fn user(ctx: &ToolCtx) -> Result<i64, String> {
    ctx.user_id.ok_or_else(|| NO_USER.to_string())
}

fn limit(requested: Option<u64>, default: usize, max: usize) -> usize {
    requested.map_or(default, |n| (n as usize).clamp(1, max))
}

fn memory_json(m: &Memory) -> Value {
    json!({"id": m.id, "text": m.text, "saved": format!("{} UTC", format_utc((m.created_at / 1000) as u64))})
}

fn text(v: Value) -> ToolOutput {
    ToolOutput { text: v.to_string(), topic: None }
}

/// `memory_save {text}`.
struct MemorySave(Store);

#[derive(Deserialize)]
struct SaveInput {
    text: String,
}

impl Tool for MemorySave {
    fn spec(&self) -> ToolSpec {
        spec(
            "memory_save",
            &format!(
                "Save one durable fact about the person you are talking to (a preference, a name, a date, an ongoing \
                 project), in a sentence or two, at most {MAX_MEMORY_BYTES} bytes. It is remembered across all their \
                 channels and restarts. Never save passwords or other secrets."
            ),
            json!({"text": {"type": "string", "description": "the fact, e.g. \"Prefers metric units\""}}),
            &["text"],
        )
    }

    fn group(&self) -> &'static str {
        "memory"
    }

    fn call(&self, input: Value, ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let store = self.0.clone();
        Box::pin(async move {
            let user_id = user(&ctx)?;
            let SaveInput { text: fact } = parse("memory_save", r#"{"text": "Prefers tea"}"#, input)?;
            let saved = store.save_memory(user_id, &fact).await.map_err(|e| e.to_string())?;
            Ok(text(json!({"saved": !saved.duplicate, "id": saved.id, "alreadyKnown": saved.duplicate})))
        })
    }
}

/// `memory_search {query, limit?}`.
struct MemorySearch(Store);

#[derive(Deserialize)]
struct SearchInput {
    #[serde(default)]
    query: String,
    limit: Option<u64>,
}

impl Tool for MemorySearch {
    fn spec(&self) -> ToolSpec {
        spec(
            "memory_search",
            "Search what you saved about the person you are talking to. Words are matched individually (any word \
             counts, best matches first); an empty query lists the most recent facts.",
            json!({
                "query": {"type": "string", "description": "words to look for, e.g. \"birthday daughter\""},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "description": "at most this many (default 10)"},
            }),
            &["query"],
        )
    }

    fn group(&self) -> &'static str {
        "memory"
    }

    fn call(&self, input: Value, ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let store = self.0.clone();
        Box::pin(async move {
            let user_id = user(&ctx)?;
            let q: SearchInput = parse("memory_search", r#"{"query": "birthday"}"#, input)?;
            let found = store
                .search_memories(user_id, &q.query, limit(q.limit, 10, 50))
                .await
                .map_err(|e| format!("cannot search memory: {e}"))?;
            Ok(text(json!({"results": found.iter().map(memory_json).collect::<Vec<_>>()})))
        })
    }
}

/// `memory_forget {id? | query?}`.
struct MemoryForget(Store);

#[derive(Deserialize)]
struct ForgetInput {
    id: Option<i64>,
    query: Option<String>,
}

impl Tool for MemoryForget {
    fn spec(&self) -> ToolSpec {
        spec(
            "memory_forget",
            "Forget a saved fact about the person you are talking to: by its id (from memory_search or the memory \
             summary), or by words that all appear in it (at most 10 entries at once).",
            json!({
                "id": {"type": "integer", "description": "the entry's id"},
                "query": {"type": "string", "description": "words the entry contains"},
            }),
            &[],
        )
    }

    fn group(&self) -> &'static str {
        "memory"
    }

    fn call(&self, input: Value, ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let store = self.0.clone();
        Box::pin(async move {
            let user_id = user(&ctx)?;
            let f: ForgetInput = parse("memory_forget", r#"{"id": 12} or {"query": "old address"}"#, input)?;
            let forgotten = match (f.id, f.query.as_deref().map(str::trim).filter(|q| !q.is_empty())) {
                (Some(id), _) => match store.forget_memory(user_id, id).await.map_err(|e| e.to_string())? {
                    Some(m) => vec![m],
                    None => {
                        return Err(format!(
                            "there is no saved fact #{id} for this person; memory_search shows their entries and ids"
                        ));
                    }
                },
                (None, Some(q)) => store.forget_matching(user_id, q).await.map_err(|e| e.to_string())?,
                (None, None) => return Err("say which fact to forget: {\"id\": N} or {\"query\": \"words\"}".into()),
            };
            Ok(text(json!({"forgotten": forgotten.iter().map(memory_json).collect::<Vec<_>>()})))
        })
    }
}

/// `knowledge_search {query, limit?}`.
struct KnowledgeSearch(Store);

impl Tool for KnowledgeSearch {
    fn spec(&self) -> ToolSpec {
        spec(
            "knowledge_search",
            "Search the shared knowledge base (documents by topic). Returns matching topics, best first, with a \
             snippet each (matched words in **); read a whole document with knowledge_read.",
            json!({
                "query": {"type": "string", "description": "words to look for"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 20, "description": "at most this many (default 5)"},
            }),
            &["query"],
        )
    }

    fn group(&self) -> &'static str {
        "knowledge"
    }

    fn call(&self, input: Value, _ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let store = self.0.clone();
        Box::pin(async move {
            let q: SearchInput = parse("knowledge_search", r#"{"query": "backup"}"#, input)?;
            let hits = store
                .search_knowledge(&q.query, limit(q.limit, 5, 20))
                .await
                .map_err(|e| format!("cannot search the knowledge base: {e}"))?;
            let topic = hits.first().map(|h| h.topic.clone());
            let mut out = json!({"results": &hits});
            if hits.is_empty() {
                out["note"] = "nothing matched; try other or fewer words".into();
            }
            Ok(ToolOutput { text: out.to_string(), topic })
        })
    }
}

/// `knowledge_read {topic}`.
struct KnowledgeRead(Store);

#[derive(Deserialize)]
struct ReadInput {
    topic: String,
}

impl Tool for KnowledgeRead {
    fn spec(&self) -> ToolSpec {
        spec(
            "knowledge_read",
            "Read a whole knowledge base document by its topic (as knowledge_search lists it).",
            json!({"topic": {"type": "string"}}),
            &["topic"],
        )
    }

    fn group(&self) -> &'static str {
        "knowledge"
    }

    fn call(&self, input: Value, _ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let store = self.0.clone();
        Box::pin(async move {
            let r: ReadInput = parse("knowledge_read", r#"{"topic": "Backups"}"#, input)?;
            let doc = store.knowledge(&r.topic).await.map_err(|e| format!("cannot read the knowledge base: {e}"))?;
            let doc = doc.ok_or_else(|| {
                format!("there is no knowledge topic {:?}; knowledge_search finds topics by their words", r.topic)
            })?;
            Ok(ToolOutput { text: json!({"topic": doc.topic, "body": doc.body}).to_string(), topic: Some(doc.topic) })
        })
    }
}

/// `knowledge_write {topic, body}`.
struct KnowledgeWrite(Store);

#[derive(Deserialize)]
struct WriteInput {
    topic: String,
    body: String,
}

impl Tool for KnowledgeWrite {
    fn spec(&self) -> ToolSpec {
        spec(
            "knowledge_write",
            &format!(
                "Create or replace a shared knowledge base document, visible to everyone this assistant serves. \
                 Topic: a short title (at most {MAX_TOPIC_CHARS} characters); body: the whole document (at most \
                 {} KiB). Writing an existing topic replaces its body. Facts about one person belong in memory_save.",
                MAX_BODY_BYTES / 1024
            ),
            json!({"topic": {"type": "string"}, "body": {"type": "string", "description": "Markdown text"}}),
            &["topic", "body"],
        )
    }

    fn group(&self) -> &'static str {
        "knowledge"
    }

    fn call(&self, input: Value, ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let store = self.0.clone();
        Box::pin(async move {
            let w: WriteInput = parse("knowledge_write", r#"{"topic": "Backups", "body": "..."}"#, input)?;
            let source = ctx.user_id.map_or_else(|| "agent".to_string(), |u| format!("user:{u}"));
            let created = store.write_knowledge(&w.topic, &w.body, Some(&source)).await.map_err(|e| e.to_string())?;
            Ok(text(json!({"topic": w.topic.trim(), "created": created, "replaced": !created})))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_with_users;

    fn find(store: &Store, name: &str) -> Arc<dyn Tool> {
        tools(store).into_iter().find(|t| t.spec().name == name).unwrap()
    }

    async fn run(store: &Store, name: &str, user_id: Option<i64>, input: Value) -> Result<ToolOutput, String> {
        find(store, name).call(input, ToolCtx { user_id, session_key: "main".into() }).await
    }

    fn parsed(out: &ToolOutput) -> Value {
        serde_json::from_str(&out.text).unwrap()
    }

    #[tokio::test]
    async fn memory_tools_save_search_and_forget_for_the_runs_user_only() {
        let (_dir, store) = store_with_users(&["alice", "bob"]).await;
        let saved = run(&store, "memory_save", Some(1), json!({"text": "Alice is allergic to peanuts"})).await.unwrap();
        assert_eq!(parsed(&saved)["saved"], true);
        run(&store, "memory_save", Some(2), json!({"text": "Bob is allergic to cats"})).await.unwrap();

        let found = parsed(&run(&store, "memory_search", Some(1), json!({"query": "allergic"})).await.unwrap());
        assert_eq!(found["results"].as_array().unwrap().len(), 1, "{found}");
        assert_eq!(found["results"][0]["text"], "Alice is allergic to peanuts");
        assert!(found["results"][0]["saved"].as_str().unwrap().ends_with(" UTC"));

        let err = run(&store, "memory_forget", Some(1), json!({"id": 2})).await.unwrap_err();
        assert!(err.contains("no saved fact #2"), "{err}");
        let gone = parsed(&run(&store, "memory_forget", Some(1), json!({"query": "peanuts"})).await.unwrap());
        assert_eq!(gone["forgotten"][0]["id"], 1);
        assert_eq!(store.memory_count(2).await.unwrap(), 1, "bob's fact is untouched");
    }

    #[tokio::test]
    async fn memory_tools_need_a_user_and_refuse_a_megabyte() {
        let (_dir, store) = store_with_users(&["alice"]).await;
        for name in ["memory_save", "memory_search", "memory_forget"] {
            let err = run(&store, name, None, json!({"text": "x", "query": "x"})).await.unwrap_err();
            assert!(err.contains("memory needs a known user"), "{name}: {err}");
        }
        let err = run(&store, "memory_save", Some(1), json!({"text": "z".repeat(1 << 20)})).await.unwrap_err();
        assert!(err.contains("1048576 bytes") && err.contains("Save one short fact"), "{err}");
        let err = run(&store, "memory_save", Some(1), json!({"fact": "x"})).await.unwrap_err();
        assert!(err.contains("memory_save takes arguments like"), "{err}");
        let err = run(&store, "memory_forget", Some(1), json!({})).await.unwrap_err();
        assert!(err.contains("say which fact to forget"), "{err}");
    }

    #[tokio::test]
    async fn knowledge_tools_write_search_read_and_report_the_topic() {
        let (_dir, store) = store_with_users(&[]).await;
        let w = run(&store, "knowledge_write", None, json!({"topic": "Backups", "body": "Copy ~/.skynet nightly."}))
            .await
            .unwrap();
        assert_eq!(parsed(&w)["created"], true);
        assert_eq!(store.knowledge("Backups").await.unwrap().unwrap().source.as_deref(), Some("agent"));

        let s = run(&store, "knowledge_search", None, json!({"query": "nightly (copy"})).await.unwrap();
        assert_eq!(s.topic.as_deref(), Some("Backups"));
        assert!(parsed(&s)["results"][0]["snippet"].as_str().unwrap().contains("**nightly**"), "{}", s.text);

        let none = run(&store, "knowledge_search", None, json!({"query": "NEAR("})).await.unwrap();
        assert_eq!((none.topic.as_deref(), parsed(&none)["note"].is_string()), (None, true));

        let r = run(&store, "knowledge_read", None, json!({"topic": "backups"})).await.unwrap();
        assert_eq!(
            (r.topic.as_deref(), parsed(&r)["body"].as_str()),
            (Some("Backups"), Some("Copy ~/.skynet nightly."))
        );
        let err = run(&store, "knowledge_read", None, json!({"topic": "nope"})).await.unwrap_err();
        assert!(err.contains("no knowledge topic"), "{err}");

        let big = "b".repeat(MAX_BODY_BYTES + 1);
        let err = run(&store, "knowledge_write", Some(1), json!({"topic": "Big", "body": big})).await.unwrap_err();
        assert!(err.contains("256 KiB"), "{err}");
    }

    #[test]
    fn tools_are_in_the_memory_and_knowledge_groups() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db")).unwrap();
        let groups: Vec<(String, &str)> = tools(&store).iter().map(|t| (t.spec().name, t.group())).collect();
        for (name, group) in groups {
            assert_eq!(group, name.split('_').next().unwrap(), "{name}");
        }
    }
}
