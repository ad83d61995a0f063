//! Layered configuration: the embedded `defaults/skynet.toml` < `$SKYNET_HOME/skynet.toml`
//! < `SKYNET_SECTION__KEY` environment variables < command-line flags.
//!
//! The layers are merged as TOML tables and deserialised once. This is done by hand on
//! `toml` rather than with figment because a bad value must be reported with the file
//! *and line* it came from, and figment's errors only carry the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

/// The built-in defaults, also written to `$SKYNET_HOME/skynet.toml` on first run.
pub const DEFAULT_TOML: &str = include_str!("../defaults/skynet.toml");

/// Environment variables with this prefix and a `__` in the name are config overrides.
const ENV_PREFIX: &str = "SKYNET_";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub gateway: GatewayConfig,
    pub log: LogConfig,
    pub agent: AgentConfig,
    pub update: UpdateConfig,
    /// `[providers.<name>]`: overrides for a registry preset, or a new OpenAI-compatible service.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    pub users: crate::users::UsersConfig,
    /// `[roles.admin|user|child]`: what each role may do.
    pub roles: BTreeMap<String, crate::users::RoleConfig>,
    #[serde(default)]
    pub channels: ChannelsConfig,
}

/// `[channels.*]`: the chat-platform bots; a channel starts when its token is set.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(
    not(all(feature = "telegram", feature = "discord")),
    allow(dead_code, reason = "read by the channel adapters, which are cargo features")
)]
pub struct ChannelsConfig {
    pub telegram: TelegramConfig,
    pub discord: DiscordConfig,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(not(feature = "telegram"), allow(dead_code, reason = "read by the Telegram adapter, a cargo feature"))]
pub struct TelegramConfig {
    /// The bot token from @BotFather; empty: no Telegram bot.
    pub token: Secret,
    /// The Bot API server; empty: Telegram's own.
    pub api_url: String,
    /// The role of people who first write to the bot; empty: the gateway's default.
    pub default_role: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[cfg_attr(not(feature = "discord"), allow(dead_code, reason = "read by the Discord adapter, a cargo feature"))]
pub struct DiscordConfig {
    /// The bot token from the Discord Developer Portal; empty: no Discord bot.
    pub token: Secret,
    /// A Discord API proxy (such as twilight-http-proxy) that takes the REST calls in place
    /// of `https://discord.com`, e.g. `http://127.0.0.1:3000`; not an HTTP CONNECT proxy.
    /// Empty: Discord directly.
    pub proxy_url: String,
    /// The role of people who first write to the bot; empty: the gateway's default.
    pub default_role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// `<provider>/<model>`, e.g. `anthropic/claude-sonnet-4-5`; empty: no model configured.
    pub model: String,
    /// Model calls per message, tool rounds included.
    pub max_steps: u32,
    pub max_tokens: u32,
    /// How long one tool call may run.
    pub tool_timeout_ms: u64,
    /// Estimated tokens of history sent with each message; older turns are left out
    /// (whole, never a tool call without its result). 0: no limit.
    #[serde(default)]
    pub history_budget_tokens: usize,
    /// Models tried in order when the model's provider fails before answering.
    #[serde(default)]
    pub fallbacks: Vec<String>,
    /// Names such as `fast`, `default`, `smart` mapped to `<provider>/<model>`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    #[serde(default)]
    pub router: RouterConfig,
}

/// `[agent.router]`: picks a cheap, standard or strong model per message when the
/// request names none. Each tier is a model or an alias; empty means `agent.model`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub cheap: String,
    #[serde(default)]
    pub standard: String,
    #[serde(default)]
    pub strong: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// `anthropic`, `openai` or `openai-compatible`; presets know their own.
    #[serde(default)]
    pub kind: Option<String>,
    /// Anthropic's without `/v1`, OpenAI-style ones with it (each official SDK's convention).
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<Secret>,
    /// The environment variable holding the key (presets default to the usual one).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Seconds to wait for the response to start.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    pub bind: String,
    pub port: u16,
    pub auth_token: Secret,
    pub allowed_origins: Vec<String>,
    pub max_payload: usize,
    pub tick_interval_ms: u64,
    pub shutdown_grace_ms: u64,
}

