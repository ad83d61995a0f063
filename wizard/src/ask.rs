//! The interactive wizard: one question at a time, the current value offered for Enter,
//! every answer checked as it is given, and the provider tried before moving on.

use std::io;

use crate::current::TokenDefault;
use crate::resolve::{check_bind, check_model, check_name, check_port, check_token, check_url};
use crate::{Answers, Choice, Error, Key, Prompter, Wizard, env_name, generate_token};

/// The provider picked on the first screens, with what the later questions need.
struct Picked {
    name: String,
    label: String,
    key_env: String,
    key_required: bool,
    default_model: String,
    /// The preset's address; `None` for a server of the user's own.
    preset_url: Option<String>,
    placeholder: bool,
    ask_url: bool,
    own_login: bool,
}

impl Picked {
    fn of(c: &Choice) -> Picked {
        Picked {
            name: c.name.clone(),
            label: c.label.clone(),
            key_env: c.key_env.clone(),
            key_required: c.key_required,
            default_model: c.default_model.clone(),
            preset_url: Some(c.base_url.clone()),
            placeholder: c.base_url_placeholder,
            ask_url: c.local || c.base_url_placeholder,
            own_login: c.own_login,
        }
    }
}

/// The answers of a provider round that failed its check, offered again next round.
#[derive(Default)]
struct Last {
    provider: Option<String>,
    base_url: Option<String>,
    model: Option<String>,
}

const OWN_SERVER: &str = "Your own server (any OpenAI-compatible address)";

