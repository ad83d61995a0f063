//! The services Skynet knows by name, and `build`, which turns a name plus optional
//! `[providers.<name>]` settings into a ready provider. Every OpenAI-compatible service
//! is a row here, not code: the OpenAI implementation serves them all. The Claude Code
//! CLI is a row too, of its own kind: a local program instead of an address.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::HeaderMap;

use super::Provider;
use super::anthropic::{self, Anthropic};
use super::claude_cli::ClaudeCli;
use super::openai::{self, OpenAi};
use super::sse::{self, Endpoint};
use crate::config::ProviderConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anthropic Messages API.
    Anthropic,
    /// OpenAI itself (and Azure OpenAI): `max_completion_tokens`.
    OpenAi,
    /// Anything speaking OpenAI Chat Completions.
    OpenAiCompatible,
    /// The Claude Code CLI (`claude`) run as a program; it signs in by itself.
    ClaudeCli,
}

/// How the key is sent. Without a key no header is sent at all, which is what local
/// servers (Ollama, LM Studio, vLLM, llama.cpp) expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer KEY`
    Bearer,
    /// `NAME: KEY`, e.g. Anthropic's `x-api-key`, Azure's `api-key`.
    ApiKeyHeader(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    /// The name used in config and model references (`groq/llama-3.3-70b-versatile`).
    pub name: &'static str,
    /// For people: "Groq", "Ollama (this machine)".
    pub title: &'static str,
    pub kind: Kind,
    /// Anthropic's without `/v1`, OpenAI-style ones with their version path; empty for
    /// the Claude Code CLI, which is a program (its optional `base_url` is its path).
    pub base_url: &'static str,
    pub auth: Auth,
    /// The environment variable the service's own tools read the key from.
    pub key_env: &'static str,
    pub key_required: bool,
    /// A sensible first model; empty where the server serves whatever was loaded into it.
    pub default_model: &'static str,
    /// `base_url` holds a placeholder (account id, resource name) the user must replace.
    pub needs_base_url: bool,
    /// Accepts `stream_options.include_usage` (see `openai::Options`).
    pub stream_usage: bool,
}

const fn remote(
    name: &'static str,
    title: &'static str,
    base_url: &'static str,
    key_env: &'static str,
    default_model: &'static str,
) -> Preset {
    Preset {
        name,
        title,
        kind: Kind::OpenAiCompatible,
        base_url,
        auth: Auth::Bearer,
        key_env,
        key_required: true,
        default_model,
        needs_base_url: false,
        stream_usage: true,
    }
}

/// A server on this machine: no key unless one is set.
const fn local(name: &'static str, title: &'static str, base_url: &'static str, key_env: &'static str) -> Preset {
    Preset { key_required: false, ..remote(name, title, base_url, key_env, "") }
}

