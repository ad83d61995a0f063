//! The Claude Code CLI as a model provider (`claude-cli/sonnet`): each model call runs the
//! user's own `claude` program (npm `@anthropic-ai/claude-code`) in print mode, so it
//! answers with whatever the CLI is signed in with (a Claude subscription via `claude auth
//! login`, or ANTHROPIC_API_KEY), and streams its `stream-json` output back as events.
//!
//! The call, as `claude --help` of the CLI 2.1.330 describes its options:
//! `claude --print --verbose --input-format stream-json --output-format stream-json
//! --include-partial-messages --model M --tools "" --system-prompt-file system.md
//! --no-session-persistence --strict-mcp-config --disable-slash-commands
//! --permission-mode dontAsk` (`--verbose` is required with `stream-json` output;
//! `--include-partial-messages` adds the token-level `stream_event` lines).
//! - `--tools ""` leaves the CLI no tools of its own (no shell, no file edits), and
//!   `--strict-mcp-config` none from MCP servers (`dontAsk` would refuse any that slipped
//!   through instead of asking): it acts as a plain model. Skynet's own
//!   tools are not offered through this provider either (the CLI has no way to hand a
//!   tool call back to its caller), so it never yields tool calls; the system prompt
//!   says so.
//! - The conversation goes in as ONE user message on stdin (one `stream-json` line): the
//!   earlier turns as a transcript block, then the latest message's blocks. Sending the
//!   history as separate `stream-json` lines does not work: the CLI runs one model turn
//!   per user line (each with its own `result`) and places assistant lines out of order.
//! - The system prompt goes through a file (mode 0600) in a private, empty per-call
//!   folder that is also the CLI's working directory: the prompt holds the user's memory,
//!   which must not show in `ps`, and an empty folder gives the CLI no CLAUDE.md or git
//!   repository to pick up. The folder is removed as soon as the call ends (the CLI read
//!   the prompt at its start), so a gateway stopped right after leaves none behind.
//!
//! The program is the absolute path in `base_url` of `[providers.claude-cli]`, else
//! the CLAUDE_CLI variable, else `claude` on PATH, else the native installer's
//! `~/.local/bin/claude`. It runs in its own process group with a minimal environment
//! (PATH, HOME, locale, proxies and CA settings, and the `ANTHROPIC_*`, `CLAUDE_*`,
//! `AWS_*`, `GOOGLE_*`, `CLOUD_ML_*`, `VERTEX_*` and `DISABLE_*` variables it reads) and
//! is stopped, with its whole group, on cancel. `CLAUDE_CODE_MAX_OUTPUT_TOKENS` carries
//! `[agent] max_tokens`; unless set already, `CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1`
//! (no telemetry, update checks or error reports from a server) and
//! `CLAUDE_CODE_MAX_RETRIES=3` (the CLI's 10 would stall a chat for minutes) are added.
//! `timeout_secs` is the longest silence allowed between two output lines.

mod stream_json;

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{EventStream, Provider, ProviderError};
use crate::agent::types::{Block, ChatRequest, Message, Role, StreamEvent, SystemPrompt};
use stream_json::Decoder;

/// The CLI's model aliases; it also takes full model names (`claude-sonnet-4-5`).
pub const MODELS: [&str; 3] = ["sonnet", "opus", "haiku"];
pub const INSTALL_HINT: &str = "install it with `npm install -g @anthropic-ai/claude-code` and sign in with \
`claude auth login` (or set ANTHROPIC_API_KEY)";

