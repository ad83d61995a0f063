//! The process side, with small shell scripts standing in for `claude`: what the program
//! is given (arguments, stdin, system prompt file, environment, working folder), and how
//! a missing program, a failure, silence and a cancel end the call. The real CLI runs in
//! tests/claude_cli.rs.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::agent::providers::sse::fake::collect;
use crate::agent::types::{StopReason, Usage};

/// A stand-in `claude` in its own folder; `body` is shell code.
fn stand_in(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("claude");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn provider(program: &Path, idle: Duration) -> ClaudeCli {
    ClaudeCli::new("claude-cli", Some(program.to_path_buf()), Some("sk-ant-from-config".into()), idle)
}

fn request(messages: Vec<Message>) -> ChatRequest {
    ChatRequest {
        model: "sonnet".into(),
        system: SystemPrompt { static_tier: "You are Skynet.".into(), user_tier: "The user is Ann.".into() },
        messages,
        tools: vec![],
        max_tokens: 777,
    }
}

fn turn(role: Role, content: Vec<Block>) -> Message {
    Message { role, content }
}

/// Starts a call, retrying while the fresh script is busy: a parallel test's fork can
/// briefly hold it open for writing (ETXTBSY).
async fn start(p: &ClaudeCli, req: ChatRequest, cancel: CancellationToken) -> Result<EventStream, ProviderError> {
    for _ in 0..50 {
        match p.stream(req.clone(), cancel.clone()).await {
            Err(ProviderError::Program { message, .. }) if message.contains("busy") => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => return other,
        }
    }
    panic!("the stand-in stayed busy")
}

async fn eventually(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_program_gets_the_conversation_on_stdin_the_prompt_in_a_private_file_and_a_filtered_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let seen = tmp.path();
    let echo = concat!(env!("CARGO_MANIFEST_DIR"), "/src/agent/providers/claude_cli/testdata/echo.jsonl");
    let s = seen.display();
    let program = stand_in(
        seen,
        &format!(
            "printf '%s\\n' \"$@\" > {s}/args; cat > {s}/stdin; cp system.md {s}/system; \
             stat -c %a . system.md > {s}/modes; pwd > {s}/cwd; env > {s}/env; cat {echo}"
        ),
    );
    let history = vec![
        turn(
            Role::User,
            vec![Block::Context { text: "<context>old</context>".into() }, Block::Text { text: "hi".into() }],
        ),
        turn(
            Role::Assistant,
            vec![
                Block::Text { text: "Checking.".into() },
                Block::ToolUse { id: "t1".into(), name: "current_time".into(), input: json!({}) },
            ],
        ),
        turn(
            Role::User,
            vec![Block::ToolResult { tool_use_id: "t1".into(), content: "12:00".into(), is_error: false }],
        ),
        turn(Role::Assistant, vec![Block::Text { text: "It is noon.".into() }]),
        turn(
            Role::User,
            vec![Block::Context { text: "<context>now</context>".into() }, Block::Text { text: "hello there".into() }],
        ),
    ];
    let p = provider(&program, Duration::from_secs(10));
    let (events, error) = collect(start(&p, request(history), CancellationToken::new()).await.unwrap()).await;
    assert!(error.is_none(), "{error:?}");
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "Echo: hello there");
    let usage = Usage { input_tokens: 25, output_tokens: 7, cache_read_tokens: 2000, cache_write_tokens: 100 };
    assert_eq!(events[events.len() - 2..], [StreamEvent::Usage(usage), StreamEvent::Stop(StopReason::EndTurn)]);

    let read = |name: &str| std::fs::read_to_string(seen.join(name)).unwrap();
    let args: Vec<String> = read("args").lines().map(str::to_string).collect();
    assert_eq!(args, run_args("sonnet"));
    let input: Value = serde_json::from_str(read("stdin").trim()).unwrap();
    assert_eq!(read("stdin").lines().count(), 1, "one user line: one model turn");
    assert_eq!((input["type"].as_str(), input["message"]["role"].as_str()), (Some("user"), Some("user")));
    let blocks: Vec<&str> =
        input["message"]["content"].as_array().unwrap().iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert_eq!(blocks[1..], ["<context>now</context>", "hello there"]);
    let history = blocks[0];
    for part in ["<user>\nhi\n</user>", "[called the tool current_time with {}]", "[tool result: 12:00]", "It is noon."]
    {
        assert!(history.contains(part), "{part} in {history}");
    }
    assert!(!history.contains("<context>old"), "an old turn's context is stale: {history}");

    let system = read("system");
    assert!(system.starts_with("You are Skynet.\n\nThe user is Ann.\n\n") && system.contains("cannot call any tool"));
    assert_eq!(read("modes"), "700\n600\n");
    let env = read("env");
    for expected in [
        "CLAUDE_CODE_MAX_OUTPUT_TOKENS=777",
        "ANTHROPIC_API_KEY=sk-ant-from-config",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
    ] {
        assert!(env.lines().any(|l| l == expected), "{expected} in\n{env}");
    }
    // Cargo sets CARGO_* for every test process: withheld like any other variable.
    assert!(!env.contains("CARGO_"), "{env}");
    let cwd = PathBuf::from(read("cwd").trim());
    assert!(cwd.starts_with(std::env::temp_dir()), "{}", cwd.display());
    assert!(!cwd.exists(), "the call's folder is removed with the answer");
}

