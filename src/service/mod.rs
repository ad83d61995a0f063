//! `skynet-gateway service install|uninstall|start|stop|restart|status`: the gateway as a
//! background service through service-manager — a systemd user unit on Linux (a system
//! unit with `--system`), a launchd agent on macOS (a daemon with `--system`). The unit
//! or plist comes from the templates in `packaging/`; `install --dry-run` prints it.

mod render;

use std::io;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::{Context, bail};
use service_manager::{
    LaunchdServiceManager, RestartPolicy, ServiceInstallCtx, ServiceLabel, ServiceManager, ServiceStartCtx,
    ServiceStatus, ServiceStatusCtx, ServiceStopCtx, ServiceUninstallCtx, SystemdServiceManager,
};

use crate::home::Home;
pub use render::{Kind, LABEL, Target, definition_path, render};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
pub enum Action {
    /// Install and start the service (it then starts with the system or your session)
    Install,
    /// Stop and remove the service
    Uninstall,
    /// Start the installed service
    Start,
    /// Stop the running service
    Stop,
    /// Stop and start the service (e.g. after an update)
    Restart,
    /// Say whether the service is installed and running
    Status,
}

/// systemd everywhere but macOS; `SKYNET_SERVICE_MANAGER=systemd|launchd` overrides.
pub fn kind() -> anyhow::Result<Kind> {
    match std::env::var("SKYNET_SERVICE_MANAGER").ok().as_deref() {
        Some("systemd") => Ok(Kind::Systemd),
        Some("launchd") => Ok(Kind::Launchd),
        Some(other) => bail!("SKYNET_SERVICE_MANAGER={other:?} is not supported: use systemd or launchd"),
        None if cfg!(target_os = "macos") => Ok(Kind::Launchd),
        None => Ok(Kind::Systemd),
    }
}

fn manager(kind: Kind, system: bool) -> anyhow::Result<Box<dyn ServiceManager>> {
    let m: Box<dyn ServiceManager> = match (kind, system) {
        (Kind::Systemd, true) => Box::new(SystemdServiceManager::system()),
        (Kind::Systemd, false) => Box::new(SystemdServiceManager::user()),
        (Kind::Launchd, true) => Box::new(LaunchdServiceManager::system()),
        (Kind::Launchd, false) => Box::new(LaunchdServiceManager::user()),
    };
    let tool = tool_name(kind);
    if !m.available().unwrap_or(false) {
        bail!(
            "`{tool}` was not found, so this system cannot run Skynet as a {kind:?} service. \
             Run `skynet-gateway run` under your own process supervisor instead."
        );
    }
    Ok(m)
}

fn tool_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Systemd => "systemctl",
        Kind::Launchd => "launchctl",
    }
}

fn label() -> ServiceLabel {
    LABEL.parse().expect("the label is a valid service label")
}

/// Runs one `service` command; the exit code follows LSB for `status` (0 running,
/// 3 stopped, 4 not installed).
pub fn run(action: Action, system: bool, dry_run: bool) -> anyhow::Result<ExitCode> {
    let kind = kind()?;
    if dry_run && action != Action::Install {
        bail!("--dry-run only applies to `service install`");
    }
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    if system && !dry_run && unsafe { libc::geteuid() } != 0 {
        bail!("a system service needs root: run it with sudo, or leave out --system for a service of your own user");
    }
    let path = definition_path(kind, system).context("cannot find your home directory")?;
    match action {
        Action::Install => install(kind, system, dry_run, path),
        Action::Uninstall => {
            let m = manager(kind, system)?;
            if !path.exists() {
                println!("The Skynet service is not installed ({} does not exist).", path.display());
                return Ok(ExitCode::SUCCESS);
            }
            let _ = m.stop(ServiceStopCtx { label: label() });
            m.uninstall(ServiceUninstallCtx { label: label() }).map_err(|e| failed(kind, "remove", e))?;
            daemon_reload(kind, system);
            println!("The Skynet service is stopped and removed. Your data in ~/.skynet is untouched.");
            Ok(ExitCode::SUCCESS)
        }
        Action::Start | Action::Stop | Action::Restart => {
            let m = manager(kind, system)?;
            if !path.exists() {
                bail!("the Skynet service is not installed: run `skynet-gateway service install` first");
            }
            if action != Action::Start {
                m.stop(ServiceStopCtx { label: label() }).map_err(|e| failed(kind, "stop", e))?;
            }
            if action != Action::Stop {
                m.start(ServiceStartCtx { label: label() }).map_err(|e| failed(kind, "start", e))?;
            }
            let done = match action {
                Action::Start => "started",
                Action::Stop => "stopped",
                _ => "restarted",
            };
            println!("The Skynet service is {done}.");
            Ok(ExitCode::SUCCESS)
        }
        Action::Status => {
            let m = manager(kind, system)?;
            let status = m.status(ServiceStatusCtx { label: label() }).map_err(|e| failed(kind, "query", e))?;
            let (text, code) = match status {
                ServiceStatus::Running => ("installed and running".to_string(), 0),
                ServiceStatus::Stopped(why) => {
                    (format!("installed, not running{}", why.map(|w| format!(" ({w})")).unwrap_or_default()), 3)
                }
                ServiceStatus::NotInstalled => ("not installed".to_string(), 4),
            };
            println!("Skynet service ({}): {text}", path.display());
            Ok(ExitCode::from(code))
        }
    }
}

