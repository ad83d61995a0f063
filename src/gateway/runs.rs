//! Agent runs as the gateway sees them: started by `chat.send`/`agent`, each in its own
//! task, streamed to every reading client as `agent` and `chat` events, abortable, and
//! remembered for a while so retries with the same idempotency key are answered, not re-run.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::auth::SCOPE_READ;
use super::{Gateway, now_ms};
use crate::agent::{AgentEvent, Outcome, RunRequest, Status};

/// Finished runs are remembered this long, and at most this many.
const KEEP_FINISHED: Duration = Duration::from_secs(300);
const MAX_FINISHED: usize = 1000;
/// `chat` delta events are throttled per run, as the reference gateway does.
const CHAT_DELTA_EVERY: Duration = Duration::from_millis(150);

#[derive(Debug, Clone)]
pub struct RunEnd {
    pub outcome: Outcome,
    pub ended_at: i64,
}

struct Live {
    session_key: String,
    cancel: CancellationToken,
    done: watch::Receiver<Option<RunEnd>>,
}

#[derive(Default)]
pub struct Runs {
    live: Mutex<HashMap<String, Live>>,
    finished: Mutex<VecDeque<(String, Instant, RunEnd)>>,
}

/// What starting a run did.
pub enum Started {
    New(watch::Receiver<Option<RunEnd>>),
    InFlight(watch::Receiver<Option<RunEnd>>),
    Finished(Box<RunEnd>),
}

impl Runs {
    fn finished(&self, run_id: &str) -> Option<RunEnd> {
        let mut f = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        while f.front().is_some_and(|(_, at, _)| at.elapsed() > KEEP_FINISHED) {
            f.pop_front();
        }
        f.iter().find(|(id, _, _)| id == run_id).map(|(_, _, end)| end.clone())
    }

    /// Waits for a run (live or recently finished); `None` if unknown.
    pub fn watch(&self, run_id: &str) -> Option<watch::Receiver<Option<RunEnd>>> {
        if let Some(live) = self.live.lock().unwrap_or_else(|p| p.into_inner()).get(run_id) {
            return Some(live.done.clone());
        }
        self.finished(run_id).map(|end| watch::channel(Some(end)).1)
    }

    pub fn is_idle(&self) -> bool {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }

    /// Cancels every live run (the shutdown deadline passed).
    pub fn abort_all(&self) {
        for live in self.live.lock().unwrap_or_else(|p| p.into_inner()).values() {
            live.cancel.cancel();
        }
    }

    /// Cancels the live runs of a session (one, when `run_id` is given).
    pub fn abort(&self, session_key: &str, run_id: Option<&str>) -> Vec<String> {
        let live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.iter()
            .filter(|(id, l)| l.session_key == session_key && run_id.is_none_or(|r| r == id.as_str()))
            .map(|(id, l)| {
                l.cancel.cancel();
                id.clone()
            })
            .collect()
    }
}

/// `main` → `agent:main:main`, `x` → `agent:main:x`; full keys are kept.
pub fn canonical_session_key(key: &str) -> String {
    if key.starts_with("agent:") { key.to_string() } else { format!("agent:main:{key}") }
}

/// Starts a run unless one with this id is live or recently finished.
pub fn start(gw: &Arc<Gateway>, req: RunRequest) -> Started {
    start_observed(gw, req, None)
}

/// Like `start`; a new run also sends its progress to `observer` (the `/v1` stream).
pub fn start_observed(
    gw: &Arc<Gateway>,
    req: RunRequest,
    observer: Option<mpsc::UnboundedSender<AgentEvent>>,
) -> Started {
    let run_id = req.run_id.clone();
    {
        let mut live = gw.runs.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(l) = live.get(&run_id) {
            return Started::InFlight(l.done.clone());
        }
        if let Some(end) = gw.runs.finished(&run_id) {
            return Started::Finished(Box::new(end));
        }
        let (done_tx, done_rx) = watch::channel(None);
        // Not tied to shutdown: a run in flight may finish within the grace period.
        let cancel = CancellationToken::new();
        live.insert(
            run_id.clone(),
            Live { session_key: req.session_key.clone(), cancel: cancel.clone(), done: done_rx.clone() },
        );
        gw.tasks.spawn(drive(gw.clone(), req, cancel, done_tx, observer));
        Started::New(done_rx)
    }
}

/// Starts a run and waits for its end (a channel message: the answer goes back through
/// the channel, while protocol clients still see the run's events).
pub async fn run_to_end(gw: &Arc<Gateway>, req: RunRequest) -> Option<RunEnd> {
    let mut done = match start(gw, req) {
        Started::New(rx) | Started::InFlight(rx) => rx,
        Started::Finished(end) => return Some(*end),
    };
    wait_end(&mut done).await
}

/// The run's end, once it comes; `None` if the run went away without one.
pub async fn wait_end(done: &mut watch::Receiver<Option<RunEnd>>) -> Option<RunEnd> {
    loop {
        if let Some(end) = done.borrow_and_update().clone() {
            return Some(end);
        }
        done.changed().await.ok()?;
    }
}