const SYSTEM_FILE: &str = "system.md";
/// Variables passed through by name, and by prefix; every other one (other providers'
/// keys, bot tokens, SKYNET_*) is withheld.
const PASS_ENV: [&str; 19] = [
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "TZ",
    "TMPDIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];
const PASS_PREFIXES: [&str; 9] =
    ["LC_", "XDG_", "ANTHROPIC_", "CLAUDE_", "AWS_", "GOOGLE_", "CLOUD_ML_", "VERTEX_", "DISABLE_"];
const DEFAULT_ENV: [(&str, &str); 2] =
    [("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"), ("CLAUDE_CODE_MAX_RETRIES", "3")];
/// An output line longer than this is not an answer but a broken program.
const MAX_LINE: usize = 8 * 1024 * 1024;
/// How much of stderr is kept to explain a failure.
const STDERR_TAIL: usize = 2048;
const VERSION_TIMEOUT: Duration = Duration::from_secs(10);

pub struct ClaudeCli {
    name: String,
    /// Set by `base_url` or CLAUDE_CLI; otherwise PATH is searched at each call, so an
    /// installation made while the gateway runs is found.
    program: Option<PathBuf>,
    /// From `api_key` / `api_key_env`, passed on as ANTHROPIC_API_KEY.
    api_key: Option<String>,
    idle: Duration,
}

impl ClaudeCli {
    pub(crate) fn new(name: &str, program: Option<PathBuf>, api_key: Option<String>, idle: Duration) -> Self {
        ClaudeCli { name: name.to_string(), program, api_key, idle }
    }

    fn fail(&self, message: String) -> ProviderError {
        ProviderError::Program { provider: self.name.clone(), message }
    }

    fn locate(&self) -> Result<PathBuf, ProviderError> {
        if let Some(p) = &self.program {
            return Ok(p.clone());
        }
        let home = std::env::var_os("HOME").map(PathBuf::from);
        find_program(std::env::var_os("PATH").as_deref(), home.as_deref()).ok_or_else(|| {
            self.fail(format!(
                "the Claude Code CLI (`claude`) is not on the gateway's PATH: {INSTALL_HINT}. \
                 If it is installed elsewhere, set CLAUDE_CLI to its path."
            ))
        })
    }

    fn spawn_error(&self, program: &Path, e: std::io::Error) -> ProviderError {
        let shown = program.display();
        self.fail(match e.kind() {
            std::io::ErrorKind::NotFound => format!("the Claude Code CLI was not found at {shown}: {INSTALL_HINT}"),
            std::io::ErrorKind::PermissionDenied => {
                format!("cannot run {shown}: permission denied; point CLAUDE_CLI at the `claude` program")
            }
            _ => format!("cannot run {shown}: {e}"),
        })
    }

    /// The program with its environment, in its own process group.
    fn command(&self, program: &Path, dir: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.current_dir(dir).env_clear().envs(passed_env(std::env::vars_os()));
        for (name, value) in DEFAULT_ENV {
            if std::env::var_os(name).is_none() {
                cmd.env(name, value);
            }
        }
        if let Some(key) = &self.api_key {
            cmd.env("ANTHROPIC_API_KEY", key);
        }
        cmd.process_group(0).kill_on_drop(true);
        cmd
    }

    async fn start(&self, req: ChatRequest, cancel: CancellationToken) -> Result<EventStream, ProviderError> {
        if req.model.trim().is_empty() || req.model.starts_with('-') {
            return Err(self.fail(format!("{:?} is not a model name; use sonnet, opus or haiku", req.model)));
        }
        let program = self.locate()?;
        let dir = RunDir::create(&system_text(&req.system)).map_err(|e| {
            self.fail(format!("cannot prepare a private folder in {}: {e}", std::env::temp_dir().display()))
        })?;
        let mut cmd = self.command(&program, &dir.0);
        cmd.args(run_args(&req.model))
            .env("CLAUDE_CODE_MAX_OUTPUT_TOKENS", req.max_tokens.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| self.spawn_error(&program, e))?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(self.fail("its standard input and output could not be connected".into()));
        };
        let input = input_line(&req.messages);
        // A program that exits early closes the pipe; its exit status says why.
        tokio::spawn(async move {
            let _ = stdin.write_all(input.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
        });
        let run = Run {
            provider: self.name.clone(),
            child: Some(child),
            dir: Some(dir),
            stdout: BufReader::new(stdout),
            stderr: Some(tokio::spawn(tail(stderr))),
            decoder: Decoder::new(&self.name),
            pending: VecDeque::new(),
            cancel,
            idle: self.idle,
            line: Vec::new(),
            over: false,
        };
        Ok(futures_util::stream::unfold(run, |mut r| async move { r.next().await.map(|item| (item, r)) }).boxed())
    }

    /// `claude --version`: proves the program is there and runs.
    async fn version(&self) -> Result<String, ProviderError> {
        let program = self.locate()?;
        let mut cmd = self.command(&program, &std::env::temp_dir());
        cmd.arg("--version").stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let out = tokio::time::timeout(VERSION_TIMEOUT, cmd.output())
            .await
            .map_err(|_| ProviderError::Timeout { provider: self.name.clone(), after: VERSION_TIMEOUT })?
            .map_err(|e| self.spawn_error(&program, e))?;
        let said = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().to_string();
        if !out.status.success() {
            let why = if out.stderr.is_empty() { said(&out.stdout) } else { said(&out.stderr) };
            return Err(self.fail(format!("`{} --version` failed ({}): {why}", program.display(), out.status)));
        }
        Ok(said(&out.stdout))
    }
}

impl Provider for ClaudeCli {
    fn name(&self) -> &str {
        &self.name
    }

    fn stream(&self, req: ChatRequest, cancel: CancellationToken) -> BoxFuture<'_, Result<EventStream, ProviderError>> {
        Box::pin(self.start(req, cancel))
    }

    /// The CLI's aliases, after `claude --version` proved it runs; nothing heavier starts.
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<String>, ProviderError>> {
        Box::pin(async move {
            let version = self.version().await?;
            tracing::debug!(provider = %self.name, %version, "Claude Code CLI found");
            Ok(MODELS.iter().map(|m| m.to_string()).collect())
        })
    }
}

