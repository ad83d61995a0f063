//! A fake Telegram Bot API on loopback, speaking the real wire format to teloxide:
//! `/bot<TOKEN>/<method>` (method names in any case: teloxide sends `GetUpdates`), with
//! JSON, form, multipart or query parameters; answers `{"ok":true,"result":…}` or
//! Telegram's error bodies (a wrong token gets the real 401 `Unauthorized`).
//!
//! `getUpdates` long-polls like Telegram: it waits up to `timeout` seconds for news,
//! returns at most `limit` updates, and a call with `offset` confirms (forgets) every
//! update below it, so unconfirmed updates come again, also to a restarted client.
//! `sendMessage` with `parse_mode=HTML` is parsed the way Telegram does (the known tags,
//! properly nested, entities decoded) and refused with "can't parse entities" otherwise;
//! every call is recorded with the text as the user would see it. Tests push updates
//! (`push_*`), stop and restart the server on the same port (`stop`, `restart`), and can
//! make the next HTML messages fail to parse (`reject_html`).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

pub const BOT_ID: i64 = 7_000_001;
pub const BOT_USERNAME: &str = "skynet_test_bot";

/// One recorded API call.
#[derive(Debug, Clone)]
pub struct Call {
    /// Lower case, e.g. `sendmessage`.
    pub method: String,
    pub params: Value,
    /// sendMessage: the text as shown (tags removed, entities decoded), or the error.
    pub shown: Result<String, String>,
}

/// A sendMessage that Telegram accepted.
#[derive(Debug, Clone)]
pub struct Sent {
    pub chat_id: i64,
    /// As sent (HTML when `html`).
    pub raw: String,
    /// As shown to the user.
    pub text: String,
    pub html: bool,
    pub reply_to: Option<i64>,
    pub thread_id: Option<i64>,
}

struct State {
    token: String,
    /// Unconfirmed updates, oldest first.
    updates: VecDeque<Value>,
    next_update_id: i64,
    next_message_id: i64,
    calls: Vec<Call>,
    /// sendMessage calls with HTML still to refuse.
    reject_html: u32,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

pub struct FakeTelegram {
    pub addr: SocketAddr,
    pub token: String,
    state: Arc<Mutex<State>>,
    running: Mutex<Option<Running>>,
}

impl FakeTelegram {
    /// Starts on a free loopback port, accepting `token`.
    pub fn start(token: &str) -> FakeTelegram {
        let state = Arc::new(Mutex::new(State {
            token: token.to_string(),
            updates: VecDeque::new(),
            next_update_id: 500_000_001,
            next_message_id: 1,
            calls: Vec::new(),
            reject_html: 0,
        }));
        let (addr, running) = serve("127.0.0.1:0".parse().unwrap(), state.clone());
        FakeTelegram { addr, token: token.to_string(), state, running: Mutex::new(Some(running)) }
    }

    pub fn api_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Goes away as a network outage would: the listener and every open connection
    /// (a long poll in flight too) close. Pending updates are kept.
    pub fn stop(&self) {
        if let Some(r) = self.running.lock().unwrap().take() {
            let _ = r.stop.send(());
            r.thread.join().unwrap();
        }
    }

    /// Comes back on the same port.
    pub fn restart(&self) {
        let mut running = self.running.lock().unwrap();
        assert!(running.is_none(), "restart while running");
        let (_, r) = serve(self.addr, self.state.clone());
        *running = Some(r);
    }

