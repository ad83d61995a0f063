//! `shell`: runs a command line with `sh -c` in the workspace, once the safety checker
//! ([`crate::terminal::safety`]) has allowed every command in it.
//!
//! The process gets a minimal environment like script plugins (no API keys or tokens),
//! with `HOME` set to the workspace: `~` and the dotfiles programs write stay inside it,
//! and the gateway user's own credentials (`~/.ssh`, `~/.aws`, git's config) are not
//! picked up. Standard input is empty; standard output and error arrive together, as in
//! a terminal, cut at 64 KiB. The command runs in its own process group, killed when it
//! finishes, times out or the run is aborted, so background jobs end with it.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Tool, ToolCtx, ToolOutput};
use crate::agent::types::ToolSpec;
use crate::terminal::process::{GroupKiller, MAX_OUTPUT, PASS_ENV, capped_text, output_and_exit};
use crate::terminal::safety::{Checker, Verdict};

const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

pub struct Shell {
    workspace: PathBuf,
    checker: Checker,
}

impl Shell {
    /// Runs in `workspace`; the Skynet home above it holds secrets the checker guards.
    pub fn new(workspace: &Path) -> Shell {
        let home = workspace.parent().unwrap_or(workspace);
        Shell { workspace: workspace.to_path_buf(), checker: Checker::new(workspace, home) }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Input {
    command: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

impl Tool for Shell {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "shell".into(),
            description:
                "Run a shell command line (sh -c) in the workspace folder. Returns stdout and stderr together \
                (up to 64 KiB) and the exit code. Every command in the line is checked first: deleting or writing \
                outside the workspace, system commands (reboot, mkfs, systemctl), sudo, piping downloads into a shell \
                and reading secrets are refused with the reason. Background jobs end when the command does."
                    .into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string", "description": "The command line, e.g. `ls -la && cat notes.md`."},
                    "timeout_ms": {"type": "integer", "minimum": 1, "description": "Stop the command after this many milliseconds."}
                },
                "required": ["command"],
                "additionalProperties": false
            }),
        }
    }

    fn group(&self) -> &'static str {
        "shell"
    }

    fn call(&self, input: Value, _ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let (workspace, checker) = (self.workspace.clone(), self.checker.clone());
        Box::pin(async move {
            // The check touches the file system (links, globs, scripts): off the runtime.
            let (mut cmd, timeout) = tokio::task::spawn_blocking(move || prepare(&workspace, &checker, input))
                .await
                .map_err(|e| format!("the safety check failed: {e}"))??;
            let (reader, writer) = std::io::pipe().map_err(|e| format!("cannot start the command: {e}"))?;
            let writer2 = writer.try_clone().map_err(|e| format!("cannot start the command: {e}"))?;
            cmd.stdout(writer).stderr(writer2);
            let mut child = cmd.spawn().map_err(|e| format!("cannot start sh: {e}"))?;
            // Our copies of the pipe's write end go with `cmd`, so the read ends when the
            // command's processes have all closed it.
            drop(cmd);
            let _group = child.id().map(GroupKiller);
            let mut out = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(reader))
                .map_err(|e| format!("cannot read the command's output: {e}"))?;
            let mut kept = Vec::new();
            let status = match timeout {
                Some(t) => {
                    match tokio::time::timeout(t, output_and_exit(&mut child, &mut out, &mut kept, MAX_OUTPUT)).await {
                        Ok(status) => status,
                        Err(_) => {
                            return Err(format!(
                                "the command did not finish within {} ms and was stopped; its output so far:\n{}",
                                t.as_millis(),
                                capped_text(&kept, MAX_OUTPUT)
                            ));
                        }
                    }
                }
                None => output_and_exit(&mut child, &mut out, &mut kept, MAX_OUTPUT).await,
            };
            let status = status.map_err(|e| format!("the command failed: {e}"))?;
            let mut text = capped_text(&kept, MAX_OUTPUT);
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            match (status.code(), std::os::unix::process::ExitStatusExt::signal(&status)) {
                (Some(code), _) => text.push_str(&format!("[exit code {code}]")),
                (None, Some(sig)) => text.push_str(&format!("[killed by signal {sig}]")),
                (None, None) => text.push_str(&format!("[{status}]")),
            }
            Ok(text.into())
        })
    }
}

