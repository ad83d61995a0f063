//! Shared helpers for the integration tests: start the real `skynet-gateway` binary on a
//! free loopback port with a temporary home, and talk to it over real sockets.
#![allow(dead_code, reason = "each test binary uses a different subset of these helpers")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub mod fake_anthropic;
pub mod fake_discord;
pub mod fake_github;
pub mod fake_openai;
pub mod fake_telegram;
pub mod tmux;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream as TokioTcp;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TOKEN: &str = "test-token-0123456789abcdef";
pub const BIN: &str = env!("CARGO_BIN_EXE_skynet-gateway");

/// A running gateway process; killed when dropped.
pub struct Gateway {
    pub child: Child,
    pub addr: String,
    pub home: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stderr: Arc<Mutex<String>>,
}

/// The command to run the binary with a given home and no inherited SKYNET_* settings.
pub fn command(home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("SKYNET_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd.env("SKYNET_HOME", home);
    // Tests never ask the real GitHub for releases; tests/update.rs turns this back on.
    cmd.env("SKYNET_UPDATE__CHECK_ON_START", "false");
    cmd
}

impl Gateway {
    /// Starts with a fresh temporary home, the test token and extra env vars.
    pub fn start(env: &[(&str, &str)]) -> Gateway {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let mut g = Self::start_in(&home, env, &[])
            .unwrap_or_else(|(out, err)| panic!("gateway failed to start:\n{out}\n{err}"));
        g._tmp = Some(tmp);
        g
    }

    /// Starts in `home` (on a free port unless `args` names one); on failure returns
    /// (stdout, stderr) of the process that exited.
    pub fn start_in(home: &Path, env: &[(&str, &str)], args: &[&str]) -> Result<Gateway, (String, String)> {
        let mut cmd = command(home);
        cmd.env("SKYNET_GATEWAY__AUTH_TOKEN", TOKEN);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.arg("run");
        if !args.contains(&"--port") {
            cmd.args(["--port", "0"]);
        }
        cmd.args(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
        let mut child = cmd.spawn().expect("spawn skynet-gateway");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_buf = stderr.clone();
        let mut err_pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                err_buf.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
                if let Some(rest) = line.strip_prefix("skynet-gateway listening on http://") {
                    let _ = tx.send(Ok(rest.trim().to_string()));
                }
            }
            let _ = tx.send(Err(all));
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(addr)) => Ok(Gateway { child, addr, home: home.to_path_buf(), _tmp: None, stderr }),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                let out = match other {
                    Ok(Err(out)) => out,
                    _ => String::from("<no listening line within 30 s>"),
                };
                Err((out, stderr.lock().unwrap().clone()))
            }
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(&self.addr, path, &[])
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "gateway did not exit within {within:?}\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET; returns status and body.
pub fn http_get(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

pub type Ws = WebSocketStream<MaybeTlsStream<TokioTcp>>;

/// What the server did next.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    Closed(Option<u16>, String),
}

pub struct Client {
    pub ws: Ws,
    pub challenge: Value,
    /// Events that arrived while `call` waited for its response, delivered next.
    pending: std::collections::VecDeque<Value>,
}

impl Client {
    /// Opens a socket and reads the challenge.
    pub async fn open(g: &Gateway) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(g.ws_url()).await.expect("websocket connect");
        let mut c = Client { ws, challenge: Value::Null, pending: Default::default() };
        match c.next().await {
            Got::Json(v) => c.challenge = v,
            other => panic!("expected a challenge, got {other:?}"),
        }
        c
    }

    /// Opens and completes `connect` with the given params; returns the hello-ok payload.
    pub async fn connected(g: &Gateway, params: Value) -> (Client, Value) {
        let mut c = Client::open(g).await;
        let res = c.call("connect", params).await;
        assert_eq!(res["ok"], true, "connect failed: {res}");
        let hello = res["payload"].clone();
        (c, hello)
    }

    /// Connects as a trusted backend client with read/write/admin scopes.
    pub async fn backend(g: &Gateway, max_protocol: u32) -> (Client, Value) {
        Client::connected(g, connect_params(TOKEN, 3, max_protocol, &["operator.read", "operator.write"])).await
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws.send(Message::Text(text.into().into())).await.unwrap();
    }

    pub async fn send_json(&mut self, v: &Value) {
        self.send_text(v.to_string()).await;
    }

    /// The next JSON frame or the close, skipping pings; panics after 10 s.
    pub async fn next(&mut self) -> Got {
        if let Some(v) = self.pending.pop_front() {
            return Got::Json(v);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next()).await.expect("no frame within 10 s");
            match msg {
                Some(Ok(Message::Text(t))) => return Got::Json(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Close(f))) => {
                    return Got::Closed(
                        f.as_ref().map(|f| f.code.into()),
                        f.map(|f| f.reason.to_string()).unwrap_or_default(),
                    );
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Got::Closed(None, String::new()),
            }
        }
    }

    /// The next frame that is not an event (events such as `presence` interleave); the
    /// events passed over are kept for `next`.
    pub async fn next_res(&mut self) -> Value {
        let mut passed = Vec::new();
        loop {
            match self.next().await {
                Got::Json(v) if v["type"] == "event" => passed.push(v),
                Got::Json(v) => {
                    self.pending.extend(passed);
                    return v;
                }
                Got::Closed(code, reason) => panic!("closed ({code:?}, {reason}) while waiting for a response"),
            }
        }
    }

    /// The next event with this name.
    pub async fn next_event(&mut self, name: &str) -> Value {
        loop {
            match self.next().await {
                Got::Json(v) if v["type"] == "event" && v["event"] == name => return v,
                Got::Json(_) => continue,
                Got::Closed(code, reason) => panic!("closed ({code:?}, {reason}) while waiting for {name}"),
            }
        }
    }

    /// Waits for the close frame, skipping anything before it.
    pub async fn closed(&mut self) -> (Option<u16>, String) {
        loop {
            if let Got::Closed(code, reason) = self.next().await {
                return (code, reason);
            }
        }
    }

    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = format!("{method}-{}", rand_id());
        self.send_json(&json!({"type": "req", "id": id, "method": method, "params": params})).await;
        let res = self.next_res().await;
        assert_eq!(res["id"], id, "response to another request: {res}");
        res
    }
}

