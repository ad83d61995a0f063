//! A fake OpenAI Chat Completions API on loopback (`POST /v1/chat/completions`,
//! `GET /v1/models`), speaking the public streaming format: `data: {chunk}` lines of
//! `chat.completion.chunk` objects ending with `data: [DONE]`; tool-call deltas keyed by
//! `index` with `id` and `function.name` only in the first fragment and the arguments in
//! several pieces; with `stream_options.include_usage` every chunk carries `"usage": null`
//! and a last chunk with `choices: []` carries the usage, including
//! `prompt_tokens_details.cached_tokens`. Errors are `{"error":{"message","type","param",
//! "code"}}` with the HTTP status.
//!
//! It validates requests the way the real API does where a gateway bug would show: the
//! Bearer key, `model`, and that every `role: "tool"` message answers a `tool_calls` id of
//! the assistant message before it (and every such id is answered).
//!
//! It answers by script, keyed on the text of the latest user message (the gateway's
//! `<context>` block stripped): `stream` sends five pieces 170 ms apart; `clock` asks for
//! `current_time` with arguments split in five pieces; `twoclocks` asks for it twice in
//! parallel (indexes 0 and 1); `llama` speaks like llama-cpp-python 0.3 (every tool-call
//! delta repeats `id` and `function.name`, explicit nulls, `include_usage` ignored);
//! `ratelimit` is refused once with 429 and `retry-after: 1`; `cut` ends the body after two
//! pieces without `finish_reason` or `[DONE]`; `reset` aborts the connection after two
//! pieces; `midstream` sends an `error` payload after two pieces. Anything else is echoed
//! as `Echo: <text>`. After tool results it answers `Tool said: <results joined by " | ">`.
//!
//! A fake started with `FakeOpenAi::down` fails every chat request instead (see `Down`).
//!
//! Prompt caching is simulated: the cached tokens of a request are those of the longest
//! run of leading pieces (the tools, then each message) that an earlier request began
//! with too (without OpenAI's 1024-token minimum). Tokens are bytes / 4 of the JSON.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// How a fake that is down fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Down {
    /// HTTP 500 to the first request, 503 to the rest, with `retry-after-ms: 20`.
    Http,
    /// HTTP 200, then an `error` payload before any content.
    StreamError,
}

#[derive(Default)]
pub struct Recorded {
    pub requests: Vec<Value>,
    pub headers: Vec<HeaderMap>,
    /// When each request arrived.
    pub times: Vec<Instant>,
    /// (prompt_tokens, cached_tokens, completion_tokens) reported per successful answer.
    pub usage: Vec<(u64, u64, u64)>,
    attempts: HashMap<String, usize>,
    prefixes: Vec<Vec<String>>,
}

struct Setup {
    key: Option<String>,
    down: Option<Down>,
    state: Mutex<Recorded>,
}

#[derive(Clone)]
pub struct FakeOpenAi {
    pub addr: SocketAddr,
    setup: Arc<Setup>,
}

impl FakeOpenAi {
    /// Starts a working fake that requires `Authorization: Bearer <key>` (no check for `None`).
    pub fn start(key: Option<&str>) -> FakeOpenAi {
        Self::spawn(key, None)
    }

    /// Starts a fake whose chat endpoint always fails.
    pub fn down(key: Option<&str>, how: Down) -> FakeOpenAi {
        Self::spawn(key, Some(how))
    }

    /// Runs the server on a runtime of its own thread, so blocking tests can use it too.
    fn spawn(key: Option<&str>, down: Option<Down>) -> FakeOpenAi {
        let setup = Arc::new(Setup { key: key.map(str::to_string), down, state: Mutex::default() });
        let app = Router::new()
            .route("/v1/chat/completions", post(completions))
            .route("/v1/models", get(models))
            .with_state(setup.clone());
        FakeOpenAi { addr: super::serve_on_thread(app), setup }
    }

    /// With `/v1`, as the OpenAI SDKs take it.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn requests(&self) -> Vec<Value> {
        self.setup.state.lock().unwrap().requests.clone()
    }

    pub fn headers(&self) -> Vec<HeaderMap> {
        self.setup.state.lock().unwrap().headers.clone()
    }

    pub fn times(&self) -> Vec<Instant> {
        self.setup.state.lock().unwrap().times.clone()
    }

    pub fn usage(&self) -> Vec<(u64, u64, u64)> {
        self.setup.state.lock().unwrap().usage.clone()
    }
}

fn tokens(s: &str) -> u64 {
    (s.len() as u64).div_ceil(4)
}

