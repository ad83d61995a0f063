//! Protocol methods: one table maps each name to its handler and required scope. The
//! table is also what hello-ok advertises, so only implemented methods are ever listed.

pub mod chat;
pub mod models;
pub mod sessions;
pub mod system;
pub mod users;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio::sync::mpsc;

use super::auth::{SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE};
use super::protocol::RpcError;
use super::{Gateway, Outbound};

/// The calling connection.
pub struct Conn {
    pub protocol: u32,
    pub scopes: Vec<String>,
    pub tx: mpsc::Sender<Outbound>,
}

/// Params of methods that take none: absent or `{}`, nothing else.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

/// Everything a handler may use.
pub struct Ctx {
    pub gw: Arc<Gateway>,
    pub conn: Arc<Conn>,
    pub req_id: String,
}

pub type Handler = fn(Ctx, Option<Value>) -> BoxFuture<'static, Result<Value, RpcError>>;

pub struct Method {
    pub name: &'static str,
    /// `None`: any authenticated connection may call it.
    pub scope: Option<&'static str>,
    pub handler: Handler,
}

static METHODS: &[Method] = &[
    Method { name: "health", scope: None, handler: |c, p| Box::pin(system::health(c, p)) },
    Method { name: "status", scope: Some(SCOPE_READ), handler: |c, p| Box::pin(system::status(c, p)) },
    Method { name: "system-presence", scope: Some(SCOPE_READ), handler: |c, p| Box::pin(system::presence(c, p)) },
    Method { name: "chat.send", scope: Some(SCOPE_WRITE), handler: |c, p| Box::pin(chat::send(c, p)) },
    Method { name: "chat.history", scope: Some(SCOPE_READ), handler: |c, p| Box::pin(chat::history(c, p)) },
    Method { name: "chat.abort", scope: Some(SCOPE_WRITE), handler: |c, p| Box::pin(chat::abort(c, p)) },
    Method { name: "agent", scope: Some(SCOPE_WRITE), handler: |c, p| Box::pin(chat::agent(c, p)) },
    Method { name: "agent.wait", scope: Some(SCOPE_WRITE), handler: |c, p| Box::pin(chat::wait(c, p)) },
    Method { name: "sessions.list", scope: Some(SCOPE_READ), handler: |c, p| Box::pin(sessions::list(c, p)) },
    Method { name: "sessions.reset", scope: Some(SCOPE_ADMIN), handler: |c, p| Box::pin(sessions::reset(c, p)) },
    Method { name: "sessions.delete", scope: Some(SCOPE_ADMIN), handler: |c, p| Box::pin(sessions::delete(c, p)) },
    Method { name: "models.list", scope: Some(SCOPE_READ), handler: |c, p| Box::pin(models::list(c, p)) },
    Method { name: "models.set", scope: Some(SCOPE_ADMIN), handler: |c, p| Box::pin(models::set(c, p)) },
    Method { name: "users.whoami", scope: Some(SCOPE_READ), handler: |c, p| Box::pin(users::whoami(c, p)) },
    Method { name: "users.linkCode", scope: Some(SCOPE_WRITE), handler: |c, p| Box::pin(users::link_code(c, p)) },
    Method { name: "users.link", scope: Some(SCOPE_ADMIN), handler: |c, p| Box::pin(users::link(c, p)) },
    Method { name: "users.list", scope: Some(SCOPE_ADMIN), handler: |c, p| Box::pin(users::list(c, p)) },
];

pub fn find(name: &str) -> Option<&'static Method> {
    METHODS.iter().find(|m| m.name == name)
}

pub fn names() -> Vec<&'static str> {
    METHODS.iter().map(|m| m.name).collect()
}