/// Runs the agent and turns its progress into protocol events.
async fn drive(
    gw: Arc<Gateway>,
    req: RunRequest,
    cancel: CancellationToken,
    done: watch::Sender<Option<RunEnd>>,
    observer: Option<mpsc::UnboundedSender<AgentEvent>>,
) {
    let run_id = req.run_id.clone();
    let key = req.session_key.clone();
    let mut ev = EventShaper::new(&gw, &run_id, &key);
    ev.agent("lifecycle", json!({"phase": "start", "startedAt": now_ms()}));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let agent = gw.agent.clone();
    let run = agent.run(req, tx, cancel);
    tokio::pin!(run);
    let forward = |ev: &mut EventShaper, event: AgentEvent| {
        if let Some(o) = &observer {
            let _ = o.send(event.clone());
        }
        ev.progress(event);
    };
    let outcome = loop {
        tokio::select! {
            Some(event) = rx.recv() => forward(&mut ev, event),
            outcome = &mut run => break outcome,
        }
    };
    while let Ok(event) = rx.try_recv() {
        forward(&mut ev, event);
    }
    ev.finish(&outcome);

    let end = RunEnd { outcome, ended_at: now_ms() };
    gw.runs.live.lock().unwrap_or_else(|p| p.into_inner()).remove(&run_id);
    {
        let mut f = gw.runs.finished.lock().unwrap_or_else(|p| p.into_inner());
        f.push_back((run_id, Instant::now(), end.clone()));
        while f.len() > MAX_FINISHED {
            f.pop_front();
        }
    }
    let _ = done.send(Some(end));
}

/// Builds `agent` and `chat` event payloads for one run (v3: cumulative text; v4 adds
/// `deltaText`, the characters since the previous chat delta).
struct EventShaper<'a> {
    gw: &'a Gateway,
    run_id: &'a str,
    key: &'a str,
    seq: u64,
    text: String,
    chat_sent_len: usize,
    last_chat: Option<Instant>,
}

impl<'a> EventShaper<'a> {
    fn new(gw: &'a Gateway, run_id: &'a str, key: &'a str) -> Self {
        EventShaper { gw, run_id, key, seq: 0, text: String::new(), chat_sent_len: 0, last_chat: None }
    }

    fn agent(&mut self, stream: &str, data: Value) {
        self.seq += 1;
        let payload = json!({"runId": self.run_id, "stream": stream, "data": data, "sessionKey": self.key, "seq": self.seq, "ts": now_ms()});
        self.gw.broadcast("agent", payload, Some(SCOPE_READ));
    }

    fn chat(&mut self, state: &str, extra: Value) {
        let message =
            json!({"role": "assistant", "content": [{"type": "text", "text": self.text}], "timestamp": now_ms()});
        let mut payload =
            json!({"runId": self.run_id, "sessionKey": self.key, "seq": self.seq, "state": state, "message": message});
        if let (Value::Object(p), Value::Object(e)) = (&mut payload, extra) {
            p.extend(e);
        }
        let delta = self.text[self.chat_sent_len..].to_string();
        self.chat_sent_len = self.text.len();
        self.last_chat = Some(Instant::now());
        self.gw.broadcast_by_protocol("chat", Some(SCOPE_READ), |protocol| {
            let mut p = payload.clone();
            if protocol >= 4 && state == "delta" {
                p["deltaText"] = delta.clone().into();
            }
            p
        });
    }

    fn progress(&mut self, event: AgentEvent) {
        match event {
            AgentEvent::Text { delta, text } => {
                self.text = text;
                self.agent("assistant", json!({"text": self.text, "delta": delta}));
                if self.last_chat.is_none_or(|t| t.elapsed() >= CHAT_DELTA_EVERY) {
                    self.chat("delta", json!({}));
                }
            }
            AgentEvent::ToolStart { id, name, input } => {
                self.agent("tool", json!({"phase": "start", "name": name, "toolCallId": id, "args": input}));
            }
            AgentEvent::ToolEnd { id, name, ok, output } => {
                self.agent(
                    "tool",
                    json!({"phase": "result", "name": name, "toolCallId": id, "isError": !ok, "result": output}),
                );
            }
        }
    }

    fn finish(&mut self, o: &Outcome) {
        if self.text.len() > self.chat_sent_len {
            self.chat("delta", json!({}));
        }
        let usage = json!({
            "input": o.usage.input_tokens,
            "output": o.usage.output_tokens,
            "cacheRead": o.usage.cache_read_tokens,
            "cacheWrite": o.usage.cache_write_tokens,
        });
        match &o.status {
            Status::Ok => {
                self.agent("lifecycle", json!({"phase": "end", "endedAt": now_ms()}));
                self.chat(
                    "final",
                    json!({"stopReason": o.stop_reason, "usage": usage, "provider": o.provider, "model": o.model, "routing": o.routing}),
                );
            }
            Status::Aborted => {
                self.agent("lifecycle", json!({"phase": "end", "endedAt": now_ms(), "aborted": true}));
                self.chat("aborted", json!({}));
            }
            Status::Error(e) => {
                self.agent("lifecycle", json!({"phase": "error", "error": e}));
                self.chat("error", json!({"errorMessage": e}));
            }
        }
    }
}
