//! The values the wizard starts from: what `skynet.toml` holds now (over the built-in
//! defaults), with the command-line flags laid on top. Interactive questions offer them
//! as defaults; the non-interactive form takes them as the answers.

use std::collections::BTreeMap;

use toml_edit::{DocumentMut, Item};

use crate::Key;

/// What the gateway token will be unless the user says otherwise.
#[derive(Clone, PartialEq, Eq)]
pub enum TokenDefault {
    /// The one already in the file: kept on a re-run unless a new one is asked for.
    Existing(String),
    /// Given with `--token`.
    Given(String),
    /// None yet, or `--new-token`: one is generated.
    New,
}

/// A provider section as the file has it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderSection {
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub base_url: Option<String>,
}

/// The starting values.
#[derive(Clone)]
pub struct Current {
    /// A config file existed: this is a re-run.
    pub exists: bool,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// The `[providers.*]` sections of the file.
    pub providers: BTreeMap<String, ProviderSection>,
    /// Set by a flag: applies to whichever provider is chosen.
    pub key_override: Option<Key>,
    pub base_url_override: Option<String>,
    pub bind: String,
    pub port: u16,
    pub token: TokenDefault,
    pub telegram_token: Option<String>,
    pub discord_token: Option<String>,
    /// Set by a flag: a new bot token to write.
    pub telegram_override: Option<String>,
    pub discord_override: Option<String>,
    pub install_service: bool,
}

/// The answers that can be given on the command line.
#[derive(Debug, Default, Clone)]
pub struct Flags {
    pub provider: Option<String>,
    pub api_key: Option<String>,
    pub api_key_env: Option<String>,
    pub model: Option<String>,
    pub base_url: Option<String>,
    pub port: Option<u16>,
    pub bind: Option<String>,
    pub token: Option<String>,
    pub new_token: bool,
    pub telegram_token: Option<String>,
    pub discord_token: Option<String>,
    pub service: Option<bool>,
}

fn parse(text: &str, what: &str) -> Result<DocumentMut, String> {
    text.parse::<DocumentMut>().map_err(|e| {
        let line = e.span().map_or(1, |s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        format!("{what} line {line} is not valid TOML: {}\nFix it there, or move the file aside.", e.message().trim())
    })
}

fn lookup<'a>(item: &'a Item, path: &[&str]) -> Option<&'a Item> {
    path.iter().try_fold(item, |item, key| item.get(key))
}

