//! Script tools. `tools/<folder>/tool.toml` describes one tool:
//!
//! ```toml
//! name = "weather"                       # optional; the folder's name by default
//! description = "Weather for a city."
//! command = ["python3", "weather.py"]    # run in the folder; the input JSON arrives on stdin
//! timeout_ms = 20000                     # optional; never more than [agent] tool_timeout_ms
//! [parameters]                           # JSON Schema of the input
//! type = "object"
//! properties.city = { type = "string" }
//! required = ["city"]
//! ```
//!
//! Besides the input, the program sees `SKYNET_TOOL_NAME`, `SKYNET_SESSION_KEY` and
//! `SKYNET_USER_ID` (empty for an anonymous caller). Exit status 0: stdout is the result. Anything else: the tool failed, and stderr (or
//! stdout) says why; the model is told. The program runs in its own process group, with
//! a minimal environment (no API keys), and the whole group is killed on timeout or abort.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::agent::tools::{Tool, ToolCtx, ToolOutput};
use crate::agent::types::ToolSpec;
use crate::terminal::process::{GroupKiller, MAX_OUTPUT, PASS_ENV, capped_text, read_capped};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    name: Option<String>,
    description: String,
    command: Vec<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    parameters: Option<toml::Table>,
}

pub struct ScriptTool {
    spec: ToolSpec,
    dir: PathBuf,
    command: Vec<String>,
    timeout: Option<Duration>,
}

/// Each manifest's path, modification time and size: when this changes, reload.
type Signature = Vec<(PathBuf, Option<SystemTime>, u64)>;

/// The plugins of one folder, parsed again only when a `tool.toml` changes.
pub struct PluginSet {
    dir: PathBuf,
    cache: Mutex<(Signature, Vec<Arc<ScriptTool>>)>,
}

impl PluginSet {
    pub fn new(dir: PathBuf) -> PluginSet {
        PluginSet { dir, cache: Mutex::new((Vec::new(), Vec::new())) }
    }

    /// The current tools; a plugin with a bad manifest is skipped and logged once.
    pub fn tools(&self) -> Vec<Arc<ScriptTool>> {
        let signature = manifests(&self.dir)
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let (modified, len) = (meta.as_ref().and_then(|m| m.modified().ok()), meta.map_or(0, |m| m.len()));
                (p, modified, len)
            })
            .collect::<Vec<_>>();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != signature {
            let (tools, errors) = load_dir(&self.dir);
            for e in errors {
                tracing::warn!("{e}");
            }
            *cache = (signature, tools.into_iter().map(Arc::new).collect());
        }
        cache.1.clone()
    }
}

fn manifests(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<PathBuf> =
        entries.filter_map(|e| e.ok()).map(|e| e.path().join("tool.toml")).filter(|p| p.is_file()).collect();
    found.sort();
    found
}

/// Reads every `<dir>/*/tool.toml`; returns the tools and one message per bad manifest.
pub fn load_dir(dir: &Path) -> (Vec<ScriptTool>, Vec<String>) {
    let mut tools: BTreeMap<String, ScriptTool> = BTreeMap::new();
    let mut errors = Vec::new();
    for path in manifests(dir) {
        match ScriptTool::load(&path) {
            Ok(t) if tools.contains_key(&t.spec.name) => {
                errors.push(format!("plugin {}: the name {:?} is already taken; skipped", path.display(), t.spec.name))
            }
            Ok(t) => {
                tools.insert(t.spec.name.clone(), t);
            }
            Err(e) => errors.push(format!("plugin {} skipped: {e}", path.display())),
        }
    }
    (tools.into_values().collect(), errors)
}

impl ScriptTool {
    fn load(path: &Path) -> Result<ScriptTool, String> {
        let dir = path.parent().ok_or("no folder")?.to_path_buf();
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        let m: Manifest = toml::from_str(&text).map_err(|e| e.to_string().trim().replace('\n', " "))?;
        let folder = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let name = m.name.unwrap_or(folder);
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!("name {name:?} must be 1 to 64 letters, digits, '_' or '-'"));
        }
        if m.description.trim().is_empty() {
            return Err("description is empty; say what the tool does, the model reads it".into());
        }
        if m.command.first().is_none_or(|c| c.is_empty()) {
            return Err("command is empty; give the program and its arguments, e.g. [\"python3\", \"tool.py\"]".into());
        }
        let schema = match m.parameters {
            Some(t) => serde_json::to_value(t).map_err(|e| e.to_string())?,
            None => serde_json::json!({"type": "object", "properties": {}}),
        };
        if schema.get("type").and_then(Value::as_str) != Some("object") {
            return Err("[parameters] must describe an object (type = \"object\")".into());
        }
        Ok(ScriptTool {
            spec: ToolSpec { name, description: m.description.trim().to_string(), input_schema: schema },
            dir,
            command: m.command,
            timeout: m.timeout_ms.map(Duration::from_millis),
        })
    }

    /// The program path: relative paths with a `/` are taken from the plugin's folder.
    fn program(&self) -> PathBuf {
        let p = Path::new(&self.command[0]);
        if p.is_relative() && self.command[0].contains('/') { self.dir.join(p) } else { p.to_path_buf() }
    }
}