#[tokio::test]
async fn a_missing_program_says_how_to_install_it() {
    let p = ClaudeCli::new("claude-cli", Some("/nonexistent/claude".into()), None, Duration::from_secs(5));
    for err in [
        p.list_models().await.err().unwrap().to_string(),
        start(&p, request(vec![Message::user_text("hi")]), CancellationToken::new()).await.err().unwrap().to_string(),
    ] {
        assert!(
            err.contains("/nonexistent/claude") && err.contains("npm install -g @anthropic-ai/claude-code"),
            "{err}"
        );
    }
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(find_program(Some(empty.path().as_os_str()), Some(empty.path())), None);
    let installed = empty.path().join(".local/bin");
    std::fs::create_dir_all(&installed).unwrap();
    let program = stand_in(&installed, "exit 0");
    assert_eq!(find_program(Some(OsStr::new("/nonexistent:relative/dir")), Some(empty.path())), Some(program.clone()));
    assert_eq!(find_program(Some(installed.as_os_str()), None), Some(program));
}

#[tokio::test]
async fn list_models_runs_only_version_and_names_the_aliases() {
    let tmp = tempfile::tempdir().unwrap();
    let ok = provider(
        &stand_in(tmp.path(), "[ \"$1\" = --version ] && echo '2.1.330 (Claude Code)'"),
        Duration::from_secs(5),
    );
    let mut models = None;
    for _ in 0..50 {
        match ok.list_models().await {
            Err(e) if e.to_string().contains("busy") => tokio::time::sleep(Duration::from_millis(20)).await,
            other => {
                models = Some(other);
                break;
            }
        }
    }
    assert_eq!(models.unwrap().unwrap(), MODELS);
}

#[tokio::test]
async fn a_failing_program_reports_its_exit_status_and_stderr() {
    let tmp = tempfile::tempdir().unwrap();
    let program = stand_in(tmp.path(), "echo \"error: unknown option '--tools'\" >&2; exit 2");
    let p = provider(&program, Duration::from_secs(5));
    let (events, error) =
        collect(start(&p, request(vec![Message::user_text("hi")]), CancellationToken::new()).await.unwrap()).await;
    assert!(events.is_empty());
    match error {
        Some(e @ ProviderError::Program { .. }) => {
            let text = e.to_string();
            assert!(text.contains("exit status: 2") && text.contains("unknown option '--tools'"), "{text}");
            assert!(e.allows_failover());
        }
        other => panic!("expected a program error, got {other:?}"),
    }

    let quiet = provider(&stand_in(tmp.path(), "echo 'Warning: old version'; exit 0"), Duration::from_secs(5));
    let (_, error) =
        collect(start(&quiet, request(vec![Message::user_text("hi")]), CancellationToken::new()).await.unwrap()).await;
    match error {
        Some(ProviderError::Protocol { message, .. }) => {
            assert!(
                message.contains("without its closing `result`") && message.contains("Warning: old version"),
                "{message}"
            )
        }
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// Prints an init line, starts a grandchild, and waits; returns the grandchild's pid file.
fn sleeper(dir: &Path) -> (PathBuf, PathBuf) {
    let pid = dir.join("grandchild");
    let program = stand_in(
        dir,
        &format!("sleep 30 & echo $! > {}; echo '{{\"type\":\"system\",\"subtype\":\"init\"}}'; wait", pid.display()),
    );
    (program, pid)
}

fn alive(pid_file: &Path) -> bool {
    let pid = std::fs::read_to_string(pid_file).unwrap_or_default();
    if pid.trim().is_empty() {
        return false;
    }
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    // A zombie (state Z) has ended; only its parent has not collected it yet.
    !stat.is_empty() && !stat.contains(") Z ")
}

#[tokio::test]
async fn cancel_ends_the_call_and_kills_the_whole_process_group() {
    let tmp = tempfile::tempdir().unwrap();
    let (program, pid) = sleeper(tmp.path());
    let p = provider(&program, Duration::from_secs(30));
    let cancel = CancellationToken::new();
    let stream = start(&p, request(vec![Message::user_text("hi")]), cancel.clone()).await.unwrap();
    eventually("the stand-in started its grandchild", || alive(&pid)).await;
    let started = Instant::now();
    cancel.cancel();
    let (events, error) = collect(stream).await;
    assert!(events.is_empty() && matches!(error, Some(ProviderError::Cancelled)), "{events:?} {error:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
    eventually("the grandchild is killed with its group", || !alive(&pid)).await;
}

#[tokio::test]
async fn silence_longer_than_the_timeout_ends_the_call() {
    let tmp = tempfile::tempdir().unwrap();
    let (program, pid) = sleeper(tmp.path());
    let p = provider(&program, Duration::from_millis(300));
    let stream = start(&p, request(vec![Message::user_text("hi")]), CancellationToken::new()).await.unwrap();
    let (_, error) = collect(stream).await;
    assert!(std::fs::read_to_string(&pid).is_ok_and(|p| !p.trim().is_empty()), "the grandchild had started");
    assert!(matches!(error, Some(ProviderError::Timeout { after, .. }) if after == Duration::from_millis(300)));
    eventually("the grandchild is killed with its group", || !alive(&pid)).await;
}

#[test]
fn only_the_variables_the_cli_reads_are_passed() {
    let vars = [
        "PATH",
        "HOME",
        "LC_ALL",
        "ANTHROPIC_BASE_URL",
        "CLAUDE_CONFIG_DIR",
        "AWS_REGION",
        "OPENAI_API_KEY",
        "SKYNET_GATEWAY__AUTH_TOKEN",
        "TELEGRAM_BOT_TOKEN",
        "PATHX",
    ];
    let passed = passed_env(vars.iter().map(|v| (OsString::from(v), OsString::from("x"))));
    let names: Vec<_> = passed.iter().map(|(k, _)| k.to_str().unwrap()).collect();
    assert_eq!(names, ["PATH", "HOME", "LC_ALL", "ANTHROPIC_BASE_URL", "CLAUDE_CONFIG_DIR", "AWS_REGION"]);
}
