//! Reads the lines `claude -p --output-format stream-json --verbose
//! --include-partial-messages` prints: one JSON object per line, told apart by `type`.
//!
//! - `system` (`init`, `status`, `api_retry`): progress; retries are logged.
//! - `stream_event`: one Anthropic streaming event (`message_start`, `content_block_delta`,
//!   `message_delta`, ...) in `event`; text deltas become `TextDelta`s.
//! - `assistant`: a whole message (block) once it is complete. Its text was already
//!   streamed, so it only counts when no delta of that message came (a CLI run without
//!   partial messages). An `assistant` with `error` / `is_api_error_message` is text the
//!   CLI made up to report a failure ("Not logged in · Please run /login"): never an answer.
//! - `result`: the last line: `is_error`, `result` (the answer or the error text),
//!   `api_error_status`, `stop_reason` and the run's total `usage`.
//!
//! Lines that are not JSON are kept (the last one explains an early exit), not fatal:
//! a warning printed to stdout must not break an answer.

use std::collections::HashSet;

use serde_json::Value;

use super::super::anthropic::stop_reason;
use super::super::{ProviderError, sse};
use crate::agent::types::{StopReason, StreamEvent, Usage};

/// Said with an authentication failure: where the CLI gets its credentials.
const LOGIN_HINT: &str =
    "sign in with `claude auth login` as the user the gateway runs as, or set ANTHROPIC_API_KEY for the gateway";

pub(super) struct Decoder {
    provider: String,
    /// API message ids whose text arrived as deltas.
    streamed: HashSet<String>,
    current: Option<String>,
    stop: Option<StopReason>,
    /// The kind and text of the CLI's own failure message, if one came.
    failure: Option<(String, String)>,
    /// The `result` line arrived: the answer is complete (or failed).
    pub(super) done: bool,
    /// The last line that was not JSON.
    pub(super) noise: Option<String>,
}

impl Decoder {
    pub(super) fn new(provider: &str) -> Self {
        Decoder {
            provider: provider.to_string(),
            streamed: HashSet::new(),
            current: None,
            stop: None,
            failure: None,
            done: false,
            noise: None,
        }
    }

    /// Handles one line; `true` once the answer is complete.
    pub(super) fn line(&mut self, line: &[u8], out: &mut Vec<StreamEvent>) -> Result<bool, ProviderError> {
        let text = String::from_utf8_lossy(line);
        let text = text.trim();
        if text.is_empty() {
            return Ok(false);
        }
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            self.noise = Some(sse::excerpt(text.as_bytes()));
            return Ok(false);
        };
        // Sub-agents' messages carry the id of the tool call that started them; with
        // every tool turned off there are none, and they are never the answer.
        if !v["parent_tool_use_id"].is_null() {
            return Ok(false);
        }
        match v["type"].as_str().unwrap_or_default() {
            "stream_event" => self.event(&v["event"], out),
            "assistant" => self.assistant(&v, out),
            "result" => return self.result(&v, out),
            "system" if v["subtype"] == "api_retry" => {
                tracing::warn!(
                    provider = %self.provider,
                    attempt = v["attempt"].as_u64(),
                    status = v["error_status"].as_u64(),
                    error = v["error"].as_str(),
                    "the Claude Code CLI is retrying its API call"
                );
            }
            "system" if v["subtype"] == "init" => {
                tracing::debug!(
                    provider = %self.provider,
                    version = v["claude_code_version"].as_str(),
                    model = v["model"].as_str(),
                    "Claude Code CLI started"
                );
            }
            _ => {}
        }
        Ok(false)
    }

    fn event(&mut self, e: &Value, out: &mut Vec<StreamEvent>) {
        match e["type"].as_str().unwrap_or_default() {
            "message_start" => self.current = e["message"]["id"].as_str().map(str::to_string),
            "content_block_delta" if e["delta"]["type"] == "text_delta" => {
                if let Some(text) = e["delta"]["text"].as_str().filter(|t| !t.is_empty()) {
                    if let Some(id) = &self.current {
                        self.streamed.insert(id.clone());
                    }
                    out.push(StreamEvent::TextDelta(text.to_string()));
                }
            }
            "message_delta" => {
                if let Some(reason) = e["delta"]["stop_reason"].as_str() {
                    self.stop = Some(stop_reason(Some(reason)));
                }
            }
            _ => {}
        }
    }

    fn assistant(&mut self, v: &Value, out: &mut Vec<StreamEvent>) {
        let message = &v["message"];
        let text: String = message["content"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|b| b["type"] == "text")
            .filter_map(|b| b["text"].as_str())
            .collect();
        if v["is_api_error_message"] == true || v["error"].is_string() {
            self.failure = Some((v["error"].as_str().unwrap_or("unknown").to_string(), text));
            return;
        }
        let id = message["id"].as_str().unwrap_or_default();
        if !text.is_empty() && !self.streamed.contains(id) {
            out.push(StreamEvent::TextDelta(text));
        }
    }

    fn result(&mut self, v: &Value, out: &mut Vec<StreamEvent>) -> Result<bool, ProviderError> {
        self.done = true;
        if v["is_error"] == true || v["subtype"].as_str().is_some_and(|s| s != "success") {
            return Err(self.failed(v));
        }
        let u = &v["usage"];
        let n = |field: &str| u[field].as_u64().unwrap_or(0);
        out.push(StreamEvent::Usage(Usage {
            input_tokens: n("input_tokens"),
            output_tokens: n("output_tokens"),
            cache_read_tokens: n("cache_read_input_tokens"),
            cache_write_tokens: n("cache_creation_input_tokens"),
        }));
        let stop = match v["stop_reason"].as_str() {
            Some(reason) => stop_reason(Some(reason)),
            None => self.stop.take().unwrap_or(StopReason::EndTurn),
        };
        out.push(StreamEvent::Stop(stop));
        Ok(true)
    }

    /// The error of a failed run: an HTTP error when the API answered with one (so 401,
    /// 429 and 5xx fail over like the other providers), else a stream error.
    fn failed(&self, v: &Value) -> ProviderError {
        let errors: Vec<&str> = v["errors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        let text = v["result"]
            .as_str()
            .filter(|t| !t.trim().is_empty())
            .map(str::to_string)
            .or_else(|| self.failure.as_ref().map(|(_, text)| text.clone()).filter(|t| !t.is_empty()))
            .or_else(|| (!errors.is_empty()).then(|| errors.join("; ")))
            .unwrap_or_else(|| format!("the run ended with {}", v["subtype"].as_str().unwrap_or("an error")));
        let auth = self.failure.as_ref().is_some_and(|(kind, _)| kind == "authentication_failed");
        let message = if auth { format!("{} ({LOGIN_HINT})", text.trim()) } else { text.trim().to_string() };
        let provider = self.provider.clone();
        match v["api_error_status"].as_u64().and_then(|s| u16::try_from(s).ok()) {
            Some(status) => ProviderError::Http { provider, status, message, retry_after: None },
            None if auth => ProviderError::Http { provider, status: 401, message, retry_after: None },
            None => ProviderError::Stream { provider, message },
        }
    }
}