/// `[update]`: where `skynet-gateway update` looks for releases.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateConfig {
    /// GitHub's REST API, or anything speaking its releases API (GitHub Enterprise, a mirror).
    pub api_url: String,
    /// `owner/name` of the GitHub repository whose releases are installed.
    pub repo: String,
    /// Look for a newer release at start-up (at most once a day; only logs).
    pub check_on_start: bool,
}

impl UpdateConfig {
    /// The repository as (owner, name).
    pub fn owner_and_name(&self) -> Option<(&str, &str)> {
        let (owner, name) = self.repo.split_once('/')?;
        let ok = |s: &str| !s.is_empty() && !s.contains(['/', ' ']);
        (ok(owner) && ok(name)).then_some((owner, name))
    }

    fn check(&self) -> Result<(), (&'static str, String, String)> {
        if self.owner_and_name().is_none() {
            return Err((
                "update.repo",
                format!("{:?} is not a GitHub repository", self.repo),
                "Use the form \"owner/name\", e.g. \"skynet-gateway/skynet\".".into(),
            ));
        }
        if !(self.api_url.starts_with("https://") || self.api_url.starts_with("http://")) {
            return Err((
                "update.api_url",
                format!("{:?} is not an http(s) URL", self.api_url),
                "Use \"https://api.github.com\", or your GitHub Enterprise API such as \"https://github.example.com/api/v3\".".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

/// A string that never shows up in `Debug` output or logs.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"[redacted]\"" })
    }
}

/// Values given on the command line; they win over every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub bind: Option<String>,
    pub port: Option<u16>,
}

/// Where a setting came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Defaults,
    File { path: PathBuf, line: Option<usize> },
    Env(String),
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Defaults => f.write_str("the built-in defaults"),
            Origin::File { path, line: Some(l) } => write!(f, "{} line {l}", path.display()),
            Origin::File { path, line: None } => write!(f, "{}", path.display()),
            Origin::Env(var) => write!(f, "environment variable {var}"),
            Origin::Flag(flag) => write!(f, "command-line flag {flag}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}\nCheck the file's permissions, or move it aside to start from the defaults.", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{} line {line} is not valid TOML: {message}\nFix the syntax there, or move the file aside to start from the defaults.", path.display())]
    Syntax { path: PathBuf, line: usize, message: String },
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("invalid setting `{key}` in {origin}: {message}\n{hint}")]
    Invalid { key: String, origin: Origin, message: String, hint: String },
}

impl Config {
    /// Loads the configuration for a home directory, applying the process environment.
    pub fn load(home: &Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::load_with_env(home, overrides, std::env::vars())
    }

    pub fn file_path(home: &Path) -> PathBuf {
        home.join("skynet.toml")
    }

    /// Sets one string value in `$SKYNET_HOME/skynet.toml`, keeping the user's comments and
    /// layout; the result must still be a valid configuration, and is written atomically
    /// with mode 0600.
    pub fn set_in_file(home: &Path, key: &[&str], value: &str) -> Result<(), ConfigError> {
        let path = Self::file_path(home);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => DEFAULT_TOML.to_string(),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| ConfigError::Syntax {
            path: path.clone(),
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        })?;
        let (last, parents) = key.split_last().expect("a key has at least one part");
        let mut item = doc.as_item_mut();
        for part in parents {
            item = &mut item[*part];
        }
        item[*last] = toml_edit::value(value);
        let updated = doc.to_string();
        let mut layers = Layers::new();
        layers.add_file(&path, updated.clone())?;
        layers.deserialize::<Config>()?;
        crate::fsutil::write_atomic(&path, updated.as_bytes(), 0o600)
            .map_err(|source| ConfigError::Write { path, source })
    }