pub fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// `connect` params as a trusted backend (`gateway-client`) would send them.
pub fn connect_params(token: &str, min: u32, max: u32, scopes: &[&str]) -> Value {
    json!({
        "minProtocol": min,
        "maxProtocol": max,
        "client": {"id": "gateway-client", "version": "1.0.0", "platform": "linux", "mode": "backend"},
        "role": "operator",
        "scopes": scopes,
        "auth": {"token": token},
    })
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Sends with chat.send and collects events until the run's terminal chat event.
pub async fn chat_turn(c: &mut Client, key: &str, message: &str, idem: &str) -> (Vec<Value>, Value) {
    let res = c.call("chat.send", json!({"sessionKey": key, "message": message, "idempotencyKey": idem})).await;
    assert_eq!(res["payload"], json!({"runId": idem, "status": "started"}), "{res}");
    let mut events = Vec::new();
    loop {
        let ev = match c.next().await {
            Got::Json(v) if v["type"] == "event" && v["payload"]["runId"] == idem => v,
            Got::Json(_) => continue,
            Got::Closed(code, reason) => panic!("closed {code:?} {reason}"),
        };
        let terminal = ev["event"] == "chat" && ev["payload"]["state"] != "delta";
        events.push(ev.clone());
        if terminal {
            return (events, ev);
        }
    }
}

/// Waits until the model has started streaming text.
pub async fn until_streaming(c: &mut Client) {
    loop {
        if let Got::Json(v) = c.next().await
            && v["payload"]["stream"] == "assistant"
        {
            return;
        }
    }
}

/// Spawns `cmd`, retrying while the program file is busy: a freshly written copy of the
/// binary can still be open for writing in a child that a parallel test forked (ETXTBSY).
pub fn spawn_retrying(cmd: &mut Command) -> std::process::Child {
    for _ in 0..100 {
        match cmd.spawn() {
            Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(Duration::from_millis(20)),
            other => return other.unwrap(),
        }
    }
    panic!("{:?} stayed busy (ETXTBSY)", cmd.get_program())
}

/// Serves `app` on a free loopback port from a runtime on a thread of its own (so blocking
/// tests can use the fake too); returns the address once it listens.
pub fn serve_on_thread(app: axum::Router) -> std::net::SocketAddr {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}
