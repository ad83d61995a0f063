//! `skynet-gateway`: the command line. Parses arguments, then calls into the modules.

mod agent;
mod channels;
mod config;
mod doctor;
mod fsutil;
mod gateway;
mod health;
mod home;
mod logging;
mod memory;
mod plugins;
mod service;
mod setup;
mod store;
mod terminal;
mod update;
mod users;

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use config::{Config, LogFormat, Overrides};
use home::Home;

#[derive(Parser)]
#[command(
    name = "skynet-gateway",
    version,
    about = "Skynet: a self-hosted AI gateway that connects language models to the places you chat",
    after_help = "Without a command, runs the gateway in the foreground (same as `skynet-gateway run`).\n\
                  Everything lives in ~/.skynet, or in $SKYNET_HOME when set."
)]
struct Cli {
    /// Log format [default: from [log] format in skynet.toml, else human]
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormat>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway in the foreground
    Run(RunArgs),
    /// Check the configuration, home directory and database, and say what to fix
    Doctor,
    /// Run Skynet as a background service (systemd user unit, or launchd agent on macOS)
    Service {
        #[command(subcommand)]
        action: service::Action,
        /// A system-wide service (needs root) instead of one for your user
        #[arg(long, global = true)]
        system: bool,
        /// With `install`: print the unit/plist and where it would go; change nothing
        #[arg(long, global = true)]
        dry_run: bool,
    },
    /// Manage users, roles and linked channel identities
    User {
        #[command(subcommand)]
        cmd: users::cli::UserCmd,
    },
    /// Exit 0 if the gateway on the configured port answers /health (for container health checks)
    Health {
        /// Ask this URL instead of http://127.0.0.1:<[gateway] port>/health
        #[arg(long)]
        url: Option<String>,
    },
    /// Choose the model provider, key, model, address and tokens (asks, or takes flags)
    Setup(setup::SetupArgs),
    /// Update to the latest release (--check only reports, --rollback undoes the last update)
    Update(update::UpdateArgs),
    /// Show tool usage (calls, errors, durations) and the hot knowledge topics
    Stats {
        /// Machine-readable JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Default)]
struct RunArgs {
    /// Port to listen on (overrides [gateway] port and SKYNET_GATEWAY__PORT; 0 picks a free one)
    #[arg(long)]
    port: Option<u16>,
    /// Address to listen on (overrides [gateway] bind and SKYNET_GATEWAY__BIND)
    #[arg(long)]
    bind: Option<String>,
}

fn main() -> ExitCode {
    agent::providers::init_tls();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Run(RunArgs::default())) {
        Command::Run(args) => run(args, cli.log_format),
        Command::Doctor => return doctor::run(),
        Command::Service { action, system, dry_run } => service::run(action, system, dry_run),
        Command::Health { url } => health::run(url.as_deref()),
        Command::User { cmd } => users::cli::run(cmd),
        Command::Setup(args) => setup::run(args).map(|()| ExitCode::SUCCESS),
        Command::Update(args) => update::run(args).map(|()| ExitCode::SUCCESS),
        Command::Stats { json } => memory::stats::run(json),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(args: RunArgs, log_format: Option<LogFormat>) -> anyhow::Result<ExitCode> {
    let home = Home::resolve()?;
    if setup::wanted_on_first_start(&home) && setup::first_start(&home)? {
        return Ok(ExitCode::SUCCESS);
    }
    let prepared = home.prepare()?;
    let config = Config::load(home.root(), &Overrides { bind: args.bind, port: args.port })?;
    logging::init(&config.log, log_format);
    if !prepared.written.is_empty() {
        tracing::info!(home = %home.root().display(), files = ?prepared.written, "wrote default files");
    }
    let store = store::Store::open(&home.db_path())?;

    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    let show_token = prepared.generated_config || std::io::stdout().is_terminal();
    let token = config.gateway.auth_token.clone();
    let config_path = home.config_path();
    let gw = gateway::Gateway::new(config, home, store);
    runtime.block_on(gateway::run(gw, |addr: SocketAddr| {
        let token_line = if show_token {
            token.expose().to_string()
        } else {
            format!("[gateway] auth_token in {}", config_path.display())
        };
        // Written, not println!: a closed stdout (a service, a finished pipe) must not
        // stop the gateway.
        let banner = format!(
            "skynet-gateway listening on http://{addr}\n  WebSocket:  ws://{addr}/  (OpenClaw gateway protocol v3 and v4)\n  Auth token: {token_line}\n  Health:     http://{addr}/health\n"
        );
        let mut out = std::io::stdout();
        let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    }))?;
    Ok(ExitCode::SUCCESS)
}
