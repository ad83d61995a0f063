//! Fitting a conversation into the model's budget: the oldest whole turns are dropped
//! first, and a cut only ever falls where a user turn begins, so a tool call is never
//! separated from its result.

use super::types::{Block, Message, Role};

/// A rough token count (4 bytes per token of the serialised content), the same measure
/// for every provider; it only has to be monotonic and cheap.
pub fn estimate_tokens(m: &Message) -> usize {
    let bytes: usize = m
        .content
        .iter()
        .map(|b| match b {
            Block::Text { text } | Block::Context { text } => text.len(),
            Block::ToolUse { name, input, .. } => name.len() + input.to_string().len(),
            Block::ToolResult { content, .. } => content.len(),
        })
        .sum();
    bytes.div_ceil(4) + 4
}

/// Where a turn starts: a user message that is not a batch of tool results.
fn starts_turn(m: &Message) -> bool {
    m.role == Role::User && !m.content.iter().any(|b| matches!(b, Block::ToolResult { .. }))
}

/// Drops the oldest turns until the history fits `budget` tokens (0: no limit). The
/// newest turn is kept even if it alone is larger. Returns how many messages were dropped.
pub fn trim(messages: &mut Vec<Message>, budget: usize) -> usize {
    if budget == 0 {
        return 0;
    }
    let mut total: usize = messages.iter().map(estimate_tokens).sum();
    let mut cut = 0;
    while total > budget {
        // The next turn start after `cut`.
        let Some(next) = messages.iter().enumerate().skip(cut + 1).find(|(_, m)| starts_turn(m)).map(|(i, _)| i) else {
            break;
        };
        total -= messages[cut..next].iter().map(estimate_tokens).sum::<usize>();
        cut = next;
    }
    messages.drain(..cut);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(role: Role, t: &str) -> Message {
        Message { role, content: vec![Block::Text { text: t.into() }] }
    }

    fn conversation() -> Vec<Message> {
        vec![
            text(Role::User, &"a".repeat(400)),
            Message {
                role: Role::Assistant,
                content: vec![Block::ToolUse { id: "t1".into(), name: "clock".into(), input: json!({}) }],
            },
            Message {
                role: Role::User,
                content: vec![Block::ToolResult {
                    tool_use_id: "t1".into(),
                    content: "x".repeat(400),
                    is_error: false,
                }],
            },
            text(Role::Assistant, &"b".repeat(400)),
            text(Role::User, &"c".repeat(400)),
            text(Role::Assistant, &"d".repeat(400)),
        ]
    }

    #[test]
    fn whole_turns_go_first_and_tool_pairs_stay_together() {
        let mut m = conversation();
        let all: usize = m.iter().map(estimate_tokens).sum();
        assert_eq!(trim(&mut m, all), 0, "fits: nothing dropped");
        assert_eq!(trim(&mut m, all - 1), 4, "the whole first turn, tool round included");
        assert!(starts_turn(&m[0]));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn the_newest_turn_stays_even_when_too_big() {
        let mut m = conversation();
        assert_eq!(trim(&mut m, 1), 4);
        assert_eq!(m.len(), 2);
        let mut m = conversation();
        assert_eq!(trim(&mut m, 0), 0, "0 means no limit");
        assert_eq!(m.len(), 6);
    }
}
