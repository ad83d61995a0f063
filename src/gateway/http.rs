//! Plain HTTP on the gateway port: liveness, readiness, the WebSocket upgrade at `/` (the
//! web chat page for plain requests there, web.rs), and the OpenAI-compatible API under
//! `/v1` (openai_api.rs).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, State, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::json;

use super::{Gateway, methods, openai_api, web, ws};

pub fn router(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/", get(root))
        .route("/health", get(health))
        .route("/healthz", get(health))
        .route("/ready", get(ready))
        .route("/readyz", get(ready))
        .merge(openai_api::routes(gw.config.gateway.max_payload))
        .merge(web::routes())
        .fallback(not_found)
        .with_state(gw)
}

/// Liveness: answers as long as the process serves requests; no I/O, no auth.
async fn health(State(gw): State<Arc<Gateway>>) -> Json<serde_json::Value> {
    Json(json!({
        "ok": true,
        "status": "live",
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeMs": gw.uptime_ms(),
        "channels": gw.channels.snapshot(),
    }))
}

/// Readiness: the store answers and the gateway is not shutting down.
async fn ready(State(gw): State<Arc<Gateway>>) -> Response {
    let store = methods::system::store_check(&gw).await;
    let mut failing = Vec::new();
    if store["ok"] != true {
        failing.push("store");
    }
    if gw.shutdown.is_cancelled() {
        failing.push("shutdown");
    }
    let ready = failing.is_empty();
    let body = json!({
        "ready": ready,
        "failing": failing,
        "uptimeMs": gw.uptime_ms(),
        "checks": {"store": store, "channels": gw.channels.snapshot()},
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

async fn root(
    State(gw): State<Arc<Gateway>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match upgrade {
        Ok(upgrade) => ws::upgrade(gw, peer, headers, upgrade).await,
        Err(_) => web::page(&headers),
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": "not found", "see": "/health, /readyz, /v1/chat/completions, WebSocket at /"})),
    )
        .into_response()
}
