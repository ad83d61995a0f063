//! A fake Discord on loopback, speaking the documented wire format (API v10), for the
//! gateway's Discord channel pointed at it with `[channels.discord] proxy_url`.
//!
//! REST (under `/api/v10`, `Authorization: Bot <token>` checked, 401 otherwise):
//! `GET /gateway` and `/gateway/bot` (the WebSocket address), `GET /users/@me`,
//! `POST /channels/{id}/messages`, `POST /channels/{id}/typing`, `POST /users/@me/channels`
//! (open a DM), `PUT /applications/{id}/commands`, `POST /interactions/{id}/{token}/callback`;
//! every call is recorded.
//!
//! Gateway (WebSocket on `/`): Hello (op 10) → Identify (op 2; a wrong token is closed
//! with 4004 "Authentication failed.") → READY → heartbeat ACKs (op 11); Resume (op 6) is
//! answered with RESUMED. Tests push MESSAGE_CREATE and INTERACTION_CREATE dispatches,
//! drop the connection, and take the gateway down and up again.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const BOT_ID: &str = "900000000000000001";
pub const GUILD_ID: &str = "910000000000000001";

/// A REST call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub body: Value,
}

enum Push {
    Dispatch(&'static str, Value),
    Close(u16),
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// The live gateway connection's queue.
    conn: Option<mpsc::UnboundedSender<Push>>,
    identifies: Vec<Value>,
    resumes: usize,
    dms: HashMap<String, String>,
}

struct Shared {
    token: String,
    /// Accept any token over REST (so only the gateway's Identify can refuse it).
    rest_any_token: bool,
    addr: SocketAddr,
    /// While true, WebSocket upgrades are refused (503), as if the network were gone.
    down: AtomicBool,
    ids: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Clone)]
pub struct FakeDiscord {
    shared: Arc<Shared>,
}

fn user(id: &str, name: &str, bot: bool) -> Value {
    json!({"id": id, "username": name, "discriminator": "0", "global_name": if bot { Value::Null } else { json!(name) },
           "avatar": null, "bot": bot, "system": false, "public_flags": 0, "flags": 0, "banner": null,
           "accent_color": null, "avatar_decoration_data": null})
}

pub fn bot_user() -> Value {
    let mut u = user(BOT_ID, "skynet", true);
    u["verified"] = json!(true);
    u["mfa_enabled"] = json!(false);
    u["email"] = Value::Null;
    u["locale"] = json!("en-US");
    u
}

/// A person (not a bot) as Discord describes them.
pub fn person(id: &str, name: &str) -> Value {
    user(id, name, false)
}

fn timestamp() -> String {
    "2025-06-01T12:00:00.000000+00:00".into()
}

/// A complete message object, as in MESSAGE_CREATE and the REST answers.
pub fn message(id: &str, channel_id: &str, guild_id: Option<&str>, author: Value, content: &str) -> Value {
    let mut m = json!({
        "id": id, "channel_id": channel_id, "author": author, "content": content,
        "timestamp": timestamp(), "edited_timestamp": null, "tts": false, "mention_everyone": false,
        "mentions": [], "mention_roles": [], "attachments": [], "embeds": [], "components": [],
        "pinned": false, "type": 0, "flags": 0, "nonce": null, "webhook_id": null,
    });
    if let Some(g) = guild_id {
        m["guild_id"] = json!(g);
        m["member"] = json!({"roles": [], "joined_at": timestamp(), "deaf": false, "mute": false, "flags": 0,
                             "pending": false, "premium_since": null, "nick": null, "avatar": null});
    }
    m
}

impl FakeDiscord {
    /// Starts on its own thread's runtime; the bot's token is `token`.
    pub fn start(token: &str) -> FakeDiscord {
        Self::start_with(token, false)
    }

