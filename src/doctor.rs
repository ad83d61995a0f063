//! `skynet-gateway doctor`: checks the home directory, configuration, database and port
//! without changing anything, and says in plain words what is wrong and how to fix it.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::agent::providers;
use crate::config::{Config, Overrides};
use crate::home::Home;
use crate::store::migrations;

struct Report {
    text: String,
    problems: usize,
}

impl Report {
    fn ok(&mut self, what: impl AsRef<str>) {
        let _ = writeln!(self.text, "  ok   {}", what.as_ref());
    }
    fn note(&mut self, what: impl AsRef<str>) {
        let _ = writeln!(self.text, "  --   {}", what.as_ref());
    }
    fn bad(&mut self, what: impl AsRef<str>, fix: impl AsRef<str>) {
        self.problems += 1;
        let _ = writeln!(self.text, "  FAIL {}", what.as_ref());
        for line in fix.as_ref().lines() {
            let _ = writeln!(self.text, "       {line}");
        }
    }
}

pub fn run() -> ExitCode {
    let mut r = Report { text: String::from("Skynet doctor\n"), problems: 0 };
    match Home::resolve() {
        Ok(home) => check(&home, &mut r),
        Err(e) => r.bad("home directory", e.to_string()),
    }
    print!("{}", r.text);
    if r.problems == 0 {
        println!("Everything looks fine.");
        ExitCode::SUCCESS
    } else {
        println!("{} problem{} found.", r.problems, if r.problems == 1 { "" } else { "s" });
        ExitCode::FAILURE
    }
}

fn check(home: &Home, r: &mut Report) {
    let root = home.root();
    if !root.exists() {
        r.note(format!("home {} does not exist yet; `skynet-gateway run` creates it", root.display()));
    } else if !root.is_dir() {
        r.bad(
            format!("home {} is not a directory", root.display()),
            "Move it aside, or set SKYNET_HOME to a directory.",
        );
        return;
    } else if let Err(e) = writable(root) {
        r.bad(
            format!("home {} is not writable ({e})", root.display()),
            "Make it writable by the user running Skynet, or set SKYNET_HOME to another directory.",
        );
    } else {
        r.ok(format!("home {} is writable", root.display()));
    }

    let config_path = home.config_path();
    match std::fs::metadata(&config_path) {
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => r.bad(
            format!("{} can be read by other users, and it holds the auth token", config_path.display()),
            format!("Run: chmod 600 {}", config_path.display()),
        ),
        Ok(_) => r.ok(format!("{} is private (mode 0600)", config_path.display())),
        Err(_) => r.note(format!("{} does not exist yet; the first run writes it", config_path.display())),
    }
    let config = match Config::load(root, &Overrides::default()) {
        Ok(c) => {
            r.ok("configuration loads");
            Some(c)
        }
        // Before the first run there is no token yet; that is not a problem.
        Err(e) if !config_path.exists() && e.to_string().contains("gateway.auth_token") => None,
        Err(e) => {
            let text = e.to_string();
            let (what, fix) = text.split_once('\n').unwrap_or((&text, ""));
            r.bad(format!("configuration: {what}"), fix);
            None
        }
    };

    check_database(&home.db_path(), r);
    if let Some(config) = config {
        check_port(&config, r);
        check_model(&config, r);
    }
}

/// Asks the configured model's provider for its model list: proves the address and key.
fn check_model(config: &Config, r: &mut Report) {
    let spec = config.agent.model.as_str();
    let Some((name, model)) = spec.split_once('/') else {
        r.note("no model configured: chat answers explain how to set [agent] model in skynet.toml");
        return;
    };
    let provider = match providers::build(name, config.providers.get(name), &|v| std::env::var(v).ok()) {
        Ok(p) => p,
        Err(e) => return r.bad(format!("model {spec}: {e}"), "Fix the provider settings in skynet.toml."),
    };
    let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
    match rt.block_on(async { tokio::time::timeout(Duration::from_secs(15), provider.list_models()).await }) {
        Ok(Ok(models)) if models.iter().any(|m| m == model) || models.is_empty() => {
            r.ok(format!("model {spec}: the provider answered and knows the model"))
        }
        Ok(Ok(models)) => r.bad(
            format!("model {spec}: the provider does not list {model:?} among its {} models", models.len()),
            format!("Some it offers: {}", models.iter().take(8).cloned().collect::<Vec<_>>().join(", ")),
        ),
        Ok(Err(e)) => r.bad(format!("model {spec}: {e}"), "Check the API key and base_url for this provider."),
        Err(_) => {
            r.bad(format!("model {spec}: the provider did not answer within 15 s"), "Check the network and base_url.")
        }
    }
}

fn writable(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".doctor-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}

fn check_database(path: &Path, r: &mut Report) {
    if !path.exists() {
        r.note(format!("database {} does not exist yet; the first run creates it", path.display()));
        return;
    }
    let result = (|| -> rusqlite::Result<(i64, String)> {
        let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let version = migrations::version(&c)?;
        let check: String = c.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
        Ok((version, check))
    })();
    match result {
        Ok((v, _)) if v > migrations::LATEST => r.bad(
            format!(
                "database {} is from a newer Skynet (schema {v}, this build knows {})",
                path.display(),
                migrations::LATEST
            ),
            "Upgrade skynet-gateway; this version will not open it.",
        ),
        Ok((_, check)) if check != "ok" => r.bad(
            format!("database {} failed its integrity check: {check}", path.display()),
            "Stop Skynet, keep a copy of the file, and restore a backup or move it aside to start fresh.",
        ),
        Ok((v, _)) => r.ok(format!(
            "database {} is intact (schema {v}{})",
            path.display(),
            if v < migrations::LATEST { ", upgraded on next start" } else { "" }
        )),
        Err(e) => r.bad(
            format!("database {} cannot be read: {e}", path.display()),
            "If it is damaged, stop Skynet, move the file aside (keep it as a backup) and start again.",
        ),
    }
}

fn check_port(config: &Config, r: &mut Report) {
    let Ok(ip) = config.gateway.bind.parse() else { return };
    let addr = SocketAddr::new(ip, config.gateway.port);
    match TcpListener::bind(addr) {
        Ok(_) => r.ok(format!("{addr} is free for the gateway")),
        Err(_) => match running_version(addr) {
            Some(v) => r.ok(format!("a Skynet gateway (version {v}) is already serving on {addr}")),
            None => r.bad(
                format!("{addr} is in use by another program"),
                "Stop that program, or choose another port with [gateway] port in skynet.toml.",
            ),
        },
    }
}

/// Asks whatever listens on `addr` for /health; returns its version if it is Skynet.
fn running_version(addr: SocketAddr) -> Option<String> {
    let target = if addr.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], addr.port())) } else { addr };
    let mut s = TcpStream::connect_timeout(&target, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET /health HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let body = resp.split_once("\r\n\r\n")?.1;
    let v: serde_json::Value = serde_json::from_str(body.trim()).ok()?;
    (v["status"] == "live").then(|| v["version"].as_str().unwrap_or("?").to_string())
}
