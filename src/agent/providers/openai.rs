//! OpenAI Chat Completions (`POST {base}/chat/completions`, streamed), which also serves
//! every OpenAI-compatible service in the registry: Groq, OpenRouter, Ollama, vLLM, ...
//! The decoder is lenient where those servers differ (repeated tool-call ids and names,
//! explicit nulls, missing usage) and strict where the answer would otherwise be wrong.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use futures_util::future::BoxFuture;
use reqwest::Method;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::sse::{self, Endpoint, SseEvent};
use super::{EventStream, Provider, ProviderError};
use crate::agent::types::{Block, ChatRequest, Role, StopReason, StreamEvent, Usage};

pub const DEFAULT_BASE_URL: &str = "https://api.openai.com/v1";

pub struct OpenAi {
    endpoint: Endpoint,
    options: Options,
}

/// Where services differ in what they accept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// OpenAI itself (and Azure) take `max_completion_tokens`; compatible servers `max_tokens`.
    pub native: bool,
    /// Send `stream_options: {include_usage: true}`. Mistral refuses the field with a 422
    /// (and reports usage anyway).
    pub stream_usage: bool,
}

impl OpenAi {
    pub(crate) fn new(endpoint: Endpoint, options: Options) -> Self {
        OpenAi { endpoint, options }
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &str {
        &self.endpoint.provider
    }

    fn stream(&self, req: ChatRequest, cancel: CancellationToken) -> BoxFuture<'_, Result<EventStream, ProviderError>> {
        Box::pin(async move {
            let body = request_body(&req, self.options);
            let response = self.endpoint.send(Method::POST, "/chat/completions", Some(&body), &cancel).await?;
            sse::decode(response, Decoder::new(&self.endpoint.provider), &self.endpoint, cancel)
        })
    }

    fn list_models(&self) -> BoxFuture<'_, Result<Vec<String>, ProviderError>> {
        Box::pin(self.endpoint.list_models("/models"))
    }
}

fn request_body(req: &ChatRequest, options: Options) -> Value {
    let mut messages = Vec::new();
    let system: Vec<&str> = [&req.system.static_tier, &req.system.user_tier]
        .into_iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    if !system.is_empty() {
        messages.push(json!({"role": "system", "content": system.join("\n\n")}));
    }
    for m in &req.messages {
        match m.role {
            Role::User => {
                // Tool results must directly follow the assistant message that called them.
                for block in &m.content {
                    if let Block::ToolResult { tool_use_id, content, is_error } = block {
                        // Chat Completions has no error flag for tool results; say it in words.
                        let content = if *is_error { format!("Error: {content}") } else { content.clone() };
                        messages.push(json!({"role": "tool", "tool_call_id": tool_use_id, "content": content}));
                    }
                }
                let context = m.content.iter().filter_map(|b| match b {
                    Block::Context { text } => Some(text.as_str()),
                    _ => None,
                });
                let text = m.content.iter().filter_map(|b| match b {
                    Block::Text { text } => Some(text.as_str()),
                    _ => None,
                });
                let parts: Vec<&str> = context.chain(text).filter(|t| !t.is_empty()).collect();
                if !parts.is_empty() {
                    messages.push(json!({"role": "user", "content": parts.join("\n\n")}));
                }
            }
            Role::Assistant => {
                let text = m.text();
                let calls: Vec<Value> = m
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        Block::ToolUse { id, name, input } => Some(json!({
                            "id": id,
                            "type": "function",
                            "function": {"name": name, "arguments": input.to_string()},
                        })),
                        _ => None,
                    })
                    .collect();
                if text.is_empty() && calls.is_empty() {
                    continue;
                }
                let content = if text.is_empty() { Value::Null } else { Value::String(text) };
                let mut message = json!({"role": "assistant", "content": content});
                if !calls.is_empty() {
                    message["tool_calls"] = Value::Array(calls);
                }
                messages.push(message);
            }
        }
    }
    let mut body = json!({"model": req.model, "stream": true, "messages": messages});
    if options.stream_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body[if options.native { "max_completion_tokens" } else { "max_tokens" }] = json!(req.max_tokens);
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                json!({"type": "function", "function": {
                    "name": t.name, "description": t.description, "parameters": t.input_schema,
                }})
            })
            .collect();
        body["tools"] = Value::Array(tools);
    }
    body
}