fn run_args(model: &str) -> [&str; 18] {
    [
        "--print",
        "--verbose",
        "--input-format",
        "stream-json",
        "--output-format",
        "stream-json",
        "--include-partial-messages",
        "--model",
        model,
        "--tools",
        "",
        "--system-prompt-file",
        SYSTEM_FILE,
        "--no-session-persistence",
        "--strict-mcp-config",
        "--disable-slash-commands",
        "--permission-mode",
        "dontAsk",
    ]
}

/// Skynet's two tiers, and the note that no tool can be called from here.
fn system_text(system: &SystemPrompt) -> String {
    let mut parts: Vec<&str> =
        [system.static_tier.as_str(), system.user_tier.as_str()].into_iter().filter(|t| !t.is_empty()).collect();
    parts.push(
        "(This conversation reaches you through the Claude Code CLI with every tool turned off: \
         you cannot call any tool, including those described above. Answer directly.)",
    );
    parts.join("\n\n")
}

/// The `stream-json` line holding the whole conversation as one user message.
fn input_line(messages: &[Message]) -> String {
    let (history, last) = match messages.split_last() {
        Some((last, history)) if last.role == Role::User => (history, Some(last)),
        _ => (messages, None),
    };
    let mut content = Vec::new();
    let turns: Vec<String> = history
        .iter()
        .filter_map(|m| {
            let role = if m.role == Role::User { "user" } else { "assistant" };
            let text: Vec<String> = m.content.iter().filter_map(|b| block_text(b, false)).collect();
            (!text.is_empty()).then(|| format!("<{role}>\n{}\n</{role}>", text.join("\n")))
        })
        .collect();
    if !turns.is_empty() {
        content.push(json!({"type": "text", "text": format!(
            "The conversation so far (you are the assistant):\n<conversation_history>\n{}\n</conversation_history>",
            turns.join("\n")
        )}));
    }
    for text in last.into_iter().flat_map(|m| m.content.iter().filter_map(|b| block_text(b, true))) {
        content.push(json!({"type": "text", "text": text}));
    }
    json!({"type": "user", "message": {"role": "user", "content": content}}).to_string()
}

/// A block as text; an old turn's per-turn context is stale and left out.
fn block_text(b: &Block, with_context: bool) -> Option<String> {
    let text = match b {
        Block::Text { text } => text.clone(),
        Block::Context { text } if with_context => text.clone(),
        Block::Context { .. } => String::new(),
        Block::ToolUse { name, input, .. } => format!("[called the tool {name} with {input}]"),
        Block::ToolResult { content, is_error: false, .. } => format!("[tool result: {content}]"),
        Block::ToolResult { content, is_error: true, .. } => format!("[tool error: {content}]"),
    };
    (!text.is_empty()).then_some(text)
}

fn passed_env(vars: impl Iterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    vars.filter(|(name, _)| {
        name.to_str().is_some_and(|n| PASS_ENV.contains(&n) || PASS_PREFIXES.iter().any(|p| n.starts_with(p)))
    })
    .collect()
}

/// `claude` in PATH, else where the native installer puts it.
fn find_program(path: Option<&OsStr>, home: Option<&Path>) -> Option<PathBuf> {
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    let on_path = path.into_iter().flat_map(std::env::split_paths).map(|dir| dir.join("claude"));
    let installer = home.into_iter().flat_map(|h| [h.join(".local/bin/claude"), h.join(".claude/local/claude")]);
    on_path.chain(installer).find(|p| p.is_absolute() && executable(p))
}

/// A private, empty folder for one call: the CLI's working directory, holding the system
/// prompt. Removed when dropped.
struct RunDir(PathBuf);

