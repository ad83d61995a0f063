//! Anthropic's Messages API (`POST /v1/messages`, streamed), with prompt-cache
//! breakpoints placed so each request reads what the previous one wrote.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::sse::{self, Endpoint, SseEvent};
use super::{EventStream, Provider, ProviderError};
use crate::agent::types::{Block, ChatRequest, Message, Role, StopReason, StreamEvent, Usage};

pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";
pub const API_VERSION: &str = "2023-06-01";

pub struct Anthropic {
    endpoint: Endpoint,
}

impl Anthropic {
    /// `endpoint.headers` must already carry `x-api-key` (when there is a key); the
    /// API version header is added here.
    pub(crate) fn new(mut endpoint: Endpoint) -> Self {
        endpoint.headers.insert("anthropic-version", reqwest::header::HeaderValue::from_static(API_VERSION));
        Anthropic { endpoint }
    }
}

impl Provider for Anthropic {
    fn name(&self) -> &str {
        &self.endpoint.provider
    }

    fn stream(&self, req: ChatRequest, cancel: CancellationToken) -> BoxFuture<'_, Result<EventStream, ProviderError>> {
        Box::pin(async move {
            let body = request_body(&req);
            let response = self.endpoint.send(Method::POST, "/v1/messages", Some(&body), &cancel).await?;
            sse::decode(response, Decoder::new(&self.endpoint.provider), &self.endpoint, cancel)
        })
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<String>, ProviderError>> {
        Box::pin(self.endpoint.list_models("/v1/models?limit=1000"))
    }
}

fn ephemeral() -> Value {
    json!({"type": "ephemeral"})
}

/// The request body. Cache breakpoints (at most four, Anthropic's limit): the end of
/// each system tier (or the last tool when there is no system prompt), the last block of
/// the last message, and the last block of the user message before it, which is where
/// the previous request put its last breakpoint, so that prefix is read from the cache.
fn request_body(req: &ChatRequest) -> Value {
    let system: Vec<Value> = [&req.system.static_tier, &req.system.user_tier]
        .into_iter()
        .filter(|tier| !tier.is_empty())
        .map(|tier| json!({"type": "text", "text": tier, "cache_control": ephemeral()}))
        .collect();
    let mut tools: Vec<Value> = req
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
        .collect();
    if system.is_empty()
        && let Some(last) = tools.last_mut()
    {
        last["cache_control"] = ephemeral();
    }
    // Messages without any content are left out: the API refuses them, and refusing
    // every later request of a conversation over one empty message helps nobody.
    let mut messages: Vec<(Role, Value)> =
        req.messages.iter().filter_map(|m| message(m).map(|content| (m.role, content))).collect();
    if let Some(last) = messages.len().checked_sub(1) {
        let previous_user = messages[..last].iter().rposition(|(role, _)| *role == Role::User);
        for i in std::iter::once(last).chain(previous_user) {
            if let Some(block) = messages[i].1["content"].as_array_mut().and_then(|c| c.last_mut()) {
                block["cache_control"] = ephemeral();
            }
        }
    }
    let messages: Vec<Value> = messages.into_iter().map(|(_, m)| m).collect();
    let mut body = json!({"model": req.model, "max_tokens": req.max_tokens, "stream": true, "messages": messages});
    if !system.is_empty() {
        body["system"] = Value::Array(system);
    }
    if !tools.is_empty() {
        body["tools"] = Value::Array(tools);
    }
    body
}

fn message(m: &Message) -> Option<Value> {
    let content: Vec<Value> = m
        .content
        .iter()
        .filter_map(|b| match b {
            Block::Text { text } | Block::Context { text } if text.is_empty() => None,
            Block::Text { text } | Block::Context { text } => Some(json!({"type": "text", "text": text})),
            Block::ToolUse { id, name, input } => {
                Some(json!({"type": "tool_use", "id": id, "name": name, "input": input}))
            }
            Block::ToolResult { tool_use_id, content, is_error } => Some(
                json!({"type": "tool_result", "tool_use_id": tool_use_id, "content": content, "is_error": is_error}),
            ),
        })
        .collect();
    let role = match m.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    (!content.is_empty()).then(|| json!({"role": role, "content": content}))
}

