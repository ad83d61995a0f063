//! One agent run: resolve the model, build the prompt, stream the model's answer, run the
//! tools it asks for (in parallel), feed the results back, repeat up to the step limit,
//! then store the whole turn at once. Runs on one session are serialised; runs on
//! different sessions are independent tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use super::models::{ModelRef, Models, Settings};
use super::prompt::{PromptBuilder, TurnContext};
use super::providers::{Provider, ProviderError};
use super::router::Decision;
use super::tools::{BuiltinDeps, Registry, Tool, ToolCtx};
use super::types::{Block, ChatRequest, Message, Role, StopReason, StreamEvent, Usage};
use crate::config::Config;
use crate::plugins::PluginSet;
use crate::store::{Person, Store, ToolCallRecord};
use crate::users::Permissions;

/// How many stored messages are sent back to the model.
const HISTORY_LIMIT: usize = 200;

/// Progress of a run, as it happens.
#[derive(Debug, Clone)]
pub enum AgentEvent {
    Text { delta: String, text: String },
    ToolStart { id: String, name: String, input: Value },
    ToolEnd { id: String, name: String, ok: bool, output: String },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    Ok,
    Error(String),
    Aborted,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Status,
    pub text: String,
    pub usage: Usage,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub stop_reason: Option<StopReason>,
    pub session_id: Option<String>,
    pub duration: Duration,
    /// The router's choice, when it picked the model.
    pub routing: Option<Decision>,
}

pub struct RunRequest {
    pub run_id: String,
    pub session_key: String,
    pub message: String,
    /// `<provider>/<model>` or an alias; `None`: the configured default.
    pub model: Option<String>,
    pub channel: String,
    /// A conversation supplied by the caller (the stateless `/v1` API): used instead of the
    /// stored session, and nothing is stored.
    pub history: Option<Vec<Message>>,
    /// The caller's own system instructions, added to this turn's context.
    pub instructions: Option<String>,
    /// Who the run answers; their role decides which tools and models it may use.
    /// `None`: a trusted caller with every permission.
    pub person: Option<Person>,
}

impl RunRequest {
    pub fn new(run_id: String, session_key: String, message: String, model: Option<String>, channel: &str) -> Self {
        RunRequest {
            run_id,
            session_key,
            message,
            model,
            channel: channel.into(),
            history: None,
            instructions: None,
            person: None,
        }
    }
}

pub struct Agent {
    pub models: Models,
    store: Store,
    prompt: PromptBuilder,
    builtins: Registry,
    plugins: PluginSet,
    session_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Said instead of an answer while no model is configured.
pub const NO_MODEL_MESSAGE: &str = "Skynet has no language model configured yet, so it cannot answer. \
To set one up, run `skynet-gateway setup`, or put a model in ~/.skynet/skynet.toml, for example\n\n[agent]\nmodel = \"anthropic/claude-sonnet-4-5\"\n\n\
with your key in ANTHROPIC_API_KEY (or \"openai/gpt-4o-mini\" with OPENAI_API_KEY, or \"ollama/llama3.2\" for a \
local model with no key), then restart the gateway.";

impl Agent {
    pub fn new(config: &Config, store: Store, home: &std::path::Path, channels: crate::channels::Registry) -> Agent {
        let deps = BuiltinDeps { workspace: home.join("workspace"), store: store.clone(), channels };
        let permissions = Permissions::new(config.roles.clone());
        Agent {
            models: Models::new(config.agent.clone(), config.providers.clone(), permissions),
            store,
            prompt: PromptBuilder::new(&home.join("workspace")),
            builtins: Registry::with_builtins(&deps),
            plugins: PluginSet::new(home.join("tools")),
            session_locks: Mutex::new(HashMap::new()),
        }
    }

    /// Built-in tools plus the plugins as they are on disk now; built-ins win a name clash.
    fn tools(&self) -> Registry {
        let mut r = Registry::default();
        for p in self.plugins.tools() {
            r.add(p);
        }
        r.extend(&self.builtins);
        r
    }

