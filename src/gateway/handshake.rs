//! The connect handshake: `connect.challenge` → `connect` → `hello-ok`, or the protocol's
//! refusal (an error response, then a close frame with the code the protocol prescribes).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde_json::{Value, json};
use tokio::sync::mpsc::Sender;

use super::auth::{self, AuthFailure, ClientInfo, ConnectParams};
use super::protocol::{self, PRE_AUTH_MAX_FRAME, Request, RpcError, close};
use super::{Gateway, Outbound, methods, now_ms};
use crate::home::{generate_token, sha256_hex};
use crate::store::Device;

/// Events this gateway emits, advertised in hello-ok.
const EVENTS: [&str; 6] = ["connect.challenge", "tick", "presence", "shutdown", "agent", "chat"];

/// An authenticated connection's identity.
pub struct Session {
    pub protocol: u32,
    pub scopes: Vec<String>,
    pub client: ClientInfo,
}

/// What authentication granted.
struct Grant {
    scopes: Vec<String>,
    device_token: Option<String>,
}

/// Sends the error response and closes. Close reasons are capped at 123 bytes by RFC 6455.
pub async fn refuse(tx: &Sender<Outbound>, id: &str, error: &RpcError, code: u16) {
    let _ = tx.send(Outbound::Frame(protocol::error_frame(id, error))).await;
    close_with(tx, code, &error.message).await;
}

pub async fn close_with(tx: &Sender<Outbound>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let _ = tx.send(Outbound::Close(code, reason[..end].to_string())).await;
}

/// Reads until the client's first request and answers it. Returns the session when the
/// client may proceed; otherwise the refusal has been queued and the caller just ends.
pub async fn run(
    gw: &Arc<Gateway>,
    stream: &mut SplitStream<WebSocket>,
    tx: &Sender<Outbound>,
    nonce: &str,
    peer: SocketAddr,
    conn_id: &str,
) -> Option<Session> {
    let text = loop {
        match stream.next().await? {
            Ok(Message::Text(t)) => break t,
            Ok(Message::Ping(_) | Message::Pong(_)) => continue,
            Ok(Message::Close(_)) => return None,
            Ok(Message::Binary(_)) => {
                close_with(tx, close::UNSUPPORTED_DATA, "binary frames are not supported; send JSON text frames").await;
                return None;
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "read error before connect");
                close_with(tx, close::TOO_BIG, "frame rejected before the handshake").await;
                return None;
            }
        }
    };
    if text.len() > PRE_AUTH_MAX_FRAME {
        close_with(tx, close::TOO_BIG, "frame too large before the handshake (limit 64 KiB)").await;
        return None;
    }
    let req = match Request::parse(&text) {
        Ok(req) => req,
        Err((id, _)) if id.is_empty() && serde_json::from_str::<Value>(&text).is_err() => {
            // The reference gateway closes normally on non-JSON before connect.
            close_with(tx, close::NORMAL, "malformed JSON before connect").await;
            return None;
        }
        Err((id, e)) => {
            let e = RpcError::invalid(format!("invalid handshake: first request must be connect ({})", e.message));
            refuse(tx, &id, &e, close::POLICY_VIOLATION).await;
            return None;
        }
    };
    if req.method != "connect" {
        let e = RpcError::invalid("invalid handshake: first request must be connect");
        refuse(tx, &req.id, &e, close::POLICY_VIOLATION).await;
        return None;
    }
    let params: ConnectParams = match protocol::parse_params("connect", req.params) {
        Ok(p) => p,
        Err(e) => {
            refuse(tx, &req.id, &e, close::POLICY_VIOLATION).await;
            return None;
        }
    };
    if let Err(why) = params.validate() {
        refuse(tx, &req.id, &RpcError::bad_params("connect", why), close::POLICY_VIOLATION).await;
        return None;
    }
    let Some(version) = protocol::negotiate(params.min_protocol, params.max_protocol) else {
        let e = RpcError::invalid("protocol mismatch").with_details(json!({
            "expectedProtocol": protocol::SUPPORTED.start(),
            "supportedProtocols": protocol::SUPPORTED.collect::<Vec<_>>(),
        }));
        refuse(tx, &req.id, &e, close::PROTOCOL_ERROR).await;
        return None;
    };
    if params.role() != "operator" {
        let e = RpcError::invalid("role node is not supported: this gateway has no device nodes; connect as operator");
        refuse(tx, &req.id, &e, close::POLICY_VIOLATION).await;
        return None;
    }

    let delay = gw.limiter.delay_for(peer.ip());
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let grant = match authenticate(gw, &params, nonce).await {
        Ok(g) => g,
        Err(failure) => {
            let mut error = failure.to_error();
            if failure.counts_as_failed_attempt() {
                let (failures, next) = gw.limiter.record_failure(peer.ip());
                if !next.is_zero() {
                    error.retry_after_ms = Some(next.as_millis() as u64);
                }
                tracing::warn!(%peer, client = %params.client.id, failures, reason = %error.message, "connect refused");
            } else {
                tracing::info!(%peer, client = %params.client.id, reason = %error.message, "connect refused");
            }
            refuse(tx, &req.id, &error, close::POLICY_VIOLATION).await;
            return None;
        }
    };
    gw.limiter.record_success(peer.ip());

    let g = &gw.config.gateway;
    let mut auth = json!({"role": params.role(), "scopes": grant.scopes});
    if let Some(token) = &grant.device_token {
        auth["deviceToken"] = token.clone().into();
        auth["issuedAtMs"] = now_ms().into();
    }
    let hello = json!({
        "type": "hello-ok",
        "protocol": version,
        "server": {"version": env!("CARGO_PKG_VERSION"), "connId": conn_id},
        "features": {"methods": methods::names(), "events": EVENTS},
        "snapshot": {
            "presence": gw.presence_list(),
            "health": methods::system::health_payload(gw).await,
            "stateVersion": gw.state_version(),
            "uptimeMs": gw.uptime_ms(),
            "authMode": "token",
        },
        "auth": auth,
        "policy": {
            "maxPayload": g.max_payload,
            "maxBufferedBytes": protocol::MAX_BUFFERED_BYTES,
            "tickIntervalMs": g.tick_interval_ms,
        },
    });
    tx.send(Outbound::Frame(protocol::ok_frame(&req.id, &hello))).await.ok()?;
    tracing::info!(%peer, client = %params.client.id, mode = %params.client.mode, protocol = version, "client connected");
    Some(Session { protocol: version, scopes: grant.scopes, client: params.client })
}