#[cfg(test)]
mod tests {
    //! The transcripts in `testdata/` are the real stdout of `claude` 2.1.330 (npm
    //! `@anthropic-ai/claude-code`) run with Skynet's arguments against a fake Anthropic
    //! API on loopback; see testdata/README.md.

    use super::*;

    fn decode(transcript: &str) -> (Vec<StreamEvent>, Result<bool, ProviderError>) {
        let mut d = Decoder::new("claude-cli");
        let mut out = Vec::new();
        for line in transcript.lines() {
            match d.line(line.as_bytes(), &mut out) {
                Ok(false) => {}
                other => return (out, other),
            }
        }
        (out, Ok(false))
    }

    fn text(events: &[StreamEvent]) -> Vec<&str> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::TextDelta(t) => Some(t.as_str()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_streamed_answer_yields_each_delta_once_then_the_result_usage_and_stop() {
        let (events, end) = decode(include_str!("testdata/echo.jsonl"));
        assert!(matches!(end, Ok(true)), "{end:?}");
        // Four deltas; the `assistant` summary repeating them adds nothing.
        assert_eq!(text(&events), ["Echo:", " hell", "o the", "re"]);
        let usage = Usage { input_tokens: 25, output_tokens: 7, cache_read_tokens: 2000, cache_write_tokens: 100 };
        assert_eq!(events[4..], [StreamEvent::Usage(usage), StreamEvent::Stop(StopReason::EndTurn)]);
    }

    #[test]
    fn without_partial_messages_the_assistant_message_carries_the_text() {
        let lines: Vec<&str> =
            include_str!("testdata/echo.jsonl").lines().filter(|l| !l.contains(r#""type":"stream_event""#)).collect();
        let (events, end) = decode(&lines.join("\n"));
        assert!(matches!(end, Ok(true)), "{end:?}");
        assert_eq!(text(&events), ["Echo: hello there"]);
    }

    #[test]
    fn not_logged_in_is_a_401_that_says_how_to_sign_in_and_never_an_answer() {
        let (events, end) = decode(include_str!("testdata/not_logged_in.jsonl"));
        assert!(text(&events).is_empty(), "the CLI's error text is not the model's answer: {events:?}");
        match end {
            Err(ProviderError::Http { status: 401, message, .. }) => {
                assert!(message.starts_with("Not logged in"), "{message}");
                assert!(message.contains("claude auth login") && message.contains("ANTHROPIC_API_KEY"), "{message}");
            }
            other => panic!("expected HTTP 401, got {other:?}"),
        }
    }

    #[test]
    fn api_errors_keep_their_status_so_failover_works_as_for_the_http_providers() {
        let (_, end) = decode(include_str!("testdata/bad_key.jsonl"));
        match end {
            Err(e @ ProviderError::Http { status: 401, .. }) => {
                assert!(e.allows_failover());
                assert!(e.to_string().contains("Invalid API key"), "{e}");
            }
            other => panic!("expected HTTP 401, got {other:?}"),
        }
        let (_, end) = decode(include_str!("testdata/bad_request.jsonl"));
        match end {
            Err(e @ ProviderError::Http { status: 400, .. }) => {
                assert!(!e.allows_failover());
                assert!(e.to_string().contains("max_tokens: too large"), "{e}");
            }
            other => panic!("expected HTTP 400, got {other:?}"),
        }
    }

    #[test]
    fn noise_is_kept_not_fatal_and_other_errors_are_stream_errors() {
        let mut d = Decoder::new("claude-cli");
        let mut out = Vec::new();
        assert!(!d.line(b"Warning: something odd\n", &mut out).unwrap());
        assert!(!d.line(b"   ", &mut out).unwrap());
        assert_eq!(d.noise.as_deref(), Some("Warning: something odd"));
        let line = br#"{"type":"result","subtype":"error_max_turns","is_error":true,"errors":["too many turns"]}"#;
        match d.line(line, &mut out) {
            Err(ProviderError::Stream { message, .. }) => assert_eq!(message, "too many turns"),
            other => panic!("expected a stream error, got {other:?}"),
        }
        assert!(d.done && out.is_empty());
    }
}