    fn session_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.session_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(key.to_string()).or_default().clone()
    }

    /// Runs one message to completion. Never panics on provider or tool failures: they
    /// end up in the outcome's status, and the session stays usable.
    pub async fn run(
        &self,
        req: RunRequest,
        events: UnboundedSender<AgentEvent>,
        cancel: CancellationToken,
    ) -> Outcome {
        let started = Instant::now();
        let lock = self.session_lock(&req.session_key);
        let _turn = tokio::select! {
            guard = lock.lock() => guard,
            _ = cancel.cancelled() => return outcome(Status::Aborted, String::new(), started),
        };
        let mut out = self.run_locked(&req, &events, &cancel).await;
        out.duration = started.elapsed();
        out
    }

    async fn run_locked(
        &self,
        req: &RunRequest,
        events: &UnboundedSender<AgentEvent>,
        cancel: &CancellationToken,
    ) -> Outcome {
        let started = Instant::now();
        let settings = self.models.settings();
        let (primary, routing) = match req.model.as_deref().filter(|m| !m.is_empty()) {
            Some(m) => (self.models.resolve(Some(m)), None),
            None => self.models.route(&req.message),
        };
        if let Some(d) = &routing {
            tracing::info!(run = %req.run_id, tier = ?d.tier, model = %d.model, reason = %d.reason, "router picked a model");
        }
        let Some(primary) = primary else {
            if let Some(m) = req.model.as_deref().filter(|m| !m.is_empty()) {
                let msg = format!(
                    "unknown model {m:?}: name it as <provider>/<model> (e.g. openai/gpt-4o-mini) or use an alias from [agent.aliases]"
                );
                return outcome(Status::Error(msg), String::new(), started);
            }
            let _ = events.send(AgentEvent::Text { delta: NO_MODEL_MESSAGE.into(), text: NO_MODEL_MESSAGE.into() });
            return outcome(Status::Ok, NO_MODEL_MESSAGE.into(), started);
        };
        let mut out = outcome(Status::Ok, String::new(), started);
        out.routing = routing;
        if let Some(p) = &req.person
            && let Err(why) = self.admit(p, &settings, req.model.as_deref(), &primary).await
        {
            tracing::info!(run = %req.run_id, user = %p.name, role = %p.role, reason = %why, "message refused");
            out.status = Status::Error(why);
            return out;
        }
        let mut candidates = self.models.candidates(primary).into_iter();
        let (mut provider_name, mut model, mut provider) = match self.next_provider(&mut candidates) {
            Ok(c) => c,
            Err(e) => {
                out.status = Status::Error(e);
                return out;
            }
        };
        let mut messages: Vec<Message> = match &req.history {
            Some(h) => h.clone(),
            None => match self.store.history(&req.session_key, HISTORY_LIMIT).await {
                Ok((id, h)) => {
                    out.session_id = id;
                    h.into_iter().map(|m| m.message).collect()
                }
                Err(e) => {
                    out.status = Status::Error(format!("cannot read the conversation: {e}"));
                    return out;
                }
            },
        };
        // A stored history always ends with an assistant message; drop a leading orphan.
        while messages.first().is_some_and(|m| m.role != Role::User || has_tool_result(m)) {
            messages.remove(0);
        }
        let dropped = super::history::trim(&mut messages, settings.agent.history_budget_tokens);
        if dropped > 0 {
            tracing::debug!(run = %req.run_id, dropped, "older history left out to fit the token budget");
        }
        let history_len = messages.len();
        let hot = crate::memory::hot_topics(&self.store, crate::memory::HOT_INDEX_SIZE).await.unwrap_or_default();
        let ctx = TurnContext {
            channel: &req.channel,
            session_key: &req.session_key,
            instructions: req.instructions.as_deref(),
            hot_topics: &hot,
        };
        messages.push(Message {
            role: Role::User,
            content: vec![
                Block::Context { text: self.prompt.context(&ctx, std::time::SystemTime::now()) },
                Block::Text { text: req.message.clone() },
            ],
        });

        let about = match &req.person {
            Some(p) => {
                let memory = crate::memory::memory_summary(&self.store, p.id).await.unwrap_or_default();
                let who = format!("You are talking with {} (role: {}).", p.name, p.role);
                if memory.is_empty() { who } else { format!("{who}\n\n{memory}") }
            }
            None => String::new(),
        };
        let system = self.prompt.system(&about);
        let registry = self.tools();
        // The model is only offered what this person may use; run_tools checks again.
        let offered = match &req.person {
            Some(p) => registry.filtered(|t| settings.permissions.tool(p.role, &t.spec().name, t.group()).is_ok()),
            None => registry.clone(),
        };
        let tools = offered.specs();
        let mut text = String::new();
        let mut steps = 0;
        loop {
            steps += 1;
            out.provider = Some(provider_name.clone());
            out.model = Some(model.clone());
            let call = ChatRequest {
                model: model.clone(),
                system: system.clone(),
                messages: messages.clone(),
                tools: tools.clone(),
                max_tokens: settings.agent.max_tokens,
            };
            let streamed_before = text.len();
            let step = match self.stream_step(&provider, call, events, &mut text, cancel).await {
                Ok(step) => {
                    self.models.mark_healthy(&provider_name);
                    step
                }
                Err(ProviderError::Cancelled) => {
                    out.status = Status::Aborted;
                    break;
                }
                // Fail over only while nothing of this answer has been streamed.
                Err(e) if e.allows_failover() && text.len() == streamed_before && candidates.len() > 0 => {
                    self.models.mark_unhealthy(provider.name());
                    match self.next_provider(&mut candidates) {
                        Ok((name, m, p)) => {
                            tracing::warn!(run = %req.run_id, from = %provider_name, to = %name, error = %e, "provider failed; failing over");
                            (provider_name, model, provider) = (name, m, p);
                            steps -= 1;
                            continue;
                        }
                        Err(next) => {
                            out.status = Status::Error(format!("{e}; and the fallback: {next}"));
                            break;
                        }
                    }
                }
                Err(e) => {
                    if e.allows_failover() {
                        self.models.mark_unhealthy(provider.name());
                    }
                    tracing::warn!(run = %req.run_id, provider = %provider_name, error = %e, "model call failed");
                    out.status = Status::Error(e.to_string());
                    break;
                }
            };
            out.usage.add(&step.usage);
            out.stop_reason = Some(step.stop.clone());
            let calls = step.tool_calls();
            messages.push(step.message);
            if calls.is_empty() {
                break;
            }
            let timeout = Duration::from_millis(settings.agent.tool_timeout_ms);
            let ctx = ToolCtx { user_id: req.person.as_ref().map(|p| p.id), session_key: req.session_key.clone() };
            let allowed = |t: &dyn Tool| match &req.person {
                Some(p) => settings.permissions.tool(p.role, &t.spec().name, t.group()),
                None => Ok(()),
            };
            let results =
                self.run_tools(&registry, &allowed, timeout, calls, out.session_id.clone(), &ctx, events, cancel).await;
            messages.push(Message { role: Role::User, content: results });
            if cancel.is_cancelled() {
                out.status = Status::Aborted;
                break;
            }
            if steps >= settings.agent.max_steps {
                let note = format!(
                    "\n\n(I stopped here: this answer needed more than {} model calls, the limit set in [agent] max_steps.)",
                    settings.agent.max_steps
                );
                text.push_str(&note);
                let _ = events.send(AgentEvent::Text { delta: note.clone(), text: text.clone() });
                messages.push(Message { role: Role::Assistant, content: vec![Block::Text { text: note }] });
                tracing::warn!(run = %req.run_id, steps, "tool loop stopped at the step limit");
                break;
            }
        }
        out.text = text;
        if req.history.is_none() {
            self.store_turn(req, &mut messages, history_len, &out).await;
        }
        out
    }

