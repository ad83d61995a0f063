//! The release server: GitHub's "latest release" for the check, then download, checksum
//! verification against the release's `SHA256SUMS`, a smoke test, the `.bak` and the atomic
//! swap, all through `self_update`.
//!
//! The check uses GitHub's `/releases/latest` (which skips drafts and pre-releases). The
//! install then goes through `self_update`'s custom backend fed with that very release,
//! because its GitHub backend would list `/releases` and could pick a pre-release, or a
//! release published after the user said yes to another one.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use self_update::backends::{custom, github};
use self_update::{AsyncReleaseSource, Release};

use super::backup;
use crate::config::UpdateConfig;

pub const BIN_NAME: &str = "skynet-gateway";
pub const CURRENT: &str = env!("CARGO_PKG_VERSION");
const SUMS_ASSET: &str = "SHA256SUMS";

/// The target triple in this platform's release asset name. Linux releases are static musl
/// binaries, which run on any Linux, so a glibc build (from source, say) updates to them.
pub fn release_target() -> String {
    self_update::get_target().replace("-linux-gnu", "-linux-musl")
}

pub fn asset_name() -> String {
    format!("{BIN_NAME}-{}.tar.gz", release_target())
}

/// Whether `version` is newer than the running one.
pub fn is_newer(version: &str) -> bool {
    self_update::version::bump_is_greater(CURRENT, version).unwrap_or(false)
}

/// The repository's latest published release.
pub async fn latest(cfg: &UpdateConfig) -> anyhow::Result<Release> {
    let (owner, name) = cfg.owner_and_name().ok_or_else(|| anyhow!("[update] repo must be \"owner/name\""))?;
    let api = cfg.api_url.trim_end_matches('/');
    let updater = github::Update::configure()
        .repo_owner(owner)
        .repo_name(name)
        .api_base_url(api)
        .bin_name(BIN_NAME)
        .target(release_target())
        .current_version(CURRENT)
        // GH_TOKEN / GITHUB_TOKEN lift GitHub's 60 checks an hour per address, when set.
        .auth_token_from_env()
        .reqwest_async_client(client()?)
        .build_async()
        .map_err(|e| explain(e, &Ctx { api, version: "", asset: "" }))?;
    let releases =
        updater.get_latest_release_async().await.map_err(|e| explain(e, &Ctx { api, version: "", asset: "" }))?;
    releases.into_vec().into_iter().next().ok_or_else(|| anyhow!("{api} listed no release for {}", cfg.repo))
}

/// Downloads this platform's asset of `release`, verifies it against the release's
/// `SHA256SUMS`, checks that it runs, keeps the running binary as `<exe>.bak` and swaps the
/// new one in atomically. On any failure the installed binary is unchanged.
pub async fn install(release: Release, exe: &Path, api: &str) -> anyhow::Result<()> {
    let version = release.version().to_string();
    let asset = asset_name();
    let ctx = Ctx { api, version: &version, asset: &asset };
    let hook_exe = exe.to_path_buf();
    let hook_version = version.clone();
    let updater = custom::AsyncUpdate::configure()
        .source(Fixed(release))
        .bin_name(BIN_NAME)
        .target(release_target())
        .current_version(CURRENT)
        .bin_install_path(exe)
        .check_install_path_writable(true)
        .checksum_from_asset(SUMS_ASSET)
        // Runs after every check on the download, right before the swap.
        .verify_binary(move |new_exe| {
            backup::smoke_test(new_exe, &hook_version).map_err(self_update::Error::verification_rejected)?;
            backup::keep(&hook_exe).map(drop).map_err(|e| {
                self_update::Error::verification_rejected(format!(
                    "cannot keep the current binary as {}: {e}",
                    backup::backup_path(&hook_exe).display()
                ))
            })
        })
        .no_confirm(true)
        .show_output(false)
        .show_download_progress(false)
        .reqwest_async_client(client()?)
        .build_async()
        .map_err(|e| explain(e, &ctx))?;
    updater.update_async().await.map_err(|e| explain(e, &ctx))?;
    Ok(())
}

/// A release fetched (and confirmed) before, so the one installed is the one reported.
struct Fixed(Release);

