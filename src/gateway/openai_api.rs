//! The OpenAI-compatible HTTP API: `POST /v1/chat/completions` (streaming and not) and
//! `GET /v1/models`, guarded by the gateway token as `Authorization: Bearer <token>`, so
//! any OpenAI SDK or tool can talk to Skynet.
//!
//! Without `user` a request is stateless: the messages it carries are the conversation,
//! and nothing is stored. With `user` it continues a stored session of that name
//! (`agent:main:openai:<user>`): only its last user message is new, the history is the
//! gateway's. Skynet runs its own tools; the caller's `tools` are not offered to the model.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::auth::tokens_match;
use super::runs::{self, RunEnd, Started, wait_end};
use super::{Gateway, now_ms};
use crate::agent::types::{Block, Message, Role, StopReason};
use crate::agent::{AgentEvent, Outcome, RunRequest, Status};

pub fn routes(max_body: usize) -> Router<Arc<Gateway>> {
    Router::new()
        .route("/v1/chat/completions", post(completions))
        .route("/v1/models", get(models))
        .layer(DefaultBodyLimit::max(max_body))
}

/// An error in OpenAI's shape, which every SDK knows how to show.
fn error(status: StatusCode, kind: &str, code: &str, param: Option<&str>, message: impl Into<String>) -> Response {
    let body = json!({"error": {"message": message.into(), "type": kind, "param": param, "code": code}});
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn bad_request(message: impl Into<String>, param: Option<&str>) -> Response {
    error(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", param, message)
}

/// Checks the bearer token; repeated failures from one address are slowed down.
async fn authorize(gw: &Gateway, peer: SocketAddr, headers: &HeaderMap) -> Result<(), Response> {
    let delay = gw.limiter.delay_for(peer.ip());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .unwrap_or("");
    if !given.is_empty() && tokens_match(given, gw.config.gateway.auth_token.expose()) {
        gw.limiter.record_success(peer.ip());
        return Ok(());
    }
    let (failures, _) = gw.limiter.record_failure(peer.ip());
    tracing::warn!(%peer, failures, "/v1 request refused: missing or wrong token");
    Err(error(
        StatusCode::UNAUTHORIZED,
        "invalid_request_error",
        "invalid_api_key",
        None,
        "Missing or wrong gateway token. Send `Authorization: Bearer <token>` with the [gateway] auth_token from skynet.toml (with an OpenAI SDK: api_key=<token>).",
    ))
}

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    messages: Vec<InMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Deserialize)]
struct InMessage {
    role: String,
    #[serde(default)]
    content: Option<Value>,
}

/// The text of a message's content: a string, or the text parts of a list.
fn content_text(content: &Option<Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("text") => p.get("text").and_then(Value::as_str).map(str::to_string),
                _ => Some("[non-text content omitted]".into()),
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The caller's messages as (system instructions, earlier turns, the new user message).
fn conversation(messages: &[InMessage]) -> Result<(String, Vec<Message>, String), String> {
    let mut instructions = Vec::new();
    let mut turns: Vec<Message> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => {
                instructions.push(content_text(&m.content));
                continue;
            }
            "user" => Role::User,
            "assistant" => Role::Assistant,
            // Results of the caller's own tools: Skynet never offered those tools.
            "tool" | "function" => continue,
            other => {
                return Err(format!(
                    "messages[{i}].role {other:?} is not one of system, developer, user, assistant, tool"
                ));
            }
        };
        let text = content_text(&m.content);
        match turns.last_mut() {
            Some(last) if last.role == role => last.content.push(Block::Text { text }),
            _ => turns.push(Message { role, content: vec![Block::Text { text }] }),
        }
    }
    let last_is_user = turns.last().is_some_and(|m| m.role == Role::User);
    let Some(last) = turns.pop().filter(|_| last_is_user) else {
        return Err("the last message must come from the user".into());
    };
    let message = last.text();
    if message.trim().is_empty() {
        return Err("the last user message is empty".into());
    }
    Ok((instructions.join("\n\n"), turns, message))
}

