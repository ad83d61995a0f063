//! The non-interactive form: the starting values (file, defaults, flags) are the answers.
//! Anything required but missing, or refused by the provider check, is an error that
//! says which flag to give.

use std::net::IpAddr;

use crate::current::TokenDefault;
use crate::{Answers, Error, Key, Wizard, generate_token};

impl Wizard<'_> {
    /// Settles the answers without asking; checks the provider unless told not to.
    pub fn resolve(&self) -> Result<Answers, Error> {
        let c = &self.current;
        let invalid = |m: String| Error::Invalid(m);
        let provider = c.provider.clone().ok_or_else(|| {
            invalid(format!(
                "no provider chosen yet: pass --provider NAME (one of {}), or --model PROVIDER/MODEL.",
                self.names()
            ))
        })?;
        check_name(&provider).map_err(invalid)?;
        let base_url = c.base_url_for(&provider);
        match (self.choice(&provider), &base_url) {
            (None, None) => {
                return Err(invalid(format!(
                    "`{provider}` is not a provider Skynet knows. For a server of your own that speaks the \
                     OpenAI API, pass its address with --base-url http://HOST:PORT/v1; known providers: {}.",
                    self.names()
                )));
            }
            (Some(choice), None) if choice.base_url_placeholder => {
                return Err(invalid(format!(
                    "{} needs the address of your own account or resource: pass --base-url {} with your \
                     value in place of the capitals.",
                    choice.label, choice.base_url
                )));
            }
            (_, Some(url)) => check_url(url).map_err(invalid)?,
            _ => {}
        }
        let model = c
            .model_for(&provider)
            .or_else(|| self.choice(&provider).map(|ch| ch.default_model.clone()).filter(|m| !m.is_empty()))
            .ok_or_else(|| {
                invalid(format!(
                    "name the model to use with --model (as {provider} calls it, e.g. what its model list shows)."
                ))
            })?;
        check_model(&model).map_err(invalid)?;
        check_port(&c.port.to_string()).map_err(|e| invalid(format!("--port: {e}")))?;
        check_bind(&c.bind).map_err(|e| invalid(format!("--bind: {e}")))?;
        let (auth_token, token_generated) = match &c.token {
            TokenDefault::Existing(t) => (t.clone(), false),
            TokenDefault::Given(t) => {
                check_token(t).map_err(|e| invalid(format!("--token: {e}")))?;
                (t.clone(), false)
            }
            TokenDefault::New => (generate_token().map_err(invalid)?, true),
        };
        let answers = Answers {
            key: c.key_for(&provider),
            provider,
            base_url,
            model,
            bind: c.bind.clone(),
            port: c.port,
            auth_token,
            token_generated,
            telegram_token: c.telegram_override.clone(),
            discord_token: c.discord_override.clone(),
            install_service: c.install_service,
            unchecked: self.validate.is_none(),
        };
        if let Some(validate) = self.validate {
            if let (Key::None, Some(choice)) = (&answers.key, self.choice(&answers.provider))
                && choice.key_required
                && std::env::var(&choice.key_env).map_or(true, |v| v.trim().is_empty())
            {
                return Err(invalid(format!(
                    "{} needs an API key: pass --api-key KEY (stored in skynet.toml, mode 0600) or \
                     --api-key-env VAR (read when the gateway starts), or set {} before running setup.",
                    choice.label, choice.key_env
                )));
            }
            validate(&answers).map_err(|e| {
                invalid(format!(
                    "the provider check failed: {e}\nNothing was written. Correct the answer, or pass \
                     --skip-validation to write it anyway."
                ))
            })?;
        }
        Ok(answers)
    }

    fn names(&self) -> String {
        self.choices.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
    }
}

/// A provider name as it may appear in `[providers.<name>]` and `<name>/<model>`.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(format!("{name:?}: use lowercase letters, digits, - and _ (e.g. my-server)")) }
}

pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !url.contains(char::is_whitespace) => Ok(()),
        _ => Err(format!("{url:?} is not an address: use one such as http://127.0.0.1:8080/v1")),
    }
}

pub(crate) fn check_model(model: &str) -> Result<(), String> {
    if model.is_empty() || model.contains(char::is_whitespace) {
        return Err("name one model, without spaces".into());
    }
    Ok(())
}

