//! Chat: `chat.send`, `chat.history`, `chat.abort`, `agent` (answered twice: accepted,
//! then final) and `agent.wait`. Runs stream as `agent` and `chat` events (see runs.rs).

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Ctx;
use super::users::person_for;
use crate::agent::{RunRequest, Status};
use crate::gateway::protocol::{self, ErrorCode, RpcError};
use crate::gateway::runs::{self, RunEnd, Started, canonical_session_key};
use crate::gateway::{Outbound, now_ms};
use crate::users::Sender;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendParams {
    session_key: String,
    message: String,
    idempotency_key: String,
    #[serde(default)]
    model: Option<String>,
    /// A channel identity to answer (admin scope): how a channel adapter speaks for its users.
    #[serde(default)]
    sender: Option<Sender>,
    // Accepted for OpenClaw compatibility.
    #[serde(default, rename = "sessionId")]
    _session_id: Option<Value>,
    #[serde(default, rename = "thinking")]
    _thinking: Option<Value>,
    #[serde(default, rename = "deliver")]
    _deliver: Option<Value>,
    #[serde(default, rename = "attachments")]
    _attachments: Option<Value>,
    #[serde(default, rename = "timeoutMs")]
    _timeout_ms: Option<Value>,
}

fn check_send(method: &str, key: &str, message: &str, idem: &str) -> Result<(), RpcError> {
    if key.is_empty() || key.len() > 512 {
        return Err(RpcError::bad_params(method, "sessionKey must be 1 to 512 characters"));
    }
    if message.trim().is_empty() {
        return Err(RpcError::bad_params(method, "message must not be empty"));
    }
    if idem.is_empty() || idem.len() > 256 {
        return Err(RpcError::bad_params(method, "idempotencyKey must be 1 to 256 characters"));
    }
    Ok(())
}

pub async fn send(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: SendParams = protocol::parse_params("chat.send", params)?;
    check_send("chat.send", &p.session_key, &p.message, &p.idempotency_key)?;
    let run_id = p.idempotency_key.clone();
    let person = person_for(&ctx, p.sender.as_ref()).await?;
    let channel = p.sender.as_ref().map_or("webchat", |s| s.channel.as_str());
    let mut req = RunRequest::new(run_id.clone(), canonical_session_key(&p.session_key), p.message, p.model, channel);
    req.person = Some(person);
    Ok(match runs::start(&ctx.gw, req) {
        Started::New(_) => json!({"runId": run_id, "status": "started"}),
        Started::InFlight(_) => json!({"runId": run_id, "status": "in_flight"}),
        Started::Finished(_) => json!({"runId": run_id, "status": "ok"}),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HistoryParams {
    session_key: String,
    #[serde(default)]
    limit: Option<usize>,
    #[serde(default)]
    max_chars: Option<usize>,
}

pub async fn history(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: HistoryParams = protocol::parse_params("chat.history", params)?;
    let limit = p.limit.unwrap_or(200);
    if limit == 0 || limit > 1000 {
        return Err(RpcError::bad_params("chat.history", "limit must be between 1 and 1000"));
    }
    let key = canonical_session_key(&p.session_key);
    let (session_id, stored) =
        ctx.gw.store.history(&key, limit).await.map_err(|e| RpcError::unavailable(e.to_string()))?;
    let messages: Vec<Value> = stored
        .into_iter()
        .filter_map(|m| {
            // Tool rounds and context are internal; the visible conversation is the text.
            let mut text = m.message.text();
            if text.is_empty() {
                return None;
            }
            if let Some(max) = p.max_chars
                && text.chars().count() > max
            {
                text = text.chars().take(max).collect();
            }
            let mut v = json!({
                "role": m.message.role,
                "content": [{"type": "text", "text": text}],
                "timestamp": m.created_at,
                "__openclaw": {"id": format!("{}", m.seq), "seq": m.seq},
            });
            for (k, from) in
                [("provider", "provider"), ("model", "model"), ("usage", "usage"), ("stopReason", "stopReason")]
            {
                if !m.meta[from].is_null() {
                    v[k] = m.meta[from].clone();
                }
            }
            Some(v)
        })
        .collect();
    Ok(json!({"sessionKey": key, "sessionId": session_id, "messages": messages, "thinkingLevel": "off"}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AbortParams {
    session_key: String,
    #[serde(default)]
    run_id: Option<String>,
}

pub async fn abort(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: AbortParams = protocol::parse_params("chat.abort", params)?;
    let ids = ctx.gw.runs.abort(&canonical_session_key(&p.session_key), p.run_id.as_deref());
    Ok(json!({"ok": true, "aborted": !ids.is_empty(), "runIds": ids}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentParams {
    message: String,
    idempotency_key: String,
    #[serde(default)]
    session_key: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    channel: Option<String>,
    #[serde(default)]
    sender: Option<Sender>,
}

/// The final `agent` response: the run's answer and its metadata.
fn agent_result(run_id: &str, end: &RunEnd) -> Result<Value, RpcError> {
    let o = &end.outcome;
    if let Status::Error(e) = &o.status {
        return Err(RpcError::new(ErrorCode::Unavailable, e.clone()).with_details(json!({"runId": run_id})));
    }
    Ok(json!({
        "runId": run_id,
        "status": "ok",
        "summary": if o.status == Status::Aborted { "aborted" } else { "completed" },
        "result": {
            "payloads": [{"text": o.text, "mediaUrl": null}],
            "meta": {
                "durationMs": o.duration.as_millis() as u64,
                "aborted": o.status == Status::Aborted,
                "agentMeta": {"sessionId": o.session_id, "provider": o.provider, "model": o.model, "usage": o.usage},
            },
        },
    }))
}

pub async fn agent(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: AgentParams = protocol::parse_params("agent", params)?;
    let key = p.session_key.unwrap_or_else(|| "main".into());
    check_send("agent", &key, &p.message, &p.idempotency_key)?;
    let run_id = p.idempotency_key.clone();
    let channel = p.channel.unwrap_or_else(|| "gateway".into());
    let person = person_for(&ctx, p.sender.as_ref()).await?;
    let mut req = RunRequest::new(run_id.clone(), canonical_session_key(&key), p.message, p.model, &channel);
    req.person = Some(person);
    let mut done = match runs::start(&ctx.gw, req) {
        Started::Finished(end) => return agent_result(&run_id, &end),
        Started::New(rx) | Started::InFlight(rx) => rx,
    };
    let accepted = json!({"runId": run_id, "status": "accepted", "acceptedAt": now_ms()});
    let _ = ctx.conn.tx.send(Outbound::Frame(protocol::ok_frame(&ctx.req_id, &accepted))).await;
    let Some(end) = runs::wait_end(&mut done).await else {
        return Err(RpcError::unavailable("the run ended without a result"));
    };
    agent_result(&run_id, &end)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WaitParams {
    run_id: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

pub async fn wait(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: WaitParams = protocol::parse_params("agent.wait", params)?;
    let Some(mut done) = ctx.gw.runs.watch(&p.run_id) else {
        return Err(RpcError::invalid(format!("unknown run: {}", p.run_id)));
    };
    let timeout = Duration::from_millis(p.timeout_ms.unwrap_or(30_000).min(600_000));
    let waited = tokio::time::timeout(timeout, runs::wait_end(&mut done)).await;
    Ok(match waited {
        Ok(Some(end)) => {
            let status = match end.outcome.status {
                Status::Error(_) => "error",
                _ => "ok",
            };
            json!({"runId": p.run_id, "status": status, "endedAt": end.ended_at})
        }
        _ => json!({"runId": p.run_id, "status": "timeout"}),
    })
}
