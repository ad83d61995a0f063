//! A terminal for tests: a private tmux server (its own socket) running one shell command,
//! typed into with `send-keys` and read with `capture-pane`, waiting (bounded) for each
//! question before answering it.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of our own, killed when dropped.
pub struct Screen {
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl Screen {
    /// Runs `shell` (its exit code stays on screen as `EXIT=n`) in a 200x50 terminal, with
    /// no inherited SKYNET_*, RUST_LOG or *_API_KEY variables, plus `env`; `None` without tmux.
    pub fn start(shell: &str, env: &[(&str, &str)]) -> Option<Screen> {
        if Command::new("tmux").arg("-V").output().is_err() {
            eprintln!("SKIPPED: tmux is not installed, so the terminal cannot be driven");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let screen = Screen { socket: dir.path().join("tmux.sock"), _dir: dir };
        let shell = format!("{shell}; echo EXIT=$?; sleep 600");
        let mut cmd = Command::new("tmux");
        for (k, _) in std::env::vars() {
            if k.starts_with("SKYNET_") || k == "RUST_LOG" || k.ends_with("_API_KEY") {
                cmd.env_remove(k);
            }
        }
        let status = cmd
            .envs(env.iter().copied())
            .arg("-S")
            .arg(&screen.socket)
            .args(["-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "50", &shell])
            .status()
            .unwrap();
        assert!(status.success(), "tmux new-session failed");
        Some(screen)
    }

    pub fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux").arg("-S").arg(&self.socket).args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Everything on screen and in the scrollback, wrapped lines joined.
    pub fn text(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-S", "-1000"])
    }

    /// Waits until `what` appears on screen; returns the screen.
    pub fn wait_for(&self, what: &str) -> String {
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
    pub fn ready(&self, question: &str) {
        self.wait_for(question);
        std::thread::sleep(Duration::from_millis(200));
    }

    /// Waits for the question, then presses keys (tmux key names: Enter, Down, Up, y, n, C-c).
    pub fn answer(&self, question: &str, keys: &[&str]) {
        self.ready(question);
        for key in keys {
            self.tmux(&["send-keys", key]);
        }
    }

    /// Waits for the question, then types `text` literally and presses Enter.
    pub fn type_in(&self, question: &str, text: &str) {
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