pub(crate) fn check_port(port: &str) -> Result<(), String> {
    match port.trim().parse::<u16>() {
        Ok(0) => Err("0 would pick a different free port on every start; choose a fixed one, e.g. 18789".into()),
        Ok(_) => Ok(()),
        Err(_) => Err(format!("{port:?} is not a port number (1 to 65535)")),
    }
}

pub(crate) fn check_bind(bind: &str) -> Result<(), String> {
    bind.trim().parse::<IpAddr>().map(|_| ()).map_err(|_| {
        format!("{bind:?} is not an IP address: use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    })
}

pub(crate) fn check_token(token: &str) -> Result<(), String> {
    if token.len() < 16 || token.contains(char::is_whitespace) {
        return Err("use at least 16 characters without spaces, e.g. the output of `openssl rand -hex 32`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::testing::choices;
    use crate::{Current, Flags};

    const DEFAULTS: &str = "[gateway]\nbind = \"127.0.0.1\"\nport = 18789\nauth_token = \"\"\n[agent]\nmodel = \"\"\n";

    fn wizard<'a>(choices: &'a [crate::Choice], file: Option<&str>, flags: Flags) -> Wizard<'a> {
        let current = Current::read(file, DEFAULTS, "skynet.toml").unwrap();
        let known = |n: &str| choices.iter().any(|c| c.name == n);
        Wizard { choices, current: current.with_flags(&flags, &known), validate: None, config_path: "x".into() }
    }

    #[test]
    fn ollama_needs_nothing_but_its_name() {
        let choices = choices();
        let flags = Flags { provider: Some("ollama".into()), service: Some(false), ..Flags::default() };
        let a = wizard(&choices, None, flags).resolve().unwrap();
        assert_eq!(a.model_ref(), "ollama/llama3.2");
        assert_eq!((a.key.clone(), a.base_url.clone(), a.port), (Key::None, None, 18789));
        assert!(a.token_generated && a.auth_token.len() == 64 && !a.install_service && a.unchecked);
    }

    #[test]
    fn missing_answers_are_errors_that_name_the_flag() {
        let choices = choices();
        let err = |flags: Flags| wizard(&choices, None, flags).resolve().err().unwrap().to_string();
        assert!(err(Flags::default()).contains("--provider"));
        assert!(err(Flags { provider: Some("mybox".into()), ..Default::default() }).contains("--base-url"));
        assert!(err(Flags { provider: Some("azure".into()), ..Default::default() }).contains("YOUR-RESOURCE"));
        let custom =
            Flags { provider: Some("mybox".into()), base_url: Some("http://h:1/v1".into()), ..Default::default() };
        assert!(err(custom).contains("--model"));
        assert!(err(Flags { provider: Some("ollama".into()), port: Some(0), ..Default::default() }).contains("--port"));
        let bad_token = Flags { provider: Some("ollama".into()), token: Some("short".into()), ..Default::default() };
        assert!(err(bad_token).contains("--token"));
    }

    #[test]
    fn a_rerun_keeps_the_token_and_key_and_a_failed_check_stops_it() {
        let choices = choices();
        let file = "[gateway]\nauth_token = \"existing-token-123456\"\n[agent]\nmodel = \"anthropic/claude-old\"\n\
                    [providers.anthropic]\napi_key = \"sk-ant-kept\"\n";
        let flags = Flags { model: Some("claude-new".into()), ..Flags::default() };
        let mut w = wizard(&choices, Some(file), flags);
        let seen = RefCell::new(Vec::new());
        let check = |a: &Answers| {
            seen.borrow_mut().push(a.model_ref());
            if a.key == Key::Value("sk-ant-kept".into()) { Ok(()) } else { Err("HTTP 401".to_string()) }
        };
        w.validate = Some(&check);
        let a = w.resolve().unwrap();
        assert_eq!((a.model_ref().as_str(), a.auth_token.as_str()), ("anthropic/claude-new", "existing-token-123456"));
        assert!(!a.token_generated && !a.unchecked);
        assert_eq!(*seen.borrow(), ["anthropic/claude-new"]);

        w.current.key_override = Some(Key::Value("sk-ant-bad".into()));
        let err = w.resolve().err().unwrap().to_string();
        assert!(err.contains("HTTP 401") && err.contains("--skip-validation"), "{err}");
    }
}
