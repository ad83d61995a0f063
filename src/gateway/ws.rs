//! One WebSocket connection: origin check at upgrade, the handshake, then a read loop that
//! runs every request in its own task, a writer task that numbers events, keepalive ticks,
//! and an orderly close on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::handshake::{self, Session};
use super::protocol::{self, PRE_AUTH_TIMEOUT, Request, RpcError, close};
use super::{ConnEntry, Gateway, Outbound, methods, now_ms, presence};

/// Frames queued per connection before it counts as too slow.
const OUTBOUND_QUEUE: usize = 1024;

pub async fn upgrade(gw: Arc<Gateway>, peer: SocketAddr, headers: HeaderMap, ws: WebSocketUpgrade) -> Response {
    if let Err(origin) = check_origin(&gw, &headers) {
        tracing::warn!(%peer, %origin, "cross-origin WebSocket refused");
        let body = format!(
            "WebSocket connections from {origin} are not allowed. \
             Add the origin to [gateway] allowed_origins in skynet.toml to allow it.\n"
        );
        return (StatusCode::FORBIDDEN, body).into_response();
    }
    if gw.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "the gateway is shutting down\n").into_response();
    }
    let max = gw.config.gateway.max_payload;
    let tasks = gw.tasks.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| tasks.track_future(connection(gw, socket, peer)))
}

/// Browsers always send `Origin`; other clients usually do not. A browser page may only
/// connect from the gateway's own origin or one listed in `allowed_origins`.
fn check_origin(gw: &Gateway, headers: &HeaderMap) -> Result<(), String> {
    let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
    let origin = origin.to_str().unwrap_or("<non-ASCII origin>").trim_end_matches('/').to_string();
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or_default();
    let same_origin = ["http://", "https://"].iter().any(|s| origin.strip_prefix(s) == Some(host));
    let allowed = gw.config.gateway.allowed_origins.iter().any(|a| a == "*" || a.trim_end_matches('/') == origin);
    if same_origin || allowed { Ok(()) } else { Err(origin) }
}

async fn connection(gw: Arc<Gateway>, socket: WebSocket, peer: SocketAddr) {
    let conn_id = uuid::Uuid::new_v4().to_string();
    let (sink, mut stream) = socket.split();
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let writer = tokio::spawn(writer(sink, rx));

    let nonce = uuid::Uuid::new_v4().to_string();
    let challenge = json!({"nonce": nonce, "ts": now_ms()});
    let _ = tx.send(Outbound::Frame(protocol::event_frame("connect.challenge", &challenge, None, None))).await;

    let session = tokio::select! {
        r = tokio::time::timeout(PRE_AUTH_TIMEOUT, handshake::run(&gw, &mut stream, &tx, &nonce, peer, &conn_id)) => match r {
            Ok(session) => session,
            Err(_) => {
                handshake::close_with(&tx, close::POLICY_VIOLATION, "handshake timeout: send connect within 15 s").await;
                None
            }
        },
        _ = gw.shutdown.cancelled() => {
            handshake::close_with(&tx, close::SERVICE_RESTART, "gateway shutting down").await;
            None
        }
    };
    if let Some(session) = session {
        serve(&gw, &mut stream, &tx, session, &conn_id, peer).await;
        gw.unregister(&conn_id);
        tracing::info!(%peer, conn = %conn_id, "client disconnected");
    }
    drop(tx);
    let _ = writer.await;
}