    /// The next `n` HTML messages are refused as unparsable.
    pub fn reject_html(&self, n: u32) {
        self.state.lock().unwrap().reject_html = n;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    pub fn calls_of(&self, method: &str) -> Vec<Call> {
        let m = method.to_ascii_lowercase();
        self.calls().into_iter().filter(|c| c.method == m).collect()
    }

    /// Accepted sendMessage calls, in order.
    pub fn sent(&self) -> Vec<Sent> {
        self.calls_of("sendMessage")
            .into_iter()
            .filter_map(|c| {
                let text = c.shown.ok()?;
                let p = &c.params;
                let reply = p.get("reply_parameters").map(|r| match r {
                    Value::String(s) => serde_json::from_str(s).unwrap_or(Value::Null),
                    v => v.clone(),
                });
                Some(Sent {
                    chat_id: int(p.get("chat_id"))?,
                    raw: str_of(p.get("text")),
                    text,
                    html: str_of(p.get("parse_mode")).eq_ignore_ascii_case("html"),
                    reply_to: reply.and_then(|r| int(r.get("message_id"))),
                    thread_id: int(p.get("message_thread_id")),
                })
            })
            .collect()
    }

    pub fn sent_to(&self, chat_id: i64) -> Vec<Sent> {
        self.sent().into_iter().filter(|s| s.chat_id == chat_id).collect()
    }

    /// Queues an update carrying `message` (its `message_id` and `date` filled in);
    /// returns the message id.
    pub fn push_message(&self, mut message: Value) -> i64 {
        let mut st = self.state.lock().unwrap();
        let id = st.next_message_id;
        st.next_message_id += 1;
        message["message_id"] = json!(id);
        message["date"] = json!(now_secs());
        let update_id = st.next_update_id;
        st.next_update_id += 1;
        st.updates.push_back(json!({"update_id": update_id, "message": message}));
        id
    }

    /// Queues an update of another kind (`edited_message`, `channel_post`, ...).
    pub fn push_update(&self, kind: &str, mut message: Value) {
        let mut st = self.state.lock().unwrap();
        message["message_id"] = json!(st.next_message_id);
        st.next_message_id += 1;
        message["date"] = json!(now_secs());
        message["edit_date"] = json!(now_secs());
        let update_id = st.next_update_id;
        st.next_update_id += 1;
        st.updates.push_back(json!({"update_id": update_id, kind: message}));
    }

    /// A private text message from `user` (see [`user`]).
    pub fn push_private(&self, user: &Value, text: &str) -> i64 {
        let chat = json!({"id": user["id"], "type": "private", "first_name": user["first_name"], "username": user["username"]});
        self.push_message(text_message(user, &chat, text))
    }

    /// A text message from `user` in the group `chat_id` (negative), optionally replying
    /// to an earlier message of the bot.
    pub fn push_group(&self, chat_id: i64, user: &Value, text: &str, reply_to_bot: Option<i64>) -> i64 {
        let chat = group(chat_id);
        let mut m = text_message(user, &chat, text);
        if let Some(id) = reply_to_bot {
            m["reply_to_message"] = json!({"message_id": id, "from": bot_user(), "chat": chat, "date": now_secs() - 60,
                "text": "an earlier answer"});
        }
        self.push_message(m)
    }
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A person as Telegram describes them.
pub fn user(id: i64, first_name: &str, username: &str) -> Value {
    json!({"id": id, "is_bot": false, "first_name": first_name, "username": username, "language_code": "en"})
}

pub fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "Skynet", "username": BOT_USERNAME})
}

pub fn group(chat_id: i64) -> Value {
    json!({"id": chat_id, "type": "group", "title": "Test group"})
}

/// A text message with the entities Telegram adds: the leading bot command and mentions.
pub fn text_message(from: &Value, chat: &Value, text: &str) -> Value {
    json!({"from": from, "chat": chat, "text": text, "entities": entities(text)})
}

fn entities(text: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let utf16 = |s: &str| s.encode_utf16().count();
    if text.starts_with('/') {
        let end = text.find(char::is_whitespace).unwrap_or(text.len());
        out.push(json!({"type": "bot_command", "offset": 0, "length": utf16(&text[..end])}));
    }
    let mut from = 0;
    while let Some(k) = text[from..].find('@') {
        let at = from + k;
        let len =
            text[at + 1..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(text.len() - at - 1);
        let inside_command = !out.is_empty() && at < text.find(char::is_whitespace).unwrap_or(text.len());
        if len >= 5 && !inside_command {
            out.push(json!({"type": "mention", "offset": utf16(&text[..at]), "length": len + 1}));
        }
        from = at + 1 + len;
    }
    out
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn serve(addr: SocketAddr, state: Arc<Mutex<State>>) -> (SocketAddr, Running) {
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            let app = Router::new()
                .fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| handle(state.clone(), uri, headers, body));
            tokio::select! {
                r = axum::serve(listener, app) => r.unwrap(),
                _ = stopped => {}
            }
        });
        // Dropping the runtime closes every connection it served.
        drop(rt);
    });
    let bound = rx.recv().unwrap();
    (bound, Running { stop, thread })
}

fn reply(status: StatusCode, body: Value) -> Response {
    (status, [("content-type", "application/json")], body.to_string()).into_response()
}

fn ok(result: Value) -> Response {
    reply(StatusCode::OK, json!({"ok": true, "result": result}))
}

