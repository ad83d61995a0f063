//! What the prompt carries of memory and knowledge: a compact summary of a person's most
//! recent facts (per-user tier) and the hot knowledge topics (volatile tier). Both are
//! deterministic, so an unchanged memory keeps the cached prompt prefix valid.

use crate::store::{Store, StoreError};

/// The summary never grows past this many bytes.
pub const SUMMARY_MAX_BYTES: usize = 1500;
/// A single fact is cut to this many characters in the summary (memory_search has it whole).
const FACT_MAX_CHARS: usize = 200;
/// How many recent facts are considered for the summary.
const SUMMARY_CANDIDATES: usize = 40;

const HEADER: &str = "Saved facts about this person (newest last; #id for memory_forget):";

/// The person's most recent facts, newest last, at most `SUMMARY_MAX_BYTES`; empty when
/// nothing is saved. Byte-identical for as long as their memory is unchanged.
pub async fn memory_summary(store: &Store, user_id: i64) -> Result<String, StoreError> {
    let recent = store.recent_memories(user_id, SUMMARY_CANDIDATES + 1).await?;
    if recent.is_empty() {
        return Ok(String::new());
    }
    let total =
        if recent.len() > SUMMARY_CANDIDATES { store.memory_count(user_id).await? } else { recent.len() as i64 };
    // Room for the header and the "older entries" note, whatever its number.
    let budget = SUMMARY_MAX_BYTES - HEADER.len() - older_note(i64::from(u32::MAX)).len() - 2;
    let mut lines: Vec<String> = Vec::new();
    let mut used = 0;
    for m in recent.iter().take(SUMMARY_CANDIDATES) {
        let line = format!("- #{} {}", m.id, one_line(&m.text, FACT_MAX_CHARS));
        if used + line.len() + 1 > budget {
            break;
        }
        used += line.len() + 1;
        lines.push(line);
    }
    lines.reverse();
    let mut out = format!("{HEADER}\n{}", lines.join("\n"));
    let older = total - lines.len() as i64;
    if older > 0 {
        out.push('\n');
        out.push_str(&older_note(older));
    }
    Ok(out)
}

fn older_note(n: i64) -> String {
    format!("({n} older entries not shown: memory_search finds them)")
}

/// `text` on one line, cut to `max` characters with an ellipsis.
fn one_line(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max - 1).collect();
    cut.push('…');
    cut
}

/// The `n` knowledge topics tools used most (ties: most recent first).
pub async fn hot_topics(store: &Store, n: usize) -> Result<Vec<String>, StoreError> {
    Ok(store.hot_topics(n).await?.into_iter().map(|h| h.topic).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::store_with_users;

    #[tokio::test]
    async fn summary_is_newest_last_bounded_and_stable() {
        let (_dir, store) = store_with_users(&["alice", "bob"]).await;
        assert_eq!(memory_summary(&store, 1).await.unwrap(), "");
        store.save_memory(1, "Likes tea").await.unwrap();
        store.save_memory(1, "Has a dog\ncalled Rex").await.unwrap();
        store.save_memory(2, "Bob's secret").await.unwrap();
        let s = memory_summary(&store, 1).await.unwrap();
        assert_eq!(s, format!("{HEADER}\n- #1 Likes tea\n- #2 Has a dog called Rex"));
        assert_eq!(memory_summary(&store, 1).await.unwrap(), s, "byte-identical while unchanged");

        for i in 0..100 {
            store.save_memory(1, &format!("fact {i}: {}", "long words ".repeat(40))).await.unwrap();
        }
        let s = memory_summary(&store, 1).await.unwrap();
        assert!(s.len() <= SUMMARY_MAX_BYTES, "{} bytes", s.len());
        let lines: Vec<&str> = s.lines().collect();
        assert!(lines[lines.len() - 2].starts_with("- #103 fact 99: "), "newest last: {s}");
        assert!(lines[1].chars().count() <= FACT_MAX_CHARS + 10 && lines[1].ends_with('…'), "{s}");
        let shown = lines.len() - 2;
        assert_eq!(*lines.last().unwrap(), older_note(102 - shown as i64));
    }

    #[tokio::test]
    async fn hot_topics_are_names_in_order() {
        let (_dir, store) = store_with_users(&[]).await;
        for t in ["x", "y", "y"] {
            let rec = crate::store::ToolCallRecord { name: "k".into(), topic: Some(t.into()), ..Default::default() };
            store.record_tool_call(rec).await.unwrap();
        }
        assert_eq!(hot_topics(&store, 5).await.unwrap(), ["y", "x"]);
        assert_eq!(hot_topics(&store, 1).await.unwrap(), ["y"]);
    }
}
