//! The store under stress, through the real binary: 50 clients writing one session while
//! another process writes the same database, and a `kill -9` in the middle of a tool loop.

mod common;

use std::time::{Duration, Instant};

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

fn env(fake: &FakeAnthropic) -> Vec<(&'static str, String)> {
    vec![
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test".into()),
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", fake.base_url()),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test".into()),
    ]
}

fn start(home: &std::path::Path, env: &[(&'static str, String)]) -> Gateway {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Gateway::start_in(home, &env, &[]).unwrap_or_else(|(o, e)| panic!("start failed:\n{o}\n{e}"))
}

fn integrity(home: &std::path::Path) -> String {
    let db = rusqlite::Connection::open(home.join("skynet.db")).unwrap();
    db.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

#[tokio::test]
async fn fifty_clients_on_one_session_and_a_second_writer_lose_nothing() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let g = start(&home, &env(&fake));

    // Another process writes the same database all the while: the `user` CLI.
    let writer_home = home.clone();
    let writer = std::thread::spawn(move || {
        (0..15)
            .filter(|i| {
                command(&writer_home).args(["user", "add", &format!("writer-{i}")]).output().unwrap().status.success()
            })
            .count()
    });

    let mut clients = Vec::new();
    for _ in 0..50 {
        clients.push(Client::backend(&g, 3).await.0);
    }
    let started = Instant::now();
    let runs = clients.into_iter().enumerate().map(|(i, mut c)| async move {
        let idem = format!("stress-{i}");
        let res = c
            .call(
                "chat.send",
                json!({"sessionKey": "shared", "message": format!("message {i}"), "idempotencyKey": idem}),
            )
            .await;
        assert_eq!(res["ok"], true, "{res}");
        loop {
            let ev = c.next_event("chat").await;
            if ev["payload"]["runId"] == idem.as_str() && ev["payload"]["state"] != "delta" {
                return ev;
            }
        }
    });
    let finals: Vec<Value> = futures_util::future::join_all(runs).await;
    eprintln!("50 concurrent messages answered in {:?}", started.elapsed());
    for (i, f) in finals.iter().enumerate() {
        assert_eq!(f["payload"]["state"], "final", "{f}");
        assert_eq!(f["payload"]["message"]["content"][0]["text"], format!("Echo: message {i}"));
    }
    assert_eq!(writer.join().unwrap(), 15, "every write of the second process succeeded");

    let (mut c, _) = Client::backend(&g, 3).await;
    let h = c.call("chat.history", json!({"sessionKey": "shared", "limit": 1000})).await;
    let msgs = h["payload"]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 100);
    for pair in msgs.chunks(2) {
        assert_eq!((pair[0]["role"].as_str(), pair[1]["role"].as_str()), (Some("user"), Some("assistant")));
        let asked = pair[0]["content"][0]["text"].as_str().unwrap();
        assert_eq!(
            pair[1]["content"][0]["text"].as_str().unwrap(),
            format!("Echo: {asked}"),
            "each answer follows its question"
        );
    }
    assert_eq!(integrity(&home), "ok");
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_tool_loop_leaves_no_half_turn() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dir = home.join("tools/slow");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tool.toml"), "description = \"Slow.\"\ncommand = [\"sleep\", \"30\"]\n").unwrap();
    let mut g = start(&home, &env(&fake));
    let (mut c, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut c, "crash", "before the crash", "c-0").await;
    assert_eq!(fin["payload"]["state"], "final");
    let res =
        c.call("chat.send", json!({"sessionKey": "crash", "message": "call:slow", "idempotencyKey": "c-1"})).await;
    assert_eq!(res["ok"], true);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let ev = c.next_event("agent").await;
        if ev["payload"]["stream"] == "tool" && ev["payload"]["data"]["phase"] == "start" {
            break;
        }
        assert!(Instant::now() < deadline, "the tool never started");
    }
    g.signal("KILL");
    g.wait_exit(Duration::from_secs(10));
    assert_eq!(integrity(&home), "ok");

    let g = start(&home, &env(&fake));
    let (mut c, _) = Client::backend(&g, 3).await;
    let h = c.call("chat.history", json!({"sessionKey": "crash"})).await;
    let msgs = h["payload"]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "only the finished turn: {h}");
    assert_eq!(msgs[1]["content"][0]["text"], "Echo: before the crash");
    let (_, fin) = chat_turn(&mut c, "crash", "after the crash", "c-2").await;
    assert_eq!(fin["payload"]["message"]["content"][0]["text"], "Echo: after the crash");
    let h = c.call("chat.history", json!({"sessionKey": "crash"})).await;
    let roles: Vec<&str> =
        h["payload"]["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
}