fn error_body(message: &str, kind: &str, param: Option<&str>, code: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "param": param, "code": code}})
}

fn error(status: StatusCode, body: Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

async fn models(State(setup): State<Arc<Setup>>, headers: HeaderMap) -> Response {
    if let Some(refused) = check_key(&setup, &headers) {
        return refused;
    }
    let body = json!({"object": "list", "data": [
        {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
        {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
    ]});
    ([("content-type", "application/json")], body.to_string()).into_response()
}

fn check_key(setup: &Setup, headers: &HeaderMap) -> Option<Response> {
    let key = setup.key.as_deref()?;
    let sent = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    if sent == format!("Bearer {key}") {
        return None;
    }
    let message = if sent.is_empty() {
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".to_string()
    } else {
        "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys."
            .to_string()
    };
    let code = if sent.is_empty() { None } else { Some("invalid_api_key") };
    Some(error(StatusCode::UNAUTHORIZED, error_body(&message, "invalid_request_error", None, code)))
}

/// The real API's check: tool messages answer the `tool_calls` of the assistant message
/// right before them, each id exactly once, and no call goes unanswered.
fn check_messages(messages: &[Value]) -> Result<(), (String, String)> {
    let mut pending: Vec<String> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let role = m["role"].as_str().unwrap_or("");
        if role == "tool" {
            let id = m["tool_call_id"].as_str().unwrap_or("");
            match pending.iter().position(|p| p == id) {
                Some(at) => {
                    pending.remove(at);
                }
                None => {
                    return Err((
                        "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with 'tool_calls'.".into(),
                        format!("messages.[{i}].role"),
                    ));
                }
            }
            continue;
        }
        if !pending.is_empty() {
            return Err((
                format!(
                    "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                    pending.join(", ")
                ),
                format!("messages.[{i}].role"),
            ));
        }
        if !matches!(role, "system" | "developer" | "user" | "assistant") {
            return Err((format!("Invalid value: '{role}'."), format!("messages[{i}].role")));
        }
        if role == "assistant" {
            for call in m["tool_calls"].as_array().into_iter().flatten() {
                let args = call["function"]["arguments"].as_str().unwrap_or("");
                if call["function"]["name"].as_str().is_none_or(str::is_empty)
                    || serde_json::from_str::<Value>(args).is_err()
                {
                    return Err((format!("Invalid tool call: {call}"), format!("messages.[{i}].tool_calls")));
                }
                pending.push(call["id"].as_str().unwrap_or("").to_string());
            }
        }
    }
    if pending.is_empty() {
        Ok(())
    } else {
        Err((
            format!(
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each 'tool_call_id'. The following tool_call_ids did not have response messages: {}",
                pending.join(", ")
            ),
            "messages".into(),
        ))
    }
}

/// The latest user message's own text, and the tool results after the last assistant
/// message, if the conversation ends with some.
fn last_user(messages: &[Value]) -> (String, Vec<String>) {
    let text = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .and_then(|m| m["content"].as_str())
        .map(|t| match t.find("</context>") {
            Some(end) if t.starts_with("<context>") => t[end + "</context>".len()..].trim().to_string(),
            _ => t.to_string(),
        })
        .unwrap_or_default();
    let results = messages
        .iter()
        .rev()
        .take_while(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or("").to_string())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    (text, results)
}

/// The prompt as pieces in cache order: the tools, then each message.
fn pieces(req: &Value) -> Vec<String> {
    let mut out = vec![req["tools"].to_string()];
    out.extend(req["messages"].as_array().into_iter().flatten().map(Value::to_string));
    out
}

/// (prompt tokens, cached tokens) for a request, remembering its prefix.
fn account(rec: &mut Recorded, req: &Value) -> (u64, u64) {
    let pieces = pieces(req);
    let prompt = pieces.iter().map(|p| tokens(p)).sum();
    let cached = rec
        .prefixes
        .iter()
        .map(|earlier| earlier.iter().zip(&pieces).take_while(|(a, b)| a == b).map(|(a, _)| tokens(a)).sum())
        .max()
        .unwrap_or(0);
    rec.prefixes.push(pieces);
    (prompt, cached)
}

/// How the body ends.
#[derive(Clone, Copy, PartialEq)]
enum End {
    /// `data: [DONE]`.
    Done,
    /// The body just ends (a clean end of the chunked encoding).
    Clean,
    /// The connection is aborted mid-body.
    Reset,
}

struct Stream {
    lines: Vec<String>,
    gap: Duration,
    end: End,
}

/// Builds the chunks of one answer in OpenAI's (or llama-cpp-python's) style.
struct Chunks {
    model: String,
    /// `"usage": null` on every chunk (OpenAI with include_usage).
    usage_field: bool,
    llama: bool,
}

impl Chunks {
    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        let mut c = json!({
            "id": if self.llama { "chatcmpl-9f2a" } else { "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT" },
            "object": "chat.completion.chunk",
            "created": 1_741_569_952,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        });
        if !self.llama {
            c["system_fingerprint"] = json!("fp_06737a9306");
            c["service_tier"] = json!("default");
        }
        if self.usage_field {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    }

    fn first(&self) -> String {
        if self.llama {
            self.chunk(json!({"role": "assistant", "content": null, "function_call": null, "tool_calls": null}), None)
        } else {
            self.chunk(json!({"role": "assistant", "content": "", "refusal": null}), None)
        }
    }

    fn text(&self, piece: &str) -> String {
        if self.llama {
            self.chunk(json!({"role": null, "content": piece, "function_call": null, "tool_calls": null}), None)
        } else {
            self.chunk(json!({"content": piece}), None)
        }
    }

    fn finish(&self, reason: &str) -> String {
        if self.llama {
            self.chunk(json!({"role": null, "content": null, "function_call": null, "tool_calls": null}), Some(reason))
        } else {
            self.chunk(json!({}), Some(reason))
        }
    }

    /// One call (`index`) streamed as OpenAI does: id, type and name first with empty
    /// arguments, then the arguments in pieces. llama-cpp-python repeats id, type and name
    /// in every delta and sends no empty first fragment.
    fn tool_call(&self, index: usize, id: &str, name: &str, arg_pieces: &[&str]) -> Vec<String> {
        let mut out = Vec::new();
        if self.llama {
            for piece in arg_pieces {
                out.push(self.chunk(
                    json!({"role": "assistant", "content": null, "function_call": null, "tool_calls": [
                        {"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": piece}}
                    ]}),
                    None,
                ));
            }
            return out;
        }
        let head = json!({"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": ""}});
        let delta = if index == 0 {
            json!({"role": "assistant", "content": null, "tool_calls": [head], "refusal": null})
        } else {
            json!({"tool_calls": [head]})
        };
        out.push(self.chunk(delta, None));
        for piece in arg_pieces {
            out.push(self.chunk(json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}), None));
        }
        out
    }
}