fn error(code: u16, description: &str) -> Response {
    reply(StatusCode::from_u16(code).unwrap(), json!({"ok": false, "error_code": code, "description": description}))
}

async fn handle(state: Arc<Mutex<State>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let path = uri.path().trim_start_matches('/');
    let Some((token, method)) = path.strip_prefix("bot").and_then(|p| p.split_once('/')) else {
        return error(404, "Not Found");
    };
    let method = method.to_ascii_lowercase();
    if token != state.lock().unwrap().token {
        let call = Call { method, params: Value::Null, shown: Err("Unauthorized".into()) };
        state.lock().unwrap().calls.push(call);
        return error(401, "Unauthorized");
    }
    let params = match params(&uri, &headers, &body) {
        Ok(p) => p,
        Err(e) => return error(400, &format!("Bad Request: {e}")),
    };
    let record = |shown: Result<String, String>| {
        state.lock().unwrap().calls.push(Call { method: method.clone(), params: params.clone(), shown });
    };
    match method.as_str() {
        "getme" => {
            record(Ok(String::new()));
            ok(json!({"id": BOT_ID, "is_bot": true, "first_name": "Skynet", "username": BOT_USERNAME,
                "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false,
                "can_connect_to_business": false, "has_main_web_app": false}))
        }
        "getupdates" => {
            record(Ok(String::new()));
            ok(get_updates(&state, &params).await)
        }
        "deletewebhook" | "sendchataction" | "setmycommands" => {
            record(Ok(String::new()));
            ok(json!(true))
        }
        "sendmessage" => {
            let shown = shown_text(&state, &params);
            record(shown.clone());
            match shown {
                Err(e) => error(400, &e),
                Ok(text) => {
                    let chat_id = int(params.get("chat_id")).unwrap_or_default();
                    let chat = if chat_id > 0 {
                        json!({"id": chat_id, "type": "private", "first_name": "Someone"})
                    } else {
                        group(chat_id)
                    };
                    let mut st = state.lock().unwrap();
                    let id = st.next_message_id;
                    st.next_message_id += 1;
                    ok(json!({"message_id": id, "from": bot_user(), "chat": chat, "date": now_secs(), "text": text}))
                }
            }
        }
        _ => {
            record(Err("unknown method".into()));
            error(404, "Not Found")
        }
    }
}

