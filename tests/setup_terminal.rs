//! The real interactive setup prompts, driven through a terminal: each test runs the
//! binary inside a private tmux server (tests/common/tmux.rs), types with `send-keys` and
//! reads the screen with `capture-pane`, waiting (bounded) for each question before answering.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::fake_openai::FakeOpenAi;
use common::tmux::Screen;
use common::*;

/// Runs `args` of the binary with `home` in a terminal; `None` without tmux. No service
/// manager runs here: a `systemctl` that fails as it does in a container without systemd,
/// and a private config dir for the unit file.
fn run_in_terminal(home: &Path, args: &str) -> Option<(Screen, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::write(
        bin.join("systemctl"),
        "#!/bin/sh\necho 'System has not been booted with systemd as init system (PID 1).' >&2\nexit 1\n",
    )
    .unwrap();
    fs::set_permissions(bin.join("systemctl"), fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let xdg = dir.path().join("config");
    let shell = format!("PATH='{path}' XDG_CONFIG_HOME='{}' {BIN} {args}", xdg.display());
    let screen = Screen::start(&shell, &[("SKYNET_HOME", home.to_str().unwrap())])?;
    Some((screen, dir))
}

fn config(home: &Path) -> toml::Table {
    fs::read_to_string(home.join("skynet.toml")).unwrap().parse().unwrap()
}

#[test]
fn interactive_setup_with_a_server_of_ones_own_and_a_hidden_key() {
    let fake = FakeOpenAi::start(Some("sk-typed-secret"));
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let Some((s, _sys)) = run_in_terminal(&home, "setup") else { return };

    s.wait_for("Welcome to Skynet");
    // Anthropic, OpenAI, Ollama, Claude Code CLI, then "Another service".
    s.answer("Which model provider?", &["Down", "Down", "Down", "Down", "Enter"]);
    // The last entry, reached by wrapping around from the first.
    s.answer("Which service?", &["Up", "Enter"]);
    s.type_in("A short name for it", "mybox");
    s.type_in("Address of the mybox API", &fake.base_url());
    // No key, Type it now, Read it from the environment.
    s.answer("mybox API key (optional)", &["Down", "Enter"]);
    s.type_in("API key (input hidden)", "sk-typed-secret");
    s.type_in("Model", "gpt-4o");
    // The fake refuses any other key, so this proves the typed key was used.
    s.wait_for("OK: mybox answered and offers gpt-4o.");
    s.answer("Gateway port", &["Enter"]);
    s.answer("Listen address", &["Enter"]);
    s.answer("Add a Telegram bot token?", &["n"]);
    s.answer("Add a Discord bot token?", &["n"]);
    s.answer("Install Skynet as a background service", &["n"]);
    let summary = s.wait_for("Write these settings to");
    assert!(summary.contains("model      mybox/gpt-4o") && summary.contains("service    no"), "{summary}");
    s.answer("Write these settings to", &["y"]);
    let screen = s.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
    assert!(!screen.contains("sk-typed-secret"), "the key was shown:\n{screen}");
    assert!(!screen.contains("service install"), "the service was declined:\n{screen}");

    let c = config(&home);
    assert_eq!(c["agent"]["model"].as_str(), Some("mybox/gpt-4o"));
    assert_eq!(c["providers"]["mybox"]["api_key"].as_str(), Some("sk-typed-secret"));
    assert_eq!(c["providers"]["mybox"]["base_url"].as_str(), Some(fake.base_url().as_str()));
    assert_eq!(c["gateway"]["port"].as_integer(), Some(18789));
    let token = c["gateway"]["auth_token"].as_str().unwrap();
    assert_eq!(token.len(), 64);
    assert!(screen.contains(token), "the new token is shown once:\n{screen}");
    assert_eq!(fs::metadata(home.join("skynet.toml")).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(home.join("skynet.db").is_file() && home.join("workspace/SOUL.md").is_file());
}

#[test]
fn the_first_interactive_start_asks_then_serves() {
    let fake = FakeOpenAi::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let Some((s, _sys)) = run_in_terminal(&home, "run") else { return };

    s.answer("Which model provider?", &["Down", "Down", "Enter"]);
    s.type_in("Address of the Ollama (this machine) API", &fake.base_url());
    s.answer("Ollama (this machine) API key (optional)", &["Enter"]);
    s.type_in("Model (llama3.2)", "gpt-4o-mini");
    s.wait_for("OK: Ollama (this machine) answered");
    s.type_in("Gateway port", &port.to_string());
    s.answer("Listen address", &["Enter"]);
    s.answer("Add a Telegram bot token?", &["n"]);
    s.answer("Add a Discord bot token?", &["n"]);
    s.answer("Install Skynet as a background service", &["y"]);
    s.answer("Write these settings to", &["y"]);
    let screen = s.wait_for("skynet-gateway listening on http://");
    assert!(screen.contains("The background service could not be installed"), "{screen}");
    assert!(screen.contains("System has not been booted with systemd"), "the reason is shown: {screen}");
    assert!(screen.contains(&format!("http://127.0.0.1:{port}")), "{screen}");

    let (status, body) = http_get(&format!("127.0.0.1:{port}"), "/health", &[]);
    assert_eq!(status, 200, "{body}");
    let c = config(&home);
    assert_eq!(c["agent"]["model"].as_str(), Some("ollama/gpt-4o-mini"));
    assert_eq!(c["gateway"]["port"].as_integer(), Some(i64::from(port)));
    assert!(c["providers"]["ollama"].get("api_key").is_none());

    s.tmux(&["send-keys", "C-c"]);
    let screen = s.wait_for("EXIT=");
    assert!(screen.contains("EXIT=0"), "{screen}");
}