async fn completions(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = authorize(&gw, peer, &headers).await {
        return refused;
    }
    let de = &mut serde_json::Deserializer::from_slice(&body);
    let req: CompletionRequest = match serde_path_to_error::deserialize(de) {
        Ok(r) => r,
        Err(e) => {
            return bad_request(
                format!("the request body is not a valid chat completion request: {} (at {})", e.inner(), e.path()),
                None,
            );
        }
    };
    let (instructions, history, message) = match conversation(&req.messages) {
        Ok(c) => c,
        Err(why) => return bad_request(why, Some("messages")),
    };
    let model = req.model.filter(|m| !m.is_empty() && m != "skynet" && m != "default");
    if let Some(m) = &model {
        let known = match gw.agent.models.resolve(Some(m)) {
            Some((provider, _)) => gw.agent.models.provider(&provider).map(|_| ()),
            None => {
                Err("use \"skynet\" (the gateway's default), an alias from [agent.aliases], or <provider>/<model>"
                    .into())
            }
        };
        if let Err(why) = known {
            let message = format!("The model {m:?} is not available here: {why}");
            return error(StatusCode::NOT_FOUND, "invalid_request_error", "model_not_found", Some("model"), message);
        }
    }
    let run_id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let (session_key, history) = match req.user.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(user) if user.len() <= 200 => (format!("agent:main:openai:{user}"), None),
        Some(_) => return bad_request("user must be at most 200 characters", Some("user")),
        None => (format!("openai:{run_id}"), Some(history)),
    };
    // The token holder is the gateway's owner.
    let person = match crate::users::owner(&gw.store).await {
        Ok(p) => p,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "api_error", "unavailable", None, e.to_string()),
    };
    let mut run = RunRequest::new(run_id.clone(), session_key.clone(), message, model, "openai-api");
    run.person = Some(person);
    run.history = history;
    run.instructions = Some(instructions).filter(|i| !i.trim().is_empty());

    let include_usage = req.stream_options.is_some_and(|o| o.include_usage);
    let (observer, events) = mpsc::unbounded_channel();
    let done = match runs::start_observed(&gw, run, req.stream.then_some(observer)) {
        Started::New(rx) | Started::InFlight(rx) => rx,
        Started::Finished(end) => watch::channel(Some(*end)).1,
    };
    let guard = AbortOnDrop { gw: gw.clone(), session_key, run_id: run_id.clone(), armed: true };
    if req.stream { stream_response(guard, events, done, include_usage) } else { complete_response(guard, done).await }
}

/// Aborts the run when the HTTP client goes away before it ends.
struct AbortOnDrop {
    gw: Arc<Gateway>,
    session_key: String,
    run_id: String,
    armed: bool,
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.armed && !self.gw.runs.abort(&self.session_key, Some(&self.run_id)).is_empty() {
            tracing::info!(run = %self.run_id, "/v1 client went away; run aborted");
        }
    }
}

fn finish_reason(o: &Outcome) -> &'static str {
    match o.stop_reason {
        Some(StopReason::MaxTokens) => "length",
        Some(StopReason::Refusal) => "content_filter",
        _ => "stop",
    }
}

fn usage(o: &Outcome) -> Value {
    let u = &o.usage;
    let prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens;
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read_tokens},
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cache_read_tokens,
    })
}

fn model_name(o: &Outcome) -> String {
    match (&o.provider, &o.model) {
        (Some(p), Some(m)) => format!("{p}/{m}"),
        _ => "skynet".into(),
    }
}

/// A run that failed or was cut short, as an OpenAI error.
fn run_error(o: &Outcome) -> Option<(StatusCode, Value)> {
    let (status, kind, code, message) = match &o.status {
        Status::Ok => return None,
        Status::Error(e) => (StatusCode::BAD_GATEWAY, "api_error", "upstream_error", e.clone()),
        Status::Aborted => (
            StatusCode::SERVICE_UNAVAILABLE,
            "api_error",
            "aborted",
            "the run was aborted (the gateway is shutting down or it was cancelled); try again".to_string(),
        ),
    };
    Some((status, json!({"error": {"message": message, "type": kind, "param": null, "code": code}})))
}

