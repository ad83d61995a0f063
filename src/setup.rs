//! `skynet-gateway setup`: the glue between the `skynet-wizard` crate and the gateway.
//! It offers the registry's providers, checks the chosen one by asking for its model
//! list, writes `skynet.toml` (validated, atomically, mode 0600) and completes the home
//! directory (workspace prompts, knowledge, database) without touching data already there.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{Context, anyhow};
use skynet_wizard::{Answers, Choice, Current, Flags, Terminal, Validate, Wizard};

use crate::agent::providers::registry::Kind;
use crate::agent::providers::{self, ProviderError};
use crate::config::{Config, DEFAULT_TOML, ProviderConfig};
use crate::home::Home;

/// How long the provider check waits for the model list.
const CHECK_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(clap::Args, Debug, Default)]
pub struct SetupArgs {
    /// Ask nothing: take the answers from these flags, else the current skynet.toml, else the
    /// defaults (automatic when stdin is not a terminal)
    #[arg(long)]
    non_interactive: bool,
    /// Model provider: anthropic, openai, ollama, groq, openrouter, ... or a name of your own
    /// with --base-url (required on a first setup unless --model names it)
    #[arg(long, value_name = "NAME")]
    provider: Option<String>,
    /// The provider's API key, stored in skynet.toml (mode 0600)
    #[arg(long, value_name = "KEY", conflicts_with = "api_key_env")]
    api_key: Option<String>,
    /// Read the API key from this environment variable instead of storing it
    #[arg(long, value_name = "VAR")]
    api_key_env: Option<String>,
    /// Model, as the provider names it, or PROVIDER/MODEL [default: the provider's usual one]
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// The provider's address (servers of your own, Ollama elsewhere, Azure, proxies)
    #[arg(long, value_name = "URL")]
    base_url: Option<String>,
    /// Gateway port
    #[arg(long)]
    port: Option<u16>,
    /// Gateway listen address (127.0.0.1: this machine only; 0.0.0.0: every interface)
    #[arg(long, value_name = "ADDR")]
    bind: Option<String>,
    /// Gateway auth token [default: keep the current one, or generate one]
    #[arg(long, value_name = "TOKEN", conflicts_with = "new_token")]
    token: Option<String>,
    /// Replace the gateway auth token with a newly generated one
    #[arg(long)]
    new_token: bool,
    /// Telegram bot token (from @BotFather)
    #[arg(long, value_name = "TOKEN")]
    telegram_token: Option<String>,
    /// Discord bot token (Developer Portal, Bot tab)
    #[arg(long, value_name = "TOKEN")]
    discord_token: Option<String>,
    /// Install the background service
    #[arg(long, conflicts_with = "no_service")]
    service: bool,
    /// Do not install the background service
    #[arg(long)]
    no_service: bool,
    /// Write the provider settings even if the provider cannot be reached or refuses them
    #[arg(long)]
    skip_validation: bool,
}

impl SetupArgs {
    fn flags(&self) -> Flags {
        Flags {
            provider: self.provider.clone(),
            api_key: self.api_key.clone(),
            api_key_env: self.api_key_env.clone(),
            model: self.model.clone(),
            base_url: self.base_url.clone(),
            port: self.port,
            bind: self.bind.clone(),
            token: self.token.clone(),
            new_token: self.new_token,
            telegram_token: self.telegram_token.clone(),
            discord_token: self.discord_token.clone(),
            service: (self.service || self.no_service).then_some(self.service),
        }
    }
}

/// `skynet-gateway setup`.
pub fn run(args: SetupArgs) -> anyhow::Result<()> {
    let home = Home::resolve()?;
    let interactive = !args.non_interactive && std::io::stdin().is_terminal();
    let answers = setup(&home, &args, interactive)?;
    if after_setup(&answers) {
        return Ok(());
    }
    println!(
        "Start the gateway with `skynet-gateway run` (restart one that is running; a model change alone \
         also applies with `kill -HUP <pid>`). Run `skynet-gateway setup` again to change any of this."
    );
    Ok(())
}

