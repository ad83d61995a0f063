//! A fake Anthropic Messages API on loopback, speaking the documented SSE format
//! (message_start, content_block_*, ping, message_delta, message_stop, error events).
//!
//! It answers by script, keyed on the latest user text: `clock` asks for the
//! `current_time` tool, `loop` always asks for it, `badtool` calls a tool that does not
//! exist, `call:NAME` calls the tool NAME (`call:NAME {json}`: with those arguments),
//! `badjson` sends unparsable tool arguments, `slow` streams 40 pieces 100 ms apart,
//! `overloaded` fails mid-stream, `garbage` sends a non-JSON data line, `longanswer`
//! answers [`long_answer`] (10,000 characters), `discordlong` answers 5,700 characters: prose
//! around a 3,700-character code fence; anything else is echoed back as `Echo: <text>`.
//! After a tool result it answers `Tool said: <result>`.
//! `GET /v1/models` lists `claude-test`, and refuses the key `sk-ant-bad` with
//! Anthropic's 401 `authentication_error`.
//!
//! Prompt caching is simulated faithfully enough to measure: each `cache_control`
//! breakpoint's prefix (tools, system, messages up to it) is remembered; a later request
//! whose breakpoint prefix matches one exactly reads those tokens from the cache.
//! Tokens are counted as bytes / 4 of the canonical JSON.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

#[derive(Default)]
pub struct Recorded {
    pub requests: Vec<Value>,
    pub headers: Vec<HeaderMap>,
    /// (input, cache_read, cache_write) per request.
    pub usage: Vec<(u64, u64, u64)>,
    cache: HashMap<String, u64>,
}

#[derive(Clone)]
pub struct FakeAnthropic {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<Recorded>>,
}

impl FakeAnthropic {
    /// Starts the server on a runtime of its own thread, so blocking tests can use it too.
    pub fn start() -> FakeAnthropic {
        let state = Arc::new(Mutex::new(Recorded::default()));
        let app = Router::new()
            .route("/v1/messages", post(messages))
            .route("/v1/models", axum::routing::get(models))
            .with_state(state.clone());
        FakeAnthropic { addr: super::serve_on_thread(app), state }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Value> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn usage(&self) -> Vec<(u64, u64, u64)> {
        self.state.lock().unwrap().usage.clone()
    }
}

/// Prose, a long ```rust fence, prose: more than two Discord messages' worth.
fn discord_long() -> String {
    let prose = "This paragraph explains the code below in plain words, one sentence after another. ".repeat(12);
    let code: String = (0..100).map(|i| format!("    let value_{i:03} = compute({i}) + 1;\n")).collect();
    format!("{prose}\n\n```rust\nfn main() {{\n{code}}}\n```\n\n{prose}")
}

fn tokens(s: &str) -> u64 {
    (s.len() as u64).div_ceil(4)
}

/// Removes `cache_control` so prefixes compare on content only.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(k, _)| *k != "cache_control").map(|(k, v)| (k.clone(), strip(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

/// The prompt as a flat list of (canonical JSON, has breakpoint) pieces, in cache order.
fn pieces(req: &Value) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    for t in req["tools"].as_array().into_iter().flatten() {
        out.push((strip(t).to_string(), t.get("cache_control").is_some()));
    }
    for s in req["system"].as_array().into_iter().flatten() {
        out.push((strip(s).to_string(), s.get("cache_control").is_some()));
    }
    for m in req["messages"].as_array().into_iter().flatten() {
        out.push((format!("role:{}", m["role"]), false));
        match &m["content"] {
            Value::Array(blocks) => {
                for b in blocks {
                    out.push((strip(b).to_string(), b.get("cache_control").is_some()));
                }
            }
            other => out.push((other.to_string(), false)),
        }
    }
    out
}

/// (uncached input, cache read, cache write) for a request, updating the cache.
fn account(rec: &mut Recorded, req: &Value) -> (u64, u64, u64) {
    let pieces = pieces(req);
    let total: u64 = pieces.iter().map(|(p, _)| tokens(p)).sum();
    let mut prefix = String::new();
    let mut prefix_tokens = 0;
    let mut read = 0;
    let mut last_bp = 0;
    let mut breakpoints = Vec::new();
    for (p, bp) in &pieces {
        prefix.push_str(p);
        prefix.push('\u{1}');
        prefix_tokens += tokens(p);
        if *bp {
            if let Some(&t) = rec.cache.get(&prefix) {
                read = read.max(t);
            }
            last_bp = prefix_tokens;
            breakpoints.push((prefix.clone(), prefix_tokens));
        }
    }
    for (p, t) in breakpoints {
        rec.cache.insert(p, t);
    }
    let write = last_bp.saturating_sub(read);
    (total - read - write, read, write)
}

/// Exactly 10,000 characters: numbered paragraphs with a long code fence (with `<` and
/// `&&` in it) longer than a Telegram message, so a 4,096-character split cuts inside it.
pub fn long_answer() -> String {
    let para = |i: usize| {
        format!(
            "Paragraph {i}: {}",
            "the quick brown fox jumps over the lazy dog and keeps running. ".repeat(4).trim_end()
        )
    };
    let mut s: String = (1..=4).map(|i| para(i) + "\n\n").collect();
    s.push_str("```rust\n");
    for i in 0..170 {
        s.push_str(&format!("let v{i} = a < b && c; // line {i}\n"));
    }
    s.push_str("```\n\n");
    let mut i = 5;
    while s.len() < 10_000 {
        s.push_str(&(para(i) + "\n\n"));
        i += 1;
    }
    s.truncate(9_999);
    s.push('.');
    s
}

