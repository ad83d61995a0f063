//! `users.whoami`, `users.linkCode`, `users.link` and `users.list`. Each acts for the
//! caller (the gateway's owner) or, for a trusted backend with the admin scope, for a
//! channel identity given as `sender` — the way a channel adapter speaks for its users.

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ctx, NoParams};
use crate::gateway::auth::{SCOPE_ADMIN, has_scope};
use crate::gateway::protocol::{self, ErrorCode, RpcError};
use crate::store::{LinkError, Person};
use crate::users::{self, Sender, parse_default_role};

/// The person a request acts for: the owner, or `sender` (admin scope only).
pub async fn person_for(ctx: &Ctx, sender: Option<&Sender>) -> Result<Person, RpcError> {
    let store = &ctx.gw.store;
    let unavailable = |e: crate::store::StoreError| RpcError::unavailable(e.to_string());
    let Some(sender) = sender else {
        return users::owner(store).await.map_err(unavailable);
    };
    if !has_scope(&ctx.conn.scopes, SCOPE_ADMIN) {
        return Err(RpcError::missing_scope(SCOPE_ADMIN, ctx.conn.protocol));
    }
    if sender.channel.is_empty() || sender.id.is_empty() || sender.channel.len() > 64 || sender.id.len() > 256 {
        return Err(RpcError::invalid("sender needs a channel (1-64 characters) and an id (1-256 characters)"));
    }
    let default_role = parse_default_role(&ctx.gw.config.users.default_role).unwrap_or(None);
    match users::resolve(store, sender, default_role).await.map_err(unavailable)? {
        Some(p) => Ok(p),
        None => Err(RpcError::new(ErrorCode::Forbidden, users::STRANGER_MESSAGE)
            .with_details(json!({"code": "UNKNOWN_SENDER", "channel": sender.channel, "id": sender.id}))),
    }
}

fn describe(p: &Person) -> Value {
    json!({"id": p.id, "name": p.name, "role": p.role})
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SenderParams {
    #[serde(default)]
    sender: Option<Sender>,
}

pub async fn whoami(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: SenderParams = protocol::parse_params("users.whoami", params)?;
    let person = person_for(&ctx, p.sender.as_ref()).await?;
    Ok(json!({"user": describe(&person)}))
}

pub async fn link_code(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: SenderParams = protocol::parse_params("users.linkCode", params)?;
    let person = person_for(&ctx, p.sender.as_ref()).await?;
    let ttl = ctx.gw.config.users.link_code_ttl_secs;
    let code = ctx.gw.store.create_link_code(person.id, ttl).await.map_err(|e| RpcError::unavailable(e.to_string()))?;
    Ok(json!({
        "code": code,
        "expiresInSecs": ttl,
        "user": describe(&person),
        "howTo": format!("Send /link {code} from the other account within {} minutes.", ttl / 60),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LinkParams {
    code: String,
    #[serde(default)]
    sender: Option<Sender>,
}

pub async fn link(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    let p: LinkParams = protocol::parse_params("users.link", params)?;
    let Some(sender) = p.sender else {
        return Err(RpcError::bad_params("users.link", "sender (the identity to link) is required"));
    };
    if !has_scope(&ctx.conn.scopes, SCOPE_ADMIN) {
        return Err(RpcError::missing_scope(SCOPE_ADMIN, ctx.conn.protocol));
    }
    let cfg = &ctx.gw.config.users;
    match ctx
        .gw
        .store
        .redeem_link_code(&sender.channel, &sender.id, &p.code, cfg.link_code_ttl_secs, cfg.link_failures_per_hour)
        .await
    {
        Ok(person) => {
            tracing::info!(user = %person.name, channel = %sender.channel, "identity linked with a code");
            Ok(json!({"ok": true, "user": describe(&person)}))
        }
        Err(LinkError::Store(e)) => Err(RpcError::unavailable(e.to_string())),
        Err(e) => {
            tracing::info!(channel = %sender.channel, reason = %e, "link code refused");
            Err(RpcError::invalid(e.to_string()))
        }
    }
}

pub async fn list(ctx: Ctx, params: Option<Value>) -> Result<Value, RpcError> {
    protocol::parse_params::<NoParams>("users.list", params)?;
    let users = ctx.gw.store.list_users().await.map_err(|e| RpcError::unavailable(e.to_string()))?;
    let rows: Vec<Value> = users
        .iter()
        .map(|u| {
            let ids: Vec<Value> = u.identities.iter().map(|(c, i)| json!({"channel": c, "id": i})).collect();
            json!({"id": u.person.id, "name": u.person.name, "role": u.person.role, "identities": ids, "createdAt": u.created_at})
        })
        .collect();
    Ok(json!({"users": rows}))
}