struct ToolCall {
    id: String,
    has_args: bool,
}

/// Reads `data: {chunk}` lines until `data: [DONE]`. The stop is held back until then
/// (or the end of the body) so the usage chunk that follows `finish_reason` comes first.
struct Decoder {
    provider: String,
    tools: BTreeMap<usize, ToolCall>,
    last_index: Option<usize>,
    stop: Option<StopReason>,
    usage: Option<Usage>,
}

impl Decoder {
    fn new(provider: &str) -> Self {
        Decoder { provider: provider.to_string(), tools: BTreeMap::new(), last_index: None, stop: None, usage: None }
    }

    fn tool_call(&mut self, call: &Value, out: &mut Vec<StreamEvent>) {
        let id = call["id"].as_str().filter(|id| !id.is_empty());
        let known = id.and_then(|id| self.tools.iter().find(|(_, t)| t.id == id).map(|(i, _)| *i));
        // Servers that leave out `index` send one call at a time: a new id is a new call.
        let index = match (call["index"].as_u64(), known, id) {
            (Some(i), ..) => i as usize,
            (None, Some(i), _) => i,
            (None, None, Some(_)) => self.tools.keys().next_back().map_or(0, |i| i + 1),
            (None, None, None) => self.last_index.unwrap_or(0),
        };
        self.last_index = Some(index);
        let function = &call["function"];
        // Only the first appearance of an index starts a call: llama-cpp-python repeats
        // the id and name in every delta.
        if let Entry::Vacant(slot) = self.tools.entry(index) {
            let id = id.map_or_else(|| format!("call_{index}"), str::to_string);
            let name = function["name"].as_str().unwrap_or_default().to_string();
            out.push(StreamEvent::ToolCallStart { index, id: id.clone(), name });
            slot.insert(ToolCall { id, has_args: false });
        }
        let args = match &function["arguments"] {
            Value::String(s) => s.clone(),
            Value::Object(o) => Value::from(o.clone()).to_string(),
            _ => String::new(),
        };
        if !args.is_empty() {
            if let Some(tool) = self.tools.get_mut(&index) {
                tool.has_args = true;
            }
            out.push(StreamEvent::ToolCallDelta { index, json: args });
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        for (index, tool) in &self.tools {
            if !tool.has_args {
                out.push(StreamEvent::ToolCallDelta { index: *index, json: "{}".into() });
            }
        }
        if let Some(usage) = self.usage {
            out.push(StreamEvent::Usage(usage));
        }
        let default = if self.tools.is_empty() { StopReason::EndTurn } else { StopReason::ToolUse };
        out.push(StreamEvent::Stop(self.stop.take().unwrap_or(default)));
    }
}

fn usage(u: &Value) -> Usage {
    let prompt = u["prompt_tokens"].as_u64().unwrap_or(0);
    // DeepSeek reports cache hits as `prompt_cache_hit_tokens`.
    let cached = u["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .or_else(|| u["prompt_cache_hit_tokens"].as_u64())
        .unwrap_or(0)
        .min(prompt);
    Usage {
        input_tokens: prompt - cached,
        output_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
        cache_read_tokens: cached,
        cache_write_tokens: 0,
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::Refusal,
        other => StopReason::Other(other.to_string()),
    }
}

impl sse::Decoder for Decoder {
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, ProviderError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.finish(out);
            return Ok(true);
        }
        if data.is_empty() {
            return Ok(false);
        }
        let chunk: Value = serde_json::from_str(data).map_err(|e| ProviderError::Protocol {
            provider: self.provider.clone(),
            message: format!("{e} in chunk: {}", sse::excerpt(data.as_bytes())),
        })?;
        let error = &chunk["error"];
        if !error.is_null() {
            let message =
                error["message"].as_str().or(error.as_str()).map_or_else(|| error.to_string(), str::to_string);
            return Err(ProviderError::Stream { provider: self.provider.clone(), message });
        }
        if chunk["usage"].is_object() {
            self.usage = Some(usage(&chunk["usage"]));
        }
        let choice = &chunk["choices"][0];
        let delta = &choice["delta"];
        if let Some(text) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            out.push(StreamEvent::TextDelta(text.to_string()));
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for call in calls {
                self.tool_call(call, out);
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            self.stop = Some(stop_reason(reason));
        }
        Ok(false)
    }

    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        // Without `[DONE]` a finish_reason still proves the answer was complete.
        if self.stop.is_some() {
            self.finish(out);
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
    use std::sync::atomic::Ordering;
    use std::time::Duration;

    use futures_util::StreamExt;

    use super::*;
    use crate::agent::providers::sse::fake::{FakeServer, Reply, collect, data};
    use crate::agent::types::{Message, SystemPrompt, ToolSpec};

    fn provider(server: &FakeServer, native: bool) -> OpenAi {
        super::super::init_tls();
        let (name, value) = sse::secret_header("authorization", "Bearer sk-test").unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(name, value);
        let mut endpoint =
            Endpoint::new("openai", &format!("{}/v1", server.url), headers, Duration::from_secs(5)).unwrap();
        endpoint.retry.base = Duration::from_millis(10);
        OpenAi::new(endpoint, Options { native, stream_usage: true })
    }

    fn request(messages: Vec<Message>) -> ChatRequest {
        ChatRequest {
            model: "gpt-4o".into(),
            system: SystemPrompt { static_tier: "You are Skynet.".into(), user_tier: "The user is Ann.".into() },
            messages,
            tools: vec![],
            max_tokens: 256,
        }
    }

    async fn run(server: &FakeServer) -> (Vec<StreamEvent>, Option<ProviderError>) {
        let p = provider(server, false);
        let stream = p.stream(request(vec![Message::user_text("hi")]), CancellationToken::new());
        collect(stream.await.unwrap()).await
    }

    const HEAD: &str = r#""id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","system_fingerprint":"fp_1""#;

    fn chunk(choices: &str, usage: &str) -> String {
        format!(r#"{{{HEAD},"choices":{choices},"usage":{usage}}}"#)
    }

    #[tokio::test]
    async fn text_stream_with_include_usage_maps_cached_tokens_and_holds_stop_until_done() {
        let chunks = [
            chunk(
                r#"[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]"#,
                "null",
            ),
            chunk(r#"[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]"#, "null"),
            chunk(r#"[{"index":0,"delta":{"content":" world"},"logprobs":null,"finish_reason":null}]"#, "null"),
            chunk(r#"[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]"#, "null"),
            chunk(
                "[]",
                r#"{"prompt_tokens":2100,"completion_tokens":12,"total_tokens":2112,"prompt_tokens_details":{"cached_tokens":2048,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}"#,
            ),
            "[DONE]".to_string(),
        ];
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let server = FakeServer::start(vec![Reply::sse(&data(&chunks))]).await;
        let p = provider(&server, true);
        let stream = p.stream(request(vec![Message::user_text("hi")]), CancellationToken::new());
        let (events, error) = collect(stream.await.unwrap()).await;
        assert!(error.is_none(), "{error:?}");
        let usage = Usage { input_tokens: 52, output_tokens: 12, cache_read_tokens: 2048, cache_write_tokens: 0 };
        assert_eq!(
            events,
            [
                StreamEvent::TextDelta("Hello".into()),
                StreamEvent::TextDelta(" world".into()),
                StreamEvent::Usage(usage),
                StreamEvent::Stop(StopReason::EndTurn),
            ]
        );
        let sent = &server.requests()[0];
        assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/v1/chat/completions"));
        assert_eq!(sent.headers["authorization"], "Bearer sk-test");
        assert_eq!(sent.body["stream"], true);
        assert_eq!(sent.body["stream_options"]["include_usage"], true);
        assert_eq!(sent.body["max_completion_tokens"], 256, "native OpenAI");
        assert!(sent.body.get("max_tokens").is_none());
        assert!(sent.body.get("tools").is_none(), "no tools, no `tools`");
        assert_eq!(
            sent.body["messages"][0],
            json!({"role": "system", "content": "You are Skynet.\n\nThe user is Ann."})
        );
    }

    #[test]
    fn messages_map_context_tool_calls_and_results() {
        let messages = vec![
            Message {
                role: Role::User,
                content: vec![Block::Text { text: "weather?".into() }, Block::Context { text: "now: 9:00".into() }],
            },
            Message {
                role: Role::Assistant,
                content: vec![Block::ToolUse {
                    id: "c1".into(),
                    name: "get_weather".into(),
                    input: json!({"city": "Paris"}),
                }],
            },
            Message {
                role: Role::User,
                content: vec![
                    Block::ToolResult { tool_use_id: "c1".into(), content: "sunny".into(), is_error: false },
                    Block::Context { text: "now: 9:01".into() },
                ],
            },
            Message { role: Role::Assistant, content: vec![Block::Text { text: "Sunny.".into() }] },
        ];
        let mut req = request(messages);
        req.system.static_tier.clear();
        req.tools = vec![ToolSpec {
            name: "get_weather".into(),
            description: "Weather".into(),
            input_schema: json!({"type": "object"}),
        }];
        let body = request_body(&req, Options { native: false, stream_usage: false });
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "The user is Ann."},
                {"role": "user", "content": "now: 9:00\n\nweather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
                {"role": "user", "content": "now: 9:01"},
                {"role": "assistant", "content": "Sunny."},
            ])
        );
        assert_eq!(body["max_tokens"], 256);
        assert!(body.get("stream_options").is_none());
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object"}}}])
        );
    }

    #[tokio::test]
    async fn tool_calls_streamed_in_pieces_across_two_indexes() {
        let delta =
            |d: &str, finish: &str| chunk(&format!(r#"[{{"index":0,"delta":{d},"finish_reason":{finish}}}]"#), "null");
        let chunks = [
            delta(
                r#"{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"get_weather","arguments":""}}]}"#,
                "null",
            ),
            delta(r#"{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\":"}}]}"#, "null"),
            delta(r#"{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}"#, "null"),
            delta(
                r#"{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"get_time","arguments":""}}]}"#,
                "null",
            ),
            delta(r#"{"tool_calls":[{"index":1,"function":{"arguments":"{\"tz\":\"CET\"}"}}]}"#, "null"),
            delta("{}", r#""tool_calls""#),
            "[DONE]".to_string(),
        ];
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let server = FakeServer::start(vec![Reply::sse(&data(&chunks))]).await;
        let (events, error) = run(&server).await;
        assert!(error.is_none(), "{error:?}");
        let start =
            |index, id: &str, name: &str| StreamEvent::ToolCallStart { index, id: id.into(), name: name.into() };
        let piece = |index, json: &str| StreamEvent::ToolCallDelta { index, json: json.into() };
        assert_eq!(
            events,
            [
                start(0, "call_a", "get_weather"),
                piece(0, "{\"city\":"),
                piece(0, "\"Paris\"}"),
                start(1, "call_b", "get_time"),
                piece(1, "{\"tz\":\"CET\"}"),
                StreamEvent::Stop(StopReason::ToolUse),
            ]
        );
    }

    #[tokio::test]
    async fn repeated_ids_and_names_from_llama_cpp_python_start_one_call() {
        // Exactly as llama-cpp-python 0.3 streams with chatml-function-calling.
        let call = |args: &str| {
            format!(
                r#"{{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gemma","choices":[{{"index":0,"delta":{{"role":"assistant","content":null,"function_call":null,"tool_calls":[{{"index":0,"id":"call__0_get_weather_cmpl-9","type":"function","function":{{"name":"get_weather","arguments":{args}}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
            )
        };
        let chunks = [
            call(r#""{\"city\": ""#),
            call(r#""\"Paris\"}""#),
            r#"{"id":"chatcmpl-9","object":"chat.completion.chunk","created":1,"model":"gemma","choices":[{"index":0,"delta":{"role":null,"content":null,"function_call":null,"tool_calls":null},"logprobs":null,"finish_reason":"tool_calls"}]}"#.to_string(),
            "[DONE]".to_string(),
        ];
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        let server = FakeServer::start(vec![Reply::sse(&data(&chunks))]).await;
        let (events, error) = run(&server).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(
            events,
            [
                StreamEvent::ToolCallStart {
                    index: 0,
                    id: "call__0_get_weather_cmpl-9".into(),
                    name: "get_weather".into()
                },
                StreamEvent::ToolCallDelta { index: 0, json: "{\"city\": ".into() },
                StreamEvent::ToolCallDelta { index: 0, json: "\"Paris\"}".into() },
                StreamEvent::Stop(StopReason::ToolUse),
            ]
        );
    }

    #[tokio::test]
    async fn garbage_json_in_a_chunk_is_a_protocol_error_with_an_excerpt() {
        let good = chunk(r#"[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]"#, "null");
        let server = FakeServer::start(vec![Reply::sse(&data(&[&good, "{\"choices\": [tru"]))]).await;
        let (events, error) = run(&server).await;
        assert_eq!(events, [StreamEvent::TextDelta("Hi".into())]);
        match error {
            Some(ProviderError::Protocol { message, .. }) => {
                assert!(message.contains("{\"choices\": [tru"), "{message}")
            }
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_error_payload_in_the_stream_is_a_stream_error() {
        let error = r#"{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}"#;
        let server = FakeServer::start(vec![Reply::sse(&data(&[error]))]).await;
        let (_, error) = run(&server).await;
        match error {
            Some(ProviderError::Stream { message, .. }) => assert_eq!(message, "The server had an error"),
            other => panic!("expected a stream error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_stream_cut_without_done_or_finish_reason_is_a_network_error() {
        let text = chunk(r#"[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]"#, "null");
        let server = FakeServer::start(vec![Reply::sse(&data(&[&text]))]).await;
        let (events, error) = run(&server).await;
        assert_eq!(events, [StreamEvent::TextDelta("Hel".into())]);
        match error {
            Some(ProviderError::Network { message, .. }) => assert!(message.contains("stream cut"), "{message}"),
            other => panic!("expected a network error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_finish_reason_without_done_still_completes() {
        let end = chunk(r#"[{"index":0,"delta":{"content":"ok"},"finish_reason":"length"}]"#, "null");
        let server = FakeServer::start(vec![Reply::sse(&data(&[&end]))]).await;
        let (events, error) = run(&server).await;
        assert!(error.is_none(), "{error:?}");
        assert_eq!(events, [StreamEvent::TextDelta("ok".into()), StreamEvent::Stop(StopReason::MaxTokens)]);
    }

    #[tokio::test]
    async fn cancelling_ends_the_stream_and_drops_the_connection() {
        let text = chunk(r#"[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]"#, "null");
        let server = FakeServer::start(vec![Reply::sse(&data(&[&text])).hang()]).await;
        let cancel = CancellationToken::new();
        let p = provider(&server, false);
        let mut stream = p.stream(request(vec![Message::user_text("hi")]), cancel.clone()).await.unwrap();
        assert_eq!(stream.next().await.unwrap().unwrap(), StreamEvent::TextDelta("Hel".into()));
        cancel.cancel();
        let next = tokio::time::timeout(Duration::from_secs(1), stream.next()).await.expect("cancel is prompt");
        assert!(matches!(next, Some(Err(ProviderError::Cancelled))), "{next:?}");
        assert!(stream.next().await.is_none());
        for _ in 0..40 {
            if server.body_dropped.load(Ordering::SeqCst) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the server still has the connection open");
    }

    #[tokio::test]
    async fn cancelling_during_a_retry_wait_returns_cancelled() {
        let server = FakeServer::start(vec![Reply::json(503, r#"{"error":"busy"}"#).header("retry-after", "20")]).await;
        let cancel = CancellationToken::new();
        let canceller = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            canceller.cancel();
        });
        let p = provider(&server, false);
        let result = tokio::time::timeout(Duration::from_secs(2), p.stream(request(vec![]), cancel)).await.unwrap();
        assert!(matches!(result, Err(ProviderError::Cancelled)));
    }

    #[tokio::test]
    async fn slow_headers_and_silent_streams_time_out() {
        let server = FakeServer::start(vec![Reply::sse(&["unused"]).delay_headers(Duration::from_millis(500))]).await;
        let mut p = provider(&server, false);
        p.endpoint.timeout = Duration::from_millis(100);
        let result = p.stream(request(vec![]), CancellationToken::new()).await;
        assert!(matches!(result, Err(ProviderError::Timeout { .. })), "headers timeout");

        // The first chunk arrives at once, then nothing for longer than the idle limit.
        let server = FakeServer::start(vec![
            Reply::sse(&data(&[&chunk("[]", "null"), "[DONE]"])).gap(Duration::from_millis(500)),
        ])
        .await;
        let mut p = provider(&server, false);
        p.endpoint.idle_timeout = Duration::from_millis(100);
        let (_, error) = collect(p.stream(request(vec![]), CancellationToken::new()).await.unwrap()).await;
        assert!(matches!(error, Some(ProviderError::Timeout { .. })), "idle timeout: {error:?}");
    }

    #[tokio::test]
    async fn server_errors_are_retried_three_times_then_returned() {
        let busy = r#"{"error":{"message":"upstream busy","type":"server_error"}}"#;
        let server = FakeServer::start(vec![Reply::json(500, busy); 5]).await;
        let result = provider(&server, false).stream(request(vec![]), CancellationToken::new()).await;
        match result {
            Err(ProviderError::Http { status: 500, message, .. }) => assert_eq!(message, "server_error: upstream busy"),
            Err(other) => panic!("expected HTTP 500, got {other:?}"),
            Ok(_) => panic!("expected HTTP 500, got a stream"),
        }
        assert_eq!(server.requests().len(), 4, "the first attempt and three retries");
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_cap_is_returned_at_once_for_failover() {
        let server =
            FakeServer::start(vec![Reply::json(429, r#"{"error":"quota"}"#).header("retry-after", "3600")]).await;
        let result = provider(&server, false).stream(request(vec![]), CancellationToken::new()).await;
        match result {
            Err(ProviderError::Http { status: 429, retry_after, message, .. }) => {
                assert_eq!(retry_after, Some(Duration::from_secs(3600)));
                assert_eq!(message, "quota");
            }
            Err(other) => panic!("expected HTTP 429, got {other:?}"),
            Ok(_) => panic!("expected HTTP 429, got a stream"),
        }
        assert_eq!(server.requests().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_network_error_naming_its_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        drop(listener);
        let endpoint = Endpoint::new("ollama", &url, Default::default(), Duration::from_secs(5)).unwrap();
        let result = OpenAi::new(endpoint, Options { native: false, stream_usage: true })
            .stream(request(vec![]), CancellationToken::new())
            .await;
        match result {
            Err(ProviderError::Network { message, .. }) => assert!(message.contains(&url), "{message}"),
            Err(other) => panic!("expected a network error, got {other:?}"),
            Ok(_) => panic!("expected a network error, got a stream"),
        }
    }

    #[tokio::test]
    async fn a_json_answer_to_a_streaming_request_is_a_protocol_error() {
        let server = FakeServer::start(vec![Reply::json(200, r#"{"choices":[]}"#)]).await;
        let result = provider(&server, false).stream(request(vec![]), CancellationToken::new()).await;
        assert!(matches!(result, Err(ProviderError::Protocol { .. })));
    }

    #[tokio::test]
    async fn list_models_reads_the_ids() {
        let models = r#"{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"openai"},{"id":"gpt-4o-mini","object":"model"}]}"#;
        let server = FakeServer::start(vec![Reply::json(200, models)]).await;
        assert_eq!(provider(&server, true).list_models().await.unwrap(), ["gpt-4o", "gpt-4o-mini"]);
        assert_eq!(server.requests()[0].path, "/v1/models");
    }
}