/// Whether `run` should ask the setup questions first: nothing is configured yet and a
/// person sits at a terminal.
pub fn wanted_on_first_start(home: &Home) -> bool {
    !home.config_path().exists() && std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// The wizard on the first interactive start, before the gateway starts. `true` when the
/// gateway now runs as a service, so this process must not start a second one.
pub fn first_start(home: &Home) -> anyhow::Result<bool> {
    let answers = setup(home, &SetupArgs::default(), true)?;
    if after_setup(&answers) {
        println!("Skynet now runs in the background; this terminal is free.");
        return Ok(true);
    }
    println!("Starting the gateway...\n");
    Ok(false)
}

/// What comes after the settings are written: the background service, when asked for.
/// `true` when it was installed and started.
pub fn after_setup(answers: &Answers) -> bool {
    if !answers.install_service {
        return false;
    }
    match crate::service::run(crate::service::Action::Install, false, false) {
        Ok(_) => true,
        Err(e) => {
            println!(
                "The background service could not be installed: {e:#}\nRun `skynet-gateway service install` once that is fixed."
            );
            false
        }
    }
}

fn setup(home: &Home, args: &SetupArgs, interactive: bool) -> anyhow::Result<Answers> {
    let path = home.config_path();
    let shown = path.display().to_string();
    let existing = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {shown}; check its permissions")),
    };
    let base = existing.clone().unwrap_or_else(|| DEFAULT_TOML.to_string());
    let choices = choices();
    let known = |name: &str| choices.iter().any(|c| c.name == name);
    let current = Current::read(existing.as_deref(), DEFAULT_TOML, &shown).map_err(|e| anyhow!(e))?;
    let check = |a: &Answers| check_provider(&base, a);
    let wizard = Wizard {
        choices: &choices,
        current: current.with_flags(&args.flags(), &known),
        validate: (!args.skip_validation).then_some(&check as Validate),
        config_path: shown.clone(),
    };
    let answers = if interactive { wizard.ask(&mut Terminal::new()) } else { wizard.resolve() }?;

    let text = skynet_wizard::apply(&base, &answers).map_err(|e| anyhow!(e))?;
    crate::fsutil::create_private_dir(home.root())
        .with_context(|| format!("cannot create {}; set SKYNET_HOME to a writable directory", home.root().display()))?;
    Config::write_file(home.root(), &text)?;
    home.prepare()?;
    crate::store::Store::open(&home.db_path())?;

    println!("Saved {shown} (readable only by you).");
    if !interactive {
        for line in answers.summary() {
            println!("  {line}");
        }
    }
    if answers.token_generated {
        println!("Gateway auth token (clients connect with it): {}", answers.auth_token);
    }
    if answers.unchecked {
        println!("The provider settings are not confirmed to work; `skynet-gateway doctor` checks them again.");
    }
    println!("Home ready in {}: workspace prompts, knowledge and database.", home.root().display());
    Ok(answers)
}

/// The registry's presets as the wizard offers them.
fn choices() -> Vec<Choice> {
    providers::presets()
        .iter()
        .map(|p| Choice {
            name: p.name.into(),
            label: p.title.into(),
            key_env: p.key_env.into(),
            key_required: p.key_required,
            default_model: p.default_model.into(),
            base_url: p.base_url.into(),
            base_url_placeholder: p.needs_base_url,
            local: p.base_url.contains("://localhost") || p.base_url.contains("://127.0.0.1"),
            featured: matches!(p.name, "anthropic" | "openai" | "ollama" | "claude-cli"),
            own_login: p.kind == Kind::ClaudeCli,
        })
        .collect()
}

/// Builds the provider exactly as the written config would, and asks for its model list:
/// that proves the address and the key. Says plainly what failed.
fn check_provider(base: &str, a: &Answers) -> Result<(), String> {
    let text = skynet_wizard::apply(base, a)?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.message().to_string())?;
    let mut cfg = match table.get("providers").and_then(|p| p.get(&a.provider)) {
        Some(section) => section
            .clone()
            .try_into::<ProviderConfig>()
            .map_err(|e| format!("[providers.{}] in skynet.toml: {}", a.provider, e.message()))?,
        None => ProviderConfig::default(),
    };
    cfg.timeout_secs = Some(CHECK_TIMEOUT.as_secs());
    let provider = providers::build(&a.provider, Some(&cfg), &|var| std::env::var(var).ok())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the check: {e}"))?;
    let listed = runtime.block_on(async { tokio::time::timeout(CHECK_TIMEOUT, provider.list_models()).await });
    let models = match listed {
        Ok(Ok(models)) => models,
        Ok(Err(e)) => return Err(explain(e)),
        Err(_) => {
            return Err(format!(
                "{} did not answer within {CHECK_TIMEOUT:?}; check the address and the network",
                a.provider
            ));
        }
    };
    // Ollama lists `llama3.2:latest` and answers to `llama3.2` as well.
    let known = |m: &String| *m == a.model || *m == format!("{}:latest", a.model);
    if models.is_empty() || models.iter().any(known) {
        return Ok(());
    }
    let some: Vec<&str> = models.iter().take(10).map(String::as_str).collect();
    Err(format!(
        "{} answered, but does not offer the model {:?}. It offers {} models, e.g. {}.",
        a.provider,
        a.model,
        models.len(),
        some.join(", ")
    ))
}

fn explain(e: ProviderError) -> String {
    match e {
        ProviderError::Http { provider, status: status @ (401 | 403), message, .. } => format!(
            "{provider} refused the API key (HTTP {status}: {message}). Check the key, and that it is one for {provider}."
        ),
        ProviderError::Http { provider, status: 404, .. } => {
            format!("{provider} answered, but there is no model list at that address (HTTP 404). Check the address.")
        }
        ProviderError::Network { provider, message } => format!("cannot reach {provider}: {message}"),
        other => other.to_string(),
    }
}