fn sse(event: &str, data: Value) -> String {
    format!("event: {event}\ndata: {data}\n\n")
}

/// The text of the user message that opened this turn, and the tool result the latest
/// message carries, if any.
fn last_user(req: &Value) -> (String, Option<String>) {
    let msgs = req["messages"].as_array().cloned().unwrap_or_default();
    let user_text = |m: &Value| -> String {
        m["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "text" && !b["text"].as_str().unwrap_or("").starts_with("<context>"))
            .map(|b| b["text"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let text =
        msgs.iter().rev().filter(|m| m["role"] == "user").map(user_text).find(|t| !t.is_empty()).unwrap_or_default();
    let tool_result = msgs.last().and_then(|m| {
        m["content"]
            .as_array()?
            .iter()
            .find(|b| b["type"] == "tool_result")
            .map(|b| b["content"].as_str().unwrap_or("").to_string())
    });
    (text, tool_result)
}

/// The model list; the key `sk-ant-bad` is refused the way Anthropic refuses a wrong key.
async fn models(headers: HeaderMap) -> Response {
    if headers.get("x-api-key").is_some_and(|k| k == "sk-ant-bad") {
        let err = json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}});
        return (StatusCode::UNAUTHORIZED, [("content-type", "application/json")], err.to_string()).into_response();
    }
    axum::Json(
        json!({"data": [{"type": "model", "id": "claude-test", "display_name": "Claude Test", "created_at": "2025-01-01T00:00:00Z"}],
                      "has_more": false, "first_id": "claude-test", "last_id": "claude-test"}),
    )
    .into_response()
}

async fn messages(State(state): State<Arc<Mutex<Recorded>>>, headers: HeaderMap, body: String) -> Response {
    let req: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(e) => {
            let err = json!({"type": "error", "error": {"type": "invalid_request_error", "message": e.to_string()}});
            return (StatusCode::BAD_REQUEST, err.to_string()).into_response();
        }
    };
    let (input, read, write) = {
        let mut rec = state.lock().unwrap();
        rec.requests.push(req.clone());
        rec.headers.push(headers);
        let u = account(&mut rec, &req);
        rec.usage.push(u);
        u
    };
    let (text, tool_result) = last_user(&req);
    let model = req["model"].as_str().unwrap_or("claude").to_string();
    let start = sse(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_fake", "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": null, "stop_sequence": null,
            "usage": {"input_tokens": input, "cache_creation_input_tokens": write, "cache_read_input_tokens": read, "output_tokens": 1}}}),
    );
    let tool = |name: &str, args: &str| {
        vec![
            start.clone(),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_fake1", "name": name, "input": {}}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ),
            sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": args}}),
            ),
            sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            sse(
                "message_delta",
                json!({"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": null}, "usage": {"output_tokens": 12}}),
            ),
            sse("message_stop", json!({"type": "message_stop"})),
        ]
    };
    let text_reply = |reply: &str, pieces: usize| {
        let mut out = vec![
            start.clone(),
            sse(
                "content_block_start",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ),
            sse("ping", json!({"type": "ping"})),
        ];
        let chars: Vec<char> = reply.chars().collect();
        let size = chars.len().div_ceil(pieces.max(1)).max(1);
        for chunk in chars.chunks(size) {
            let piece: String = chunk.iter().collect();
            out.push(sse(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}),
            ));
        }
        out.push(sse("content_block_stop", json!({"type": "content_block_stop", "index": 0})));
        out.push(sse("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": tokens(reply)}})));
        out.push(sse("message_stop", json!({"type": "message_stop"})));
        out
    };
    let (events, delay): (Vec<String>, Duration) = if text.contains("discordlong") {
        (text_reply(&discord_long(), 20), Duration::ZERO)
    } else if text.contains("loop") {
        (tool("current_time", "{}"), Duration::ZERO)
    } else if let Some(result) = tool_result {
        (text_reply(&format!("Tool said: {result}"), 3), Duration::ZERO)
    } else if let Some(rest) = text.strip_prefix("call:") {
        let (name, args) = rest.trim().split_once(char::is_whitespace).unwrap_or((rest.trim(), "{}"));
        (tool(name, args.trim()), Duration::ZERO)
    } else if text.contains("clock") {
        (tool("current_time", "{}"), Duration::ZERO)
    } else if text.contains("badtool") {
        (tool("no_such_tool", "{}"), Duration::ZERO)
    } else if text.contains("badjson") {
        (tool("current_time", "{not json"), Duration::ZERO)
    } else if text.contains("slow") {
        (text_reply(&"slow ".repeat(40), 40), Duration::from_millis(100))
    } else if text.contains("overloaded") {
        let mut ev = text_reply("partial answer", 2);
        ev.truncate(4);
        ev.push(sse("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})));
        (ev, Duration::ZERO)
    } else if text.contains("longanswer") {
        (text_reply(&long_answer(), 20), Duration::ZERO)
    } else if text.contains("garbage") {
        (vec![start.clone(), "event: content_block_start\ndata: {this is not json\n\n".to_string()], Duration::ZERO)
    } else {
        (text_reply(&format!("Echo: {text}"), 4), Duration::ZERO)
    };
    let stream = futures_util::stream::iter(events).then(move |e| async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Ok::<_, std::convert::Infallible>(e)
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap()
}

use futures_util::StreamExt;