/// Decides what a `connect` may do. The shared gateway token is the master credential;
/// a paired device may instead present the device token it was issued (in `auth.token`,
/// as openclaw-node 0.14 does, or in `auth.deviceToken`), for no more than its paired scopes.
async fn authenticate(gw: &Gateway, p: &ConnectParams, nonce: &str) -> Result<Grant, AuthFailure> {
    let expected = gw.config.gateway.auth_token.expose();
    let a = p.auth.as_ref();
    let token = a.and_then(|a| a.token.as_deref()).filter(|t| !t.is_empty());
    let device_token = a.and_then(|a| a.device_token.as_deref()).filter(|t| !t.is_empty());
    let shared_ok = token.is_some_and(|t| auth::tokens_match(t, expected));
    let requested = p.requested_scopes();

    if p.device.is_none() {
        return match token {
            Some(_) if shared_ok => {
                Ok(Grant { scopes: if p.is_backend() { requested } else { Vec::new() }, device_token: None })
            }
            Some(_) => Err(AuthFailure::TokenMismatch),
            None => Err(AuthFailure::DeviceIdentityRequired),
        };
    }
    let device = auth::verify_device(p, nonce, now_ms())?;
    let unavailable = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "device lookup failed");
        AuthFailure::Unavailable
    };
    if shared_ok {
        // Pair (or re-pair) the device and issue it a fresh token.
        let issued = generate_token().map_err(|_| AuthFailure::Unavailable)?;
        gw.store
            .pair_device(Device {
                id: device.id.clone(),
                public_key: device.public_key,
                client_id: p.client.id.clone(),
                platform: p.client.platform.clone(),
                scopes: requested.clone(),
                token_hash: sha256_hex(issued.as_bytes()),
                paired_at: now_ms(),
            })
            .await
            .map_err(unavailable)?;
        return Ok(Grant { scopes: requested, device_token: Some(issued) });
    }
    let presented = token.or(device_token).ok_or(AuthFailure::TokenMissing)?;
    let known = gw.store.device(&device.id).await.map_err(unavailable)?.ok_or(AuthFailure::TokenMismatch)?;
    if !auth::tokens_match(&sha256_hex(presented.as_bytes()), &known.token_hash) {
        return Err(AuthFailure::TokenMismatch);
    }
    if requested.iter().any(|s| !known.scopes.contains(s)) {
        return Err(AuthFailure::ScopeUpgrade);
    }
    gw.store.touch_device(&device.id, now_ms()).await.map_err(unavailable)?;
    Ok(Grant { scopes: requested, device_token: None })
}
