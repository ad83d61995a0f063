//! `models.list` (the default model, aliases, router tiers, each preset's default model)
//! and `models.set` (switch the default for everyone, now and after restarts).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, NoParams};
use crate::agent::providers;
use crate::config::Config;
use crate::gateway::protocol::{self, RpcError};

pub async fn list(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    protocol::parse_params::<NoParams>("models.list", params)?;
    let models = &ctx.gw.agent.models;
    let settings = models.settings();
    let mut list = Vec::new();
    if let Some((provider, model)) = models.resolve(None) {
        list.push(json!({"id": format!("{provider}/{model}"), "provider": provider, "name": model, "default": true}));
    }
    for (alias, target) in &settings.agent.aliases {
        list.push(json!({"id": alias, "alias": true, "target": target}));
    }
    for preset in providers::presets() {
        list.push(json!({"id": format!("{}/{}", preset.name, preset.default_model), "provider": preset.name, "name": preset.default_model}));
    }
    let r = &settings.agent.router;
    let router = json!({"enabled": r.enabled, "cheap": r.cheap, "standard": r.standard, "strong": r.strong});
    Ok(json!({"models": list, "default": settings.agent.model, "router": router}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetParams {
    /// `<provider>/<model>` or an alias.
    model: String,
    /// Also write it to skynet.toml so it survives a restart (default: yes).
    #[serde(default = "yes")]
    persist: bool,
}

fn yes() -> bool {
    true
}

pub async fn set(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: SetParams = protocol::parse_params("models.set", params)?;
    let models = &ctx.gw.agent.models;
    let Some((provider, model)) = models.resolve(Some(&p.model)).filter(|_| !p.model.trim().is_empty()) else {
        return Err(RpcError::bad_params(
            "models.set",
            format!(
                "{:?} is not a model: name it as <provider>/<model> (e.g. openai/gpt-4o-mini) or use an alias from [agent.aliases]",
                p.model
            ),
        ));
    };
    models.provider(&provider).map_err(|e| RpcError::bad_params("models.set", e))?;
    let mut note = None;
    if p.persist {
        let home = ctx.gw.home.root().to_path_buf();
        let value = p.model.clone();
        tokio::task::spawn_blocking(move || Config::set_in_file(&home, &["agent", "model"], &value))
            .await
            .map_err(|e| RpcError::unavailable(e.to_string()))?
            .map_err(|e| RpcError::unavailable(format!("the model was not switched: {e}")))?;
        if std::env::var_os("SKYNET_AGENT__MODEL").is_some() {
            note = Some(
                "SKYNET_AGENT__MODEL is set in the gateway's environment and wins over skynet.toml at the next start",
            );
        }
    }
    models.set_default(&p.model);
    tracing::info!(model = %p.model, resolved = %format!("{provider}/{model}"), persisted = p.persist, "default model switched");
    Ok(
        json!({"ok": true, "model": p.model, "resolved": format!("{provider}/{model}"), "persisted": p.persist, "note": note}),
    )
}
