//! The system prompt in three tiers. Static (SOUL, IDENTITY, AGENTS, TOOLS) and per-user
//! (USER, later the person's memory summary) are rebuilt byte-identically every turn so
//! provider prompt caches hit; the volatile tier (time, channel, session) travels as a
//! `Context` block on the user's message and is stored with it.

use std::path::{Path, PathBuf};

use super::types::SystemPrompt;

const STATIC_FILES: [&str; 4] = ["SOUL.md", "IDENTITY.md", "AGENTS.md", "TOOLS.md"];
const USER_FILES: [&str; 1] = ["USER.md"];

pub struct PromptBuilder {
    workspace: PathBuf,
}

/// Where a message came from, for the volatile tier.
pub struct TurnContext<'a> {
    pub channel: &'a str,
    pub session_key: &'a str,
    /// System instructions from the caller (the `/v1` API's system messages).
    pub instructions: Option<&'a str>,
    /// The most used knowledge topics (the hot index).
    pub hot_topics: &'a [String],
}

impl PromptBuilder {
    pub fn new(workspace: &Path) -> Self {
        PromptBuilder { workspace: workspace.to_path_buf() }
    }

    fn read_all(&self, files: &[&str]) -> String {
        files
            .iter()
            .filter_map(|f| std::fs::read_to_string(self.workspace.join(f)).ok())
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    /// The two cached tiers; `about_user` (who this is, what Skynet remembers of them) is
    /// appended to USER.md and must itself be stable between turns.
    pub fn system(&self, about_user: &str) -> SystemPrompt {
        let mut user_tier = self.read_all(&USER_FILES);
        if !about_user.is_empty() {
            if !user_tier.is_empty() {
                user_tier.push_str("\n\n");
            }
            user_tier.push_str(about_user);
        }
        SystemPrompt { static_tier: self.read_all(&STATIC_FILES), user_tier }
    }

    /// The volatile tier for one user message.
    pub fn context(&self, ctx: &TurnContext<'_>, now: std::time::SystemTime) -> String {
        let secs = now.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let mut text = format!(
            "<context>\ncurrent time: {} UTC\nchannel: {}\nsession: {}\n</context>",
            format_utc(secs),
            ctx.channel,
            ctx.session_key
        );
        if !ctx.hot_topics.is_empty() {
            text = text.replace(
                "\n</context>",
                &format!(
                    "\nmost used knowledge (knowledge_read for details): {}\n</context>",
                    ctx.hot_topics.join("; ")
                ),
            );
        }
        if let Some(i) = ctx.instructions.map(str::trim).filter(|i| !i.is_empty()) {
            text.push_str(&format!("\n<caller-instructions>\n{i}\n</caller-instructions>"));
        }
        text
    }
}

/// `YYYY-MM-DD HH:MM` for a Unix time (UTC), without pulling in a date crate.
pub fn format_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_formatting_matches_known_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00");
        assert_eq!(format_utc(951_782_400), "2000-02-29 00:00");
        assert_eq!(format_utc(1_795_451_405), "2026-11-23 16:30");
    }

    #[test]
    fn tiers_are_stable_and_ordered() {
        let dir = tempfile::tempdir().unwrap();
        for (f, t) in [("SOUL.md", "soul"), ("AGENTS.md", "agents"), ("USER.md", "user")] {
            std::fs::write(dir.path().join(f), t).unwrap();
        }
        let p = PromptBuilder::new(dir.path());
        let a = p.system("");
        assert_eq!(a.static_tier, "soul\n\nagents");
        assert_eq!(a.user_tier, "user");
        assert_eq!(a, p.system(""), "byte-identical across turns");
        assert_eq!(p.system("You are talking with Ann.").user_tier, "user\n\nYou are talking with Ann.");
    }
}