/// The authenticated phase: requests, ticks, and the shutdown sequence.
async fn serve(
    gw: &Arc<Gateway>,
    stream: &mut SplitStream<WebSocket>,
    tx: &mpsc::Sender<Outbound>,
    session: Session,
    conn_id: &str,
    peer: SocketAddr,
) {
    let kick = CancellationToken::new();
    let conn = Arc::new(methods::Conn { protocol: session.protocol, scopes: session.scopes, tx: tx.clone() });
    gw.register(
        conn_id,
        ConnEntry {
            tx: tx.clone(),
            protocol: session.protocol,
            scopes: conn.scopes.clone(),
            presence: presence::client_entry(&session.client, conn_id, peer),
            kick: kick.clone(),
        },
    );
    let tick_every = Duration::from_millis(gw.config.gateway.tick_interval_ms);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + tick_every, tick_every);
    let mut last_heard = Instant::now();
    let inflight = TaskTracker::new();

    loop {
        tokio::select! {
            msg = stream.next() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(Message::Text(text))) => dispatch(gw, &conn, &inflight, text.as_str()),
                    Some(Ok(Message::Binary(_))) => {
                        let e = RpcError::invalid("binary frames are not supported; send one JSON object per text frame");
                        let _ = tx.send(Outbound::Frame(protocol::error_frame("", &e))).await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(e)) => {
                        // tungstenite reports an oversize message here; the socket is unusable after.
                        tracing::warn!(%peer, error = %e, "closing connection after a read error");
                        let reason = format!("frame rejected: {e} (policy.maxPayload is {} bytes)", gw.config.gateway.max_payload);
                        handshake::close_with(tx, close::TOO_BIG, &reason).await;
                        break;
                    }
                }
            }
            _ = tick.tick() => {
                if last_heard.elapsed() > tick_every * 3 {
                    handshake::close_with(tx, close::GOING_AWAY, "no traffic from the client for three tick intervals").await;
                    break;
                }
                let _ = tx.try_send(Outbound::Event { name: "tick", payload: json!({"ts": now_ms()}), state_version: None });
                let _ = tx.try_send(Outbound::Ping);
            }
            _ = kick.cancelled() => {
                tracing::warn!(%peer, "client is not reading; closing it");
                handshake::close_with(tx, close::POLICY_VIOLATION, "slow consumer: outbound buffer full").await;
                break;
            }
            _ = gw.shutdown.cancelled() => {
                let payload = json!({"reason": "gateway shutting down"});
                let _ = tx.send(Outbound::Event { name: "shutdown", payload, state_version: None }).await;
                // Let this connection's requests and every live run finish (their final
                // events still reach the client), up to the grace period.
                inflight.close();
                let deadline = tokio::time::Instant::now() + Duration::from_millis(gw.config.gateway.shutdown_grace_ms);
                let _ = tokio::time::timeout_at(deadline, inflight.wait()).await;
                while !gw.runs.is_idle() && tokio::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                handshake::close_with(tx, close::SERVICE_RESTART, "gateway shutting down").await;
                break;
            }
        }
    }
}

/// Parses one request frame and runs its method in its own task, so a slow method never
/// holds up the next frame. Responses may therefore arrive out of order (as the protocol allows).
fn dispatch(gw: &Arc<Gateway>, conn: &Arc<methods::Conn>, inflight: &TaskTracker, text: &str) {
    let reply_error = |id: String, e: RpcError| {
        let _ = conn.tx.try_send(Outbound::Frame(protocol::error_frame(&id, &e)));
    };
    let req = match Request::parse(text) {
        Ok(req) => req,
        Err((id, e)) => return reply_error(id, e),
    };
    if req.method == "connect" {
        return reply_error(req.id, RpcError::invalid("already connected: connect may only be sent once"));
    }
    let Some(method) = methods::find(&req.method) else {
        return reply_error(req.id, RpcError::invalid(format!("unknown method: {}", req.method)));
    };
    if let Some(scope) = method.scope
        && !super::auth::has_scope(&conn.scopes, scope)
    {
        return reply_error(req.id, RpcError::missing_scope(scope, conn.protocol));
    }
    let ctx = methods::Ctx { gw: gw.clone(), conn: conn.clone(), req_id: req.id };
    let handler = method.handler;
    let task = async move {
        let id = ctx.req_id.clone();
        let tx = ctx.conn.tx.clone();
        let frame = match handler(ctx, req.params).await {
            Ok(payload) => protocol::ok_frame(&id, &payload),
            Err(e) => protocol::error_frame(&id, &e),
        };
        let _ = tx.send(Outbound::Frame(frame)).await;
    };
    gw.tasks.spawn(inflight.track_future(task));
}

/// Owns the socket's write half; numbers events with the connection's `seq`.
async fn writer(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Outbound>) {
    let mut seq: u64 = 0;
    while let Some(out) = rx.recv().await {
        let msg = match out {
            Outbound::Frame(text) => Message::Text(text.into()),
            Outbound::Event { name, payload, state_version } => {
                seq += 1;
                Message::Text(protocol::event_frame(name, &payload, Some(seq), state_version.as_ref()).into())
            }
            Outbound::Ping => Message::Ping(Default::default()),
            Outbound::Close(code, reason) => {
                let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                break;
            }
        };
        if sink.send(msg).await.is_err() {
            break;
        }
    }
    let _ = sink.close().await;
}