impl AsyncReleaseSource for Fixed {
    async fn get_releases(&self) -> self_update::Result<Vec<Release>> {
        Ok(vec![self.0.clone()])
    }
}

/// Like the providers' client: system roots plus Mozilla's, so a scratch image works too.
fn client() -> anyhow::Result<reqwest::Client> {
    crate::agent::providers::init_tls();
    let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
        .iter()
        .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok());
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("skynet-gateway/", env!("CARGO_PKG_VERSION")))
        .tls_certs_merge(roots)
        .build()
        .context("cannot set up the HTTPS client")
}

struct Ctx<'a> {
    api: &'a str,
    version: &'a str,
    asset: &'a str,
}

/// Turns a `self_update` error into what happened and what to do about it.
fn explain(e: self_update::Error, ctx: &Ctx) -> anyhow::Error {
    use self_update::Error as E;
    const UNCHANGED: &str = "The installed binary was not changed.";
    let text = match &e {
        E::Transport(inner) if cut_short(inner.as_ref()) => format!(
            "the download from {} was cut short: {}\nThe connection dropped before the server sent everything it announced. Try again; if it keeps happening, check the network (and HTTPS_PROXY). {UNCHANGED}",
            ctx.api,
            causes(&e)
        ),
        E::Transport(_) => format!(
            "cannot reach the release server {}: {}\nCheck the network connection (and HTTPS_PROXY, if you use a proxy) or [update] api_url in skynet.toml, then try again. {UNCHANGED}",
            ctx.api,
            causes(&e)
        ),
        E::NotFound { url, .. } => format!(
            "the release server has nothing at {url} (HTTP 404).\nCheck [update] repo and api_url in skynet.toml; the repository may not have published a release yet. {UNCHANGED}"
        ),
        E::RateLimited { .. } => format!(
            "{e}\nGitHub allows 60 anonymous checks an hour per address: wait, or set GH_TOKEN to a GitHub token. {UNCHANGED}"
        ),
        E::NoReleaseFound { target: Some(target), .. } => format!(
            "release {} has no download for this platform ({target}): expected an asset named {}.\nBuild from source instead (see the README), or wait for a release that includes it. {UNCHANGED}",
            ctx.version, ctx.asset
        ),
        E::ChecksumSourceInvalid { reason, .. } => format!(
            "refusing to install: release {} has no usable SHA-256 sum for {} ({reason}).\nNothing is installed without a verified checksum. {UNCHANGED} Please report this to the project.",
            ctx.version, ctx.asset
        ),
        E::ChecksumMismatch { expected, computed, .. } => format!(
            "refusing to install: the download of {} does not match its sum in SHA256SUMS (expected {expected}, got {computed}).\nIt is corrupt or was tampered with. {UNCHANGED} Try again later, and report it if it persists.",
            ctx.asset
        ),
        E::VerificationRejected { reason, .. } => format!(
            "refusing to install: {}. {UNCHANGED}",
            reason.as_deref().unwrap_or("the new binary failed its check")
        ),
        E::InstallPathNotWritable { path, .. } => format!(
            "cannot replace {}: permission denied.\nRun the update as the user who owns it (for example with sudo), or reinstall into a directory you own with install.sh. {UNCHANGED}",
            path.display()
        ),
        E::Unauthorized { .. } | E::HttpStatus { .. } | E::InvalidResponse { .. } | E::MissingAssetField { .. } => {
            format!(
                "the release server gave an answer Skynet cannot use: {e}\nTry again later, or check [update] api_url in skynet.toml. {UNCHANGED}"
            )
        }
        _ => format!("the update did not complete: {e}\n{UNCHANGED}"),
    };
    anyhow!(text)
}

/// Whether a response started but its body did not arrive whole (the connection dropped, or
/// fewer bytes came than its Content-Length said).
fn cut_short(e: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    e.downcast_ref::<reqwest::Error>().is_some_and(|r| r.is_body() || r.is_decode())
}

/// An error and its sources on one line ("error sending request: connection refused").
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text = format!("{text}: {line}");
        }
        source = cause.source();
    }
    text
}
