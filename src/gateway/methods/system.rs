//! `health`, `status` and `system-presence`: what the gateway is and how it is doing.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, NoParams};
use crate::gateway::auth::{SCOPE_ADMIN, has_scope};
use crate::gateway::protocol::{self, RpcError};
use crate::gateway::{Gateway, now_ms, protocol::SUPPORTED};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthParams {
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for OpenClaw compatibility; every health call probes")]
    probe: Option<bool>,
}

/// Whether the store answers a trivial query within a second.
pub async fn store_check(gw: &Gateway) -> Value {
    let store = gw.store.clone();
    let probe = store.call(|c| c.query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0)));
    match tokio::time::timeout(Duration::from_secs(1), probe).await {
        Ok(Ok(version)) => json!({"ok": true, "schemaVersion": version}),
        Ok(Err(e)) => json!({"ok": false, "error": e.to_string()}),
        Err(_) => json!({"ok": false, "error": "the database did not answer within 1 s"}),
    }
}

pub async fn health_payload(gw: &Gateway) -> Value {
    let started = Instant::now();
    let store = store_check(gw).await;
    json!({
        "ok": store["ok"],
        "ts": now_ms(),
        "durationMs": started.elapsed().as_millis() as u64,
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeMs": gw.uptime_ms(),
        "store": store,
        "connections": gw.connection_count(),
        "channels": {},
        "channelOrder": [],
        "channelLabels": {},
        "plugins": {"loaded": [], "errors": []},
        "defaultAgentId": "main",
    })
}

pub async fn health(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    protocol::parse_params::<HealthParams>("health", params)?;
    Ok(health_payload(&ctx.gw).await)
}

pub async fn status(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    protocol::parse_params::<NoParams>("status", params)?;
    let gw = &ctx.gw;
    let admin = has_scope(&ctx.conn.scopes, SCOPE_ADMIN);
    let path = |p: &std::path::Path| if admin { p.display().to_string() } else { "[redacted]".into() };
    let db_path = gw.store.path().to_path_buf();
    let size = tokio::fs::metadata(&db_path).await.map(|m| m.len()).unwrap_or(0);
    let devices = gw.store.device_count().await.map_err(|e| RpcError::unavailable(e.to_string()))?;
    let g = &gw.config.gateway;
    Ok(json!({
        "runtimeVersion": env!("CARGO_PKG_VERSION"),
        "uptimeMs": gw.uptime_ms(),
        "startedAt": gw.started_at_ms,
        "gateway": {
            "bind": g.bind,
            "port": g.port,
            "protocols": SUPPORTED.collect::<Vec<_>>(),
            "connections": gw.connection_count(),
            "tickIntervalMs": g.tick_interval_ms,
        },
        "home": path(gw.home.root()),
        "store": {
            "path": path(&db_path),
            "sizeBytes": size,
            "health": store_check(gw).await,
            "pairedDevices": devices,
        },
        "channelSummary": gw.channels.snapshot(),
        "queuedSystemEvents": [],
    }))
}

pub async fn presence(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    protocol::parse_params::<NoParams>("system-presence", params)?;
    Ok(Value::Array(ctx.gw.presence_list()))
}
