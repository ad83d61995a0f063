//! The knowledge base and tool statistics through the real binary: seeding at start, the
//! knowledge tools called by a (fake) model over the gateway, edits surviving a restart,
//! hostile search text, and `skynet-gateway stats` reading what the gateway recorded.
//! (Memory tools need a known user; they are tested at the unit level until channel
//! identities reach the agent.)

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

fn start(home: &Path, fake: &FakeAnthropic) -> Gateway {
    let url = fake.base_url();
    let env = [
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", url.as_str()),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test"),
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
    ];
    Gateway::start_in(home, &env, &[]).unwrap_or_else(|(o, e)| panic!("start failed:\n{o}\n{e}"))
}

/// Waits until the knowledge base holds `topic` (seeding runs in the background).
fn wait_for_topic(home: &Path, topic: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let db = rusqlite::Connection::open(home.join("skynet.db")).unwrap();
    loop {
        let n: i64 = db.query_row("SELECT count(*) FROM knowledge WHERE topic = ?1", [topic], |r| r.get(0)).unwrap();
        if n == 1 {
            return;
        }
        assert!(Instant::now() < deadline, "the knowledge base never got {topic:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Has the fake model call `tool` with `args`; returns (tool result, is error).
async fn call_tool(c: &mut Client, tool: &str, args: Value) -> (Value, bool) {
    let idem = format!("run-{}", rand_id());
    let (events, fin) = chat_turn(c, "main", &format!("call:{tool} {args}"), &idem).await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    let result = events
        .iter()
        .find(|e| e["payload"]["stream"] == "tool" && e["payload"]["data"]["phase"] == "result")
        .unwrap_or_else(|| panic!("no tool result among {events:?}"));
    let data = &result["payload"]["data"];
    let text = data["result"].as_str().unwrap();
    let is_error = data["isError"] == true;
    (serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())), is_error)
}

fn stats(home: &Path, json: bool) -> String {
    let mut cmd = command(home);
    cmd.arg("stats");
    if json {
        cmd.arg("--json");
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "stats failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test]
async fn knowledge_searches_through_the_gateway_show_up_in_stats_and_the_hot_index() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let g = start(&home, &fake);
    wait_for_topic(&home, "Configuring Skynet");
    wait_for_topic(&home, "Where Skynet keeps data");
    let (mut c, _) = Client::backend(&g, 3).await;

    for _ in 0..2 {
        let (found, err) = call_tool(&mut c, "knowledge_search", json!({"query": "which port and auth token"})).await;
        assert!(!err, "{found}");
        assert_eq!(found["results"][0]["topic"], "Configuring Skynet", "{found}");
        assert!(found["results"][0]["snippet"].as_str().unwrap().contains("**"), "{found}");
    }
    let (found, _) = call_tool(&mut c, "knowledge_search", json!({"query": "back up the database"})).await;
    assert_eq!(found["results"][0]["topic"], "Where Skynet keeps data", "{found}");
    let (_, err) = call_tool(&mut c, "knowledge_read", json!({"topic": "nothing by this name"})).await;
    assert!(err, "a missing topic is an error the model sees");

    let v: Value = serde_json::from_str(&stats(&home, true)).unwrap();
    let tool = |name: &str| v["tools"].as_array().unwrap().iter().find(|t| t["name"] == name).cloned();
    let search = tool("knowledge_search").expect("knowledge_search recorded");
    assert_eq!((search["calls"].as_i64(), search["errors"].as_i64()), (Some(3), Some(0)), "{v}");
    assert!(search["lastUsed"].as_i64().unwrap() > now_ms() - 60_000);
    assert_eq!(tool("knowledge_read").unwrap()["errors"], 1);
    assert_eq!(
        v["hotTopics"],
        json!([{"topic": "Configuring Skynet", "uses": 2}, {"topic": "Where Skynet keeps data", "uses": 1}])
    );
    assert!(v["knowledgeDocuments"].as_i64().unwrap() >= 2);

    let table = stats(&home, false);
    assert!(table.contains("knowledge_search") && table.contains("1. Configuring Skynet (2 uses)"), "{table}");
}

#[tokio::test]
async fn knowledge_written_through_the_gateway_survives_a_restart_and_reseeding() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let mut g = start(&home, &fake);
    wait_for_topic(&home, "Configuring Skynet");
    let (mut c, _) = Client::backend(&g, 3).await;
    let edit = json!({"topic": "Configuring Skynet", "body": "House rule: the gateway runs on port 9000."});
    let (out, err) = call_tool(&mut c, "knowledge_write", edit).await;
    assert_eq!((out["replaced"].as_bool(), err), (Some(true), false), "{out}");
    let garden = json!({"topic": "Garden", "body": "Water the tomatoes every evening."});
    assert_eq!(call_tool(&mut c, "knowledge_write", garden).await.0["created"], true);
    drop(c);
    g.signal("TERM");
    assert!(g.wait_exit(Duration::from_secs(10)).success());
    drop(g);

    // A seed file that arrived meanwhile (an upgrade) is added; the edited one is not reset.
    std::fs::write(home.join("knowledge/extra.md"), "# Extra\n\nNew in this version.\n").unwrap();
    let g = start(&home, &fake);
    wait_for_topic(&home, "Extra");
    let (mut c, _) = Client::backend(&g, 3).await;
    let (doc, _) = call_tool(&mut c, "knowledge_read", json!({"topic": "configuring skynet"})).await;
    assert_eq!(doc["body"], "House rule: the gateway runs on port 9000.");
    let (found, _) = call_tool(&mut c, "knowledge_search", json!({"query": "tomatoes"})).await;
    assert_eq!(found["results"][0]["topic"], "Garden");
}

#[tokio::test]
async fn hostile_search_text_never_breaks_a_search() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let g = start(&home, &fake);
    wait_for_topic(&home, "Configuring Skynet");
    let (mut c, _) = Client::backend(&g, 3).await;
    for q in ["\"unbalanced", "NEAR(a b", "*", "a AND OR", "(((", "topic:Skynet", "🦀🦀", "doctor*"] {
        let (out, err) = call_tool(&mut c, "knowledge_search", json!({"query": q})).await;
        assert!(!err && out["results"].is_array(), "{q:?}: {out}");
    }
    let (out, _) = call_tool(&mut c, "knowledge_search", json!({"query": "doctor*"})).await;
    assert_eq!(out["results"][0]["topic"], "Configuring Skynet", "the words still count: {out}");
}

#[test]
fn stats_on_a_home_without_a_database_says_so_and_creates_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let table = stats(tmp.path(), false);
    assert!(table.starts_with("No database at "), "{table}");
    let v: Value = serde_json::from_str(&stats(tmp.path(), true)).unwrap();
    assert_eq!((v["tools"].clone(), v["hotTopics"].clone()), (json!([]), json!([])));
    assert!(!tmp.path().join("skynet.db").exists());
}
