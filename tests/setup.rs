//! `skynet-gateway setup` in its non-interactive form, as scripts and Docker run it: the
//! provider check against fake provider APIs, the written config and home, re-runs that
//! keep the user's data, and the gateway starting with what setup wrote.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use common::fake_anthropic::FakeAnthropic;
use common::fake_openai::FakeOpenAi;
use common::*;

fn setup(home: &Path, args: &[&str]) -> Output {
    command(home).arg("setup").args(args).output().expect("run skynet-gateway setup")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn config(home: &Path) -> toml::Table {
    fs::read_to_string(home.join("skynet.toml")).unwrap().parse().unwrap()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start(home: &Path) -> Gateway {
    Gateway::start_in(home, &[], &[]).unwrap_or_else(|(o, e)| panic!("gateway did not start:\n{o}\n{e}"))
}

#[test]
fn ollama_without_a_key_writes_a_private_config_and_a_complete_home() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let out = setup(&home, &["--non-interactive", "--provider", "ollama", "--no-service", "--skip-validation"]);
    assert!(out.status.success(), "{}", text(&out));
    let printed = text(&out);
    assert!(printed.contains("model      ollama/llama3.2") && printed.contains("not confirmed to work"), "{printed}");

    assert_eq!(mode(&home.join("skynet.toml")), 0o600);
    assert_eq!(mode(&home.join("skynet.db")), 0o600);
    let c = config(&home);
    assert_eq!(c["agent"]["model"].as_str(), Some("ollama/llama3.2"));
    assert!(c.get("providers").is_none(), "no key, no address: nothing to write for the provider");
    let token = c["gateway"]["auth_token"].as_str().unwrap();
    assert!(token.len() == 64 && token.chars().all(|ch| ch.is_ascii_hexdigit()), "{token}");
    assert!(printed.contains(token), "a new token is shown once");
    for f in ["SOUL.md", "IDENTITY.md", "AGENTS.md", "USER.md", "TOOLS.md", "MEMORY.md", "BOOTSTRAP.md"] {
        assert!(home.join("workspace").join(f).is_file(), "{f}");
    }
    assert!(fs::read_dir(home.join("knowledge")).unwrap().count() > 0);
}

#[test]
fn ollama_elsewhere_is_checked_at_its_address_and_the_answer_is_recorded() {
    let fake = FakeOpenAi::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    // No --non-interactive: a stdin that is not a terminal is enough.
    let out = setup(&home, &["--provider", "ollama", "--base-url", &fake.base_url(), "--model", "gpt-4o-mini"]);
    assert!(out.status.success(), "{}", text(&out));
    let c = config(&home);
    assert_eq!(c["agent"]["model"].as_str(), Some("ollama/gpt-4o-mini"));
    assert_eq!(c["providers"]["ollama"]["base_url"].as_str(), Some(fake.base_url().as_str()));

    let out = setup(&home, &["--provider", "ollama", "--base-url", &fake.base_url(), "--model", "llama-9000"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("does not offer the model \"llama-9000\"") && said.contains("gpt-4o-mini"), "{said}");
    assert_eq!(config(&home)["agent"]["model"].as_str(), Some("ollama/gpt-4o-mini"), "a failed check writes nothing");
}

#[tokio::test]
async fn anthropic_with_a_checked_key_passes_doctor_and_the_gateway_answers_with_it() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let port = free_port().to_string();
    let out = setup(
        &home,
        &[
            "--non-interactive",
            "--provider",
            "anthropic",
            "--api-key",
            "sk-ant-good",
            "--base-url",
            &fake.base_url(),
            "--model",
            "claude-test",
            "--port",
            &port,
            "--token",
            TOKEN,
            "--telegram-token",
            "123456:telegram-test",
            "--no-service",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("sk-ant-good"), "the key is never printed");
    assert!(!text(&out).contains(TOKEN), "a token given on the command line is not echoed");
    assert_eq!(mode(&home.join("skynet.toml")), 0o600);
    let c = config(&home);
    assert_eq!(c["agent"]["model"].as_str(), Some("anthropic/claude-test"));
    assert_eq!(c["providers"]["anthropic"]["api_key"].as_str(), Some("sk-ant-good"));
    assert_eq!(c["gateway"]["port"].as_integer(), Some(port.parse().unwrap()));
    assert_eq!(c["gateway"]["auth_token"].as_str(), Some(TOKEN));
    assert_eq!(c["channels"]["telegram"]["token"].as_str(), Some("123456:telegram-test"));
    let models_calls = fake.requests().len();
    assert_eq!(models_calls, 0, "the check only lists models");

    let out = command(&home).arg("doctor").output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(report.contains("model anthropic/claude-test: the provider answered"), "{report}");

    let g = start(&home);
    let (mut client, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut client, "main", "hello from setup", "setup-1").await;
    let answer = fin["payload"]["message"]["content"][0]["text"].as_str().unwrap_or_default();
    assert_eq!(answer, "Echo: hello from setup", "{fin}");
}

#[test]
fn a_refused_key_fails_plainly_and_writes_nothing() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let args = [
        "--provider",
        "anthropic",
        "--api-key",
        "sk-ant-bad",
        "--base-url",
        &fake.base_url(),
        "--model",
        "claude-test",
    ];
    let out = setup(&home, &args);
    assert_eq!(out.status.code(), Some(1));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("anthropic refused the API key (HTTP 401"), "{said}");
    assert!(said.contains("invalid x-api-key") && said.contains("--skip-validation"), "{said}");
    assert!(!home.join("skynet.toml").exists());

    let out = setup(&home, &[&args[..], &["--skip-validation"]].concat());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(config(&home)["providers"]["anthropic"]["api_key"].as_str(), Some("sk-ant-bad"));
}

