//! Tool usage statistics from the `tool_calls` table: per-tool figures for `skynet-gateway
//! stats`, and the hot knowledge topics (the topics tools used most) for the prompt.

use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

/// Usage figures for one tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolUsage {
    pub name: String,
    pub calls: i64,
    pub errors: i64,
    pub avg_ms: f64,
    pub max_ms: i64,
    /// Unix ms of the latest call.
    pub last_used: i64,
}

/// A knowledge topic and how many recorded tool calls used it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HotTopic {
    pub topic: String,
    pub uses: i64,
}

impl Store {
    /// Every tool that was ever called, most called first.
    pub async fn tool_usage(&self) -> Result<Vec<ToolUsage>, StoreError> {
        self.call(|c| {
            let mut stmt = c.prepare(
                "SELECT name, count(*), sum(ok = 0), avg(duration_ms), max(duration_ms), max(created_at)
                 FROM tool_calls GROUP BY name ORDER BY count(*) DESC, name",
            )?;
            stmt.query_map([], |r| {
                Ok(ToolUsage {
                    name: r.get(0)?,
                    calls: r.get(1)?,
                    errors: r.get(2)?,
                    avg_ms: r.get(3)?,
                    max_ms: r.get(4)?,
                    last_used: r.get(5)?,
                })
            })?
            .collect()
        })
        .await
    }

    /// The `n` topics recorded most often on tool calls; ties go to the most recently used.
    pub async fn hot_topics(&self, n: usize) -> Result<Vec<HotTopic>, StoreError> {
        self.call(move |c| {
            // Reads only the partial index on `topic` (the rowid is in it too).
            let mut stmt = c.prepare_cached(
                "SELECT topic, count(*) AS uses FROM tool_calls WHERE topic IS NOT NULL
                 GROUP BY topic ORDER BY uses DESC, max(id) DESC LIMIT ?1",
            )?;
            stmt.query_map(params![n as i64], |r| Ok(HotTopic { topic: r.get(0)?, uses: r.get(1)? }))?.collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use crate::store::ToolCallRecord;
    use crate::store::testing::tempstore;

    fn call(name: &str, topic: Option<&str>, ms: u64, error: Option<&str>) -> ToolCallRecord {
        ToolCallRecord {
            name: name.into(),
            topic: topic.map(str::to_string),
            duration_ms: ms,
            error: error.map(str::to_string),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn hot_topics_are_the_most_used_with_ties_broken_by_recency() {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        assert!(store.hot_topics(5).await.unwrap().is_empty());
        let uses = [
            "A", "B", "B", "C", "C", "C", "D", "E", "F", "G", "A", // A, B: 2 each, A more recent
        ];
        for t in uses {
            store.record_tool_call(call("knowledge_search", Some(t), 1, None)).await.unwrap();
        }
        store.record_tool_call(call("current_time", None, 1, None)).await.unwrap();
        let hot: Vec<(String, i64)> =
            store.hot_topics(5).await.unwrap().into_iter().map(|h| (h.topic, h.uses)).collect();
        let want = [("C", 3), ("A", 2), ("B", 2), ("G", 1), ("F", 1)];
        assert_eq!(hot, want.map(|(t, n)| (t.to_string(), n)));
    }

    #[tokio::test]
    async fn usage_counts_calls_errors_and_durations_per_tool() {
        let dir = tempfile::tempdir().unwrap();
        let store = tempstore(&dir);
        store.record_tool_call(call("knowledge_search", Some("A"), 10, None)).await.unwrap();
        store.record_tool_call(call("knowledge_search", None, 30, Some("boom"))).await.unwrap();
        store.record_tool_call(call("current_time", None, 2, None)).await.unwrap();
        let usage = store.tool_usage().await.unwrap();
        assert_eq!(usage.len(), 2);
        let ks = &usage[0];
        assert_eq!((ks.name.as_str(), ks.calls, ks.errors, ks.avg_ms, ks.max_ms), ("knowledge_search", 2, 1, 20.0, 30));
        assert!(ks.last_used > 0);
        assert_eq!((usage[1].name.as_str(), usage[1].errors), ("current_time", 0));
    }
}
