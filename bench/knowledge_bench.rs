//! Knowledge search latency over a large knowledge base, and the per-message cost of the
//! memory summary and hot index, measured on the gateway's own store code (the modules are
//! compiled in from `src/`, not reimplemented). Prints figures; never fails on a timing.
//!
//! `cargo run --release --example knowledge_bench -- [documents] [memories] [tool_calls]`
//! (defaults 100000, 500, 100000); `bench/knowledge.sh` runs it.
#![allow(dead_code, unused_imports, reason = "the store is compiled in whole; the bench uses part of it")]

#[path = "../src/agent/types.rs"]
pub mod agent_types;
mod agent {
    pub use super::agent_types as types;
}
#[path = "../src/store/mod.rs"]
mod store;
#[path = "../src/users/roles.rs"]
mod users_roles;
mod users {
    pub use super::users_roles::Role;
}
#[path = "../src/memory/summary.rs"]
mod summary;

use std::time::{Duration, Instant};

use store::{Store, ToolCallRecord};

/// A small deterministic generator (xorshift64*), so every run indexes the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A word index with a Zipf-like distribution: word 0 is the most common.
    fn zipf(&mut self, n: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((n as f64).powf(u) - 1.0) as usize
    }
}

const VOCABULARY: usize = 30_000;
const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "to", "vi", "de", "fa", "go", "hu", "ji", "be", "po", "qu", "ze", "xi", "wa",
    "yo", "ar", "en", "il", "os",
];

/// Word `i` of a synthetic vocabulary (distinct words of two to four syllables).
fn word(i: usize) -> String {
    let mut n = i + 24;
    let mut w = String::new();
    while n > 0 {
        w.push_str(SYLLABLES[n % 24]);
        n /= 24;
    }
    w
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn report(label: &str, mut times: Vec<Duration>) {
    times.sort();
    println!(
        "  {label:<44} p50 {:>7.3} ms   p99 {:>7.3} ms   ({} runs)",
        percentile(&times, 0.50),
        percentile(&times, 0.99),
        times.len()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let arg = |i: usize, default: usize| std::env::args().nth(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (docs, memories, calls) = (arg(1, 100_000), arg(2, 500), arg(3, 100_000));
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Store::open(&dir.path().join("bench.db")).expect("the bench database");
    let mut rng = Rng(0x5eed_1234_abcd_ef01);

    let started = Instant::now();
    for batch in 0..docs.div_ceil(1000) {
        let mut seed = Vec::with_capacity(1000);
        for i in batch * 1000..((batch + 1) * 1000).min(docs) {
            let topic = format!("{} {} {i}", word(rng.zipf(VOCABULARY)), word(rng.zipf(VOCABULARY)));
            let len = 60 + rng.below(140);
            let body: Vec<String> = (0..len).map(|_| word(rng.zipf(VOCABULARY))).collect();
            seed.push((topic, body.join(" "), "bench".to_string()));
        }
        store.seed_knowledge(seed).await.expect("insert documents");
    }
    let size = std::fs::metadata(dir.path().join("bench.db")).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(dir.path().join("bench.db-wal")).map(|m| m.len()).unwrap_or(0);
    println!(
        "indexed {docs} documents (60-200 words each, {VOCABULARY}-word Zipf vocabulary) in {:.1} s; database {:.0} MiB",
        started.elapsed().as_secs_f64(),
        size as f64 / 1_048_576.0
    );

    println!("knowledge_search (bm25 10:1, snippet, limit 5) through Store::search_knowledge:");
    type Query = fn(&mut Rng) -> String;
    let kinds: [(&str, Query); 6] = [
        ("one rare word", |r| word(5000 + r.below(20_000))),
        ("one mid-frequency word", |r| word(100 + r.below(900))),
        ("one very common word (in most documents)", |r| word(r.below(5))),
        ("two mid-frequency words", |r| format!("{} {}", word(100 + r.below(900)), word(100 + r.below(900)))),
        ("a 6-word question mixing common and rare", |r| {
            (0..6).map(|_| word(r.zipf(VOCABULARY))).collect::<Vec<_>>().join(" ")
        }),
        ("hostile syntax: `\"x NEAR(y *` (((`", |r| {
            format!("\"{} NEAR({} * (((", word(100 + r.below(900)), word(r.below(5000)))
        }),
    ];
    let mut all = Vec::new();
    for (label, make) in kinds {
        let mut times = Vec::new();
        for _ in 0..200 {
            let q = make(&mut rng);
            let t = Instant::now();
            let hits = store.search_knowledge(&q, 5).await.expect("search");
            times.push(t.elapsed());
            std::hint::black_box(hits);
        }
        all.extend(times.iter().copied());
        report(label, times);
    }
    report("all of the above", all);

    store
        .call(|c| c.execute("INSERT INTO users (name, role, created_at) VALUES ('bench', 'user', 0)", []))
        .await
        .expect("a user");
    for i in 0..memories {
        let fact = format!("Fact {i}: prefers {} over {} on {}", word(rng.zipf(2000)), word(rng.zipf(2000)), word(i));
        store.save_memory(1, &fact).await.expect("save a memory");
    }
    let topics: Vec<String> = (0..200).map(|i| format!("{} {} {i}", word(i), word(i + 1))).collect();
    store
        .call(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare(
                    "INSERT INTO tool_calls (name, user_id, topic, duration_ms, ok, created_at) VALUES (?1, 1, ?2, 3, 1, ?3)",
                )?;
                let mut r = Rng(42);
                for i in 0..calls {
                    // About a third of calls read knowledge; topics follow a Zipf curve too.
                    let (name, topic) = if i % 3 == 0 {
                        ("knowledge_search", Some(topics[r.zipf(topics.len())].clone()))
                    } else {
                        ("current_time", None)
                    };
                    stmt.execute(rusqlite::params![name, topic, i as i64])?;
                }
            }
            tx.commit()
        })
        .await
        .expect("tool calls");
    // Through the same path the gateway records with.
    store.record_tool_call(ToolCallRecord { name: "knowledge_search".into(), ..Default::default() }).await.unwrap();

    println!("per message, with {memories} memories and {calls} recorded tool calls:");
    let (mut summary_t, mut hot_t, mut both_t) = (Vec::new(), Vec::new(), Vec::new());
    let mut summary_len = 0;
    for _ in 0..1000 {
        let t = Instant::now();
        let s = summary::memory_summary(&store, 1).await.expect("summary");
        let a = t.elapsed();
        let t = Instant::now();
        let h = summary::hot_topics(&store, 5).await.expect("hot topics");
        let b = t.elapsed();
        summary_len = s.len();
        std::hint::black_box(h);
        summary_t.push(a);
        hot_t.push(b);
        both_t.push(a + b);
    }
    report(&format!("memory_summary ({summary_len} bytes)"), summary_t);
    report("hot_topics(5)", hot_t);
    report("both: the memory lookup cost per message", both_t);
    let mut search_t = Vec::new();
    for _ in 0..1000 {
        let q = format!("what do I prefer on {}", word(rng.below(memories.max(1))));
        let t = Instant::now();
        std::hint::black_box(store.search_memories(1, &q, 10).await.expect("memory search"));
        search_t.push(t.elapsed());
    }
    report("memory_search (a 6-word question, limit 10)", search_t);
}
