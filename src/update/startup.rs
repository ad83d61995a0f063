//! The start-up check: once the gateway listens, look for a newer release in the
//! background, at most once a day, and only log what was found.

use std::path::Path;
use std::time::Duration;

use self_update::check_interval::UpdateCheckGuard;

use super::mode::InstallMode;
use super::release;
use crate::config::UpdateConfig;

/// When the last check started, in `$SKYNET_HOME` (seconds since the epoch, written atomically).
const STAMP: &str = ".update-check";
const INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
const TIMEOUT: Duration = Duration::from_secs(30);

/// Spawns the check on the current runtime and returns at once. Offline machines are the
/// normal case, so failures are logged at debug level only.
pub fn spawn_startup_check(cfg: &UpdateConfig, home: &Path) {
    if !cfg.check_on_start {
        return;
    }
    let cfg = cfg.clone();
    let guard = UpdateCheckGuard::new(home.join(STAMP), INTERVAL);
    tokio::spawn(async move {
        if !guard.should_check().unwrap_or(false) {
            return;
        }
        // Stamped before asking, so a failing or crashing check is not retried at every start.
        if let Err(e) = guard.record_check() {
            tracing::debug!(error = %e, "cannot record the update check time; skipping the check");
            return;
        }
        match tokio::time::timeout(TIMEOUT, release::latest(&cfg)).await {
            Ok(Ok(latest)) if release::is_newer(latest.version()) => {
                let hint = std::env::current_exe()
                    .map(|exe| InstallMode::detect(&exe).how_to_update())
                    .unwrap_or_else(|_| InstallMode::Binary.how_to_update());
                tracing::info!(
                    current = release::CURRENT,
                    latest = latest.version(),
                    "a newer skynet-gateway is available: {hint}"
                );
            }
            Ok(Ok(latest)) => tracing::debug!(latest = latest.version(), "skynet-gateway is up to date"),
            Ok(Err(e)) => tracing::debug!(error = %e, "update check failed"),
            Err(_) => tracing::debug!("update check timed out"),
        }
    });
}