    /// Writes `text` as `$SKYNET_HOME/skynet.toml` (atomically, mode 0600) if it is a valid
    /// configuration on its own, environment aside; otherwise leaves the file untouched.
    pub fn write_file(home: &Path, text: &str) -> Result<Config, ConfigError> {
        let path = Self::file_path(home);
        let mut layers = Layers::new();
        layers.add_file(&path, text.to_string())?;
        let config: Config = layers.deserialize()?;
        config.validate().map_err(|(key, message, hint)| ConfigError::Invalid {
            origin: layers.origin_of(key),
            key: key.to_string(),
            message,
            hint,
        })?;
        crate::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
            .map_err(|source| ConfigError::Write { path, source })?;
        Ok(config)
    }

    /// Only the `[update]` settings (defaults < file < environment): `update` must work
    /// before the first run has generated a token, and even when another section is broken.
    pub fn load_update(home: &Path) -> Result<UpdateConfig, ConfigError> {
        #[derive(Deserialize)]
        struct UpdateOnly {
            update: UpdateConfig,
        }
        let mut layers = Layers::new();
        layers.add_home_file(home)?;
        layers.add_env(std::env::vars());
        let update = layers.deserialize::<UpdateOnly>()?.update;
        update.check().map_err(|(key, message, hint)| ConfigError::Invalid {
            origin: layers.origin_of(key),
            key: key.to_string(),
            message,
            hint,
        })?;
        Ok(update)
    }

    fn load_with_env(
        home: &Path,
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let mut layers = Layers::new();
        layers.add_home_file(home)?;
        // Each layer must be valid on its own: a bad value is an error even when a
        // higher layer happens to override it.
        layers.deserialize::<Config>()?;
        layers.add_env(env);
        layers.deserialize::<Config>()?;
        if let Some(bind) = &overrides.bind {
            layers.set(&["gateway", "bind"], Value::String(bind.clone()), Origin::Flag("--bind"));
        }
        if let Some(port) = overrides.port {
            layers.set(&["gateway", "port"], Value::Integer(port.into()), Origin::Flag("--port"));
        }
        let config: Config = layers.deserialize()?;
        config.validate().map_err(|(key, message, hint)| ConfigError::Invalid {
            origin: layers.origin_of(key),
            key: key.to_string(),
            message,
            hint,
        })?;
        Ok(config)
    }