/// Long polling: confirms updates below `offset`, then waits up to `timeout` seconds.
async fn get_updates(state: &Arc<Mutex<State>>, p: &Value) -> Value {
    let offset = int(p.get("offset")).unwrap_or(0);
    let limit = int(p.get("limit")).unwrap_or(100).clamp(1, 100) as usize;
    let timeout = int(p.get("timeout")).unwrap_or(0).clamp(0, 50) as u64;
    let deadline = Instant::now() + Duration::from_secs(timeout);
    loop {
        {
            let mut st = state.lock().unwrap();
            if offset > 0 {
                st.updates.retain(|u| u["update_id"].as_i64().unwrap() >= offset);
            }
            if !st.updates.is_empty() || Instant::now() >= deadline {
                return Value::Array(st.updates.iter().take(limit).cloned().collect());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// sendMessage's text as the user sees it, or Telegram's error.
fn shown_text(state: &Arc<Mutex<State>>, p: &Value) -> Result<String, String> {
    if int(p.get("chat_id")).is_none() {
        return Err("Bad Request: chat not found".into());
    }
    let raw = str_of(p.get("text"));
    let shown = if str_of(p.get("parse_mode")).eq_ignore_ascii_case("html") {
        let mut st = state.lock().unwrap();
        if st.reject_html > 0 {
            st.reject_html -= 1;
            return Err("Bad Request: can't parse entities: Unsupported start tag \"foo\" at byte offset 0".into());
        }
        parse_html(&raw).map_err(|e| format!("Bad Request: can't parse entities: {e}"))?
    } else {
        raw
    };
    if shown.trim().is_empty() {
        return Err("Bad Request: message text is empty".into());
    }
    if shown.encode_utf16().count() > 4096 {
        return Err("Bad Request: message is too long".into());
    }
    Ok(shown)
}

/// Telegram's HTML: the supported tags only, properly nested, nothing inside `code`
/// except in `pre`; `&lt; &gt; &amp; &quot;` and numeric entities are decoded.
pub fn parse_html(s: &str) -> Result<String, String> {
    const TAGS: [&str; 16] = [
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "span",
        "tg-spoiler",
        "a",
        "code",
        "pre",
        "blockquote",
        "tg-emoji",
    ];
    let mut out = String::new();
    let mut open: Vec<String> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with('<') {
            let end = rest.find('>').ok_or_else(|| format!("Unclosed start tag at byte offset {i}"))?;
            let inner = &rest[1..end];
            if let Some(name) = inner.strip_prefix('/') {
                let name = name.trim().to_ascii_lowercase();
                match open.pop() {
                    Some(top) if top == name => {}
                    Some(top) => {
                        return Err(format!(
                            "Unmatched end tag at byte offset {i}, expected \"</{top}>\", found \"</{name}>\""
                        ));
                    }
                    None => return Err(format!("Unexpected end tag at byte offset {i}")),
                }
            } else {
                let name = inner.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
                if !TAGS.contains(&name.as_str()) {
                    return Err(format!("Unsupported start tag \"{name}\" at byte offset {i}"));
                }
                let parent = open.last().map(String::as_str);
                let allowed = match parent {
                    Some("code") => false,
                    Some("pre") => name == "code",
                    _ => true,
                };
                if !allowed {
                    return Err(format!("Can't use tag \"{name}\" inside \"{}\" at byte offset {i}", parent.unwrap()));
                }
                if name == "a" && !inner.contains("href=\"") {
                    return Err(format!("Tag \"a\" must have attribute \"href\" at byte offset {i}"));
                }
                open.push(name);
            }
            i += end + 1;
        } else if rest.starts_with('&') {
            let (decoded, len) = entity(rest);
            out.push_str(&decoded);
            i += len;
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    match open.pop() {
        Some(tag) => Err(format!("Can't find end tag corresponding to start tag \"{tag}\"")),
        None => Ok(out),
    }
}

/// A known entity at the start of `s` (decoded, length), else the `&` as text.
fn entity(s: &str) -> (String, usize) {
    let Some(end) = s.find(';').filter(|&e| e <= 10) else { return ("&".into(), 1) };
    let name = &s[1..end];
    let decoded = match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        _ => name
            .strip_prefix("#x")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
            .and_then(char::from_u32),
    };
    match decoded {
        Some(c) => (c.to_string(), end + 1),
        None => ("&".into(), 1),
    }
}

fn int(v: Option<&Value>) -> Option<i64> {
    match v? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn str_of(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The call's parameters from the query string and the body (JSON, form or multipart).
fn params(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<Value, String> {
    let mut map = Map::new();
    if let Some(q) = uri.query() {
        form_pairs(q, &mut map);
    }
    let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    if body.is_empty() {
        return Ok(Value::Object(map));
    }
    if ctype.starts_with("application/json") {
        match serde_json::from_slice(body).map_err(|e| format!("can't parse JSON: {e}"))? {
            Value::Object(m) => map.extend(m),
            _ => return Err("the JSON body must be an object".into()),
        }
    } else if ctype.starts_with("application/x-www-form-urlencoded") {
        form_pairs(&String::from_utf8_lossy(body), &mut map);
    } else if ctype.starts_with("multipart/form-data") {
        let boundary = ctype.split("boundary=").nth(1).ok_or("multipart without a boundary")?;
        // The boundary's case matters; take it from the original header.
        let original = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
        let start = original.to_ascii_lowercase().find(boundary).unwrap_or(0);
        let boundary = original[start..start + boundary.len()].trim_matches('"');
        multipart(body, boundary, &mut map);
    }
    Ok(Value::Object(map))
}

fn form_pairs(s: &str, map: &mut Map<String, Value>) {
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        map.insert(percent_decode(k), Value::String(percent_decode(v)));
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |i: usize| b.get(i).and_then(|&c| (c as char).to_digit(16));
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match (b[i], hex(i + 1), hex(i + 2)) {
            (b'+', _, _) => out.push(b' '),
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 2;
            }
            (c, _, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn multipart(body: &[u8], boundary: &str, map: &mut Map<String, Value>) {
    let text = String::from_utf8_lossy(body);
    let delim = format!("--{boundary}");
    for part in text.split(delim.as_str()).skip(1) {
        if part.starts_with("--") {
            break;
        }
        let Some((head, value)) = part.split_once("\r\n\r\n") else { continue };
        let name =
            head.split(';').find_map(|kv| kv.trim().strip_prefix("name=").map(|n| n.trim_matches('"').to_string()));
        if let Some(name) = name {
            map.insert(name, Value::String(value.strip_suffix("\r\n").unwrap_or(value).to_string()));
        }
    }
}