    pub fn start_with(token: &str, rest_any_token: bool) -> FakeDiscord {
        let (tx, rx) = std::sync::mpsc::channel();
        let token = token.to_string();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                let shared = Arc::new(Shared {
                    token,
                    rest_any_token,
                    addr: listener.local_addr().unwrap(),
                    down: AtomicBool::new(false),
                    ids: AtomicU64::new(1),
                    inner: Mutex::new(Inner::default()),
                });
                tx.send(shared.clone()).unwrap();
                let app = Router::new()
                    .route("/", get(gateway_ws))
                    .route("/api/v10/gateway", get(gateway_url))
                    .route("/api/v10/gateway/bot", get(gateway_bot))
                    .route("/api/v10/users/@me", get(me))
                    .route("/api/v10/users/@me/channels", post(open_dm))
                    .route("/api/v10/channels/{id}/messages", post(create_message))
                    .route("/api/v10/channels/{id}/typing", post(typing))
                    .route("/api/v10/applications/{id}/commands", put(set_commands))
                    .route("/api/v10/interactions/{id}/{token}/callback", post(callback))
                    .fallback(unknown)
                    .with_state(shared);
                axum::serve(listener, app).await.unwrap();
            });
        });
        FakeDiscord { shared: rx.recv().unwrap() }
    }

    /// What `[channels.discord] proxy_url` is set to.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.inner.lock().unwrap()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Bodies of the calls whose method and path match.
    pub fn bodies(&self, method: &str, path: &str) -> Vec<Value> {
        self.calls().into_iter().filter(|c| c.method == method && c.path == path).map(|c| c.body).collect()
    }

    /// Messages the bot posted to `channel`.
    pub fn posted(&self, channel: &str) -> Vec<Value> {
        self.bodies("POST", &format!("/api/v10/channels/{channel}/messages"))
    }

    pub fn identifies(&self) -> Vec<Value> {
        self.lock().identifies.clone()
    }

    pub fn resumes(&self) -> usize {
        self.lock().resumes
    }

    pub fn connected(&self) -> bool {
        self.lock().conn.as_ref().is_some_and(|c| !c.is_closed())
    }

    /// A fresh snowflake-looking id.
    pub fn id(&self) -> String {
        (920_000_000_000_000_000 + self.shared.ids.fetch_add(1, Ordering::Relaxed)).to_string()
    }

    /// Sends a dispatch (op 0) on the live gateway connection.
    pub fn dispatch(&self, event: &'static str, data: Value) {
        let conn = self.lock().conn.clone().expect("no gateway connection to dispatch on");
        conn.send(Push::Dispatch(event, data)).expect("the gateway connection is gone");
    }

    /// Closes the live gateway connection with `code`, as Discord does before a reconnect.
    pub fn close(&self, code: u16) {
        if let Some(conn) = self.lock().conn.take() {
            let _ = conn.send(Push::Close(code));
        }
    }

    /// Refuses (true) or accepts again (false) new gateway connections.
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Waits until `check` holds, for up to `secs` seconds.
    pub fn wait_for(&self, secs: u64, what: &str, check: impl Fn(&FakeDiscord) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !check(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}; calls: {:#?}", self.calls());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A MESSAGE_CREATE from `author` (see [`person`]).
    pub fn send_message(&self, channel_id: &str, guild_id: Option<&str>, author: Value, content: &str) -> String {
        let id = self.id();
        self.dispatch("MESSAGE_CREATE", message(&id, channel_id, guild_id, author, content));
        id
    }

    /// A guild MESSAGE_CREATE that mentions the bot (`<@BOT_ID> text`).
    pub fn mention(&self, channel_id: &str, author: Value, text: &str) -> String {
        let id = self.id();
        let mut m = message(&id, channel_id, Some(GUILD_ID), author, &format!("<@{BOT_ID}> {text}"));
        m["mentions"] = json!([bot_user()]);
        self.dispatch("MESSAGE_CREATE", m);
        id
    }

    /// An INTERACTION_CREATE for the slash command `name` with string options, run by
    /// `author` in a DM channel; returns the interaction id.
    pub fn slash(&self, channel_id: &str, author: Value, name: &str, options: &[(&str, &str)]) -> String {
        let id = self.id();
        let options: Vec<Value> = options.iter().map(|(n, v)| json!({"name": n, "type": 3, "value": v})).collect();
        self.dispatch(
            "INTERACTION_CREATE",
            json!({
                "id": id, "application_id": BOT_ID, "type": 2, "token": format!("itoken-{id}"), "version": 1,
                "channel_id": channel_id,
                "channel": {"id": channel_id, "type": 1, "last_message_id": null, "flags": 0,
                            "recipients": [author.clone()]},
                "user": author, "locale": "en-US", "app_permissions": "562949953421311",
                // A guild-installed bot used in its DM: the guild install's id is "0".
                "entitlements": [], "authorizing_integration_owners": {"0": "0"}, "context": 1,
                "attachment_size_limit": 10485760,
                "data": {"id": "930000000000000001", "name": name, "type": 1, "options": options},
            }),
        );
        id
    }
}

fn authorized(s: &Shared, headers: &HeaderMap) -> bool {
    s.rest_any_token
        || headers.get("authorization").is_some_and(|v| v.as_bytes() == format!("Bot {}", s.token).as_bytes())
}

fn unauthorized() -> Response {
    (StatusCode::UNAUTHORIZED, axum::Json(json!({"message": "401: Unauthorized", "code": 0}))).into_response()
}

fn record(s: &Shared, method: &str, path: String, body: &str) {
    let body = serde_json::from_str(body).unwrap_or(Value::Null);
    s.inner.lock().unwrap().calls.push(Call { method: method.into(), path, body });
}

async fn unknown(
    method: axum::http::Method,
    uri: axum::http::Uri,
    State(s): State<Arc<Shared>>,
    body: String,
) -> Response {
    record(&s, method.as_str(), uri.path().to_string(), &body);
    (StatusCode::NOT_FOUND, axum::Json(json!({"message": "404: Not Found", "code": 0}))).into_response()
}

async fn gateway_url(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(json!({"url": format!("ws://{}", s.addr)})).into_response()
}

async fn gateway_bot(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    axum::Json(json!({"url": format!("ws://{}", s.addr), "shards": 1,
        "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14400000, "max_concurrency": 1}}))
    .into_response()
}

async fn me(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    record(&s, "GET", "/api/v10/users/@me".into(), "");
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    axum::Json(bot_user()).into_response()
}

async fn open_dm(State(s): State<Arc<Shared>>, headers: HeaderMap, body: String) -> Response {
    record(&s, "POST", "/api/v10/users/@me/channels".into(), &body);
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let req: Value = serde_json::from_str(&body).unwrap_or_default();
    let Some(recipient) = req["recipient_id"].as_str().map(str::to_string) else {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"message": "Invalid Form Body", "code": 50035})))
            .into_response();
    };
    let id = {
        let mut inner = s.inner.lock().unwrap();
        let fresh = (930_000_000_000_000_000 + s.ids.fetch_add(1, Ordering::Relaxed)).to_string();
        inner.dms.entry(recipient.clone()).or_insert(fresh).clone()
    };
    axum::Json(json!({"id": id, "type": 1, "last_message_id": null, "flags": 0,
                      "recipients": [user(&recipient, "someone", false)]}))
    .into_response()
}