    /// Whether the person may send now, to this model: the role's hourly message limit and
    /// its model list.
    async fn admit(
        &self,
        p: &Person,
        settings: &Settings,
        asked: Option<&str>,
        model: &ModelRef,
    ) -> Result<(), String> {
        let resolved = format!("{}/{}", model.0, model.1);
        settings.permissions.model(p.role, asked, &resolved)?;
        let limit = settings.permissions.messages_per_hour(p.role);
        if limit > 0 {
            let sent = self.store.messages_last_hour(p.id).await.map_err(|e| e.to_string())?;
            if sent >= i64::from(limit) {
                return Err(format!(
                    "you have sent {sent} messages in the last hour, the most the {} role allows; please wait a while",
                    p.role
                ));
            }
        }
        Ok(())
    }

    /// The next candidate whose provider can be built.
    fn next_provider(
        &self,
        candidates: &mut impl Iterator<Item = ModelRef>,
    ) -> Result<(String, String, Arc<dyn Provider>), String> {
        let mut last_error = String::from("no model to try");
        for (name, model) in candidates {
            match self.models.provider(&name) {
                Ok(p) => return Ok((name, model, p)),
                Err(e) => last_error = e,
            }
        }
        Err(last_error)
    }

    /// Streams one model call, forwarding text as it arrives.
    async fn stream_step(
        &self,
        provider: &Arc<dyn Provider>,
        call: ChatRequest,
        events: &UnboundedSender<AgentEvent>,
        text: &mut String,
        cancel: &CancellationToken,
    ) -> Result<Step, ProviderError> {
        let mut stream = provider.stream(call, cancel.child_token()).await?;
        let mut step = Step {
            calls: BTreeMap::new(),
            usage: Usage::default(),
            stop: StopReason::EndTurn,
            message: Message { role: Role::Assistant, content: Vec::new() },
        };
        let mut step_text = String::new();
        while let Some(ev) = stream.next().await {
            match ev? {
                StreamEvent::TextDelta(delta) => {
                    step_text.push_str(&delta);
                    text.push_str(&delta);
                    let _ = events.send(AgentEvent::Text { delta, text: text.clone() });
                }
                StreamEvent::ToolCallStart { index, id, name } => {
                    step.calls.insert(index, (id, name, String::new()));
                }
                StreamEvent::ToolCallDelta { index, json } => {
                    if let Some(c) = step.calls.get_mut(&index) {
                        c.2.push_str(&json);
                    }
                }
                StreamEvent::Usage(u) => step.usage = u,
                StreamEvent::Stop(s) => step.stop = s,
            }
        }
        let mut content = Vec::new();
        if !step_text.is_empty() {
            content.push(Block::Text { text: step_text });
        }
        for (id, name, args) in step.calls.values() {
            let input = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).unwrap_or_else(|_| json!({"__invalid_json": args}))
            };
            content.push(Block::ToolUse { id: id.clone(), name: name.clone(), input });
        }
        if content.is_empty() {
            content.push(Block::Text { text: String::new() });
        }
        step.message = Message { role: Role::Assistant, content };
        Ok(step)
    }

    /// Runs the calls in parallel; every call gets a result, errors included.
    #[allow(clippy::too_many_arguments, reason = "one call site; the pieces are unrelated")]
    async fn run_tools(
        &self,
        registry: &Registry,
        allowed: &(dyn Fn(&dyn Tool) -> Result<(), String> + Sync),
        timeout: Duration,
        calls: Vec<(String, String, Value)>,
        session_id: Option<String>,
        ctx: &ToolCtx,
        events: &UnboundedSender<AgentEvent>,
        cancel: &CancellationToken,
    ) -> Vec<Block> {
        let known: Vec<String> = registry.specs().into_iter().map(|s| s.name).collect();
        let runs = calls.into_iter().map(|(id, name, input)| {
            let tool = registry.get(&name);
            let refused = tool.as_ref().and_then(|t| allowed(t.as_ref()).err());
            let store = self.store.clone();
            let session_id = session_id.clone();
            let events = events.clone();
            let cancel = cancel.clone();
            let known = known.clone();
            let ctx = ctx.clone();
            let user_id = ctx.user_id;
            async move {
                let _ = events.send(AgentEvent::ToolStart { id: id.clone(), name: name.clone(), input: input.clone() });
                let started = Instant::now();
                let result = match (tool, input.get("__invalid_json")) {
                    (Some(_), _) if refused.is_some() => Err(refused.unwrap_or_default()),
                    (_, Some(raw)) => Err(format!("the arguments were not valid JSON ({raw}); call the tool again with a JSON object")),
                    (None, _) => Err(format!("there is no tool named {name:?}; available tools: {}", known.join(", "))),
                    (Some(tool), None) => tokio::select! {
                        r = tokio::time::timeout(timeout, tool.call(input, ctx)) => r.unwrap_or_else(|_| Err(format!("the tool did not finish within {} ms and was stopped", timeout.as_millis()))),
                        _ = cancel.cancelled() => Err("the run was aborted".to_string()),
                    },
                };
                let record = ToolCallRecord {
                    name: name.clone(),
                    session_id,
                    user_id,
                    topic: result.as_ref().ok().and_then(|o| o.topic.clone()),
                    duration_ms: started.elapsed().as_millis() as u64,
                    error: result.as_ref().err().cloned(),
                };
                if let Err(e) = store.record_tool_call(record).await {
                    tracing::warn!(error = %e, "cannot record tool usage");
                }
                let (ok, output) = match result {
                    Ok(o) => (true, o.text),
                    Err(e) => (false, e),
                };
                let _ = events.send(AgentEvent::ToolEnd { id: id.clone(), name, ok, output: output.clone() });
                Block::ToolResult { tool_use_id: id, content: output, is_error: !ok }
            }
        });
        futures_util::future::join_all(runs).await
    }

    /// Writes the turn, reshaped so it is always valid: an aborted or failed run keeps the
    /// user's message and whatever answer text arrived, never a dangling tool call.
    async fn store_turn(&self, req: &RunRequest, messages: &mut Vec<Message>, history_len: usize, out: &Outcome) {
        let mut turn: Vec<Message> = messages.split_off(history_len);
        if turn.last().map(|m| m.role) != Some(Role::Assistant) || out.status != Status::Ok {
            let user = turn.swap_remove(0);
            let reply = match &out.status {
                Status::Ok => out.text.clone(),
                Status::Aborted if !out.text.is_empty() => format!("{} [aborted]", out.text),
                Status::Aborted => "[aborted]".to_string(),
                Status::Error(e) if !out.text.is_empty() => format!("{} [error: {e}]", out.text),
                Status::Error(e) => format!("[error: {e}]"),
            };
            turn = vec![user, Message { role: Role::Assistant, content: vec![Block::Text { text: reply }] }];
        }
        let meta = json!({
            "runId": req.run_id,
            "provider": out.provider,
            "model": out.model,
            "usage": out.usage,
            "stopReason": out.stop_reason,
        });
        let user_id = req.person.as_ref().map(|p| p.id);
        if let Err(e) = self.store.append_turn(&req.session_key, turn, meta, user_id).await {
            tracing::error!(run = %req.run_id, error = %e, "cannot store the turn");
        }
    }
}

struct Step {
    calls: BTreeMap<usize, (String, String, String)>,
    usage: Usage,
    stop: StopReason,
    message: Message,
}

impl Step {
    fn tool_calls(&self) -> Vec<(String, String, Value)> {
        self.message
            .content
            .iter()
            .filter_map(|b| match b {
                Block::ToolUse { id, name, input } => Some((id.clone(), name.clone(), input.clone())),
                _ => None,
            })
            .collect()
    }
}

fn has_tool_result(m: &Message) -> bool {
    m.content.iter().any(|b| matches!(b, Block::ToolResult { .. }))
}

fn outcome(status: Status, text: String, started: Instant) -> Outcome {
    Outcome {
        status,
        text,
        usage: Usage::default(),
        provider: None,
        model: None,
        stop_reason: None,
        session_id: None,
        duration: started.elapsed(),
        routing: None,
    }
}