/// Splits text into `n` pieces of about equal length.
fn split(text: &str, n: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(n.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

async fn completions(State(setup): State<Arc<Setup>>, headers: HeaderMap, body: String) -> Response {
    let arrived = Instant::now();
    let req: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            let message = format!("We could not parse the JSON body of your request. ({e})");
            return error(StatusCode::BAD_REQUEST, error_body(&message, "invalid_request_error", None, None));
        }
    };
    {
        let mut rec = setup.state.lock().unwrap();
        rec.requests.push(req.clone());
        rec.headers.push(headers.clone());
        rec.times.push(arrived);
    }
    if let Some(refused) = check_key(&setup, &headers) {
        return refused;
    }
    let model = req["model"].as_str().unwrap_or("").to_string();
    if model.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            error_body("you must provide a model parameter", "invalid_request_error", None, None),
        );
    }
    let messages = req["messages"].as_array().cloned().unwrap_or_default();
    if messages.is_empty() {
        let message =
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.";
        return error(
            StatusCode::BAD_REQUEST,
            error_body(message, "invalid_request_error", Some("messages"), Some("empty_array")),
        );
    }
    if let Err((message, param)) = check_messages(&messages) {
        return error(StatusCode::BAD_REQUEST, error_body(&message, "invalid_request_error", Some(&param), None));
    }

    match setup.down {
        Some(Down::Http) => {
            let first = setup.state.lock().unwrap().requests.len() == 1;
            let (status, message) = if first {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "The server had an error while processing your request. Sorry about that!",
                )
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "The engine is currently overloaded, please try again later.")
            };
            let mut r = error(status, error_body(message, "server_error", None, None));
            r.headers_mut().insert("retry-after-ms", "20".parse().unwrap());
            return r;
        }
        Some(Down::StreamError) => {
            let err = error_body(
                "The server had an error processing your request. Sorry about that! You can retry your request, or contact us through our help center at help.openai.com if you keep seeing this error.",
                "server_error",
                None,
                None,
            );
            return sse(Stream { lines: vec![format!("data: {err}\n\n")], gap: Duration::ZERO, end: End::Clean });
        }
        None => {}
    }

    let (text, results) = last_user(&messages);
    let attempt = {
        let mut rec = setup.state.lock().unwrap();
        let n = rec.attempts.entry(text.clone()).or_default();
        *n += 1;
        *n
    };
    if text.contains("ratelimit") && attempt == 1 && results.is_empty() {
        let message = format!(
            "Rate limit reached for {model} in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 1s."
        );
        let mut r = error(
            StatusCode::TOO_MANY_REQUESTS,
            error_body(&message, "requests", Some("requests"), Some("rate_limit_exceeded")),
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }

    let llama = text.contains("llama");
    let include_usage = req["stream_options"]["include_usage"] == true && !llama;
    let c = Chunks { model: model.clone(), usage_field: include_usage, llama };
    let mut lines = vec![c.first()];
    let mut gap = Duration::ZERO;
    let mut end = End::Done;
    let mut completion = String::new();
    let reply = |lines: &mut Vec<String>, completion: &mut String, reply: &str, pieces: usize| {
        completion.push_str(reply);
        lines.extend(split(reply, pieces).iter().map(|p| c.text(p)));
    };
    let finish;
    if !results.is_empty() {
        reply(&mut lines, &mut completion, &format!("Tool said: {}", results.join(" | ")), 3);
        finish = "stop";
    } else if text.contains("twoclocks") {
        lines.extend(c.tool_call(0, "call_Ab12Cd34Ef56Gh78Ij90Kl12", "current_time", &["{\"time", "zone\": \"UTC\"}"]));
        lines.extend(c.tool_call(1, "call_Mn34Op56Qr78St90Uv12Wx34", "current_time", &["{}"]));
        completion.push_str("two calls");
        finish = "tool_calls";
    } else if text.contains("clock") {
        let id = if llama { "call__0_current_time_cmpl-9f2a" } else { "call_qS5mxNV2WkT3bCcFhX4pBeYx" };
        lines.extend(c.tool_call(0, id, "current_time", &["{\"", "timezone", "\": \"", "UTC", "\"}"]));
        completion.push_str("one call");
        finish = "tool_calls";
    } else if text.contains("cut") || text.contains("reset") || text.contains("midstream") {
        reply(&mut lines, &mut completion, "Partial answ", 2);
        if text.contains("midstream") {
            let err = error_body(
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
                None,
            );
            lines.push(format!("data: {err}\n\n"));
        }
        end = if text.contains("reset") { End::Reset } else { End::Clean };
        return sse(Stream { lines, gap, end });
    } else if text.contains("stream") {
        reply(&mut lines, &mut completion, &format!("Echo: {text}"), 5);
        gap = Duration::from_millis(170);
        finish = "stop";
    } else {
        reply(&mut lines, &mut completion, &format!("Echo: {text}"), 4);
        finish = "stop";
    }
    lines.push(c.finish(finish));
    let (prompt, cached) = account(&mut setup.state.lock().unwrap(), &req);
    let output = tokens(&completion);
    setup.state.lock().unwrap().usage.push((prompt, cached, output));
    if include_usage {
        let usage = json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
            "object": "chat.completion.chunk",
            "created": 1_741_569_952,
            "model": model,
            "system_fingerprint": "fp_06737a9306",
            "service_tier": "default",
            "choices": [],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": output,
                "total_tokens": prompt + output,
                "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
            },
        });
        lines.push(format!("data: {usage}\n\n"));
    }
    if end == End::Done {
        lines.push("data: [DONE]\n\n".to_string());
    }
    sse(Stream { lines, gap, end })
}

fn sse(s: Stream) -> Response {
    let Stream { lines, gap, end } = s;
    let lines = futures_util::stream::iter(lines.into_iter().enumerate()).then(move |(i, line)| async move {
        if i > 0 && !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
        Ok::<_, std::io::Error>(line)
    });
    // An error from the body makes the server abort the connection mid-body; the pause
    // first lets what was written reach the client (hyper drops unflushed output).
    let reset = futures_util::stream::iter((end == End::Reset).then_some(())).then(|()| async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        Err(std::io::Error::other("connection reset by the fake"))
    });
    let body = lines.chain(reset);
    Response::builder()
        .header("content-type", "text/event-stream; charset=utf-8")
        .header("cache-control", "no-cache")
        .header("x-request-id", "req_fake")
        .header("openai-processing-ms", "12")
        .body(Body::from_stream(body))
        .unwrap()
}
