//! `send_message`: the agent delivers a message to the person it talks with on another of
//! their linked channels ("send this to my Telegram"), through the channel registry.

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::Registry;
use crate::agent::tools::{Tool, ToolCtx, ToolOutput};
use crate::agent::types::ToolSpec;
use crate::store::Store;

pub struct SendMessage {
    pub registry: Registry,
    pub store: Store,
}

impl Tool for SendMessage {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "send_message".into(),
            description: "Send a message to the person you are talking with on one of their linked chat channels \
                          (e.g. Telegram or Discord). Without `channel`, the first one that is running."
                .into(),
            input_schema: json!({
                "type": "object",
                "properties": {
                    "text": {"type": "string", "description": "The message."},
                    "channel": {"type": "string", "description": "telegram or discord (optional)."}
                },
                "required": ["text"],
                "additionalProperties": false
            }),
        }
    }

    fn group(&self) -> &'static str {
        "messaging"
    }

    fn call(&self, input: Value, ctx: ToolCtx) -> BoxFuture<'static, Result<ToolOutput, String>> {
        let (registry, store) = (self.registry.clone(), self.store.clone());
        Box::pin(async move {
            let user_id = ctx.user_id.ok_or("send_message needs a known person; this conversation has none")?;
            let text = input.get("text").and_then(Value::as_str).filter(|t| !t.trim().is_empty());
            let text = text.ok_or("`text` is required and must not be empty")?;
            if text.len() > 20_000 {
                return Err("the message is longer than 20,000 characters; shorten it".into());
            }
            let channel = input.get("channel").and_then(Value::as_str);
            let used = registry.deliver_to_user(&store, user_id, text, channel).await?;
            Ok(format!("sent on {used}").into())
        })
    }
}
