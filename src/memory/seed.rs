//! Seeding the knowledge base from `$SKYNET_HOME/knowledge/*.md` (written there from the
//! embedded defaults on first run). Only topics not in the database yet are added, so a
//! document edited with `knowledge_write` keeps its edits across restarts and upgrades.

use std::path::{Path, PathBuf};

use crate::store::Store;

/// Adds the documents of `dir` whose topic is missing; returns how many were added.
/// A file's topic is its first `# heading` (else its file name without `.md`); its source
/// is the file name.
pub async fn seed_knowledge(store: &Store, dir: &Path) -> anyhow::Result<usize> {
    let dir = dir.to_path_buf();
    let docs = tokio::task::spawn_blocking(move || read_docs(&dir)).await??;
    Ok(store.seed_knowledge(docs).await?)
}

/// Seeds in the background, logging the outcome; used once at gateway start.
pub fn spawn_seeding(store: Store, dir: PathBuf) {
    tokio::spawn(async move {
        match seed_knowledge(&store, &dir).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(documents = n, dir = %dir.display(), "seeded the knowledge base"),
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "cannot seed the knowledge base"),
        }
    });
}

fn read_docs(dir: &Path) -> std::io::Result<Vec<(String, String, String)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md") && p.is_file())
        .collect();
    paths.sort();
    let mut docs = Vec::new();
    for path in paths {
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable knowledge file");
                continue;
            }
        };
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let stem = path.file_stem().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let (topic, body) = split_heading(&text).unwrap_or((stem, text.clone()));
        if let Err(e) = crate::store::validate_knowledge(&topic, &body) {
            tracing::warn!(file = %path.display(), error = %e, "skipping a knowledge file");
            continue;
        }
        docs.push((topic, body, name));
    }
    Ok(docs)
}

/// The first non-empty line as a topic when it is a `# heading`, and the rest as the body.
fn split_heading(text: &str) -> Option<(String, String)> {
    let trimmed = text.trim_start();
    let first = trimmed.lines().next()?;
    let topic = first.strip_prefix("# ")?.trim();
    let body = trimmed[first.len()..].trim();
    (!topic.is_empty() && !body.is_empty()).then(|| (topic.to_string(), body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_come_from_the_heading_or_the_file_name() {
        assert_eq!(split_heading("\n# Title \n\nBody text\n"), Some(("Title".into(), "Body text".into())));
        assert_eq!(split_heading("No heading\n"), None);
        assert_eq!(split_heading("## Second level\nx"), None);
        assert_eq!(split_heading("# Only a heading\n"), None);
    }

    #[tokio::test]
    async fn seeding_the_embedded_defaults_is_idempotent_and_keeps_edits() {
        let dir = tempfile::tempdir().unwrap();
        let home = crate::home::Home::at(dir.path().join("home"));
        home.prepare().unwrap();
        std::fs::write(home.root().join("knowledge/plain.md"), "no heading here").unwrap();
        std::fs::write(home.root().join("knowledge/notes.txt"), "# Not markdown\nignored").unwrap();
        let store = Store::open(&home.db_path()).unwrap();
        let kdir = home.root().join("knowledge");

        let first = seed_knowledge(&store, &kdir).await.unwrap();
        assert!(first >= 3, "the embedded seed documents and plain.md: {first}");
        let doc = store.knowledge("Configuring Skynet").await.unwrap().expect("seeded from its heading");
        assert_eq!(doc.source.as_deref(), Some("skynet-configuration.md"));
        assert!(!doc.body.starts_with('#'), "the heading became the topic");
        assert_eq!(store.knowledge("plain").await.unwrap().unwrap().body, "no heading here");
        assert!(store.knowledge("Not markdown").await.unwrap().is_none());

        store.write_knowledge("Configuring Skynet", "our own settings notes", Some("user:1")).await.unwrap();
        assert_eq!(seed_knowledge(&store, &kdir).await.unwrap(), 0);
        assert_eq!(store.knowledge("Configuring Skynet").await.unwrap().unwrap().body, "our own settings notes");
        assert_eq!(store.knowledge_count().await.unwrap(), first as i64);
        assert_eq!(seed_knowledge(&store, &dir.path().join("missing")).await.unwrap(), 0);
    }
}