impl RunDir {
    fn create(system: &str) -> std::io::Result<RunDir> {
        let path = std::env::temp_dir().join(format!("skynet-claude-{}", uuid::Uuid::new_v4().simple()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        let dir = RunDir(path);
        let mut file =
            std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(dir.0.join(SYSTEM_FILE))?;
        file.write_all(system.as_bytes())?;
        Ok(dir)
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One running call: reads stdout line by line into events.
struct Run {
    provider: String,
    /// Until the call ends; then handed to `reap`.
    child: Option<Child>,
    dir: Option<RunDir>,
    stdout: BufReader<ChildStdout>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    decoder: Decoder,
    pending: VecDeque<Result<StreamEvent, ProviderError>>,
    cancel: CancellationToken,
    idle: Duration,
    line: Vec<u8>,
    over: bool,
}

impl Run {
    async fn next(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.over {
                return None;
            }
            let read = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => None,
                r = tokio::time::timeout(self.idle, read_line(&mut self.stdout, &mut self.line)) => Some(r),
            };
            let error = match read {
                None => Some(ProviderError::Cancelled),
                Some(Err(_)) => Some(ProviderError::Timeout { provider: self.provider.clone(), after: self.idle }),
                Some(Ok(Err(e))) => Some(ProviderError::Program {
                    provider: self.provider.clone(),
                    message: format!("reading the output of `claude` failed: {e}"),
                }),
                Some(Ok(Ok(false))) => Some(self.ended_early().await),
                Some(Ok(Ok(true))) => {
                    let mut out = Vec::new();
                    let result = self.decoder.line(&self.line, &mut out);
                    self.pending.extend(out.into_iter().map(Ok));
                    match result {
                        Ok(false) => None,
                        Ok(true) => {
                            self.end(false);
                            None
                        }
                        Err(e) => Some(e),
                    }
                }
            };
            if let Some(e) = error {
                // After its `result` the CLI exits by itself; otherwise it is stopped.
                self.end(!self.decoder.done);
                self.pending.push_back(Err(e));
            }
        }
    }

    fn end(&mut self, stop_now: bool) {
        self.over = true;
        self.dir = None;
        if let Some(child) = self.child.take() {
            reap(child, stop_now);
        }
    }

    /// Output ended without a `result`: the exit status and stderr say why.
    async fn ended_early(&mut self) -> ProviderError {
        let status = match self.child.as_mut() {
            Some(child) => tokio::time::timeout(Duration::from_secs(10), child.wait()).await.ok().and_then(Result::ok),
            None => None,
        };
        self.end(status.is_none());
        let stderr = match self.stderr.take() {
            Some(task) => tokio::time::timeout(Duration::from_secs(2), task).await.ok().and_then(Result::ok),
            None => None,
        };
        let said = String::from_utf8_lossy(&stderr.unwrap_or_default()).trim().to_string();
        let said = if said.is_empty() { self.decoder.noise.clone().unwrap_or_default() } else { said };
        let said = if said.is_empty() { String::new() } else { format!(": {said}") };
        let provider = self.provider.clone();
        match status {
            Some(s) if s.success() => ProviderError::Protocol {
                provider,
                message: format!(
                    "`claude` ended without its closing `result` line{said}. Update it with `npm install -g @anthropic-ai/claude-code`."
                ),
            },
            Some(s) => ProviderError::Program { provider, message: format!("`claude` failed ({s}){said}") },
            None => ProviderError::Program {
                provider,
                message: format!("`claude` closed its output but kept running{said}"),
            },
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        // The stream was dropped before the call ended.
        self.end(true);
    }
}

/// Reads one line (without its newline) into `line`; `false` at the end of the output.
async fn read_line(r: &mut BufReader<ChildStdout>, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            return Ok(!line.is_empty());
        }
        if let Some(i) = buf.iter().position(|&b| b == b'\n') {
            line.extend_from_slice(&buf[..i]);
            r.consume(i + 1);
            return Ok(true);
        }
        let n = buf.len();
        line.extend_from_slice(buf);
        r.consume(n);
        if line.len() > MAX_LINE {
            return Err(std::io::Error::other(format!("an output line grew beyond {} MiB", MAX_LINE >> 20)));
        }
    }
}

/// Everything a stream yields, keeping only the end.
async fn tail(mut r: impl tokio::io::AsyncRead + Unpin) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&buf[..n]);
        if kept.len() > 2 * STDERR_TAIL {
            kept.drain(..kept.len() - STDERR_TAIL);
        }
    }
    if kept.len() > STDERR_TAIL {
        kept.drain(..kept.len() - STDERR_TAIL);
    }
    kept
}

/// Ends a call's process: waits for it to exit by itself (after its answer), or asks it
/// to stop (SIGTERM, then SIGKILL after 2 s), then kills whatever is left of its process
/// group. Never blocks the caller.
fn reap(mut child: Child, stop_now: bool) {
    let group = child.id().and_then(|id| i32::try_from(id).ok());
    if stop_now {
        signal(group, libc::SIGTERM);
    }
    let grace = if stop_now { Duration::from_secs(2) } else { Duration::from_secs(10) };
    let finish = async move {
        if tokio::time::timeout(grace, child.wait()).await.is_err() {
            signal(group, libc::SIGKILL);
            let _ = child.wait().await;
        }
        signal(group, libc::SIGKILL);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => drop(runtime.spawn(finish)),
        // No runtime left (shutdown): kill at once; dropping the child reaps it.
        Err(_) => signal(group, libc::SIGKILL),
    }
}

fn signal(group: Option<i32>, sig: i32) {
    if let Some(pgid) = group.filter(|&g| g > 1) {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pgid, sig);
        }
    }
}

#[cfg(test)]
mod tests;
