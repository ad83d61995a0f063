//! `skynet-gateway update`: self-update from the project's GitHub releases. The download is
//! verified against the release's `SHA256SUMS` and smoke-tested, the replaced binary is kept
//! as `skynet-gateway.bak` for `--rollback`, and the swap is one atomic rename. A source
//! checkout is updated with git and cargo instead, and a container by pulling its image.
//! Also the gateway's daily start-up check.

mod backup;
mod mode;
mod release;
mod startup;

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

use crate::config::Config;
use crate::home::Home;
use mode::{DOCKER_UPDATE, InstallMode};
use release::CURRENT;

pub use startup::spawn_startup_check;

#[derive(clap::Args)]
pub struct UpdateArgs {
    /// Only report the installed and the latest version
    #[arg(long, conflicts_with = "rollback")]
    check: bool,
    /// Go ahead without asking
    #[arg(long, short = 'y')]
    yes: bool,
    /// Put back the binary the last update replaced (kept as skynet-gateway.bak)
    #[arg(long)]
    rollback: bool,
}

pub fn run(args: UpdateArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("cannot find the path of the running skynet-gateway")?;
    let mode = InstallMode::detect(&exe);
    if args.rollback {
        return rollback(&exe, &mode, args.yes);
    }
    if !args.check {
        match &mode {
            InstallMode::Docker => {
                println!("{}", docker_advice("update"));
                return Ok(());
            }
            InstallMode::Source { repo } => return update_source(repo, args.yes),
            InstallMode::Binary => {}
        }
    }

    let home = Home::resolve()?;
    let cfg = Config::load_update(home.root())?;
    let rt =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the async runtime")?;
    let latest = rt.block_on(release::latest(&cfg))?;
    let version = latest.version().to_string();
    println!("Installed: skynet-gateway {CURRENT} at {}", exe.display());
    println!("Latest:    skynet-gateway {version} ({} releases, asset {})", cfg.repo, release::asset_name());
    if !release::is_newer(&version) {
        println!("skynet-gateway is up to date.");
        return Ok(());
    }
    if args.check {
        println!("An update is available: {}.", mode.how_to_update());
        return Ok(());
    }

    confirm(&format!("Replace skynet-gateway {CURRENT} at {} with {version}?", exe.display()), args.yes)?;
    rt.block_on(release::install(latest, &exe, &cfg.api_url))?;
    println!(
        "Updated to skynet-gateway {version}. The previous binary is kept as {}; `skynet-gateway update --rollback` puts it back.",
        backup::backup_path(&exe).display()
    );
    restart_after_update();
    Ok(())
}

fn rollback(exe: &Path, mode: &InstallMode, yes: bool) -> anyhow::Result<()> {
    match mode {
        InstallMode::Docker => {
            println!("{}", docker_advice("roll back"));
            return Ok(());
        }
        InstallMode::Source { repo } => bail!(
            "this skynet-gateway was built from the checkout at {repo}, which keeps no .bak.\nCheck out the version you want with git (`git -C {repo} checkout <tag>`) and run `cargo build --release --locked` there.",
            repo = repo.display()
        ),
        InstallMode::Binary => {}
    }
    let bak = backup::backup_path(exe);
    if !bak.is_file() {
        bail!(
            "there is no previous version to roll back to: {} does not exist.\n`skynet-gateway update` keeps the binary it replaces there. Nothing was changed.",
            bak.display()
        );
    }
    let Some(kept) = backup::version_of(&bak) else {
        bail!("{} does not run (`--version` failed), so it is not restored. Nothing was changed.", bak.display());
    };
    confirm(&format!("Replace skynet-gateway {CURRENT} at {} with the kept {kept}?", exe.display()), yes)?;
    backup::restore(exe).with_context(|| format!("cannot move {} to {}", bak.display(), exe.display()))?;
    println!("Rolled back to {kept}.");
    restart_after_update();
    Ok(())
}

fn update_source(repo: &Path, yes: bool) -> anyhow::Result<()> {
    let repo_arg = repo.display();
    println!("This skynet-gateway was built from the source checkout at {repo_arg}. Updating it runs:");
    println!("  git -C {repo_arg} pull --ff-only && cargo build --release --locked");
    confirm("Run these now?", yes)?;
    let pulled = Command::new("git").arg("-C").arg(repo).args(["pull", "--ff-only"]).status();
    if !pulled.as_ref().is_ok_and(|s| s.success()) {
        bail!(
            "`git pull --ff-only` failed{}: commit or stash local changes, or settle a diverged branch, then try again. Nothing was rebuilt.",
            pulled.err().map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    let built = Command::new("cargo").args(["build", "--release", "--locked"]).current_dir(repo).status();
    if !built.as_ref().is_ok_and(|s| s.success()) {
        bail!(
            "`cargo build --release --locked` failed{} (see above). The binaries built before are still in place.",
            built.err().map(|e| format!(" ({e})")).unwrap_or_default()
        );
    }
    println!("Built {}.", repo.join("target/release/skynet-gateway").display());
    restart_after_update();
    Ok(())
}

fn docker_advice(what: &str) -> String {
    format!(
        "This gateway runs in Docker: {what} the image, not the binary inside it. Nothing was changed.\n\
         Where your docker-compose.yml is (packaging/ in the Skynet repository), run:\n  {DOCKER_UPDATE}{}",
        if what == "update" { "" } else { "\nafter setting the image tag you want in docker-compose.yml." }
    )
}

/// Asks a yes/no question on the terminal; `--yes` answers it. Without a terminal (a
/// script, a service) it refuses rather than wait for an answer that never comes.
fn confirm(question: &str, yes: bool) -> anyhow::Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!(
            "not going ahead without confirmation: standard input is not a terminal, so nobody can answer.\nRe-run with --yes to go ahead without asking."
        );
    }
    print!("{question} [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        bail!("cancelled. Nothing was changed.")
    }
}

/// Says how to start the new version: through the service manager when this runs under
/// one (systemd sets INVOCATION_ID, launchd XPC_SERVICE_NAME), else by a plain restart.
pub fn restart_after_update() {
    match crate::service::restart_if_installed() {
        Ok(true) => println!("The Skynet service was restarted and runs the new version."),
        Ok(false) => println!("Restart the gateway to use the new version."),
        Err(e) => println!("The service could not be restarted ({e:#}); run `skynet-gateway service restart`."),
    }
}
