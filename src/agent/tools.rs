//! The tool registry: every tool the model may call, whatever its origin (built-in,
//! plugin, MCP), behind one trait. Built-ins live in this module's `builtin` list.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::types::ToolSpec;

mod files;
mod shell;

pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// The permission group roles refer to (`[roles.*] tools = ["@files", ...]`).
    fn group(&self) -> &'static str {
        "general"
    }
    /// Runs the tool; an `Err` is reported to the model as a failed tool result.
    fn call(&self, input: Value, ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>>;
}

/// Who and where a tool runs for.
#[derive(Debug, Clone, Default)]
pub struct ToolCtx {
    /// The person the run answers (None: an anonymous, stateless API call).
    pub user_id: Option<i64>,
    pub session_key: String,
}

/// A tool's result, and the knowledge topic it used (feeds the hot index).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolOutput {
    pub text: String,
    pub topic: Option<String>,
}

impl From<String> for ToolOutput {
    fn from(text: String) -> Self {
        ToolOutput { text, topic: None }
    }
}

/// What the built-in tools work with.
pub struct BuiltinDeps {
    /// The folder file and shell tools work in (and never leave).
    pub workspace: std::path::PathBuf,
    pub store: crate::store::Store,
    /// The running chat channels, for delivering messages.
    pub channels: crate::channels::Registry,
}

#[derive(Clone, Default)]
pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl Registry {
    pub fn with_builtins(deps: &BuiltinDeps) -> Registry {
        let mut r = Registry::default();
        r.add(Arc::new(CurrentTime));
        r.add(Arc::new(crate::channels::send_tool::SendMessage {
            registry: deps.channels.clone(),
            store: deps.store.clone(),
        }));
        r.add(Arc::new(shell::Shell::new(&deps.workspace)));
        for tool in files::FileTool::all(&deps.workspace) {
            r.add(Arc::new(tool));
        }
        for tool in crate::memory::tools(&deps.store) {
            r.add(tool);
        }
        r
    }

    pub fn add(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name, tool);
    }

    /// Adds every tool of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: &Registry) {
        self.tools.extend(other.tools.iter().map(|(k, v)| (k.clone(), v.clone())));
    }

    /// The registry without the tools `keep` rejects.
    pub fn filtered(&self, keep: impl Fn(&dyn Tool) -> bool) -> Registry {
        let tools = self.tools.iter().filter(|(_, t)| keep(t.as_ref())).map(|(k, v)| (k.clone(), v.clone())).collect();
        Registry { tools }
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Tool>> {
        self.tools.get(name).cloned()
    }

    /// Specs in name order, so the prompt's tool section is byte-identical every turn.
    pub fn specs(&self) -> Vec<ToolSpec> {
        self.tools.values().map(|t| t.spec()).collect()
    }
}

/// `current_time`: the time now, in UTC and as a Unix timestamp.
struct CurrentTime;

impl Tool for CurrentTime {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "current_time".into(),
            description: "The current date and time (UTC) and Unix timestamp.".into(),
            input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
        }
    }

    fn group(&self) -> &'static str {
        "time"
    }

    fn call(&self, _input: Value, _ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        Box::pin(async {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            Ok(json!({"utc": super::prompt::format_utc(secs), "unix": secs}).to_string().into())
        })
    }
}