async fn create_message(
    State(s): State<Arc<Shared>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    record(&s, "POST", format!("/api/v10/channels/{channel}/messages"), &body);
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let req: Value = serde_json::from_str(&body).unwrap_or_default();
    let content = req["content"].as_str().unwrap_or_default();
    if content.chars().count() > 2000 {
        let err = json!({"message": "Invalid Form Body", "code": 50035, "errors": {"content": {"_errors": [
            {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 2000 or fewer in length."}]}}});
        return (StatusCode::BAD_REQUEST, axum::Json(err)).into_response();
    }
    let id = (940_000_000_000_000_000 + s.ids.fetch_add(1, Ordering::Relaxed)).to_string();
    let mut m = message(&id, &channel, None, bot_user(), content);
    if let Some(r) = req.get("message_reference").filter(|r| !r.is_null()) {
        m["type"] = json!(19);
        m["message_reference"] = json!({"type": 0, "message_id": r["message_id"], "channel_id": channel});
    }
    axum::Json(m).into_response()
}

async fn typing(State(s): State<Arc<Shared>>, Path(channel): Path<String>, headers: HeaderMap) -> Response {
    record(&s, "POST", format!("/api/v10/channels/{channel}/typing"), "");
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn set_commands(
    State(s): State<Arc<Shared>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    record(&s, "PUT", format!("/api/v10/applications/{app}/commands"), &body);
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let req: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
    let commands: Vec<Value> = req
        .iter()
        .enumerate()
        .map(|(i, c)| {
            json!({"id": (950_000_000_000_000_000u64 + i as u64).to_string(), "type": c.get("type").cloned().unwrap_or(json!(1)),
                   "application_id": app, "name": c["name"], "description": c["description"],
                   "options": c.get("options").cloned().unwrap_or(json!([])),
                   "default_member_permissions": null, "dm_permission": true, "nsfw": false,
                   "integration_types": [0], "contexts": [0, 1, 2], "version": "960000000000000001"})
        })
        .collect();
    axum::Json(commands).into_response()
}

async fn callback(State(s): State<Arc<Shared>>, Path((id, token)): Path<(String, String)>, body: String) -> Response {
    // Interaction callbacks are authorised by the interaction token in the path.
    record(&s, "POST", format!("/api/v10/interactions/{id}/{token}/callback"), &body);
    StatusCode::NO_CONTENT.into_response()
}

async fn gateway_ws(State(s): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    if s.down.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "gateway unavailable").into_response();
    }
    ws.on_upgrade(move |socket| session(s, socket))
}

fn frame(v: Value) -> Message {
    Message::Text(v.to_string().into())
}

const SESSION_ID: &str = "fake-session-1";

/// What the fake answers to a frame from the client.
enum Answer {
    Frame(Value),
    Close(u16, &'static str),
    Nothing,
}

/// Answers one client frame: Heartbeat, Identify, Resume.
fn answer(s: &Shared, v: &Value, conn: &mpsc::UnboundedSender<Push>, seq: &mut u64) -> Answer {
    let token_ok = v["d"]["token"].as_str().map(|t| t.trim_start_matches("Bot ")) == Some(s.token.as_str());
    let mut inner = s.inner.lock().unwrap();
    match v["op"].as_u64() {
        Some(1) => Answer::Frame(json!({"op": 11, "d": null, "s": null, "t": null})),
        Some(2) => {
            inner.identifies.push(v["d"].clone());
            if !token_ok {
                return Answer::Close(4004, "Authentication failed.");
            }
            inner.conn = Some(conn.clone());
            *seq += 1;
            let ready = json!({
                "v": 10, "user": bot_user(), "guilds": [{"id": GUILD_ID, "unavailable": true}],
                "session_id": SESSION_ID, "resume_gateway_url": format!("ws://{}", s.addr),
                "shard": [0, 1], "application": {"id": BOT_ID, "flags": 565248},
                "private_channels": [], "relationships": [], "presences": [],
                "user_settings": {}, "guild_join_requests": [], "geo_ordered_rtc_regions": [],
                "_trace": ["[\"fake-gateway\"]"],
            });
            Answer::Frame(json!({"op": 0, "t": "READY", "s": *seq, "d": ready}))
        }
        Some(6) if token_ok && v["d"]["session_id"] == SESSION_ID => {
            inner.resumes += 1;
            inner.conn = Some(conn.clone());
            *seq = v["d"]["seq"].as_u64().unwrap_or(*seq) + 1;
            Answer::Frame(json!({"op": 0, "t": "RESUMED", "s": *seq, "d": {"_trace": ["[\"fake-gateway\"]"]}}))
        }
        // Not resumable: Invalid Session, so the client identifies again.
        Some(6) => Answer::Frame(json!({"op": 9, "d": false, "s": null, "t": null})),
        _ => Answer::Nothing,
    }
}

/// One gateway connection, from Hello to close.
async fn session(s: Arc<Shared>, mut ws: WebSocket) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut seq = 0u64;
    if ws.send(frame(json!({"op": 10, "d": {"heartbeat_interval": 41250}, "s": null, "t": null}))).await.is_err() {
        return;
    }
    loop {
        let out = tokio::select! {
            msg = ws.recv() => {
                let v: Value = match msg {
                    Some(Ok(Message::Text(t))) => serde_json::from_str(&t).unwrap_or_default(),
                    Some(Ok(Message::Close(_) | Message::Binary(_))) | Some(Err(_)) | None => return,
                    Some(Ok(_)) => continue,
                };
                answer(&s, &v, &tx, &mut seq)
            }
            push = rx.recv() => match push {
                Some(Push::Dispatch(t, d)) => {
                    seq += 1;
                    Answer::Frame(json!({"op": 0, "t": t, "s": seq, "d": d}))
                }
                Some(Push::Close(code)) => Answer::Close(code, ""),
                None => return,
            }
        };
        match out {
            Answer::Frame(v) => {
                if ws.send(frame(v)).await.is_err() {
                    return;
                }
            }
            Answer::Close(code, reason) => {
                let _ = ws.send(Message::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                return;
            }
            Answer::Nothing => {}
        }
    }
}
