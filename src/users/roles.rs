//! Roles and what each may do: `[roles.admin|user|child]` in skynet.toml lists the tools
//! and models a role may use and how many messages per hour it may send. Checked where a
//! tool runs and before a model is called, not only in the prompt.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    User,
    Child,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::User, Role::Child];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::User => "user",
            Role::Child => "child",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a role: use admin, user or child"))
    }
}

/// `[users]`: who strangers become.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    /// Role for a sender nobody knows, where the channel sets none: admin, user, child,
    /// or "none" to refuse them.
    pub default_role: String,
    /// How long a link code stays valid.
    pub link_code_ttl_secs: u64,
    /// Wrong link codes one identity may enter per hour before it is refused.
    pub link_failures_per_hour: u32,
}

/// `[roles.<role>]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleConfig {
    /// Tool names, `@group`s (`@shell`, `@files`, `@memory`, `@knowledge`, `@plugins`, ...),
    /// `*`, or any of these prefixed with `!` to deny; the last matching entry decides.
    pub tools: Vec<String>,
    /// Models (`<provider>/<model>`, `<provider>/*`) or aliases this role may use; `*`: any.
    pub models: Vec<String>,
    /// 0: no limit.
    #[serde(default)]
    pub messages_per_hour: u32,
}

/// The `default_role` setting: a role, or `None` for "refuse strangers".
pub fn parse_default_role(s: &str) -> Result<Option<Role>, String> {
    if s == "none" { Ok(None) } else { s.parse().map(Some).map_err(|e| format!("{e}, or \"none\" to refuse")) }
}

/// The permission table for all roles.
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    roles: BTreeMap<String, RoleConfig>,
}

fn matches(pattern: &str, value: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => value.starts_with(prefix),
        None => pattern == value,
    }
}

impl Permissions {
    pub fn new(roles: BTreeMap<String, RoleConfig>) -> Permissions {
        Permissions { roles }
    }

    fn config(&self, role: Role) -> Option<&RoleConfig> {
        self.roles.get(role.as_str())
    }

    /// Whether `role` may run the tool; `Err` says why not, for the model and the log.
    pub fn tool(&self, role: Role, name: &str, group: &str) -> Result<(), String> {
        let mut allowed = false;
        for entry in self.config(role).map(|c| c.tools.as_slice()).unwrap_or_default() {
            let (deny, pat) = entry.strip_prefix('!').map_or((false, entry.as_str()), |p| (true, p));
            let hit = match pat.strip_prefix('@') {
                Some(g) => g == group,
                None => matches(pat, name),
            };
            if hit {
                allowed = !deny;
            }
        }
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "refused: the {role} role may not use the {name} tool (group @{group}). An admin can allow it in [roles.{role}] tools in skynet.toml."
            ))
        }
    }

    /// Whether `role` may use the model, named as asked (alias) and as resolved.
    pub fn model(&self, role: Role, asked: Option<&str>, resolved: &str) -> Result<(), String> {
        let list = self.config(role).map(|c| c.models.as_slice()).unwrap_or_default();
        if list.iter().any(|p| matches(p, resolved) || asked.is_some_and(|a| p == a)) {
            Ok(())
        } else {
            Err(format!(
                "the {role} role may not use the model {resolved}; allowed: {}. An admin can change [roles.{role}] models.",
                if list.is_empty() { "none".to_string() } else { list.join(", ") }
            ))
        }
    }

    pub fn messages_per_hour(&self, role: Role) -> u32 {
        self.config(role).map_or(0, |c| c.messages_per_hour)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms() -> Permissions {
        let role = |tools: &[&str], models: &[&str], mph| RoleConfig {
            tools: tools.iter().map(|s| s.to_string()).collect(),
            models: models.iter().map(|s| s.to_string()).collect(),
            messages_per_hour: mph,
        };
        Permissions::new(
            [
                ("admin".to_string(), role(&["*"], &["*"], 0)),
                ("user".to_string(), role(&["*", "!@shell", "!@users"], &["*"], 0)),
                (
                    "child".to_string(),
                    role(&["current_time", "@memory", "knowledge_search"], &["fast", "ollama/*"], 30),
                ),
            ]
            .into(),
        )
    }

    #[test]
    fn the_last_matching_entry_decides() {
        let p = perms();
        assert!(p.tool(Role::Admin, "shell", "shell").is_ok());
        assert!(p.tool(Role::User, "file_read", "files").is_ok());
        let err = p.tool(Role::User, "shell", "shell").unwrap_err();
        assert!(err.contains("user role may not use the shell tool") && err.contains("[roles.user]"), "{err}");
        assert!(p.tool(Role::Child, "memory_save", "memory").is_ok());
        assert!(p.tool(Role::Child, "shell", "shell").is_err());
        assert!(p.tool(Role::Child, "knowledge_write", "knowledge").is_err());
        assert!(Permissions::default().tool(Role::Admin, "x", "y").is_err(), "no table: nothing allowed");
    }

    #[test]
    fn models_match_by_alias_or_resolved_name() {
        let p = perms();
        assert!(p.model(Role::Child, Some("fast"), "groq/llama").is_ok());
        assert!(p.model(Role::Child, None, "ollama/llama3.2").is_ok());
        let err = p.model(Role::Child, None, "anthropic/claude-opus").unwrap_err();
        assert!(err.contains("allowed: fast, ollama/*"), "{err}");
        assert_eq!(p.messages_per_hour(Role::Child), 30);
        assert_eq!(parse_default_role("none"), Ok(None));
        assert_eq!(parse_default_role("child"), Ok(Some(Role::Child)));
        assert!(parse_default_role("guest").is_err());
    }
}