/// Checks the input and builds the command; an `Err` is what the model is told.
fn prepare(
    workspace: &Path,
    checker: &Checker,
    input: Value,
) -> Result<(tokio::process::Command, Option<Duration>), String> {
    let input: Input = serde_json::from_value(input)
        .map_err(|e| format!("invalid input ({e}); expected {{\"command\": \"...\", \"timeout_ms\": 5000}}"))?;
    if input.command.trim().is_empty() {
        return Err("the command is empty; say what to run, e.g. {\"command\": \"ls -la\"}".into());
    }
    if let Verdict::Deny(why) = checker.check(&input.command) {
        return Err(format!("refused by the safety checker: {why}"));
    }
    std::fs::create_dir_all(workspace)
        .map_err(|e| format!("cannot create the workspace {}: {e}", workspace.display()))?;
    let workspace = &workspace.canonicalize().unwrap_or_else(|_| workspace.to_path_buf());
    let mut cmd = tokio::process::Command::new("sh");
    cmd.arg("-c")
        .arg(&input.command)
        .current_dir(workspace)
        .env_clear()
        .envs(PASS_ENV.iter().filter(|k| **k != "HOME").filter_map(|k| std::env::var_os(k).map(|v| (k, v))))
        .env("HOME", workspace)
        .env("TERM", "dumb")
        .stdin(Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if std::env::var_os("PATH").is_none() {
        cmd.env("PATH", DEFAULT_PATH);
    }
    Ok((cmd, input.timeout_ms.map(Duration::from_millis)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run(shell: &Shell, input: Value) -> Result<String, String> {
        shell.call(input, ToolCtx::default()).await.map(|o| o.text)
    }

    #[tokio::test]
    async fn runs_in_the_workspace_with_a_minimal_environment() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("home/workspace");
        let shell = Shell::new(&ws);
        let cmd = "echo hi > out.txt && cat out.txt && pwd && echo \"home=$HOME key=${ANTHROPIC_API_KEY:-none}\" && echo oops >&2; exit 3";
        let out = run(&shell, json!({"command": cmd})).await.unwrap();
        let ws = ws.canonicalize().unwrap();
        assert_eq!(std::fs::read_to_string(ws.join("out.txt")).unwrap(), "hi\n");
        assert_eq!(out, format!("hi\n{0}\nhome={0} key=none\noops\n[exit code 3]", ws.display()));
    }

    #[tokio::test]
    async fn refused_lines_never_run() {
        let tmp = tempfile::tempdir().unwrap();
        let ws = tmp.path().join("home/workspace");
        std::fs::create_dir_all(&ws).unwrap();
        let shell = Shell::new(&ws);
        let err = run(&shell, json!({"command": "touch ran.txt; rm -rf /"})).await.unwrap_err();
        assert!(err.starts_with("refused by the safety checker: `rm -rf /`"), "{err}");
        assert!(!ws.join("ran.txt").exists(), "nothing of a refused line runs");
        let err = run(&shell, json!({"cmd": "ls"})).await.unwrap_err();
        assert!(err.contains("invalid input"), "{err}");
    }

    #[tokio::test]
    async fn a_slow_command_is_stopped_with_its_output_so_far_and_background_jobs_do_not_hold_the_call() {
        let tmp = tempfile::tempdir().unwrap();
        let shell = Shell::new(&tmp.path().join("home/workspace"));
        let started = std::time::Instant::now();
        let err = run(&shell, json!({"command": "echo started; sleep 30", "timeout_ms": 300})).await.unwrap_err();
        assert!(err.contains("did not finish within 300 ms") && err.contains("started"), "{err}");
        let out = run(&shell, json!({"command": "sleep 30 & echo left"})).await.unwrap();
        assert_eq!(out, "left\n[exit code 0]");
        assert!(started.elapsed() < Duration::from_secs(10));
        let big = run(&shell, json!({"command": "head -c 200000 /dev/zero | tr '\\0' a"})).await.unwrap();
        assert!(big.contains("[output cut at 64 KiB]") && big.len() < 70_000, "{}", big.len());
    }
}
