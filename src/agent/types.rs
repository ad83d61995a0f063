//! The provider-neutral conversation model: messages made of content blocks, tool
//! definitions, the tiered system prompt, and what a streaming model call yields.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    /// Per-turn context (time, channel, hot knowledge) sent with a user message. Stored
    /// with the message so later requests repeat it byte for byte (keeping the cached
    /// prefix valid), but never shown as part of the conversation.
    Context {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    #[cfg(test)]
    pub fn user_text(text: impl Into<String>) -> Message {
        Message { role: Role::User, content: vec![Block::Text { text: text.into() }] }
    }

    /// The visible text of the message (text blocks only, joined).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                Block::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("")
    }
}

/// A tool the model may call; `input_schema` is a JSON Schema object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: Value,
}

/// The system prompt in cache tiers. Both tiers must be byte-identical from turn to turn
/// for prompt caching to hit; per-turn context goes into `Block::Context` instead.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SystemPrompt {
    /// SOUL, AGENTS, TOOLS: the same for everyone.
    pub static_tier: String,
    /// USER and this person's memory summary.
    pub user_tier: String,
}

/// One model call.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The provider's own model id (without the `provider/` prefix).
    pub model: String,
    pub system: SystemPrompt,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub max_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Input tokens that were neither read from nor written to the cache.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    StopSequence,
    Refusal,
    Other(String),
}

/// What a streaming model call yields, in order. Tool calls arrive as a start (id and
/// name) followed by argument fragments that join into one JSON document per `index`.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    TextDelta(String),
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    ToolCallDelta {
        index: usize,
        json: String,
    },
    /// Cumulative usage so far; a later one replaces an earlier one.
    Usage(Usage),
    Stop(StopReason),
}
