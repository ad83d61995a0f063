//! The model router: picks a cheap, standard or strong model for a message from features
//! that cost nothing to compute (an explicit request, code, length, words that suggest
//! tools). Used only when a request names no model and `[agent.router] enabled = true`.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Cheap,
    Standard,
    Strong,
}

/// The router's choice for one message, shown in the final event and the log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub tier: Tier,
    pub reason: String,
    /// The `<provider>/<model>` it resolved to.
    pub model: String,
}

const ASK_STRONG: [&str; 8] = [
    "think hard",
    "think carefully",
    "think step by step",
    "step by step",
    "use the smart model",
    "use the strong model",
    "in depth",
    "deep dive",
];
const ASK_CHEAP: [&str; 6] = ["quick answer", "quickly", "briefly", "tl;dr", "use the fast model", "short answer"];
const CODE_MARKERS: [&str; 10] =
    ["```", "fn ", "def ", "class ", "#include", "=>", "function ", "import ", "select ", "traceback"];
const TOOL_WORDS: [&str; 12] = [
    "run ",
    "execute",
    "search",
    "remember",
    "remind",
    "schedule",
    "file",
    "download",
    "look up",
    "what time",
    "terminal",
    "shell",
];

/// Messages longer than this (in characters) go to the strong model.
const LONG: usize = 1500;
/// Messages shorter than this with no other feature go to the cheap model.
const SHORT: usize = 80;

/// Classifies a message; the reason names the feature that decided.
pub fn classify(message: &str) -> (Tier, String) {
    let lower = message.to_lowercase();
    if let Some(w) = ASK_STRONG.iter().find(|w| lower.contains(*w)) {
        return (Tier::Strong, format!("explicit request ({w:?})"));
    }
    if let Some(w) = ASK_CHEAP.iter().find(|w| lower.contains(*w)) {
        return (Tier::Cheap, format!("explicit request ({w:?})"));
    }
    if let Some(w) = CODE_MARKERS.iter().find(|w| lower.contains(*w)) {
        return (Tier::Strong, format!("looks like code ({:?})", w.trim()));
    }
    let chars = message.chars().count();
    if chars > LONG {
        return (Tier::Strong, format!("long message ({chars} characters)"));
    }
    if let Some(w) = TOOL_WORDS.iter().find(|w| lower.contains(*w)) {
        return (Tier::Standard, format!("may need tools ({:?})", w.trim()));
    }
    if chars < SHORT {
        return (Tier::Cheap, format!("short message ({chars} characters)"));
    }
    (Tier::Standard, "ordinary message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_pick_the_tier() {
        assert_eq!(classify("hi there").0, Tier::Cheap);
        assert_eq!(classify("Please think hard about this: why is the sky blue?").0, Tier::Strong);
        assert_eq!(classify("Quick answer: capital of France?").0, Tier::Cheap);
        assert_eq!(classify("why does this fail?\n```rust\nlet x: u8 = 300;\n```").0, Tier::Strong);
        assert_eq!(classify(&"words ".repeat(400)).0, Tier::Strong);
        assert_eq!(classify("search the knowledge base for our wifi password").0, Tier::Standard);
        let ordinary = "I would like to hear your opinion on how to plan a relaxed weekend with my family.";
        assert_eq!(classify(ordinary), (Tier::Standard, "ordinary message".into()));
    }

    #[test]
    fn an_explicit_request_wins_over_other_features() {
        let (tier, reason) = classify("quick answer please: what does `fn main()` do?");
        assert_eq!(tier, Tier::Cheap);
        assert!(reason.contains("explicit"), "{reason}");
    }
}