static PRESETS: [Preset; 37] = [
    Preset {
        kind: Kind::Anthropic,
        auth: Auth::ApiKeyHeader("x-api-key"),
        ..remote("anthropic", "Anthropic", anthropic::DEFAULT_BASE_URL, "ANTHROPIC_API_KEY", "claude-sonnet-4-5")
    },
    Preset {
        kind: Kind::OpenAi,
        ..remote("openai", "OpenAI", openai::DEFAULT_BASE_URL, "OPENAI_API_KEY", "gpt-5-mini")
    },
    Preset {
        default_model: "llama3.2",
        ..local("ollama", "Ollama (this machine)", "http://localhost:11434/v1", "OLLAMA_API_KEY")
    },
    // Its key is optional: the CLI's own login (`claude auth login`) is the usual way.
    Preset {
        kind: Kind::ClaudeCli,
        key_required: false,
        stream_usage: false,
        ..remote("claude-cli", "Claude Code CLI (its own login)", "", "ANTHROPIC_API_KEY", "sonnet")
    },
    local("lmstudio", "LM Studio (this machine)", "http://localhost:1234/v1", "LMSTUDIO_API_KEY"),
    local("vllm", "vLLM (this machine)", "http://localhost:8000/v1", "VLLM_API_KEY"),
    local("llamacpp", "llama.cpp server (this machine)", "http://localhost:8080/v1", "LLAMA_API_KEY"),
    local("litellm", "LiteLLM proxy (this machine)", "http://localhost:4000/v1", "LITELLM_API_KEY"),
    remote("groq", "Groq", "https://api.groq.com/openai/v1", "GROQ_API_KEY", "llama-3.3-70b-versatile"),
    remote("deepseek", "DeepSeek", "https://api.deepseek.com/v1", "DEEPSEEK_API_KEY", "deepseek-chat"),
    remote("openrouter", "OpenRouter", "https://openrouter.ai/api/v1", "OPENROUTER_API_KEY", "openrouter/auto"),
    Preset {
        stream_usage: false,
        ..remote("mistral", "Mistral AI", "https://api.mistral.ai/v1", "MISTRAL_API_KEY", "mistral-large-latest")
    },
    remote(
        "together",
        "Together AI",
        "https://api.together.xyz/v1",
        "TOGETHER_API_KEY",
        "meta-llama/Llama-3.3-70B-Instruct-Turbo",
    ),
    remote(
        "fireworks",
        "Fireworks AI",
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_API_KEY",
        "accounts/fireworks/models/llama-v3p3-70b-instruct",
    ),
    remote("xai", "xAI (Grok)", "https://api.x.ai/v1", "XAI_API_KEY", "grok-4"),
    remote("perplexity", "Perplexity", "https://api.perplexity.ai", "PERPLEXITY_API_KEY", "sonar"),
    remote("cerebras", "Cerebras", "https://api.cerebras.ai/v1", "CEREBRAS_API_KEY", "llama-3.3-70b"),
    remote("moonshot", "Moonshot AI (Kimi)", "https://api.moonshot.ai/v1", "MOONSHOT_API_KEY", "kimi-k2.6"),
    remote(
        "qwen",
        "Qwen (Alibaba Cloud DashScope)",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "DASHSCOPE_API_KEY",
        "qwen-plus",
    ),
    remote("zhipu", "Zhipu AI (BigModel, China)", "https://open.bigmodel.cn/api/paas/v4", "ZHIPUAI_API_KEY", "glm-4.6"),
    remote("zai", "Z.ai (GLM, international)", "https://api.z.ai/api/paas/v4", "ZAI_API_KEY", "glm-4.6"),
    Preset {
        kind: Kind::OpenAi,
        auth: Auth::ApiKeyHeader("api-key"),
        needs_base_url: true,
        ..remote(
            "azure",
            "Azure OpenAI",
            "https://YOUR-RESOURCE.openai.azure.com/openai/v1",
            "AZURE_OPENAI_API_KEY",
            "",
        )
    },
    remote("github", "GitHub Models", "https://models.github.ai/inference", "GITHUB_TOKEN", "openai/gpt-4.1"),
    remote(
        "huggingface",
        "Hugging Face Inference Providers",
        "https://router.huggingface.co/v1",
        "HF_TOKEN",
        "openai/gpt-oss-120b",
    ),
    remote(
        "nvidia",
        "NVIDIA NIM",
        "https://integrate.api.nvidia.com/v1",
        "NVIDIA_API_KEY",
        "meta/llama-3.3-70b-instruct",
    ),
    remote(
        "sambanova",
        "SambaNova Cloud",
        "https://api.sambanova.ai/v1",
        "SAMBANOVA_API_KEY",
        "Meta-Llama-3.3-70B-Instruct",
    ),
    remote(
        "nebius",
        "Nebius Token Factory",
        "https://api.tokenfactory.nebius.com/v1",
        "NEBIUS_API_KEY",
        "meta-llama/Llama-3.3-70B-Instruct",
    ),
    remote(
        "deepinfra",
        "DeepInfra",
        "https://api.deepinfra.com/v1/openai",
        "DEEPINFRA_API_KEY",
        "meta-llama/Llama-3.3-70B-Instruct",
    ),
    remote(
        "hyperbolic",
        "Hyperbolic",
        "https://api.hyperbolic.xyz/v1",
        "HYPERBOLIC_API_KEY",
        "meta-llama/Llama-3.3-70B-Instruct",
    ),
    remote(
        "novita",
        "Novita AI",
        "https://api.novita.ai/v3/openai",
        "NOVITA_API_KEY",
        "meta-llama/llama-3.3-70b-instruct",
    ),
    remote("venice", "Venice AI", "https://api.venice.ai/api/v1", "VENICE_API_KEY", "llama-3.3-70b"),
    remote(
        "scaleway",
        "Scaleway Generative APIs",
        "https://api.scaleway.ai/v1",
        "SCW_SECRET_KEY",
        "llama-3.3-70b-instruct",
    ),
    // Usable without a key at a low rate limit.
    Preset {
        key_required: false,
        ..remote(
            "ovhcloud",
            "OVHcloud AI Endpoints",
            "https://oai.endpoints.kepler.ai.cloud.ovh.net/v1",
            "OVH_AI_ENDPOINTS_ACCESS_TOKEN",
            "gpt-oss-120b",
        )
    },
    Preset {
        needs_base_url: true,
        ..remote(
            "cloudflare",
            "Cloudflare Workers AI",
            "https://api.cloudflare.com/client/v4/accounts/ACCOUNT_ID/ai/v1",
            "CLOUDFLARE_API_TOKEN",
            "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        )
    },
    remote("lambda", "Lambda Inference API", "https://api.lambda.ai/v1", "LAMBDA_API_KEY", "llama3.3-70b-instruct-fp8"),
    remote(
        "gemini",
        "Google Gemini (OpenAI-compatible endpoint)",
        "https://generativelanguage.googleapis.com/v1beta/openai",
        "GEMINI_API_KEY",
        "gemini-2.5-flash",
    ),
    remote(
        "siliconflow",
        "SiliconFlow",
        "https://api.siliconflow.com/v1",
        "SILICONFLOW_API_KEY",
        "deepseek-ai/DeepSeek-V3",
    ),
];

/// Every known service, for `models.list` and the setup wizard.
pub fn presets() -> &'static [Preset] {
    &PRESETS
}

