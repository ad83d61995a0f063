//! The real interactive setup prompts, driven through a terminal: each test runs the
//! binary inside a private tmux server, types with `send-keys` and reads the screen with
//! `capture-pane`, waiting (bounded) for each question before answering it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::fake_openai::FakeOpenAi;
use common::*;

/// A tmux server of our own (its own socket), killed when dropped.
struct Screen {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Screen {
    /// Runs `args` of the binary with `home` in a 200x50 terminal; `None` without tmux.
    fn run(home: &Path, args: &str) -> Option<Screen> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("SKIPPED: tmux is not installed, so the interactive setup cannot be driven");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // No service manager runs here: a `systemctl` that fails as it does in a container
        // without systemd, and a private config dir for the unit file.
        let bin = dir.path().join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::write(
            bin.join("systemctl"),
            "#!/bin/sh\necho 'System has not been booted with systemd as init system (PID 1).' >&2\nexit 1\n",
        )
        .unwrap();
        fs::set_permissions(bin.join("systemctl"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = format!("{}:/usr/bin:/bin", bin.display());
        let xdg = dir.path().join("config");
        let screen = Screen { socket: dir.path().join("tmux.sock"), _dir: dir };
        // The exit code stays on screen; the pane lives until the server is killed.
        let shell = format!("PATH='{path}' XDG_CONFIG_HOME='{}' {BIN} {args}; echo EXIT=$?; sleep 600", xdg.display());
        let mut cmd = Command::new("tmux");
        for (k, _) in std::env::vars() {
            if k.starts_with("SKYNET_") || k == "RUST_LOG" || k.ends_with("_API_KEY") {
                cmd.env_remove(k);
            }
        }
        let status = cmd
            .env("SKYNET_HOME", home)
            .arg("-S")
            .arg(&screen.socket)
            .args(["-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", &shell])
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        Some(screen)
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-S").arg(&self.socket).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything on screen and in the scrollback, wrapped lines joined.
    fn text(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-1000"])
    }

    /// Waits until `what` appears on screen; returns the screen.
    fn wait_for(&self, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text();
            if text.contains(what) {
                return text;
            }
            assert!(Instant::now() < deadline, "{what:?} did not appear within 20 s; the screen:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the question and for the prompt to take the terminal over (a secret
    /// typed before echo is off would show).
    fn ready(&self, question: &str) {
        self.wait_for(question);
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Waits for the question, then presses keys (tmux key names: Enter, Down, Up, y, n).
    fn answer(&self, question: &str, keys: &[&str]) {
        self.ready(question);
        for key in keys {
            self.tmux(&["send-keys", key]);
        }
    }

    /// Waits for the question, then types `text` literally and presses Enter.
    fn type_in(&self, question: &str, text: &str) {
        self.ready(question);
        self.tmux(&["send-keys", "-l", text]);
        self.tmux(&["send-keys", "Enter"]);
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        // Ctrl-C first: a gateway in the pane shuts down on SIGINT (it reloads on SIGHUP).
        self.tmux(&["send-keys", "C-c"]);
        std::thread::sleep(Duration::from_millis(300));
        self.tmux(&["kill-server"]);
    }
}

fn config(home: &Path) -> toml::Table {
    fs::read_to_string(home.join("skynet.toml")).unwrap().parse().unwrap()
}

#[test]
fn interactive_setup_with_a_server_of_ones_own_and_a_hidden_key() {
    let fake = FakeOpenAi::start(Some("sk-typed-secret"));
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let Some(s) = Screen::run(&home, "setup") else { return };

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
    let Some(s) = Screen::run(&home, "run") else { return };

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