impl Tool for ScriptTool {
    fn spec(&self) -> ToolSpec {
        self.spec.clone()
    }

    fn group(&self) -> &'static str {
        "plugins"
    }

    fn call(&self, input: Value, ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let mut cmd = tokio::process::Command::new(self.program());
        cmd.args(&self.command[1..])
            .current_dir(&self.dir)
            .env_clear()
            .envs(PASS_ENV.iter().filter_map(|k| std::env::var_os(k).map(|v| (k, v))))
            .env("SKYNET_TOOL_NAME", &self.spec.name)
            .env("SKYNET_SESSION_KEY", &ctx.session_key)
            .env("SKYNET_USER_ID", ctx.user_id.map(|id| id.to_string()).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let name = self.spec.name.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let mut child = cmd.spawn().map_err(|e| format!("cannot start the {name} plugin's program: {e}"))?;
            let _group = child.id().map(GroupKiller);
            let input = input.to_string();
            let mut stdin = child.stdin.take();
            let mut stdout = child.stdout.take().ok_or("no stdout")?;
            let mut stderr = child.stderr.take().ok_or("no stderr")?;
            let work = async {
                if let Some(s) = stdin.as_mut() {
                    // A program that never reads its input is fine.
                    let _ = s.write_all(input.as_bytes()).await;
                }
                drop(stdin);
                tokio::join!(read_capped(&mut stdout, MAX_OUTPUT), read_capped(&mut stderr, MAX_OUTPUT), child.wait())
            };
            let (out, err, status) = match timeout {
                Some(t) => tokio::time::timeout(t, work).await.map_err(|_| {
                    format!("the {name} plugin did not finish within {} ms and was stopped", t.as_millis())
                })?,
                None => work.await,
            };
            let status = status.map_err(|e| format!("the {name} plugin's program failed: {e}"))?;
            let text = |bytes: &[u8]| capped_text(bytes, MAX_OUTPUT);
            if status.success() {
                Ok(text(&out).into())
            } else {
                let why = if err.is_empty() { text(&out) } else { text(&err) };
                Err(format!("the {name} plugin failed ({status}): {}", why.trim()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plugin(root: &Path, folder: &str, manifest: &str, script: Option<&str>) {
        let dir = root.join(folder);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("tool.toml"), manifest).unwrap();
        if let Some(s) = script {
            std::fs::write(dir.join("run.sh"), s).unwrap();
        }
    }

    #[tokio::test]
    async fn a_script_gets_its_input_on_stdin_and_its_stdout_is_the_result() {
        let root = tempfile::tempdir().unwrap();
        plugin(
            root.path(),
            "greet",
            "description = \"Greets.\"\ncommand = [\"sh\", \"run.sh\"]\n[parameters]\ntype = \"object\"\nproperties.who = { type = \"string\" }\n",
            Some("read line; echo \"hello $line from $SKYNET_TOOL_NAME; key=${ANTHROPIC_API_KEY:-none}\"\n"),
        );
        let (tools, errors) = load_dir(root.path());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(tools[0].spec.name, "greet");
        assert_eq!(tools[0].spec.input_schema["properties"]["who"]["type"], "string");
        let out = tools[0].call(json!({"who": "ann"}), ToolCtx::default()).await.unwrap().text;
        assert_eq!(out.trim(), r#"hello {"who":"ann"} from greet; key=none"#);
    }

    #[tokio::test]
    async fn a_failing_script_reports_stderr_and_a_slow_one_is_stopped() {
        let root = tempfile::tempdir().unwrap();
        plugin(
            root.path(),
            "bad",
            "description = \"d\"\ncommand = [\"sh\", \"-c\", \"echo broken >&2; exit 3\"]\n",
            None,
        );
        plugin(root.path(), "slow", "description = \"d\"\ncommand = [\"sleep\", \"30\"]\ntimeout_ms = 200\n", None);
        let (tools, _) = load_dir(root.path());
        let err = tools[0].call(json!({}), ToolCtx::default()).await.unwrap_err();
        assert!(err.contains("broken") && err.contains("exit status: 3"), "{err}");
        let started = std::time::Instant::now();
        let err = tools[1].call(json!({}), ToolCtx::default()).await.unwrap_err();
        assert!(err.contains("did not finish within 200 ms"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn bad_manifests_are_skipped_with_a_reason() {
        let root = tempfile::tempdir().unwrap();
        plugin(root.path(), "nocmd", "description = \"d\"\ncommand = []\n", None);
        plugin(root.path(), "bad name!", "description = \"d\"\ncommand = [\"true\"]\n", None);
        plugin(root.path(), "typo", "description = \"d\"\ncomand = [\"true\"]\n", None);
        plugin(root.path(), "ok", "description = \"d\"\ncommand = [\"true\"]\n", None);
        let (tools, errors) = load_dir(root.path());
        assert_eq!(tools.iter().map(|t| t.spec.name.as_str()).collect::<Vec<_>>(), ["ok"]);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("command is empty")), "{errors:?}");
        assert!(errors.iter().any(|e| e.contains("comand")), "{errors:?}");
    }
}
