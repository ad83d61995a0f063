//! Per-user memory and the shared knowledge base (SQLite FTS5), and the hot index: the
//! tools the model uses, what the prompt carries of them, first-run seeding of the
//! knowledge base, and the `stats` command.

mod seed;
pub mod stats;
mod summary;
mod tools;

pub use seed::spawn_seeding;
pub use stats::HOT_INDEX_SIZE;
pub use summary::{hot_topics, memory_summary};
pub use tools::tools;
