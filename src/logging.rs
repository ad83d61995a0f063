//! Log output: human-readable lines by default, JSON with `--log-format json`; the level
//! comes from RUST_LOG when set, else from `[log] level`. Logs go to stderr so stdout
//! stays free for the start-up banner and command output.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogConfig, LogFormat};

pub fn init(cfg: &LogConfig, flag: Option<LogFormat>) {
    // serenity narrates every shard step at info; its warnings and errors still show.
    let level = if cfg.level.contains("serenity") { cfg.level.clone() } else { format!("{},serenity=warn", cfg.level) };
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    match flag.unwrap_or(cfg.format) {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}
