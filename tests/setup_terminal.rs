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

/// A home with a skynet.toml of the user's own (Ollama at the fake server); its bytes.
fn existing_config(home: &Path, fake: &FakeOpenAi) -> Vec<u8> {
    fs::create_dir_all(home).unwrap();
    let text = format!(
        "# my own notes, keep them\n[gateway]\nport = 9100 # moved\nauth_token = \"kept-token-0123456789abcdef\"\n\n\
         [agent]\nmodel = \"ollama/gpt-4o-mini\"\n\n[providers.ollama]\nbase_url = \"{}\"\n",
        fake.base_url()
    );
    fs::write(home.join("skynet.toml"), &text).unwrap();
    fs::set_permissions(home.join("skynet.toml"), fs::Permissions::from_mode(0o600)).unwrap();
    text.into_bytes()
}

fn home_entries(home: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        fs::read_dir(home).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

#[test]
fn ctrl_c_midway_or_no_at_the_end_leaves_an_existing_config_untouched() {
    let fake = FakeOpenAi::start(None);
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let before = existing_config(&home, &fake);

    // Ctrl-C after a few answers, a changed model and port typed in already.
    let Some((s, _sys)) = run_in_terminal(&home, "setup") else { return };
    s.wait_for("change what you like");
    s.answer("Which model provider?", &["Enter"]);
    s.answer("Address of the Ollama (this machine) API", &["Enter"]);
    s.answer("Ollama (this machine) API key (optional)", &["Enter"]);
    s.type_in("Model (gpt-4o-mini)", "gpt-4o");
    s.wait_for("OK: Ollama (this machine) answered");
    s.type_in("Gateway port (9100)", "9200");
    s.answer("Listen address", &["C-c"]);
    let screen = s.wait_for("EXIT=");
    assert!(screen.contains("EXIT=130") && !screen.contains("Saved"), "{screen}");
    drop(s);
    assert!(fs::read(home.join("skynet.toml")).unwrap() == before, "Ctrl-C changed the config");
    assert_eq!(home_entries(&home), ["skynet.toml"], "Ctrl-C left a file in the home");

    // All the way to the summary, with changes, then "no".
    let Some((s, _sys)) = run_in_terminal(&home, "setup") else { return };
    s.answer("Which model provider?", &["Enter"]);
    s.answer("Address of the Ollama (this machine) API", &["Enter"]);
    s.answer("Ollama (this machine) API key (optional)", &["Enter"]);
    s.type_in("Model (gpt-4o-mini)", "gpt-4o");
    s.type_in("Gateway port (9100)", "9200");
    s.answer("Listen address", &["Enter"]);
    s.answer("Keep the current gateway auth token", &["Enter"]);
    s.answer("Add a Telegram bot token?", &["n"]);
    s.answer("Add a Discord bot token?", &["n"]);
    s.answer("Install Skynet as a background service", &["n"]);
    let summary = s.wait_for("Write these settings to");
    assert!(summary.contains("ollama/gpt-4o") && summary.contains("9200"), "{summary}");
    s.answer("Write these settings to", &["n"]);
    let screen = s.wait_for("EXIT=");
    assert!(screen.contains("setup cancelled; nothing was written") && screen.contains("EXIT=1"), "{screen}");
    drop(s);
    assert!(fs::read(home.join("skynet.toml")).unwrap() == before, "answering no changed the config");
    assert_eq!(home_entries(&home), ["skynet.toml"], "a file was left in the home");
}
