//! The tool registry: every tool the model may call, whatever its origin (built-in,
//! plugin, MCP), behind one trait. Built-ins live in this module's `builtin` list.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::types::ToolSpec;

pub trait Tool: Send + Sync {
    fn spec(&self) -> ToolSpec;
    /// Runs the tool; an `Err` is reported to the model as a failed tool result.
    fn call(&self, input: Value) -> BoxFuture<'static, Result<String, String>>;
}

#[derive(Clone, Default)]
pub struct Registry {
    tools: BTreeMap<String, Arc<dyn Tool>>,
}

impl Registry {
    pub fn with_builtins() -> Registry {
        let mut r = Registry::default();
        r.add(Arc::new(CurrentTime));
        r
    }

    pub fn add(&mut self, tool: Arc<dyn Tool>) {
        self.tools.insert(tool.spec().name, tool);
    }

    /// Adds every tool of `other`, replacing same-named ones.
    pub fn extend(&mut self, other: &Registry) {
        self.tools.extend(other.tools.iter().map(|(k, v)| (k.clone(), v.clone())));
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

    fn call(&self, _input: Value) -> BoxFuture<'static, Result<String, String>> {
        Box::pin(async {
            let secs = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|e| e.to_string())?
                .as_secs();
            Ok(json!({"utc": super::prompt::format_utc(secs), "unix": secs}).to_string())
        })
    }
}