#[test]
fn missing_or_wrong_answers_name_the_flag_to_give() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let cases: [(&[&str], &str); 4] = [
        (&[], "--provider"),
        (&["--provider", "my-box"], "--base-url"),
        (&["--provider", "ollama", "--bind", "localhost", "--skip-validation"], "--bind"),
        (&["--provider", "ollama", "--api-key", "k", "--api-key-env", "V"], "cannot be used with"),
    ];
    for (args, expected) in cases {
        let out = setup(&home, args);
        assert!(!out.status.success(), "{args:?}");
        assert!(text(&out).contains(expected), "{args:?}: {}", text(&out));
    }
    assert!(!home.join("skynet.toml").exists());
}

#[tokio::test]
async fn a_rerun_changes_the_model_and_keeps_sessions_workspace_edits_and_token() {
    let anthropic = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let base = anthropic.base_url();
    let first = ["--provider", "anthropic", "--api-key", "sk-ant-good", "--base-url", &base, "--model", "claude-test"];
    let out = setup(&home, &[&first[..], &["--token", TOKEN]].concat());
    assert!(out.status.success(), "{}", text(&out));

    // Use it: a stored conversation, an edited prompt, a setting of the user's own.
    {
        let g = start(&home);
        let (mut client, _) = Client::backend(&g, 3).await;
        chat_turn(&mut client, "keep-me", "remember this", "rerun-1").await;
    }
    fs::write(home.join("workspace/SOUL.md"), "my own soul").unwrap();
    let edited = fs::read_to_string(home.join("skynet.toml"))
        .unwrap()
        .replace("max_steps = 8", "# fewer steps for me\nmax_steps = 5");
    fs::write(home.join("skynet.toml"), edited).unwrap();

    let openai = FakeOpenAi::start(None);
    let out = setup(&home, &["--provider", "ollama", "--base-url", &openai.base_url(), "--model", "gpt-4o-mini"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(TOKEN) && text(&out).contains("auth token kept"), "{}", text(&out));

    let c = config(&home);
    assert_eq!(c["agent"]["model"].as_str(), Some("ollama/gpt-4o-mini"));
    assert_eq!(c["gateway"]["auth_token"].as_str(), Some(TOKEN));
    assert_eq!(c["providers"]["anthropic"]["api_key"].as_str(), Some("sk-ant-good"), "the old provider stays");
    assert!(fs::read_to_string(home.join("skynet.toml")).unwrap().contains("# fewer steps for me\nmax_steps = 5"));
    assert_eq!(fs::read_to_string(home.join("workspace/SOUL.md")).unwrap(), "my own soul");
    assert_eq!(mode(&home.join("skynet.toml")), 0o600);
    let db = rusqlite::Connection::open(home.join("skynet.db")).unwrap();
    let sessions: i64 =
        db.query_row("SELECT count(*) FROM sessions WHERE key LIKE '%keep-me%'", [], |r| r.get(0)).unwrap();
    let messages: i64 = db.query_row("SELECT count(*) FROM messages", [], |r| r.get(0)).unwrap();
    assert_eq!((sessions, messages), (1, 2));
    drop(db);

    let g = start(&home);
    let (mut client, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut client, "keep-me", "now with the new model", "rerun-2").await;
    assert_eq!(fin["payload"]["message"]["content"][0]["text"], "Echo: now with the new model", "{fin}");
    assert_eq!(openai.requests()[0]["model"], "gpt-4o-mini");
}
