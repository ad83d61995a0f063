//! `sessions.list`, `sessions.reset` and `sessions.delete`.

use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use crate::gateway::now_ms;
use crate::gateway::protocol::{self, RpcError};
use crate::gateway::runs::canonical_session_key;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    #[serde(default)]
    limit: Option<usize>,
}

pub async fn list(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ListParams = protocol::parse_params("sessions.list", params)?;
    let limit = p.limit.unwrap_or(100).clamp(1, 1000);
    let store = &ctx.gw.store;
    let unavailable = |e: crate::store::StoreError| RpcError::unavailable(e.to_string());
    let sessions = store.list_sessions(limit).await.map_err(unavailable)?;
    let total = store.session_count().await.map_err(unavailable)?;
    let default_model = ctx.gw.agent.models.settings().agent.model.clone();
    let rows: Vec<Value> = sessions
        .iter()
        .map(|s| {
            json!({
                "key": s.key,
                "kind": "direct",
                "sessionId": s.id,
                "updatedAt": s.updated_at,
                "createdAt": s.created_at,
                "messageCount": s.message_count,
                "model": s.model.as_deref().unwrap_or(&default_model),
                "status": "idle",
            })
        })
        .collect();
    Ok(json!({
        "ts": now_ms(),
        "count": rows.len(),
        "totalCount": total,
        "limitApplied": limit,
        "hasMore": (total as usize) > rows.len(),
        "defaults": {"defaultAgentId": "main", "mainKey": "main", "mainSessionKey": "agent:main:main", "model": default_model},
        "sessions": rows,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetParams {
    key: String,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn reset(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: ResetParams = protocol::parse_params("sessions.reset", params)?;
    if let Some(r) = p.reason.as_deref().filter(|r| *r != "new" && *r != "reset") {
        return Err(RpcError::bad_params("sessions.reset", format!("reason must be \"new\" or \"reset\", not {r:?}")));
    }
    let key = canonical_session_key(&p.key);
    ctx.gw.runs.abort(&key, None);
    let id = ctx.gw.store.reset_session(&key).await.map_err(|e| RpcError::unavailable(e.to_string()))?;
    Ok(json!({"ok": true, "key": key, "sessionId": id}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeleteParams {
    key: String,
    #[serde(default, rename = "deleteTranscript")]
    _delete_transcript: Option<bool>,
}

pub async fn delete(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: DeleteParams = protocol::parse_params("sessions.delete", params)?;
    let key = canonical_session_key(&p.key);
    ctx.gw.runs.abort(&key, None);
    let deleted = ctx.gw.store.delete_session(&key).await.map_err(|e| RpcError::unavailable(e.to_string()))?;
    Ok(json!({"ok": true, "key": key, "deleted": deleted}))
}