/// Reads the Messages stream: message_start, content_block_start/delta/stop,
/// message_delta, message_stop, with `ping` and unknown events ignored.
struct Decoder {
    provider: String,
    usage: Usage,
    stopped: bool,
    /// Tool blocks by index, and whether any argument JSON arrived for them.
    tools: HashMap<usize, bool>,
}

impl Decoder {
    fn new(provider: &str) -> Self {
        Decoder { provider: provider.to_string(), usage: Usage::default(), stopped: false, tools: HashMap::new() }
    }

    fn protocol(&self, message: String) -> ProviderError {
        ProviderError::Protocol { provider: self.provider.clone(), message }
    }

    /// `message_delta` values replace those of `message_start`; absent ones are kept.
    fn update_usage(&mut self, usage: &Value) {
        let fields = [
            ("input_tokens", &mut self.usage.input_tokens),
            ("output_tokens", &mut self.usage.output_tokens),
            ("cache_read_input_tokens", &mut self.usage.cache_read_tokens),
            ("cache_creation_input_tokens", &mut self.usage.cache_write_tokens),
        ];
        for (name, slot) in fields {
            if let Some(n) = usage[name].as_u64() {
                *slot = n;
            }
        }
    }

    fn index(&self, v: &Value) -> Result<usize, ProviderError> {
        v["index"].as_u64().map(|i| i as usize).ok_or_else(|| self.protocol(format!("event without index: {v}")))
    }
}

/// Anthropic's stop reasons (the Claude Code CLI reports the same ones).
pub(super) fn stop_reason(reason: Option<&str>) -> StopReason {
    match reason {
        None | Some("end_turn") => StopReason::EndTurn,
        Some("tool_use") => StopReason::ToolUse,
        Some("max_tokens") => StopReason::MaxTokens,
        Some("stop_sequence") => StopReason::StopSequence,
        Some("refusal") => StopReason::Refusal,
        Some(other) => StopReason::Other(other.to_string()),
    }
}

