//! `skynet-gateway stats`: tool usage recorded in the database (calls, errors, durations,
//! last use per tool), the hot knowledge topics, and the knowledge base's size; as a table
//! or as JSON.

use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use crate::agent::prompt::format_utc;
use crate::home::Home;
use crate::store::{HotTopic, Store, ToolUsage};

/// How many topics make up the hot index.
pub const HOT_INDEX_SIZE: usize = 5;

/// What `stats` reports.
struct Stats {
    tools: Vec<ToolUsage>,
    hot: Vec<HotTopic>,
    documents: i64,
}

pub fn run(as_json: bool) -> anyhow::Result<ExitCode> {
    let home = Home::resolve()?;
    let db = home.db_path();
    // Reading statistics must not create a database where there is none.
    let stats =
        if db.exists() { Some(read(&db).with_context(|| format!("cannot read {}", db.display()))?) } else { None };
    let out = match (as_json, &stats) {
        (true, Some(s)) => {
            json!({"database": db, "tools": s.tools, "hotTopics": s.hot, "knowledgeDocuments": s.documents}).to_string()
                + "\n"
        }
        (true, None) => {
            json!({"database": db, "tools": [], "hotTopics": [], "knowledgeDocuments": 0}).to_string() + "\n"
        }
        (false, Some(s)) => render(&db, s),
        (false, None) => format!("No database at {} yet: statistics start once the gateway has run.\n", db.display()),
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn read(db: &Path) -> anyhow::Result<Stats> {
    let store = Store::open(db)?;
    let rt = tokio::runtime::Builder::new_current_thread().build().context("cannot start the async runtime")?;
    rt.block_on(async {
        Ok(Stats {
            tools: store.tool_usage().await?,
            hot: store.hot_topics(HOT_INDEX_SIZE).await?,
            documents: store.knowledge_count().await?,
        })
    })
}

fn render(db: &Path, stats: &Stats) -> String {
    let mut s = String::new();
    if stats.tools.is_empty() {
        let _ = writeln!(s, "No tool calls recorded yet ({}).", db.display());
    } else {
        let w = stats.tools.iter().map(|t| t.name.len()).max().unwrap_or(0).max(4);
        let _ = writeln!(s, "Tool usage ({}):", db.display());
        let _ = writeln!(
            s,
            "  {:<w$}  {:>7}  {:>6}  {:>8}  {:>8}  last used",
            "tool", "calls", "errors", "avg ms", "max ms"
        );
        for t in &stats.tools {
            let last = format_utc((t.last_used / 1000).max(0) as u64);
            let _ = writeln!(
                s,
                "  {:<w$}  {:>7}  {:>6}  {:>8.1}  {:>8}  {last} UTC",
                t.name, t.calls, t.errors, t.avg_ms, t.max_ms
            );
        }
    }
    if stats.hot.is_empty() {
        let _ = writeln!(s, "No hot topics yet: knowledge_search and knowledge_read calls make them.");
    } else {
        let _ = writeln!(s, "Hot topics (the {HOT_INDEX_SIZE} most used knowledge topics):");
        for (i, h) in stats.hot.iter().enumerate() {
            let _ = writeln!(s, "  {}. {} ({} {})", i + 1, h.topic, h.uses, if h.uses == 1 { "use" } else { "uses" });
        }
    }
    let _ = writeln!(s, "Knowledge base: {} documents.", stats.documents);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lines_up_and_names_the_topics() {
        let tools = vec![
            ToolUsage { name: "knowledge_search".into(), calls: 12, errors: 1, avg_ms: 1.5, max_ms: 4, last_used: 0 },
            ToolUsage { name: "t".into(), calls: 1, errors: 0, avg_ms: 0.0, max_ms: 0, last_used: 60_000 },
        ];
        let hot = vec![HotTopic { topic: "Backups".into(), uses: 3 }, HotTopic { topic: "Wifi".into(), uses: 1 }];
        let s = render(Path::new("/h/skynet.db"), &Stats { tools, hot, documents: 7 });
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "Tool usage (/h/skynet.db):");
        assert_eq!(lines[2], "  knowledge_search       12       1       1.5         4  1970-01-01 00:00 UTC");
        assert_eq!(lines[3].find("1970"), lines[2].find("1970"));
        assert_eq!(&lines[5..], ["  1. Backups (3 uses)", "  2. Wifi (1 use)", "Knowledge base: 7 documents."]);
    }
}