pub fn preset(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

const DEFAULT_TIMEOUT_SECS: u64 = 120;

/// Builds the provider called `name`: a preset with the overrides in `cfg`, or a service
/// of the user's own when `cfg` gives its `base_url`. `env` looks up environment
/// variables (a parameter so tests need not touch the process environment).
pub fn build(
    name: &str,
    cfg: Option<&ProviderConfig>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Provider>, String> {
    let empty = ProviderConfig::default();
    let cfg = cfg.unwrap_or(&empty);
    let preset = preset(name);
    let section = format!("[providers.{name}]");
    let kind = match cfg.kind.as_deref().map(str::trim) {
        None | Some("") => preset.map_or(Kind::OpenAiCompatible, |p| p.kind),
        Some("anthropic") => Kind::Anthropic,
        Some("openai") => Kind::OpenAi,
        Some("openai-compatible" | "openai_compatible") => Kind::OpenAiCompatible,
        Some("claude-cli" | "claude_cli") => Kind::ClaudeCli,
        Some(other) => {
            return Err(format!(
                "provider `{name}`: kind = {other:?} is not known. Set kind in {section} to \
                 \"anthropic\", \"openai\", \"openai-compatible\" or \"claude-cli\"."
            ));
        }
    };
    let timeout = match cfg.timeout_secs {
        Some(0) => return Err(format!("provider `{name}`: timeout_secs in {section} must be at least 1.")),
        Some(secs) => secs,
        None => DEFAULT_TIMEOUT_SECS,
    };
    if kind == Kind::ClaudeCli {
        // A path, not an address: `base_url` in the section, else CLAUDE_CLI, else PATH.
        let program = cfg
            .base_url
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .or_else(|| env("CLAUDE_CLI").filter(|p| !p.trim().is_empty()));
        let program = program.map(std::path::PathBuf::from);
        if let Some(relative) = program.as_ref().filter(|p| !p.is_absolute()) {
            return Err(format!(
                "provider `{name}`: the path of `claude` must be absolute, not {:?}: correct base_url in {section} \
                 or CLAUDE_CLI (e.g. /usr/local/bin/claude, as `command -v claude` shows it).",
                relative.display().to_string()
            ));
        }
        let key = resolve_key(cfg, "ANTHROPIC_API_KEY", env);
        return Ok(Arc::new(ClaudeCli::new(name, program, key, Duration::from_secs(timeout))));
    }
    let base_url = match (cfg.base_url.as_deref().map(str::trim).filter(|u| !u.is_empty()), preset) {
        (Some(url), _) => url,
        (None, Some(p)) if p.needs_base_url => {
            return Err(format!(
                "provider `{name}` needs the address of your own account or resource: \
                 set base_url in {section} of skynet.toml, e.g. base_url = \"{}\" with your value in place of the capitals.",
                p.base_url
            ));
        }
        (None, Some(p)) => p.base_url,
        (None, None) => {
            let known: Vec<&str> = PRESETS.iter().map(|p| p.name).collect();
            return Err(format!(
                "unknown provider `{name}`. For a server of your own, add {section} with \
                 base_url = \"http://HOST:PORT/v1\" to skynet.toml; known providers are: {}.",
                known.join(", ")
            ));
        }
    };

    let usual_env = preset.map_or_else(|| env_name(name), |p| p.key_env.to_string());
    let key = resolve_key(cfg, &usual_env, env);
    if key.is_none() && preset.is_some_and(|p| p.key_required) {
        let var = match cfg.api_key_env.as_deref().filter(|v| !v.trim().is_empty()) {
            Some(own) => format!("{} (named by api_key_env) or {usual_env}", own.trim()),
            None => usual_env,
        };
        return Err(format!(
            "provider `{name}` needs an API key: set the environment variable {var}, \
             or api_key in {section} of skynet.toml."
        ));
    }

    let is_anthropic = kind == Kind::Anthropic;
    // A preset's header only applies to its own API family.
    let auth = match preset {
        Some(p) if (p.kind == Kind::Anthropic) == is_anthropic => p.auth,
        _ if is_anthropic => Auth::ApiKeyHeader("x-api-key"),
        _ => Auth::Bearer,
    };
    let mut headers = HeaderMap::new();
    if let Some(key) = key {
        let (header, value) = match auth {
            Auth::Bearer => sse::secret_header("authorization", &format!("Bearer {key}")),
            Auth::ApiKeyHeader(header) => sse::secret_header(header, &key),
        }
        .map_err(|e| format!("provider `{name}`: {e}; check the key for stray characters."))?;
        headers.insert(header, value);
    }

    // Anthropic's SDKs take the base without `/v1`; forgive the common slip of adding it.
    let base_url = match kind {
        Kind::Anthropic => base_url.trim_end_matches('/').strip_suffix("/v1").unwrap_or(base_url),
        _ => base_url,
    };
    let endpoint = Endpoint::new(name, base_url, headers, Duration::from_secs(timeout))?;
    if is_anthropic {
        return Ok(Arc::new(Anthropic::new(endpoint)));
    }
    let stream_usage = preset.is_none_or(|p| p.stream_usage);
    Ok(Arc::new(OpenAi::new(endpoint, openai::Options { native: kind == Kind::OpenAi, stream_usage })))
}

/// The first non-empty of: `api_key`, the variable named by `api_key_env`, the usual one.
fn resolve_key(cfg: &ProviderConfig, usual_env: &str, env: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let non_empty = |s: String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
    cfg.api_key
        .as_ref()
        .and_then(|k| non_empty(k.expose().to_string()))
        .or_else(|| cfg.api_key_env.as_deref().and_then(|var| env(var.trim())).and_then(non_empty))
        .or_else(|| env(usual_env).and_then(non_empty))
}

/// `my-server` → `MY_SERVER_API_KEY`, the variable a provider of the user's own reads
/// unless `api_key_env` says otherwise.
fn env_name(name: &str) -> String {
    let stem: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect();
    format!("{stem}_API_KEY")
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::agent::providers::sse::fake::{FakeServer, Reply, collect, data, named};
    use crate::agent::types::{ChatRequest, Message, SystemPrompt};
    use crate::config::Secret;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name: &str| vars.get(name).cloned()
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn secret(value: &str) -> Secret {
        serde_json::from_value(serde_json::Value::String(value.into())).unwrap()
    }

    fn at(url: &str) -> ProviderConfig {
        ProviderConfig { base_url: Some(url.into()), ..ProviderConfig::default() }
    }

    fn request() -> ChatRequest {
        ChatRequest {
            model: "m".into(),
            system: SystemPrompt::default(),
            messages: vec![Message::user_text("hi")],
            tools: vec![],
            max_tokens: 16,
        }
    }

    const DONE: [&str; 2] = [r#"{"choices":[{"index":0,"delta":{"content":"ok"},"finish_reason":"stop"}]}"#, "[DONE]"];

    /// Sends one request through a built provider and returns what the server saw.
    async fn sent_with(
        name: &str,
        cfg: ProviderConfig,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> reqwest::header::HeaderMap {
        let server = FakeServer::start(vec![Reply::sse(&data(&DONE))]).await;
        let cfg = ProviderConfig { base_url: Some(server.url.clone()), ..cfg };
        let provider = build(name, Some(&cfg), env).unwrap();
        let (_, error) = collect(provider.stream(request(), CancellationToken::new()).await.unwrap()).await;
        assert!(error.is_none(), "{error:?}");
        server.requests().remove(0).headers
    }

    #[test]
    fn at_least_thirty_presets_with_unique_names_and_http_urls() {
        let all = presets();
        assert!(all.len() >= 30, "{} presets", all.len());
        let names: HashSet<&str> = all.iter().map(|p| p.name).collect();
        assert_eq!(names.len(), all.len(), "names are unique");
        for p in all {
            assert!(p.name.chars().all(|c| c.is_ascii_lowercase() || c == '-'), "{}", p.name);
            if p.kind == Kind::ClaudeCli {
                assert!(p.base_url.is_empty() && !p.key_required, "a program with its own login");
                continue;
            }
            let url = reqwest::Url::parse(p.base_url).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert!(matches!(url.scheme(), "http" | "https"), "{}", p.name);
            assert!(!p.base_url.ends_with('/'), "{}", p.name);
            assert!(
                !p.key_env.is_empty() && p.key_env.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{}",
                p.name
            );
            if p.key_required && !p.needs_base_url {
                assert!(url.scheme() == "https", "{} sends a key, so over TLS", p.name);
            }
        }
        for name in ["anthropic", "openai", "ollama", "groq", "azure", "cloudflare", "lambda", "gemini"] {
            assert!(preset(name).is_some(), "{name}");
        }
        assert!(!preset("ollama").unwrap().key_required, "ollama is the no-key offline option");
    }

    #[test]
    fn every_preset_builds_when_given_what_it_needs() {
        // CLAUDE_CLI unset: the Claude Code CLI is then looked for on PATH at each call.
        let env = |var: &str| (var != "CLAUDE_CLI").then(|| "key-123".to_string());
        for p in presets() {
            let cfg = if p.needs_base_url { at("https://example.test/v1") } else { ProviderConfig::default() };
            let built = build(p.name, Some(&cfg), &env).unwrap_or_else(|e| panic!("{}: {e}", p.name));
            assert_eq!(built.name(), p.name);
        }
    }

    #[test]
    fn a_missing_required_key_names_the_variable_and_the_config_key() {
        let err = build("groq", None, &no_env).err().unwrap();
        assert!(err.contains("GROQ_API_KEY") && err.contains("api_key in [providers.groq]"), "{err}");
        let cfg = ProviderConfig { api_key_env: Some("MY_GROQ".into()), ..ProviderConfig::default() };
        let err = build("groq", Some(&cfg), &no_env).err().unwrap();
        assert!(err.contains("MY_GROQ") && err.contains("GROQ_API_KEY"), "{err}");
        let err = build("azure", None, &env_of(&[("AZURE_OPENAI_API_KEY", "k")])).err().unwrap();
        assert!(err.contains("base_url") && err.contains("[providers.azure]"), "{err}");
    }

    #[test]
    fn unknown_provider_without_base_url_says_how_to_add_one() {
        let err = build("myserver", None, &no_env).err().unwrap();
        assert!(err.contains("unknown provider `myserver`") && err.contains("base_url"), "{err}");
        let cfg = ProviderConfig { kind: Some("gemini-native".into()), ..at("http://127.0.0.1:1") };
        let err = build("myserver", Some(&cfg), &no_env).err().unwrap();
        assert!(err.contains("openai-compatible"), "{err}");
        let err = build("myserver", Some(&at("ftp://x")), &no_env).err().unwrap();
        assert!(err.contains("http://"), "{err}");
    }

    #[tokio::test]
    async fn keys_come_from_config_then_the_named_variable_then_the_usual_one() {
        let env = env_of(&[("GROQ_API_KEY", "from-usual"), ("MY_KEY", "from-named")]);
        let both = ProviderConfig {
            api_key: Some(secret("from-config")),
            api_key_env: Some("MY_KEY".into()),
            ..Default::default()
        };
        assert_eq!(sent_with("groq", both, &env).await["authorization"], "Bearer from-config");
        let named_var = ProviderConfig { api_key_env: Some("MY_KEY".into()), ..Default::default() };
        assert_eq!(sent_with("groq", named_var, &env).await["authorization"], "Bearer from-named");
        let unset_var = ProviderConfig { api_key_env: Some("UNSET".into()), ..Default::default() };
        assert_eq!(sent_with("groq", unset_var, &env).await["authorization"], "Bearer from-usual");
        let empty = ProviderConfig { api_key: Some(secret("")), ..Default::default() };
        assert_eq!(sent_with("groq", empty, &env).await["authorization"], "Bearer from-usual");
    }

    #[tokio::test]
    async fn auth_headers_follow_the_preset_and_local_servers_get_none_without_a_key() {
        let headers = sent_with("ollama", ProviderConfig::default(), &no_env).await;
        assert!(headers.get("authorization").is_none());
        let headers = sent_with("ollama", ProviderConfig::default(), &env_of(&[("OLLAMA_API_KEY", "k")])).await;
        assert_eq!(headers["authorization"], "Bearer k");
        let headers = sent_with("azure", ProviderConfig::default(), &env_of(&[("AZURE_OPENAI_API_KEY", "az")])).await;
        assert_eq!(headers["api-key"], "az");
        assert!(headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn an_unknown_provider_with_base_url_is_openai_compatible() {
        let server = FakeServer::start(vec![Reply::sse(&data(&DONE))]).await;
        let provider = build("my-box", Some(&at(&format!("{}/v1/", server.url))), &env_of(&[("MY_BOX_API_KEY", "b")]));
        let provider = provider.unwrap();
        let (events, error) = collect(provider.stream(request(), CancellationToken::new()).await.unwrap()).await;
        assert!(error.is_none(), "{error:?}");
        assert!(!events.is_empty());
        let sent = server.requests().remove(0);
        assert_eq!(sent.path, "/v1/chat/completions");
        assert_eq!(sent.headers["authorization"], "Bearer b");
        assert_eq!(sent.body["max_tokens"], 16);
    }

    #[tokio::test]
    async fn kind_anthropic_makes_an_unknown_provider_speak_messages() {
        let stop = r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}"#;
        let server = FakeServer::start(vec![Reply::sse(&named(&[stop, r#"{"type":"message_stop"}"#]))]).await;
        let with_v1 = format!("{}/v1/", server.url);
        let cfg = ProviderConfig { kind: Some("anthropic".into()), api_key: Some(secret("a")), ..at(&with_v1) };
        let provider = build("proxy", Some(&cfg), &no_env).unwrap();
        let (_, error) = collect(provider.stream(request(), CancellationToken::new()).await.unwrap()).await;
        assert!(error.is_none(), "{error:?}");
        let sent = server.requests().remove(0);
        assert_eq!(sent.path, "/v1/messages");
        assert_eq!(sent.headers["x-api-key"], "a");
    }

    #[test]
    fn the_claude_cli_needs_no_key_and_takes_an_absolute_program_path() {
        assert_eq!(build("claude-cli", None, &no_env).unwrap().name(), "claude-cli");
        let own = ProviderConfig { kind: Some("claude-cli".into()), ..at("/opt/claude/bin/claude") };
        assert_eq!(build("claude-work", Some(&own), &no_env).unwrap().name(), "claude-work");
        let err = build("claude-cli", Some(&at("bin/claude")), &no_env).err().unwrap();
        assert!(err.contains("must be absolute") && err.contains("[providers.claude-cli]"), "{err}");
        let err = build("claude-cli", None, &env_of(&[("CLAUDE_CLI", "claude")])).err().unwrap();
        assert!(err.contains("CLAUDE_CLI"), "{err}");
    }

    #[test]
    fn keys_never_show_in_debug_output_of_headers() {
        let (_, value) = sse::secret_header("authorization", "Bearer sk-secret").unwrap();
        assert!(!format!("{value:?}").contains("sk-secret"));
    }
}