impl sse::Decoder for Decoder {
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, ProviderError> {
        let v: Value = serde_json::from_str(&event.data).map_err(|e| {
            self.protocol(format!("{e} in `{}` event: {}", event.event, sse::excerpt(event.data.as_bytes())))
        })?;
        match v["type"].as_str().unwrap_or(&event.event) {
            "message_start" => self.update_usage(&v["message"]["usage"]),
            "content_block_start" => {
                let index = self.index(&v)?;
                let block = &v["content_block"];
                match block["type"].as_str() {
                    Some("text") => {
                        if let Some(text) = block["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta(text.to_string()));
                        }
                    }
                    Some("tool_use") => {
                        let (Some(id), Some(name)) = (block["id"].as_str(), block["name"].as_str()) else {
                            return Err(self.protocol(format!("tool_use block without id or name: {block}")));
                        };
                        out.push(StreamEvent::ToolCallStart { index, id: id.to_string(), name: name.to_string() });
                        // The API streams the input as deltas and starts with `{}`; a
                        // server that sends it whole up front is taken at its word.
                        let whole = block["input"].as_object().filter(|o| !o.is_empty());
                        if let Some(input) = whole {
                            out.push(StreamEvent::ToolCallDelta {
                                index,
                                json: Value::from(input.clone()).to_string(),
                            });
                        }
                        self.tools.insert(index, whole.is_some());
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = self.index(&v)?;
                let delta = &v["delta"];
                match delta["type"].as_str() {
                    Some("text_delta") => {
                        if let Some(text) = delta["text"].as_str().filter(|t| !t.is_empty()) {
                            out.push(StreamEvent::TextDelta(text.to_string()));
                        }
                    }
                    Some("input_json_delta") => {
                        if let Some(json) = delta["partial_json"].as_str().filter(|j| !j.is_empty()) {
                            self.tools.insert(index, true);
                            out.push(StreamEvent::ToolCallDelta { index, json: json.to_string() });
                        }
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = self.index(&v)?;
                // A tool without parameters gets no JSON at all; make it a valid document.
                if self.tools.get(&index) == Some(&false) {
                    self.tools.insert(index, true);
                    out.push(StreamEvent::ToolCallDelta { index, json: "{}".into() });
                }
            }
            "message_delta" => {
                self.update_usage(&v["usage"]);
                out.push(StreamEvent::Usage(self.usage));
                out.push(StreamEvent::Stop(stop_reason(v["delta"]["stop_reason"].as_str())));
                self.stopped = true;
            }
            "message_stop" => {
                if !self.stopped {
                    out.push(StreamEvent::Usage(self.usage));
                    out.push(StreamEvent::Stop(StopReason::EndTurn));
                }
                return Ok(true);
            }
            "error" => {
                let error = &v["error"];
                let message = match (error["type"].as_str(), error["message"].as_str()) {
                    (Some(kind), Some(message)) => format!("{kind}: {message}"),
                    _ => error.to_string(),
                };
                return Err(ProviderError::Stream { provider: self.provider.clone(), message });
            }
            _ => {}
        }
        Ok(false)
    }

    fn end(&mut self, _out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if self.stopped {
            return Ok(());
        }
        Err(ProviderError::Network {
            provider: self.provider.clone(),
            message: "stream cut: the connection closed before the answer was complete".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::agent::providers::sse::fake::{FakeServer, Reply, collect, named};
    use crate::agent::types::{SystemPrompt, ToolSpec};

    fn provider(server: &FakeServer) -> Anthropic {
        super::super::init_tls();
        let (name, value) = sse::secret_header("x-api-key", "sk-ant-test").unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(name, value);
        let mut endpoint = Endpoint::new("anthropic", &server.url, headers, Duration::from_secs(5)).unwrap();
        endpoint.retry.base = Duration::from_millis(10);
        Anthropic::new(endpoint)
    }

    fn request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "claude-sonnet-4-5".into(),
            system: SystemPrompt { static_tier: "You are Skynet.".into(), user_tier: "The user is Ann.".into() },
            messages,
            tools: vec![],
            max_tokens: 1024,
        }
    }

    const START: &str = r#"{"type":"message_start","message":{"id":"msg_01","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":100,"cache_read_input_tokens":2000,"output_tokens":1}}}"#;
    const STOP: &str = r#"{"type":"message_stop"}"#;

    #[tokio::test]
    async fn text_stream_with_ping_yields_text_then_usage_with_cache_fields_then_stop() {
        let body = named(&[
            START,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type": "ping"}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" there"}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            STOP,
        ]);
        let server = FakeServer::start(vec![Reply::sse(&body)]).await;
        let p = provider(&server);
        let stream = p.stream(request(vec![Message::user_text("hi")]), CancellationToken::new());
        let (events, error) = collect(stream.await.unwrap()).await;
        assert_eq!(error.map(|e| e.to_string()), None);
        let usage = Usage { input_tokens: 25, output_tokens: 15, cache_read_tokens: 2000, cache_write_tokens: 100 };
        assert_eq!(
            events,
            [
                StreamEvent::TextDelta("Hello".into()),
                StreamEvent::TextDelta(" there".into()),
                StreamEvent::Usage(usage),
                StreamEvent::Stop(StopReason::EndTurn),
            ]
        );
        let sent = &server.requests()[0];
        assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/messages"));
        assert_eq!(sent.headers["x-api-key"], "sk-ant-test");
        assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
        assert_eq!(sent.headers["content-type"], "application/json");
        assert_eq!(sent.body["stream"], true);
        assert_eq!(sent.body["max_tokens"], 1024);
        assert_eq!(sent.body["model"], "claude-sonnet-4-5");
        assert_eq!(sent.body["messages"][0]["content"][0]["text"], "hi");
    }

    #[tokio::test]
    async fn tool_use_streams_start_and_json_pieces_by_block_index() {
        let body = named(&[
            START,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking."}}"#,
            r#"{"type":"content_block_stop","index":0}"#,
            r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01","name":"get_weather","input":{}}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"city\": \"Par"}}"#,
            r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"is\"}"}}"#,
            r#"{"type":"content_block_stop","index":1}"#,
            r#"{"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_02","name":"get_time","input":{}}}"#,
            r#"{"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":""}}"#,
            r#"{"type":"content_block_stop","index":2}"#,
            r#"{"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":40}}"#,
            STOP,
        ]);
        let server = FakeServer::start(vec![Reply::sse(&body)]).await;
        let mut req = request(vec![Message::user_text("weather?")]);
        req.tools = vec![ToolSpec {
            name: "get_weather".into(),
            description: "Weather for a city".into(),
            input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        }];
        let (events, error) = collect(provider(&server).stream(req, CancellationToken::new()).await.unwrap()).await;
        assert!(error.is_none(), "{error:?}");
        let start =
            |index, id: &str, name: &str| StreamEvent::ToolCallStart { index, id: id.into(), name: name.into() };
        let delta = |index, json: &str| StreamEvent::ToolCallDelta { index, json: json.into() };
        assert_eq!(
            events[..6],
            [
                StreamEvent::TextDelta("Checking.".into()),
                start(1, "toolu_01", "get_weather"),
                delta(1, "{\"city\": \"Par"),
                delta(1, "is\"}"),
                start(2, "toolu_02", "get_time"),
                delta(2, "{}"),
            ]
        );
        assert_eq!(events[7], StreamEvent::Stop(StopReason::ToolUse));
        let tools = &server.requests()[0].body["tools"];
        assert_eq!(tools[0]["name"], "get_weather");
        assert_eq!(tools[0]["input_schema"]["properties"]["city"]["type"], "string");
    }

    fn breakpoints(v: &Value) -> Vec<String> {
        fn walk(v: &Value, path: String, found: &mut Vec<String>) {
            match v {
                Value::Object(map) => {
                    for (k, child) in map {
                        if k == "cache_control" {
                            found.push(path.clone());
                        } else {
                            walk(child, format!("{path}.{k}"), found);
                        }
                    }
                }
                Value::Array(items) => {
                    for (i, child) in items.iter().enumerate() {
                        walk(child, format!("{path}[{i}]"), found);
                    }
                }
                _ => {}
            }
        }
        let mut found = Vec::new();
        walk(v, String::new(), &mut found);
        found.sort();
        found
    }

    #[test]
    fn cache_breakpoints_sit_on_both_tiers_the_last_message_and_the_previous_user_message() {
        let tool_use = Block::ToolUse { id: "t1".into(), name: "get_time".into(), input: json!({}) };
        let result = Block::ToolResult { tool_use_id: "t1".into(), content: "12:00".into(), is_error: false };
        let messages = vec![
            Message::user_text("first"),
            Message { role: Role::Assistant, content: vec![Block::Text { text: "ok".into() }] },
            Message {
                role: Role::User,
                content: vec![Block::Context { text: "time: now".into() }, Block::Text { text: "what time?".into() }],
            },
            Message { role: Role::Assistant, content: vec![Block::Text { text: String::new() }, tool_use] },
            Message { role: Role::User, content: vec![result] },
        ];
        let body = request_body(&request(messages));
        assert_eq!(
            breakpoints(&body),
            [".messages[2].content[1]", ".messages[4].content[0]", ".system[0]", ".system[1]"]
        );
        assert_eq!(body["messages"][2]["content"][0], json!({"type": "text", "text": "time: now"}));
        assert_eq!(
            body["messages"][3]["content"],
            json!([{"type": "tool_use", "id": "t1", "name": "get_time", "input": {}}])
        );
        assert_eq!(
            body["messages"][4]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "t1", "content": "12:00", "is_error": false, "cache_control": {"type": "ephemeral"}})
        );