fn failed(kind: Kind, what: &str, e: io::Error) -> anyhow::Error {
    anyhow::anyhow!("{} could not {what} the Skynet service: {}", tool_name(kind), e.to_string().trim())
}

fn install(kind: Kind, system: bool, dry_run: bool, path: PathBuf) -> anyhow::Result<ExitCode> {
    let exe = std::env::current_exe().context("cannot find this program's own path")?;
    let exe = exe.canonicalize().unwrap_or(exe);
    let home = Home::resolve()?;
    let user = std::env::var("SUDO_USER").ok().or_else(|| std::env::var("USER").ok());
    let target = Target { kind, system, exe: &exe, skynet_home: home.root(), user: user.as_deref() };
    let contents = render(&target);
    if dry_run {
        eprintln!("# would be written to {}", path.display());
        print!("{contents}");
        return Ok(ExitCode::SUCCESS);
    }
    let m = manager(kind, system)?;
    let ctx = ServiceInstallCtx {
        label: label(),
        program: exe.clone(),
        args: vec!["run".into()],
        contents: Some(contents),
        username: None,
        working_directory: None,
        environment: None,
        autostart: true,
        restart_policy: RestartPolicy::OnFailure { delay_secs: Some(5), max_retries: None, reset_after_secs: None },
    };
    m.install(ctx).map_err(|e| failed(kind, "install", e))?;
    daemon_reload(kind, system);
    m.start(ServiceStartCtx { label: label() }).map_err(|e| failed(kind, "start", e))?;
    println!("Skynet is installed as a service and running.");
    println!("  definition: {}", path.display());
    println!("  program:    {}", exe.display());
    println!("  home:       {}", home.root().display());
    match (kind, system) {
        (Kind::Systemd, false) => {
            println!("  logs:       journalctl --user -u skynet-gateway -f");
            println!(
                "To keep it running while you are logged out: loginctl enable-linger {}",
                user.unwrap_or_default()
            );
        }
        (Kind::Systemd, true) => println!("  logs:       journalctl -u skynet-gateway -f"),
        (Kind::Launchd, _) => println!("  logs:       {}", home.root().join("gateway.log").display()),
    }
    Ok(ExitCode::SUCCESS)
}

/// service-manager writes units but never tells systemd; without this a changed unit
/// would not be seen until the next boot.
fn daemon_reload(kind: Kind, system: bool) {
    if kind != Kind::Systemd {
        return;
    }
    let mut cmd = Command::new("systemctl");
    if !system {
        cmd.arg("--user");
    }
    if let Err(e) = cmd.arg("daemon-reload").output() {
        tracing::warn!(error = %e, "systemctl daemon-reload failed");
    }
}

/// Restarts the service if it is installed (after an update); `false` when it is not.
pub fn restart_if_installed() -> anyhow::Result<bool> {
    let kind = kind()?;
    for system in [false, true] {
        if definition_path(kind, system).is_some_and(|p| p.exists()) {
            let m = manager(kind, system)?;
            let _ = m.stop(ServiceStopCtx { label: label() });
            m.start(ServiceStartCtx { label: label() }).map_err(|e| failed(kind, "start", e))?;
            return Ok(true);
        }
    }
    Ok(false)
}