async fn complete_response(mut guard: AbortOnDrop, mut done: watch::Receiver<Option<RunEnd>>) -> Response {
    let Some(end) = wait_end(&mut done).await else {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "api_error",
            "internal",
            None,
            "the run ended without a result",
        );
    };
    guard.armed = false;
    let o = &end.outcome;
    if let Some((status, body)) = run_error(o) {
        return (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response();
    }
    let body = json!({
        "id": guard.run_id,
        "object": "chat.completion",
        "created": now_ms() / 1000,
        "model": model_name(o),
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": o.text, "refusal": null},
            "logprobs": null,
            "finish_reason": finish_reason(o),
        }],
        "usage": usage(o),
        "system_fingerprint": null,
        "skynet": {"routing": o.routing, "sessionId": o.session_id},
    });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn sse(v: &Value) -> Result<Bytes, std::convert::Infallible> {
    Ok(Bytes::from(format!("data: {v}\n\n")))
}

/// Streams `chat.completion.chunk`s as the model writes, then the finish chunk, the usage
/// chunk when asked for, and `[DONE]`.
fn stream_response(
    guard: AbortOnDrop,
    events: mpsc::UnboundedReceiver<AgentEvent>,
    done: watch::Receiver<Option<RunEnd>>,
    include_usage: bool,
) -> Response {
    struct St {
        guard: AbortOnDrop,
        events: mpsc::UnboundedReceiver<AgentEvent>,
        done: watch::Receiver<Option<RunEnd>>,
        created: i64,
        model: String,
        /// Closing SSE lines, last first.
        tail: Vec<String>,
        started: bool,
        ended: bool,
    }
    let model = guard.gw.agent.models.resolve(None).map_or("skynet".into(), |(p, m)| format!("{p}/{m}"));
    let st =
        St { guard, events, done, created: now_ms() / 1000, model, tail: Vec::new(), started: false, ended: false };
    let chunk = |st: &St, delta: Value, finish: Option<&str>| {
        json!({
            "id": st.guard.run_id,
            "object": "chat.completion.chunk",
            "created": st.created,
            "model": st.model,
            "system_fingerprint": null,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        })
    };
    let stream = futures_util::stream::unfold(st, move |mut st| async move {
        if !st.started {
            st.started = true;
            let first = chunk(&st, json!({"role": "assistant", "content": "", "refusal": null}), None);
            return Some((sse(&first), st));
        }
        loop {
            if let Some(line) = st.tail.pop() {
                return Some((Ok(Bytes::from(line)), st));
            }
            if st.ended {
                return None;
            }
            match st.events.recv().await {
                Some(AgentEvent::Text { delta, .. }) if !delta.is_empty() => {
                    return Some((sse(&chunk(&st, json!({"content": delta}), None)), st));
                }
                Some(_) => continue,
                None => {
                    // The run is over: its outcome decides the closing lines.
                    st.ended = true;
                    st.guard.armed = false;
                    let end = wait_end(&mut st.done).await;
                    let mut tail = Vec::new();
                    match end.as_ref().map(|e| &e.outcome) {
                        Some(o) => match run_error(o) {
                            Some((_, body)) => tail.push(body),
                            None => {
                                st.model = model_name(o);
                                tail.push(chunk(&st, json!({}), Some(finish_reason(o))));
                                if include_usage {
                                    let mut u = chunk(&st, json!({}), None);
                                    u["choices"] = json!([]);
                                    u["usage"] = usage(o);
                                    tail.push(u);
                                }
                            }
                        },
                        None => tail
                            .push(json!({"error": {"message": "the run ended without a result", "type": "api_error"}})),
                    }
                    st.tail = tail.iter().map(|v| format!("data: {v}\n\n")).rev().collect();
                    st.tail.insert(0, "data: [DONE]\n\n".to_string());
                }
            }
        }
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

async fn models(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = authorize(&gw, peer, &headers).await {
        return refused;
    }
    let settings = gw.agent.models.settings();
    let entry = |id: &str| json!({"id": id, "object": "model", "created": 0, "owned_by": "skynet"});
    let mut data = vec![entry("skynet")];
    if let Some((p, m)) = gw.agent.models.resolve(None) {
        data.push(entry(&format!("{p}/{m}")));
    }
    data.extend(settings.agent.aliases.keys().map(|a| entry(a)));
    let body = json!({"object": "list", "data": data});
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}
