//! The agent runtime through the real binary: concurrency between users, script plugins
//! (a slow one, a hung one), the model router, `models.set`, and config reload on SIGHUP.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

const ADMIN: [&str; 3] = ["operator.read", "operator.write", "operator.admin"];

fn env_for(fake: &FakeAnthropic) -> Vec<(&'static str, String)> {
    vec![
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", fake.base_url()),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test".into()),
    ]
}

fn start(home: &Path, env: &[(&'static str, String)]) -> Gateway {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Gateway::start_in(home, &env, &[]).unwrap_or_else(|(o, e)| panic!("start failed:\n{o}\n{e}"))
}

fn plugin(home: &Path, name: &str, manifest: &str) {
    let dir = home.join("tools").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("tool.toml"), manifest).unwrap();
}

fn final_text(ev: &Value) -> String {
    ev["payload"]["message"]["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

/// The model each request to the fake named, in order.
fn models_asked(fake: &FakeAnthropic) -> Vec<String> {
    fake.requests().iter().map(|r| r["model"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn a_slow_tool_for_one_user_never_delays_another_users_answer() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    plugin(&home, "sleepy", "description = \"Sleeps five seconds.\"\ncommand = [\"sleep\", \"5\"]\n");
    let mut env = env_for(&fake);
    env.push(("SKYNET_AGENT__MODEL", "anthropic/claude-test".into()));
    let g = start(&home, &env);
    let (mut alice, _) = Client::backend(&g, 3).await;
    let (mut bob, _) = Client::backend(&g, 3).await;

    let res = alice
        .call("chat.send", json!({"sessionKey": "alice", "message": "call:sleepy", "idempotencyKey": "alice-1"}))
        .await;
    assert_eq!(res["ok"], true, "{res}");
    loop {
        let ev = alice.next_event("agent").await;
        if ev["payload"]["stream"] == "tool" && ev["payload"]["data"]["phase"] == "start" {
            assert_eq!(ev["payload"]["data"]["name"], "sleepy");
            break;
        }
    }
    let tool_started = Instant::now();

    let sent = Instant::now();
    let (_, fin) = chat_turn(&mut bob, "bob", "hello from bob", "bob-1").await;
    let bob_latency = sent.elapsed();
    assert_eq!(final_text(&fin), "Echo: hello from bob");
    eprintln!("bob answered in {bob_latency:?} while alice's tool slept");
    assert!(tool_started.elapsed() < Duration::from_secs(5), "bob's answer came while alice's tool was still running");

    let alice_final = loop {
        let ev = alice.next_event("chat").await;
        if ev["payload"]["runId"] == "alice-1" && ev["payload"]["state"] != "delta" {
            break ev;
        }
    };
    assert_eq!(alice_final["payload"]["state"], "final");
    assert!(tool_started.elapsed() >= Duration::from_millis(4900), "alice's answer waited for her tool");
    assert_eq!(final_text(&alice_final), "Tool said: ");
}

#[tokio::test]
async fn a_tool_that_never_returns_is_stopped_and_its_processes_killed() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    plugin(
        &home,
        "hang",
        "description = \"Never returns.\"\ncommand = [\"sh\", \"-c\", \"sleep 60 & echo $! > child.pid; wait\"]\n",
    );
    let mut env = env_for(&fake);
    env.push(("SKYNET_AGENT__MODEL", "anthropic/claude-test".into()));
    env.push(("SKYNET_AGENT__TOOL_TIMEOUT_MS", "700".into()));
    let g = start(&home, &env);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (events, fin) = chat_turn(&mut c, "main", "call:hang", "hang-1").await;
    assert_eq!(fin["payload"]["state"], "final", "a tool failure is the model's business, not the user's: {fin}");
    let result = events
        .iter()
        .find(|e| e["payload"]["stream"] == "tool" && e["payload"]["data"]["phase"] == "result")
        .expect("a tool result event");
    assert_eq!(result["payload"]["data"]["isError"], true);
    assert!(result["payload"]["data"]["result"].as_str().unwrap().contains("did not finish within 700 ms"), "{result}");
    assert!(final_text(&fin).contains("did not finish within 700 ms"), "the model was told: {fin}");

    // The script's own child (sleep 60) died with it.
    wait_gone(&home.join("tools/hang/child.pid"));
    let (_, fin) = chat_turn(&mut c, "main", "still there?", "hang-2").await;
    assert_eq!(final_text(&fin), "Echo: still there?");
}

#[tokio::test]
async fn the_router_picks_a_model_per_message_and_says_why() {
    let fake = FakeAnthropic::start();
    let mut env = env_for(&fake);
    env.extend([
        ("SKYNET_AGENT__MODEL", "anthropic/claude-standard".to_string()),
        ("SKYNET_AGENT__ROUTER__ENABLED", "true".into()),
        ("SKYNET_AGENT__ALIASES__FAST", "anthropic/claude-cheap".into()),
        ("SKYNET_AGENT__ALIASES__SMART", "anthropic/claude-strong".into()),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let g = start(&tmp.path().join("home"), &env);
    let (mut c, _) = Client::backend(&g, 3).await;

    let (_, fin) = chat_turn(&mut c, "r", "hi", "route-1").await;
    assert_eq!(fin["payload"]["routing"]["tier"], "cheap", "{fin}");
    assert!(fin["payload"]["routing"]["reason"].as_str().unwrap().contains("short message"), "{fin}");
    assert_eq!(fin["payload"]["model"], "claude-cheap");

    let (_, fin) = chat_turn(&mut c, "r", "Please think hard: why do the tides follow the moon?", "route-2").await;
    assert_eq!(fin["payload"]["routing"]["tier"], "strong");
    assert_eq!(fin["payload"]["routing"]["model"], "anthropic/claude-strong");

    let long = format!("I would like your opinion on this plan for the garden. {}", "More details. ".repeat(10));
    let (_, fin) = chat_turn(&mut c, "r", &long, "route-3").await;
    assert_eq!(fin["payload"]["routing"]["tier"], "standard");

    // A model named in the request bypasses the router.
    let res = c
        .call(
            "chat.send",
            json!({"sessionKey": "r", "message": "hi", "idempotencyKey": "route-4", "model": "anthropic/claude-pinned"}),
        )
        .await;
    assert_eq!(res["ok"], true);
    let fin = loop {
        let ev = c.next_event("chat").await;
        if ev["payload"]["runId"] == "route-4" && ev["payload"]["state"] != "delta" {
            break ev;
        }
    };
    assert!(fin["payload"]["routing"].is_null(), "{fin}");
    assert_eq!(
        models_asked(&fake),
        ["claude-cheap", "claude-strong", "claude-standard", "claude-pinned"],
        "the provider saw the routed models"
    );
    assert!(g.stderr().contains("router picked a model"), "the decision is logged");
}

#[tokio::test]
async fn models_set_switches_the_default_for_everyone_and_survives_a_restart() {
    let fake = FakeAnthropic::start();
    let env = env_for(&fake);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let mut g = start(&home, &env);
    let (mut admin, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &ADMIN)).await;
    let (mut user, _) = Client::backend(&g, 3).await;

    let res = user.call("models.set", json!({"model": "anthropic/claude-one"})).await;
    assert_eq!(res["ok"], false, "needs the admin scope: {res}");
    let res = admin.call("models.set", json!({"model": "nonsense"})).await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    assert!(res["error"]["message"].as_str().unwrap().contains("<provider>/<model>"), "{res}");
    let res = admin.call("models.set", json!({"model": "nope/model"})).await;
    assert!(res["error"]["message"].as_str().unwrap().contains("unknown provider"), "{res}");

    let res = admin.call("models.set", json!({"model": "anthropic/claude-one"})).await;
    assert_eq!(res["payload"]["resolved"], "anthropic/claude-one", "{res}");
    let (_, fin) = chat_turn(&mut user, "main", "after the switch", "set-1").await;
    assert_eq!(fin["payload"]["model"], "claude-one");
    let list = user.call("models.list", json!({})).await;
    assert_eq!(list["payload"]["default"], "anthropic/claude-one");
    let config = std::fs::read_to_string(home.join("skynet.toml")).unwrap();
    assert!(config.contains("model = \"anthropic/claude-one\""), "persisted: {config}");
    assert!(config.contains("# Skynet gateway configuration."), "comments kept");

    g.signal("TERM");
    g.wait_exit(Duration::from_secs(15));
    let g = start(&home, &env);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut c, "main", "after the restart", "set-2").await;
    assert_eq!(fin["payload"]["model"], "claude-one");
}

#[tokio::test]
async fn sighup_reloads_the_model_and_a_broken_file_keeps_the_running_settings() {
    let fake = FakeAnthropic::start();
    let env = env_for(&fake);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let g = start(&home, &env);
    let path = home.join("skynet.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    assert!(original.contains("model = \"\""));
    std::fs::write(&path, original.replace("model = \"\"", "model = \"anthropic/claude-reloaded\"")).unwrap();
    g.signal("HUP");
    wait_for_log(&g, "configuration reloaded", 1);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut c, "main", "after reload", "hup-1").await;
    assert_eq!(fin["payload"]["model"], "claude-reloaded");

    std::fs::write(&path, "[agent\nmodel = ").unwrap();
    g.signal("HUP");
    wait_for_log(&g, "configuration not reloaded", 1);
    assert!(g.stderr().contains("line 1"), "the log says where the file is broken");
    let (_, fin) = chat_turn(&mut c, "main", "after a bad reload", "hup-2").await;
    assert_eq!(fin["payload"]["model"], "claude-reloaded", "the running settings stayed");
}

/// Waits (up to 5 s) until the process whose pid the file holds is gone or a zombie.
fn wait_gone(pid_file: &Path) {
    let pid = std::fs::read_to_string(pid_file).unwrap();
    let proc = format!("/proc/{}", pid.trim());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Path::new(&proc).exists()
        && !std::fs::read_to_string(format!("{proc}/stat")).unwrap_or_default().contains(") Z ")
    {
        assert!(Instant::now() < deadline, "the tool's child process {} outlived its run", pid.trim());
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_for_log(g: &Gateway, needle: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while g.stderr().matches(needle).count() < count {
        assert!(Instant::now() < deadline, "no {needle:?} in the log:\n{}", g.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn chat_abort_stops_a_running_tool_and_its_processes() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    plugin(
        &home,
        "sleepy",
        "description = \"Sleeps a minute.\"\ncommand = [\"sh\", \"-c\", \"sleep 60 & echo $! > child.pid; wait\"]\n",
    );
    let mut env = env_for(&fake);
    env.push(("SKYNET_AGENT__MODEL", "anthropic/claude-test".into()));
    let g = start(&home, &env);
    let (mut c, _) = Client::backend(&g, 3).await;
    let res =
        c.call("chat.send", json!({"sessionKey": "ab", "message": "call:sleepy", "idempotencyKey": "ab-1"})).await;
    assert_eq!(res["ok"], true);
    let pid_file = home.join("tools/sleepy/child.pid");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the tool never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let aborted_at = Instant::now();
    let res = c.call("chat.abort", json!({"sessionKey": "ab"})).await;
    assert_eq!(res["payload"]["aborted"], true, "{res}");
    let fin = loop {
        let ev = c.next_event("chat").await;
        if ev["payload"]["runId"] == "ab-1" && ev["payload"]["state"] != "delta" {
            break ev;
        }
    };
    assert_eq!(fin["payload"]["state"], "aborted");
    assert!(aborted_at.elapsed() < Duration::from_secs(5), "the abort did not wait for the tool");
    wait_gone(&pid_file);
    let h = c.call("chat.history", json!({"sessionKey": "ab"})).await;
    let msgs = h["payload"]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "the turn is stored whole: {h}");
    assert_eq!(msgs[1]["content"][0]["text"], "[aborted]");
}

#[tokio::test]
async fn old_turns_are_left_out_whole_to_fit_the_history_budget() {
    let fake = FakeAnthropic::start();
    let mut env = env_for(&fake);
    env.push(("SKYNET_AGENT__MODEL", "anthropic/claude-test".into()));
    env.push(("SKYNET_AGENT__HISTORY_BUDGET_TOKENS", "400".into()));
    let tmp = tempfile::tempdir().unwrap();
    let g = start(&tmp.path().join("home"), &env);
    let (mut c, _) = Client::backend(&g, 3).await;
    for i in 0..6 {
        let msg = format!("turn {i} {}", "words ".repeat(50));
        chat_turn(&mut c, "budget", &msg, &format!("b-{i}")).await;
    }
    let last = fake.requests().pop().unwrap();
    let sent = last["messages"].as_array().unwrap();
    let all = last["messages"].to_string();
    assert!(all.contains("turn 5") && all.contains("turn 4"), "recent turns kept");
    assert!(!all.contains("turn 0 "), "the oldest turn left out");
    assert_eq!(sent[0]["role"], "user", "the history still opens with a user message");
    // The stored conversation is untouched.
    let h = c.call("chat.history", json!({"sessionKey": "budget"})).await;
    assert_eq!(h["payload"]["messages"].as_array().unwrap().len(), 12);
}