        // The first turn: nothing before the last message; an empty user tier is left out.
        let mut first = request(vec![Message::user_text("hello")]);
        first.system.user_tier.clear();
        let body = request_body(&first);
        assert_eq!(breakpoints(&body), [".messages[0].content[0]", ".system[0]"]);
        assert_eq!(body["system"].as_array().unwrap().len(), 1);

        // No system prompt at all: the tools carry the breakpoint instead.
        first.system = SystemPrompt::default();
        first.tools = vec![ToolSpec { name: "a".into(), description: "b".into(), input_schema: json!({}) }];
        let body = request_body(&first);
        assert!(body.get("system").is_none());
        assert_eq!(breakpoints(&body), [".messages[0].content[0]", ".tools[0]"]);
    }

    #[tokio::test]
    async fn an_error_event_mid_stream_ends_it_with_a_stream_error() {
        let body = named(&[
            START,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ]);
        let server = FakeServer::start(vec![Reply::sse(&body)]).await;
        let p = provider(&server);
        let stream = p.stream(request(vec![Message::user_text("hi")]), CancellationToken::new());
        let (events, error) = collect(stream.await.unwrap()).await;
        assert_eq!(events, [StreamEvent::TextDelta("Hi".into())]);
        match error {
            Some(ProviderError::Stream { message, .. }) => assert_eq!(message, "overloaded_error: Overloaded"),
            other => panic!("expected a stream error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn rate_limit_and_overload_are_retried_honouring_retry_after() {
        let limited = r#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#;
        let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        let ok = named(&[START, r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{}}"#, STOP]);
        let server = FakeServer::start(vec![
            Reply::json(429, limited).header("retry-after", "1"),
            Reply::json(529, overloaded),
            Reply::sse(&ok),
        ])
        .await;
        let started = Instant::now();
        let p = provider(&server);
        let stream = p.stream(request(vec![Message::user_text("hi")]), CancellationToken::new());
        let (events, error) = collect(stream.await.unwrap()).await;
        assert!(error.is_none());
        assert_eq!(events.last(), Some(&StreamEvent::Stop(StopReason::EndTurn)));
        assert_eq!(server.requests().len(), 3, "two retries, then success");
        assert!(started.elapsed() >= Duration::from_secs(1), "retry-after: 1 was honoured");
    }

    #[tokio::test]
    async fn a_bad_request_is_returned_at_once_with_the_api_message() {
        let bad = r#"{"type":"error","error":{"type":"invalid_request_error","message":"max_tokens: Field required"}}"#;
        let server = FakeServer::start(vec![Reply::json(400, bad), Reply::sse(&["unused"])]).await;
        let result = provider(&server).stream(request(vec![Message::user_text("hi")]), CancellationToken::new()).await;
        match result {
            Err(ProviderError::Http { status: 400, message, .. }) => {
                assert_eq!(message, "invalid_request_error: max_tokens: Field required")
            }
            Err(other) => panic!("expected HTTP 400, got {other:?}"),
            Ok(_) => panic!("expected HTTP 400, got a stream"),
        }
        assert_eq!(server.requests().len(), 1, "no retry for a 400");
    }

    #[tokio::test]
    async fn a_stream_cut_before_message_delta_is_a_network_error() {
        let body = named(&[
            START,
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        ]);
        let server = FakeServer::start(vec![Reply::sse(&body)]).await;
        let p = provider(&server);
        let stream = p.stream(request(vec![Message::user_text("hi")]), CancellationToken::new());
        let (_, error) = collect(stream.await.unwrap()).await;
        assert!(matches!(error, Some(ProviderError::Network { .. })), "{error:?}");
    }

    #[tokio::test]
    async fn list_models_reads_the_ids() {
        let models = r#"{"data":[{"type":"model","id":"claude-sonnet-4-5","display_name":"Claude Sonnet 4.5"},{"type":"model","id":"claude-haiku-4-5"}],"has_more":false}"#;
        let server = FakeServer::start(vec![Reply::json(200, models)]).await;
        let ids = provider(&server).list_models().await.unwrap();
        assert_eq!(ids, ["claude-sonnet-4-5", "claude-haiku-4-5"]);
        let sent = &server.requests()[0];
        assert_eq!((sent.method.as_str(), sent.path.as_str()), ("GET", "/v1/models?limit=1000"));
        assert_eq!(sent.headers["anthropic-version"], "2023-06-01");
    }
}
