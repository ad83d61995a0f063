//! Presence entries: who is connected to the gateway, as `system-presence` and the
//! `presence` event report them.

use std::net::SocketAddr;

use serde_json::{Value, json};

use super::auth::ClientInfo;
use super::{Gateway, now_ms};

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub fn platform() -> String {
    format!("{} {}", std::env::consts::OS, std::env::consts::ARCH)
}

pub fn gateway_entry(gw: &Gateway) -> Value {
    let host = hostname();
    let version = env!("CARGO_PKG_VERSION");
    json!({
        "host": host,
        "ip": gw.config.gateway.bind,
        "version": version,
        "platform": platform(),
        "deviceFamily": std::env::consts::OS,
        "modelIdentifier": std::env::consts::ARCH,
        "mode": "gateway",
        "reason": "self",
        "text": format!("Gateway: {host} · skynet {version} · mode gateway · reason self"),
        "ts": gw.started_at_ms,
    })
}

pub fn client_entry(client: &ClientInfo, conn_id: &str, peer: SocketAddr) -> Value {
    let host = client.display_name.clone().unwrap_or_else(|| client.id.clone());
    json!({
        "host": host,
        "ip": peer.ip().to_string(),
        "version": client.version,
        "platform": client.platform,
        "deviceFamily": client.device_family,
        "modelIdentifier": client.model_identifier,
        "mode": client.mode,
        "reason": "connect",
        "text": format!("Client: {host} · {} {} · mode {}", client.id, client.version, client.mode),
        "instanceId": client.instance_id,
        "connId": conn_id,
        "ts": now_ms(),
    })
}
