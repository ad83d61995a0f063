//! The real Claude Code CLI (npm `@anthropic-ai/claude-code`, pinned in tests/clients) as
//! the gateway's model: the gateway runs `claude`, which calls the fake Anthropic API that
//! ANTHROPIC_BASE_URL points it at, with the ANTHROPIC_API_KEY the gateway passes on; the
//! CLI's streamed answer comes back as chat events. Also: the gateway without the CLI (and
//! `models.list` offering it), and `setup` checking it. Needs `tests/setup-clients.sh` (tests/run.sh calls it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

/// The pinned CLI, installed by tests/setup-clients.sh.
fn cli() -> PathBuf {
    let claude = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/node_modules/.bin/claude");
    let version = Command::new(&claude).arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "the Claude Code CLI at {} does not run ({version:?}); run tests/setup-clients.sh first",
        claude.display()
    );
    claude
}

/// A gateway whose model is `claude-cli/sonnet`, with a HOME of its own for the CLI's
/// first-run files, and the CLI pointed at the fake.
fn gateway(fake: &FakeAnthropic, home: &Path) -> Gateway {
    let (cli, home, base) = (cli().display().to_string(), home.display().to_string(), fake.base_url());
    Gateway::start(&[
        ("SKYNET_AGENT__MODEL", "claude-cli/sonnet"),
        ("CLAUDE_CLI", &cli),
        ("HOME", &home),
        ("ANTHROPIC_BASE_URL", &base),
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("DISABLE_TELEMETRY", "1"),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
    ])
}

fn assistant_texts(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["payload"]["stream"] == "assistant")
        .map(|e| e["payload"]["data"]["text"].as_str().unwrap().to_string())
        .collect()
}

fn final_text(fin: &Value) -> &str {
    fin["payload"]["message"]["content"][0]["text"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_chat_through_the_real_cli_streams_the_fakes_answer_and_carries_the_history() {
    let fake = FakeAnthropic::start();
    let home = tempfile::tempdir().unwrap();
    let g = gateway(&fake, home.path());
    let (mut c, _) = Client::backend(&g, 3).await;

    let (events, fin) = chat_turn(&mut c, "cli", "hello there", "cli-1").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}\n{}", g.stderr());
    assert_eq!(final_text(&fin), "Echo: hello there");
    assert_eq!(assistant_texts(&events).last().map(String::as_str), Some("Echo: hello there"));
    // The CLI marks cache breakpoints itself, so the fake counts its prompt as cache writes.
    let usage = &fin["payload"]["usage"];
    let prompt: u64 = ["input", "cacheRead", "cacheWrite"].iter().map(|k| usage[k].as_u64().unwrap()).sum();
    assert!(prompt > 0 && usage["output"].as_u64().unwrap() > 0, "the CLI's usage arrives: {fin}");

    // What the CLI sent the fake: Skynet's prompt, no tools, the key the gateway passed on.
    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one API call per chat turn: {requests:?}");
    let first = &requests[0];
    assert!(
        first["model"].as_str().unwrap().starts_with("claude-sonnet"),
        "the alias was resolved: {}",
        first["model"]
    );
    assert_eq!(first["tools"], json!([]), "the CLI's own tools are off");
    assert_eq!(first["stream"], true);
    let system = first["system"].to_string();
    assert!(system.contains("You are Skynet") && system.contains("cannot call any tool"), "{system}");
    let user = &first["messages"][0];
    assert_eq!(user["role"], "user");
    assert_eq!(user["content"].as_array().unwrap().last().unwrap()["text"], "hello there");
    assert!(user["content"][0]["text"].as_str().unwrap().starts_with("<context>"), "{user}");
    let headers = fake.state.lock().unwrap().headers[0].clone();
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert!(headers["user-agent"].to_str().unwrap().starts_with("claude-cli/2.1.330"), "{headers:?}");

    // A second turn: the first comes along as a transcript; the answer streams in pieces.
    let (events, fin) = chat_turn(&mut c, "cli", "slow please", "cli-2").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    let texts = assistant_texts(&events);
    assert!(texts.len() >= 2, "several deltas: {texts:?}");
    assert!(texts.windows(2).all(|w| w[1].starts_with(&w[0])), "cumulative: {texts:?}");
    assert_eq!(final_text(&fin), "slow ".repeat(40));
    let second = &fake.requests()[1];
    let history = second["messages"][0]["content"][0]["text"].as_str().unwrap();
    assert!(
        history.contains("<user>\nhello there\n</user>")
            && history.contains("<assistant>\nEcho: hello there\n</assistant>"),
        "{history}"
    );

    let h = c.call("chat.history", json!({"sessionKey": "cli"})).await["payload"].clone();
    assert_eq!(h["messages"][1]["content"][0]["text"], "Echo: hello there");
}

#[tokio::test]
async fn without_the_cli_a_chat_says_how_to_install_it_and_the_gateway_keeps_serving() {
    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().display().to_string();
    // Nothing on PATH, no ~/.local/bin/claude, no CLAUDE_CLI.
    let g = Gateway::start(&[
        ("SKYNET_AGENT__MODEL", "claude-cli/sonnet"),
        ("PATH", &dir),
        ("HOME", &dir),
        ("CLAUDE_CLI", ""),
    ]);
    let (mut c, _) = Client::backend(&g, 3).await;
    for run in ["missing-1", "missing-2"] {
        let (_, fin) = chat_turn(&mut c, "main", "hello?", run).await;
        assert_eq!(fin["payload"]["state"], "error", "{fin}");
        let message = fin["payload"]["errorMessage"].as_str().unwrap();
        assert!(
            message.contains("npm install -g @anthropic-ai/claude-code") && message.contains("claude auth login"),
            "{message}"
        );
    }
    let health = c.call("health", json!({})).await;
    assert_eq!(health["ok"], true, "{health}");
    let models = c.call("models.list", json!({})).await["payload"]["models"].clone();
    let listed = |id: &str| models.as_array().unwrap().iter().filter(|m| m["id"] == id).count();
    assert_eq!(listed("claude-cli/sonnet"), 2, "the default and the preset: {models}");
}

#[test]
fn setup_checks_the_cli_by_running_it_and_writes_no_key() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let args = ["setup", "--non-interactive", "--provider", "claude-cli", "--no-service"];
    let out = command(&home).args(args).env("CLAUDE_CLI", cli()).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    let config: toml::Table = std::fs::read_to_string(home.join("skynet.toml")).unwrap().parse().unwrap();
    assert_eq!(config["agent"]["model"].as_str(), Some("claude-cli/sonnet"));
    assert!(config.get("providers").is_none_or(|p| p.get("claude-cli").is_none()), "{config:?}");

    let missing = tmp.path().join("nowhere/claude");
    let out = command(&tmp.path().join("h2")).args(args).env("CLAUDE_CLI", &missing).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && said.contains("npm install -g @anthropic-ai/claude-code"), "{said}");
    assert!(!tmp.path().join("h2/skynet.toml").exists(), "nothing written after a failed check");
}