fn text_at(item: &Item, path: &[&str]) -> Option<String> {
    lookup(item, path).and_then(Item::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

impl Current {
    /// Reads the current config text (`None` before the first setup) over the defaults.
    /// `file_name` names the file in errors.
    pub fn read(file: Option<&str>, defaults: &str, file_name: &str) -> Result<Current, String> {
        let defaults = parse(defaults, "the built-in defaults")?;
        let doc = file.map(|text| parse(text, file_name)).transpose()?;
        let file_item = doc.as_ref().map(|d| d.as_item());
        let get = |path: &[&str]| file_item.and_then(|f| lookup(f, path)).or_else(|| lookup(defaults.as_item(), path));
        let text = |path: &[&str]| get(path).and_then(Item::as_str).map(str::trim).filter(|s| !s.is_empty());

        let (provider, model) = match text(&["agent", "model"]).and_then(|m| m.split_once('/')) {
            Some((p, m)) => (Some(p.to_string()), Some(m.to_string())),
            None => (None, None),
        };
        let mut providers = BTreeMap::new();
        if let Some(table) = file_item.and_then(|f| f.get("providers")).and_then(Item::as_table_like) {
            for (name, section) in table.iter() {
                providers.insert(
                    name.to_string(),
                    ProviderSection {
                        api_key: text_at(section, &["api_key"]),
                        api_key_env: text_at(section, &["api_key_env"]),
                        base_url: text_at(section, &["base_url"]),
                    },
                );
            }
        }
        let port = get(&["gateway", "port"])
            .and_then(Item::as_integer)
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("[gateway] port in {file_name} is not a port number; correct it first."))?;
        Ok(Current {
            exists: file.is_some(),
            provider,
            model,
            providers,
            key_override: None,
            base_url_override: None,
            bind: text(&["gateway", "bind"]).unwrap_or("127.0.0.1").to_string(),
            port,
            token: text(&["gateway", "auth_token"]).map_or(TokenDefault::New, |t| TokenDefault::Existing(t.into())),
            telegram_token: text(&["channels", "telegram", "token"]).map(str::to_string),
            discord_token: text(&["channels", "discord", "token"]).map(str::to_string),
            telegram_override: None,
            discord_override: None,
            install_service: false,
        })
    }

    /// Lays the command-line answers over the file's values. `known` says whether a name
    /// is a provider the wizard offers, to tell `--model groq/llama-3` (provider `groq`)
    /// from a model id with a slash in it.
    pub fn with_flags(mut self, flags: &Flags, known: &dyn Fn(&str) -> bool) -> Current {
        let own = |name: &str, current: &Current| known(name) || current.providers.contains_key(name);
        match (&flags.provider, &flags.model) {
            (Some(p), model) => {
                if self.provider.as_deref() != Some(p.as_str()) {
                    self.model = None;
                }
                self.provider = Some(p.clone());
                if let Some(m) = model {
                    self.model = Some(m.clone());
                }
            }
            (None, Some(m)) => match m.split_once('/') {
                Some((p, rest)) if own(p, &self) || self.provider.is_none() => {
                    self.provider = Some(p.to_string());
                    self.model = Some(rest.to_string());
                }
                _ => self.model = Some(m.clone()),
            },
            (None, None) => {}
        }
        if let Some(key) = &flags.api_key {
            self.key_override = Some(Key::Value(key.clone()));
        } else if let Some(var) = &flags.api_key_env {
            self.key_override = Some(Key::Env(var.clone()));
        }
        if let Some(url) = &flags.base_url {
            self.base_url_override = Some(url.clone());
        }
        if let Some(port) = flags.port {
            self.port = port;
        }
        if let Some(bind) = &flags.bind {
            self.bind = bind.clone();
        }
        if let Some(token) = &flags.token {
            self.token = TokenDefault::Given(token.clone());
        } else if flags.new_token {
            self.token = TokenDefault::New;
        }
        self.telegram_override = flags.telegram_token.clone();
        self.discord_override = flags.discord_token.clone();
        if let Some(service) = flags.service {
            self.install_service = service;
        }
        self
    }

    /// The key the file (or a flag) gives for this provider.
    pub fn key_for(&self, provider: &str) -> Key {
        if let Some(key) = &self.key_override {
            return key.clone();
        }
        match self.providers.get(provider) {
            Some(ProviderSection { api_key: Some(key), .. }) => Key::Value(key.clone()),
            Some(ProviderSection { api_key_env: Some(var), .. }) => Key::Env(var.clone()),
            _ => Key::None,
        }
    }

    /// The address the file (or a flag) gives for this provider.
    pub fn base_url_for(&self, provider: &str) -> Option<String> {
        self.base_url_override.clone().or_else(|| self.providers.get(provider).and_then(|s| s.base_url.clone()))
    }

    /// The model to offer for this provider: the current one if it is the same provider.
    pub fn model_for(&self, provider: &str) -> Option<String> {
        self.model.clone().filter(|_| self.provider.as_deref() == Some(provider))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: &str = "[gateway]\nbind = \"127.0.0.1\"\nport = 18789\nauth_token = \"\"\n[agent]\nmodel = \"\"\n";

    #[test]
    fn reads_the_file_over_the_defaults() {
        let file = "[gateway]\nport = 9000\nauth_token = \"abcdefabcdefabcdef\"\n[agent]\nmodel = \"groq/llama-3\"\n\
                    [providers.groq]\napi_key_env = \"MY_GROQ\"\n[channels.telegram]\ntoken = \"123:abc\"\n";
        let c = Current::read(Some(file), DEFAULTS, "skynet.toml").unwrap();
        assert!(c.exists);
        assert_eq!((c.bind.as_str(), c.port), ("127.0.0.1", 9000));
        assert_eq!((c.provider.as_deref(), c.model.as_deref()), (Some("groq"), Some("llama-3")));
        assert_eq!(c.key_for("groq"), Key::Env("MY_GROQ".into()));
        assert_eq!(c.key_for("openai"), Key::None);
        assert!(c.token == TokenDefault::Existing("abcdefabcdefabcdef".into()));
        assert_eq!(c.telegram_token.as_deref(), Some("123:abc"));

        let fresh = Current::read(None, DEFAULTS, "skynet.toml").unwrap();
        assert!(!fresh.exists && fresh.token == TokenDefault::New && fresh.provider.is_none());
    }

    #[test]
    fn a_broken_file_is_reported_with_its_line() {
        let err = Current::read(Some("[gateway]\nport = = 1\n"), DEFAULTS, "/h/skynet.toml").err().unwrap();
        assert!(err.contains("/h/skynet.toml line 2"), "{err}");
    }

    #[test]
    fn flags_override_and_a_model_may_name_its_provider() {
        let file = "[agent]\nmodel = \"openai/gpt-4o\"\n";
        let c = Current::read(Some(file), DEFAULTS, "f").unwrap();
        let known = |n: &str| ["openai", "ollama", "openrouter"].contains(&n);
        let with = |flags: Flags| c.clone().with_flags(&flags, &known);

        let c2 = with(Flags { model: Some("ollama/llama3.2".into()), ..Flags::default() });
        assert_eq!((c2.provider.as_deref(), c2.model.as_deref()), (Some("ollama"), Some("llama3.2")));
        let c2 = with(Flags { model: Some("meta-llama/Llama-3".into()), ..Flags::default() });
        assert_eq!((c2.provider.as_deref(), c2.model.as_deref()), (Some("openai"), Some("meta-llama/Llama-3")));
        let c2 = with(Flags {
            provider: Some("openrouter".into()),
            model: Some("openrouter/auto".into()),
            ..Default::default()
        });
        assert_eq!((c2.provider.as_deref(), c2.model.as_deref()), (Some("openrouter"), Some("openrouter/auto")));
        let c2 = with(Flags { provider: Some("ollama".into()), ..Flags::default() });
        assert_eq!(c2.model_for("ollama"), None, "another provider's model is not carried over");
        let c2 = with(Flags { api_key: Some("k".into()), new_token: true, port: Some(1), ..Flags::default() });
        assert_eq!(c2.key_for("anything"), Key::Value("k".into()));
        assert!(c2.token == TokenDefault::New && c2.port == 1);
    }
}