impl Wizard<'_> {
    /// Asks every question; returns the answers once the user agreed to write them.
    pub fn ask(&self, p: &mut dyn Prompter) -> Result<Answers, Error> {
        let c = &self.current;
        p.say(if c.exists {
            "Skynet setup: change what you like; Enter keeps the value shown."
        } else {
            "Welcome to Skynet. A few questions and the gateway is ready; Enter takes the value shown."
        });
        let mut last = Last { provider: c.provider.clone(), ..Last::default() };
        let (picked, key, base_url, model, unchecked) = loop {
            let picked = self.ask_provider(p, last.provider.as_deref())?;
            let base_url = self.ask_base_url(p, &picked, &last)?;
            let key = self.ask_key(p, &picked)?;
            let default_model = last
                .model
                .clone()
                .filter(|_| last.provider.as_deref() == Some(picked.name.as_str()))
                .or_else(|| c.model_for(&picked.name))
                .or_else(|| Some(picked.default_model.clone()).filter(|m| !m.is_empty()));
            if default_model.is_none() {
                p.say(&format!("Name the model as {} knows it (for Ollama: what `ollama list` shows).", picked.label));
            }
            let model = p.input("Model", default_model.as_deref(), &check_model)?;
            let Some(validate) = self.validate else { break (picked, key, base_url, model, true) };
            let trial = self.answers(&picked.name, key.clone(), base_url.clone(), model.clone());
            p.say(&format!("Checking {} with these settings...", picked.label));
            match validate(&trial) {
                Ok(()) => {
                    p.say(&format!("OK: {} answered and offers {}.", picked.label, model));
                    break (picked, key, base_url, model, false);
                }
                Err(e) => {
                    p.say(&format!("The check failed: {e}"));
                    let items = ["Enter the provider, key and model again".to_string(), "Keep them anyway".to_string()];
                    if p.select("What now?", &items, 0)? == 1
                        && p.confirm("Skynet cannot answer chats until this works. Keep these settings anyway?", false)?
                    {
                        break (picked, key, base_url, model, true);
                    }
                    last = Last { provider: Some(picked.name), base_url, model: Some(model) };
                }
            }
        };

        let port = p.input("Gateway port", Some(&c.port.to_string()), &check_port)?;
        let bind = p.input(
            "Listen address (127.0.0.1: this machine only; 0.0.0.0: every interface)",
            Some(&c.bind),
            &check_bind,
        )?;
        if bind.parse::<std::net::IpAddr>().is_ok_and(|ip| !ip.is_loopback()) {
            p.say("Other machines can reach the gateway then: keep the auth token secret and put TLS in front of it.");
        }
        let (auth_token, token_generated) = match &c.token {
            TokenDefault::Existing(t)
                if p.confirm("Keep the current gateway auth token (clients set up with it keep working)?", true)? =>
            {
                (t.clone(), false)
            }
            TokenDefault::Given(t) => {
                check_token(t).map_err(|e| Error::Invalid(format!("--token: {e}")))?;
                (t.clone(), false)
            }
            _ => (generate_token().map_err(Error::Invalid)?, true),
        };
        let telegram = bot_token(p, "Telegram", "from @BotFather", &c.telegram_token, &c.telegram_override)?;
        let discord = bot_token(p, "Discord", "Developer Portal, Bot tab", &c.discord_token, &c.discord_override)?;
        let install_service =
            p.confirm("Install Skynet as a background service that starts at login?", c.install_service)?;

        let mut answers = self.answers(&picked.name, key, base_url, model);
        answers.port = port.parse().map_err(|_| Error::Invalid(format!("{port:?} is not a port")))?;
        answers.bind = bind;
        answers.auth_token = auth_token;
        answers.token_generated = token_generated;
        answers.telegram_token = telegram;
        answers.discord_token = discord;
        answers.install_service = install_service;
        answers.unchecked = unchecked;
        p.say("\nSummary:");
        for line in answers.summary() {
            p.say(&format!("  {line}"));
        }
        if !p.confirm(&format!("Write these settings to {}?", self.config_path), true)? {
            return Err(Error::Cancelled);
        }
        Ok(answers)
    }

    /// Answers for the provider part, the rest from the starting values (for the check).
    fn answers(&self, provider: &str, key: Key, base_url: Option<String>, model: String) -> Answers {
        let c = &self.current;
        Answers {
            provider: provider.to_string(),
            key,
            base_url,
            model,
            bind: c.bind.clone(),
            port: c.port,
            auth_token: String::new(),
            token_generated: false,
            telegram_token: None,
            discord_token: None,
            install_service: false,
            unchecked: false,
        }
    }

    fn ask_provider(&self, p: &mut dyn Prompter, current: Option<&str>) -> io::Result<Picked> {
        let featured: Vec<&Choice> = self.choices.iter().filter(|c| c.featured).collect();
        let others: Vec<&Choice> = self.choices.iter().filter(|c| !c.featured).collect();
        let mut items: Vec<String> = featured.iter().map(|c| c.label.clone()).collect();
        items.push("Another service (Groq, OpenRouter, Mistral, Gemini, ... or your own server)".into());
        let default = current.map_or(0, |name| featured.iter().position(|c| c.name == name).unwrap_or(featured.len()));
        let i = p.select("Which model provider?", &items, default)?;
        if let Some(choice) = featured.get(i) {
            return Ok(Picked::of(choice));
        }
        let mut items: Vec<String> = others.iter().map(|c| c.label.clone()).collect();
        items.push(OWN_SERVER.into());
        let default = current.map_or(0, |name| others.iter().position(|c| c.name == name).unwrap_or(others.len()));
        let i = p.select("Which service?", &items, default)?;
        if let Some(choice) = others.get(i) {
            return Ok(Picked::of(choice));
        }
        let custom = current.filter(|name| self.choice(name).is_none()).unwrap_or("my-server");
        let known = |name: &str| match check_name(name) {
            Ok(()) if self.choice(name).is_some() => Err(format!("{name} is a known service; pick it from the list")),
            other => other,
        };
        let name = p.input("A short name for it (used in model names, e.g. my-server/llama3)", Some(custom), &known)?;
        Ok(Picked {
            label: name.clone(),
            key_env: env_name(&name),
            name,
            key_required: false,
            default_model: String::new(),
            preset_url: None,
            placeholder: false,
            ask_url: true,
            own_login: false,
        })
    }

    /// Asked for servers of one's own, local ones, placeholders, and when the file has one.
    fn ask_base_url(&self, p: &mut dyn Prompter, picked: &Picked, last: &Last) -> io::Result<Option<String>> {
        let current = last
            .base_url
            .clone()
            .filter(|_| last.provider.as_deref() == Some(picked.name.as_str()))
            .or_else(|| self.current.base_url_for(&picked.name));
        if !picked.ask_url && current.is_none() {
            return Ok(None);
        }
        let default = current.or_else(|| picked.preset_url.clone().filter(|_| !picked.placeholder));
        if picked.placeholder {
            let example = picked.preset_url.as_deref().unwrap_or_default();
            p.say(&format!(
                "{} needs your own address, like {example} with your value in place of the capitals.",
                picked.label
            ));
        }
        let placeholder = picked.preset_url.clone().filter(|_| picked.placeholder);
        let check = |url: &str| match &placeholder {
            Some(example) if url == example => Err("put your own value in place of the capitals".to_string()),
            _ => check_url(url),
        };
        let url = p.input(&format!("Address of the {} API", picked.label), default.as_deref(), &check)?;
        // The preset's own address needs no line in the file.
        Ok(Some(url).filter(|u| picked.preset_url.as_deref() != Some(u.as_str())))
    }

    fn ask_key(&self, p: &mut dyn Prompter, picked: &Picked) -> io::Result<Key> {
        if picked.own_login {
            p.say(&format!(
                "{} uses its own sign-in: run `claude auth login` as the user the gateway runs as \
                 (or set {} for the gateway). No key is stored here.",
                picked.label, picked.key_env
            ));
            return Ok(self.current.key_for(&picked.name));
        }
        enum Way {
            Keep(Key),
            None,
            Type,
            Env,
        }
        let mut ways: Vec<(String, Way)> = Vec::new();
        match self.current.key_for(&picked.name) {
            Key::None => {}
            key @ Key::Value(_) => ways.push(("Keep the current key".into(), Way::Keep(key))),
            Key::Env(var) => {
                ways.push((format!("Keep reading it from the environment variable {var}"), Way::Keep(Key::Env(var))))
            }
        }
        if !picked.key_required {
            ways.push(("No key (the server does not ask for one)".into(), Way::None));
        }
        let env_set = std::env::var(&picked.key_env).is_ok_and(|v| !v.trim().is_empty());
        ways.push(("Type or paste it now (hidden; stored in skynet.toml, readable only by you)".into(), Way::Type));
        let where_set = if env_set { "set in this shell" } else { "not set in this shell" };
        ways.push((format!("Read it from the environment variable {} ({where_set})", picked.key_env), Way::Env));
        let default = if env_set && ways.len() == 2 { 1 } else { 0 };
        let items: Vec<String> = ways.iter().map(|(label, _)| label.clone()).collect();
        let prompt = format!("{} API key{}", picked.label, if picked.key_required { "" } else { " (optional)" });
        let i = p.select(&prompt, &items, default)?;
        Ok(match &ways[i].1 {
            Way::Keep(key) => key.clone(),
            Way::None => Key::None,
            Way::Type => Key::Value(p.password("API key (input hidden)", false)?),
            Way::Env => Key::Env(picked.key_env.clone()),
        })
    }
}

/// Asks whether to add or change a bot token; `None` leaves the file's value.
fn bot_token(
    p: &mut dyn Prompter,
    channel: &str,
    from: &str,
    current: &Option<String>,
    given: &Option<String>,
) -> io::Result<Option<String>> {
    if given.is_some() {
        return Ok(given.clone());
    }
    let question = if current.is_some() {
        format!("Change the {channel} bot token?")
    } else {
        format!("Add a {channel} bot token? (kept ready: the {channel} channel arrives in a later release)")
    };
    if !p.confirm(&question, false)? {
        return Ok(None);
    }
    Ok(Some(p.password(&format!("{channel} bot token ({from}; hidden)"), false)?))
}