    /// Checks the meaning of values that deserialised fine.
    fn validate(&self) -> Result<(), (&'static str, String, String)> {
        let g = &self.gateway;
        if g.bind.parse::<IpAddr>().is_err() {
            return Err((
                "gateway.bind",
                format!("{:?} is not an IP address", g.bind),
                "Use an address such as \"127.0.0.1\" (this machine only) or \"0.0.0.0\" (every interface).".into(),
            ));
        }
        if g.auth_token.is_empty() {
            return Err((
                "gateway.auth_token",
                "the token is empty, so no client could ever connect".into(),
                "Set a long random token, or delete the line from skynet.toml and remove the file to have one generated.".into(),
            ));
        }
        if g.auth_token.expose().len() < 16 {
            return Err((
                "gateway.auth_token",
                "the token is shorter than 16 characters and easy to guess".into(),
                "Use a long random token, e.g. the output of `openssl rand -hex 32`.".into(),
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err((
                "log.level",
                format!("{:?} is not a log level or filter", self.log.level),
                "Use error, warn, info, debug or trace (or a RUST_LOG-style filter such as \"info,skynet=debug\")."
                    .into(),
            ));
        }
        if g.tick_interval_ms < 1000 {
            return Err((
                "gateway.tick_interval_ms",
                format!("{} ms is too short", g.tick_interval_ms),
                "Use at least 1000 (one second); the default is 30000.".into(),
            ));
        }
        if let Err(e) = crate::users::parse_default_role(&self.users.default_role) {
            return Err(("users.default_role", e, "The default is \"none\": strangers are refused politely.".into()));
        }
        if let Some(bad) = self.roles.keys().find(|k| k.parse::<crate::users::Role>().is_err()) {
            return Err((
                "roles",
                format!("[roles.{bad}] is not a role"),
                "Roles are admin, user and child; rename or remove the section.".into(),
            ));
        }
        if g.max_payload < 64 * 1024 {
            return Err((
                "gateway.max_payload",
                format!("{} bytes is below the 64 KiB the handshake itself may need", g.max_payload),
                "Use at least 65536; the default is 26214400 (25 MiB).".into(),
            ));
        }
        self.update.check()
    }
}

/// The merged tables plus, for every leaf that was set by a file, env var or flag, where from.
struct Layers {
    merged: Table,
    file: Option<(PathBuf, String)>,
    origins: BTreeMap<String, Origin>,
}

impl Layers {
    fn new() -> Self {
        let merged = DEFAULT_TOML.parse::<Table>().expect("embedded defaults/skynet.toml is valid TOML");
        Layers { merged, file: None, origins: BTreeMap::new() }
    }

    /// `$SKYNET_HOME/skynet.toml`, when it exists.
    fn add_home_file(&mut self, home: &Path) -> Result<(), ConfigError> {
        let path = Config::file_path(home);
        match std::fs::read_to_string(&path) {
            Ok(text) => self.add_file(&path, text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    fn add_file(&mut self, path: &Path, text: String) -> Result<(), ConfigError> {
        let table = text.parse::<Table>().map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            line: e.span().map(|s| line_of(&text, s.start)).unwrap_or(1),
            message: e.message().trim().to_string(),
        })?;
        merge(&mut self.merged, table);
        self.file = Some((path.to_path_buf(), text));
        Ok(())
    }

    fn add_env(&mut self, env: impl IntoIterator<Item = (String, String)>) {
        let mut vars: Vec<_> = env.into_iter().filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__")).collect();
        vars.sort();
        for (var, raw) in vars {
            let path: Vec<String> = var[ENV_PREFIX.len()..].split("__").map(|s| s.to_ascii_lowercase()).collect();
            let refs: Vec<&str> = path.iter().map(String::as_str).collect();
            let value = env_value(lookup(&self.merged, &refs), &raw);
            self.set(&refs, value, Origin::Env(var));
        }
    }

    fn set(&mut self, path: &[&str], value: Value, origin: Origin) {
        let (last, parents) = path.split_last().expect("config paths are never empty");
        let mut table = &mut self.merged;
        for key in parents {
            let entry = table.entry(key.to_string()).or_insert_with(|| Value::Table(Table::new()));
            if !entry.is_table() {
                *entry = Value::Table(Table::new());
            }
            table = entry.as_table_mut().expect("just made a table");
        }
        table.insert(last.to_string(), value);
        self.origins.insert(path.join("."), origin);
    }

    fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, ConfigError> {
        serde_path_to_error::deserialize(Value::Table(self.merged.clone())).map_err(|e| {
            let key = e.path().to_string();
            let message = e.inner().message().trim().to_string();
            let hint = if message.starts_with("unknown field") {
                "Remove or correct that key; `skynet-gateway doctor` lists what is wrong.".to_string()
            } else {
                "Correct the value, or remove it to use the default.".to_string()
            };
            ConfigError::Invalid { origin: self.origin_of(&key), key, message, hint }
        })
    }

    /// The most specific layer that set `key` (or one of its parents, e.g. a whole table).
    fn origin_of(&self, key: &str) -> Origin {
        let segments: Vec<&str> = key.split('.').collect();
        for n in (1..=segments.len()).rev() {
            let prefix = segments[..n].join(".");
            if let Some(origin) = self.origins.get(&prefix) {
                return origin.clone();
            }
        }
        if let Some((path, text)) = &self.file
            && let Some(line) = line_of_key(text, &segments)
        {
            return Origin::File { path: path.clone(), line: Some(line) };
        }
        Origin::Defaults
    }
}

/// Deep-merges `over` into `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut Table, over: Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(Value::Table(b)), Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn lookup<'a>(table: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let value = table.get(*first)?;
    match (rest.is_empty(), value) {
        (true, v) => Some(v),
        (false, Value::Table(t)) => lookup(t, rest),
        _ => None,
    }
}

/// Turns an environment string into a TOML value shaped like the setting it replaces,
/// so `SKYNET_GATEWAY__AUTH_TOKEN=12345` stays a string and `..._PORT=8080` is a number.
fn env_value(current: Option<&Value>, raw: &str) -> Value {
    let parsed = || format!("v = {raw}").parse::<Table>().ok().and_then(|mut t| t.remove("v"));
    match current {
        Some(Value::String(_)) => Value::String(raw.to_string()),
        Some(Value::Array(_)) => match parsed() {
            Some(v @ Value::Array(_)) => v,
            _ => Value::Array(
                raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(|s| Value::String(s.to_string())).collect(),
            ),
        },
        // Numbers and booleans: parse, and let deserialisation name the type on failure.
        _ => parsed().unwrap_or_else(|| Value::String(raw.to_string())),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// The line on which a dotted key is written in a TOML document, found through the spans
/// the parser keeps (handles `[section]` headers, dotted keys and inline tables alike).
fn line_of_key(text: &str, path: &[&str]) -> Option<usize> {
    use toml::de::{DeTable, DeValue};
    let doc = DeTable::parse(text).ok()?;
    let mut table = doc.get_ref();
    let (last, parents) = path.split_last()?;
    for key in parents {
        match table.get(*key).map(|v| v.get_ref()) {
            Some(DeValue::Table(t)) => table = t,
            _ => return None,
        }
    }
    let (key, _) = table.get_key_value(*last)?;
    Some(line_of(text, key.span().start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(file: Option<&str>, env: &[(&str, &str)], ov: Overrides) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = file {
            std::fs::write(dir.path().join("skynet.toml"), text).unwrap();
        }
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        Config::load_with_env(dir.path(), &ov, env)
    }

    const TOKEN: &str = "[gateway]\nauth_token = \"0123456789abcdef0123\"\n";

    #[test]
    fn layers_apply_in_order_defaults_file_env_flags() {
        let file = format!("{TOKEN}port = 1111\nbind = \"0.0.0.0\"\n");
        let c = load(Some(&file), &[], Overrides::default()).unwrap();
        assert_eq!((c.gateway.port, c.gateway.bind.as_str()), (1111, "0.0.0.0"));
        assert_eq!(c.gateway.tick_interval_ms, 30000, "untouched keys keep their defaults");

        let c = load(Some(&file), &[("SKYNET_GATEWAY__PORT", "2222")], Overrides::default()).unwrap();
        assert_eq!(c.gateway.port, 2222);

        let flags = Overrides { port: Some(3333), bind: Some("127.0.0.2".into()) };
        let c = load(Some(&file), &[("SKYNET_GATEWAY__PORT", "2222")], flags).unwrap();
        assert_eq!((c.gateway.port, c.gateway.bind.as_str()), (3333, "127.0.0.2"));
    }

    #[test]
    fn env_strings_stay_strings_and_lists_split_on_commas() {
        let env = [
            ("SKYNET_GATEWAY__AUTH_TOKEN", "12345678901234567890"),
            ("SKYNET_GATEWAY__ALLOWED_ORIGINS", "https://a.example, https://b.example"),
            ("SKYNET_HOME", "/ignored/not/a/setting"),
        ];
        let c = load(None, &env, Overrides::default()).unwrap();
        assert_eq!(c.gateway.auth_token.expose(), "12345678901234567890");
        assert_eq!(c.gateway.allowed_origins, ["https://a.example", "https://b.example"]);
    }

    #[test]
    fn bad_value_in_file_names_file_key_and_line() {
        let file = format!("# comment\n{TOKEN}\nport = \"eighty\"\n");
        let err = load(Some(&file), &[], Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("gateway.port"), "{err}");
        assert!(err.contains("skynet.toml line 5"), "{err}");
        assert!(err.contains("expected u16"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error_with_its_line() {
        let file = format!("{TOKEN}prot = 80\n");
        let err = load(Some(&file), &[], Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("gateway.prot") && err.contains("line 3"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }

    #[test]
    fn syntax_error_names_the_line() {
        let err = load(Some("[gateway]\nport = = 3\n"), &[], Overrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { line: 2, .. }), "{err}");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let env = [("SKYNET_GATEWAY__AUTH_TOKEN", "0123456789abcdef0123"), ("SKYNET_GATEWAY__PORT", "huge")];
        let err = load(None, &env, Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("environment variable SKYNET_GATEWAY__PORT"), "{err}");
    }

    #[test]
    fn semantic_checks_refuse_a_bad_bind_and_an_empty_token() {
        let err = load(Some(&format!("{TOKEN}bind = \"localhost:80\"\n")), &[], Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("gateway.bind") && err.contains("line 3"), "{err}");
        let err = load(None, &[], Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("gateway.auth_token") && err.contains("empty"), "{err}");
    }

    #[test]
    fn a_bad_value_is_an_error_even_when_a_higher_layer_overrides_it() {
        let file = format!("{TOKEN}port = \"x\"\n");
        let err = load(Some(&file), &[("SKYNET_GATEWAY__PORT", "1")], Overrides { port: Some(2), bind: None })
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn update_repo_must_be_owner_slash_name() {
        let file = format!("{TOKEN}[update]\nrepo = \"no-slash\"\n");
        let err = load(Some(&file), &[], Overrides::default()).unwrap_err().to_string();
        assert!(err.contains("update.repo") && err.contains("line 4"), "{err}");
        let c = load(Some(TOKEN), &[("SKYNET_UPDATE__REPO", "me/fork")], Overrides::default()).unwrap();
        assert_eq!(c.update.owner_and_name(), Some(("me", "fork")));
    }

    #[test]
    fn secrets_do_not_appear_in_debug_output() {
        let c = load(Some(TOKEN), &[], Overrides::default()).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef0123"));
    }

    #[test]
    fn set_in_file_keeps_comments_and_writes_a_private_valid_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = format!("# my notes\n{TOKEN}\n[agent]\n# which model\nmodel = \"openai/gpt-4o\"\n");
        std::fs::write(dir.path().join("skynet.toml"), &file).unwrap();
        Config::set_in_file(dir.path(), &["agent", "model"], "anthropic/claude-sonnet-4-5").unwrap();
        let text = std::fs::read_to_string(dir.path().join("skynet.toml")).unwrap();
        assert!(text.contains("# my notes") && text.contains("# which model"), "{text}");
        assert!(text.contains("model = \"anthropic/claude-sonnet-4-5\""), "{text}");
        let mode = std::fs::metadata(dir.path().join("skynet.toml")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let c = Config::load_with_env(dir.path(), &Overrides::default(), Vec::new()).unwrap();
        assert_eq!(c.agent.model, "anthropic/claude-sonnet-4-5");
        std::fs::write(dir.path().join("skynet.toml"), "[agent\n").unwrap();
        let err = Config::set_in_file(dir.path(), &["agent", "model"], "x/y").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        assert_eq!(std::fs::read_to_string(dir.path().join("skynet.toml")).unwrap(), "[agent\n", "untouched");
    }

    #[test]
    fn write_file_refuses_an_invalid_config_and_writes_a_valid_one_privately() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("skynet.toml");
        let err = Config::write_file(dir.path(), "[gateway]\nauth_token = \"short\"\n").unwrap_err().to_string();
        assert!(err.contains("gateway.auth_token") && err.contains("line 2"), "{err}");
        assert!(!path.exists(), "nothing written");
        let text =
            format!("{TOKEN}[channels.telegram]\ntoken = \"123:abc\"\n[channels.discord]\nproxy_url = \"http://p\"\n");
        let c = Config::write_file(dir.path(), &text).unwrap();
        assert_eq!(c.channels.telegram.token.expose(), "123:abc");
        assert_eq!(c.channels.discord.proxy_url, "http://p");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert!(!format!("{c:?}").contains("123:abc"), "bot tokens are secrets");
    }
}
