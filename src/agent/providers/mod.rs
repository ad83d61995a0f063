//! Model providers behind one streaming trait: native Anthropic Messages, native OpenAI
//! Chat Completions, a registry of OpenAI-compatible services that reuse the OpenAI
//! implementation with their own base URL, auth header and key variable, and the Claude
//! Code CLI run as a local program.

use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use tokio_util::sync::CancellationToken;

use super::types::{ChatRequest, StreamEvent};

pub type EventStream = BoxStream<'static, Result<StreamEvent, ProviderError>>;

pub trait Provider: Send + Sync {
    /// The configured name, e.g. `anthropic`, `groq`.
    fn name(&self) -> &str;

    /// Starts a streaming call. Resolves once the response headers arrived (retrying
    /// 429/529/5xx before that, honouring `retry-after`); the stream then yields events
    /// until `Stop`. Cancelling `cancel` ends the call and the stream.
    fn stream(&self, req: ChatRequest, cancel: CancellationToken) -> BoxFuture<'_, Result<EventStream, ProviderError>>;

    /// The provider's model ids (its `/models` endpoint).
    fn list_models(&self) -> BoxFuture<'_, Result<Vec<String>, ProviderError>>;
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum ProviderError {
    /// The API answered with an error status (after retries, for retryable ones).
    #[error("{provider} answered HTTP {status}: {message}")]
    Http { provider: String, status: u16, message: String, retry_after: Option<Duration> },
    /// Connection refused, reset, DNS, TLS, or the stream was cut mid-way.
    #[error("{provider}: network error: {message}")]
    Network { provider: String, message: String },
    /// The response was not in the provider's wire format (garbage JSON, unknown event).
    #[error("{provider} sent a response Skynet cannot read: {message}")]
    Protocol { provider: String, message: String },
    /// An `error` event inside the stream (e.g. `overloaded_error`).
    #[error("{provider} reported an error mid-stream: {message}")]
    Stream { provider: String, message: String },
    #[error("{provider} did not answer within {after:?}")]
    Timeout { provider: String, after: Duration },
    /// A provider that is a local program: it is missing, cannot start, or failed.
    #[error("{provider}: {message}")]
    Program { provider: String, message: String },
    #[error("the request was cancelled")]
    Cancelled,
}

impl ProviderError {
    /// Whether trying another provider may help (not for a bad request or cancellation).
    pub fn allows_failover(&self) -> bool {
        match self {
            ProviderError::Http { status, .. } => {
                *status == 401 || *status == 403 || *status == 408 || *status == 429 || *status >= 500
            }
            ProviderError::Network { .. } | ProviderError::Timeout { .. } | ProviderError::Stream { .. } => true,
            ProviderError::Protocol { .. } | ProviderError::Program { .. } => true,
            ProviderError::Cancelled => false,
        }
    }
}

pub mod anthropic;
pub mod claude_cli;
pub mod openai;
pub mod registry;
mod sse;

pub use registry::Preset;

/// Installs ring as the process's rustls crypto provider. reqwest 0.13 (built without its
/// aws-lc-rs default) panics when a client is built before this; call it first in `main`.
/// Calling it again, or after another provider was installed, does nothing.
pub fn init_tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Builds the provider called `name`: a registry preset with the optional
/// `[providers.<name>]` overrides, or a service of the user's own given by `base_url`
/// (OpenAI-compatible unless `kind` says otherwise). The key is `api_key`, else the
/// variable named by `api_key_env`, else the preset's usual variable (`<NAME>_API_KEY`
/// for services of one's own). Errors are meant for the user and say what to set.
pub fn build(
    name: &str,
    cfg: Option<&crate::config::ProviderConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<std::sync::Arc<dyn Provider>, String> {
    registry::build(name, cfg, env)
}

/// Every service known by name, for `models.list` and the setup wizard.
pub fn presets() -> &'static [Preset] {
    registry::presets()
}
