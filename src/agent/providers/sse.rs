//! The HTTP side shared by every provider: one TLS client, requests with retries before
//! the answer starts, and a server-sent-events reader that turns a response body into
//! provider events with an idle timeout and prompt cancellation.
//!
//! The SSE parser is written here rather than taken from `eventsource-stream`: that crate
//! keeps invalid UTF-8 buffered forever (so one bad byte stalls the stream), re-copies
//! its buffer once per line, and pulls in `nom`. Ours works on bytes, splits lines on
//! LF, CRLF or CR as the spec says, and caps how much an unfinished event may buffer.

use std::collections::VecDeque;
use std::sync::OnceLock;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use tokio_util::sync::CancellationToken;

use super::{EventStream, ProviderError};
use crate::agent::types::StreamEvent;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence allowed between two pieces of a streaming answer.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// An event larger than this is not a model answer but a broken or hostile server.
const MAX_EVENT_BYTES: usize = 8 * 1024 * 1024;
/// How much of an error body is read to find the API's message.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The process-wide HTTP clients: one that honours `HTTPS_PROXY` & co for remote APIs,
/// one without proxies for servers on this machine (Ollama, LM Studio, llama.cpp).
///
/// Roots: reqwest 0.13 verifies through rustls-platform-verifier, which on Linux reads
/// the system store (`/etc/ssl/certs`, `SSL_CERT_FILE`, `SSL_CERT_DIR`). A scratch
/// container has none, and the verifier then refuses to build, so Mozilla's roots from
/// `webpki-root-certs` are merged in: both a normal box (including a corporate CA added
/// to the system store) and an empty image work.
pub(crate) fn http_client(loopback: bool) -> Result<reqwest::Client, String> {
    static CLIENTS: OnceLock<Result<(reqwest::Client, reqwest::Client), String>> = OnceLock::new();
    let clients = CLIENTS.get_or_init(|| {
        super::init_tls();
        let build = |proxies: bool| {
            let roots = webpki_root_certs::TLS_SERVER_ROOT_CERTS
                .iter()
                .filter_map(|der| reqwest::Certificate::from_der(der.as_ref()).ok());
            let builder = reqwest::Client::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .user_agent(concat!("skynet-gateway/", env!("CARGO_PKG_VERSION")))
                .tls_certs_merge(roots);
            let builder = if proxies { builder } else { builder.no_proxy() };
            builder.build().map_err(|e| format!("cannot set up the HTTPS client: {}", chain(&e)))
        };
        Ok((build(true)?, build(false)?))
    });
    match clients {
        Ok((remote, local)) => Ok(if loopback { local.clone() } else { remote.clone() }),
        Err(e) => Err(e.clone()),
    }
}

/// Which failures are retried before the answer starts, and how long to wait.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first backoff; it doubles per retry.
    pub base: Duration,
    /// The most a backoff or a server's `retry-after` may make us wait. A server asking
    /// for longer gets its error returned at once so the caller can fail over instead.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { retries: 3, base: Duration::from_millis(500), max_wait: Duration::from_secs(30) }
    }
}

/// One API endpoint: where it is, how to authenticate, and how patient to be.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub provider: String,
    /// Without a trailing slash.
    pub base_url: String,
    pub client: reqwest::Client,
    /// Auth and API-version headers sent with every request (marked sensitive).
    pub headers: HeaderMap,
    /// Time to wait for response headers.
    pub timeout: Duration,
    pub idle_timeout: Duration,
    pub retry: RetryPolicy,
}

impl Endpoint {
    pub(crate) fn new(provider: &str, base_url: &str, headers: HeaderMap, timeout: Duration) -> Result<Self, String> {
        let base_url = base_url.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&base_url)
            .map_err(|e| format!("provider `{provider}`: base_url {base_url:?} is not a valid URL ({e})"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("provider `{provider}`: base_url {base_url:?} must start with http:// or https://"));
        }
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
        Ok(Endpoint {
            provider: provider.to_string(),
            base_url,
            client: http_client(loopback)?,
            headers,
            timeout,
            idle_timeout: IDLE_TIMEOUT,
            retry: RetryPolicy::default(),
        })
    }

    /// Sends a request, retrying 429, 529 and 5xx answers with backoff (honouring
    /// `retry-after-ms` / `retry-after`), until a success or a final error.
    pub(crate) async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        cancel: &CancellationToken,
    ) -> Result<reqwest::Response, ProviderError> {
        let url = format!("{}{path}", self.base_url);
        let body = body.map(|b| serde_json::to_vec(b).expect("a serde_json::Value always serialises"));
        let mut attempt = 0;
        loop {
            let mut request = self.client.request(method.clone(), &url).headers(self.headers.clone());
            if let Some(body) = &body {
                request = request
                    .header(reqwest::header::CONTENT_TYPE, HeaderValue::from_static("application/json"))
                    .body(body.clone());
            }
            let response = tokio::select! {
                _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                r = tokio::time::timeout(self.timeout, request.send()) => match r {
                    Err(_) => return Err(ProviderError::Timeout { provider: self.provider.clone(), after: self.timeout }),
                    Ok(Err(e)) => return Err(self.network_error(&e)),
                    Ok(Ok(response)) => response,
                },
            };
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let retry_after = retry_after(response.headers());
            // Anthropic and OpenAI may say outright whether a retry can help.
            let should_retry = match response.headers().get("x-should-retry").map(|v| v.as_bytes()) {
                Some(b"true") => Some(true),
                Some(b"false") => Some(false),
                _ => None,
            };
            let message = error_message(response).await;
            let retryable = should_retry.unwrap_or(
                status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 529 || status.is_server_error(),
            );
            let wait = retry_after.unwrap_or_else(|| self.retry.base.saturating_mul(1 << attempt.min(16)));
            if !retryable || attempt >= self.retry.retries || wait > self.retry.max_wait {
                return Err(ProviderError::Http {
                    provider: self.provider.clone(),
                    status: status.as_u16(),
                    message,
                    retry_after,
                });
            }
            attempt += 1;
            tracing::warn!(provider = %self.provider, status = status.as_u16(), %message, wait_ms = wait.as_millis() as u64, attempt, "retrying");
            tokio::select! {
                _ = cancel.cancelled() => return Err(ProviderError::Cancelled),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    fn network_error(&self, e: &reqwest::Error) -> ProviderError {
        let mut message = chain(e);
        if message.contains("certificate") {
            message.push_str(" (the server's TLS certificate is not trusted: add its CA to the system store or point SSL_CERT_FILE at it)");
        } else if e.is_connect() {
            message.push_str(&format!(" (is the server at {} running and reachable?)", self.base_url));
        }
        ProviderError::Network { provider: self.provider.clone(), message }
    }

    /// GETs an OpenAI-style `{"data":[{"id":..}]}` model list.
    pub(crate) async fn list_models(&self, path: &str) -> Result<Vec<String>, ProviderError> {
        let response = self.send(Method::GET, path, None, &CancellationToken::new()).await?;
        let body = tokio::time::timeout(self.timeout, response.bytes())
            .await
            .map_err(|_| ProviderError::Timeout { provider: self.provider.clone(), after: self.timeout })?
            .map_err(|e| self.network_error(&e))?;
        let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| ProviderError::Protocol {
            provider: self.provider.clone(),
            message: format!("{e} in the model list: {}", excerpt(&body)),
        })?;
        let ids = value["data"].as_array().ok_or_else(|| ProviderError::Protocol {
            provider: self.provider.clone(),
            message: format!("the model list has no `data` array: {}", excerpt(&body)),
        })?;
        Ok(ids.iter().filter_map(|m| m["id"].as_str().map(str::to_string)).collect())
    }
}

/// Builds a header value for a secret, marked so it never shows up in debug output.
pub(crate) fn secret_header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    let mut value = HeaderValue::from_str(value)
        .map_err(|_| "the API key contains characters that cannot be sent in an HTTP header".to_string())?;
    value.set_sensitive(true);
    Ok((HeaderName::from_static(name), value))
}

/// An error with its causes, e.g. "error sending request: tcp connect error: Connection refused".
fn chain(e: &dyn std::error::Error) -> String {
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// `retry-after-ms` (Anthropic, OpenAI) or `retry-after` in whole or fractional seconds.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok().filter(|v| *v >= 0.0);
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
    }
    number("retry-after").map(|s| Duration::from_secs_f64(s.min(1e9)))
}

/// The API's own words from an error body: Anthropic's and OpenAI's `error.message`, the
/// `error` string or `message`/`detail` of other servers, else the start of the body.
async fn error_message(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let read = async {
        while let Ok(Some(chunk)) = response.chunk().await {
            body.extend_from_slice(&chunk);
            if body.len() >= MAX_ERROR_BODY {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    let found = serde_json::from_slice::<serde_json::Value>(&body).ok().and_then(|v| {
        let text = |v: &serde_json::Value| v.as_str().filter(|s| !s.is_empty()).map(str::to_string);
        let error = &v["error"];
        match (text(&error["message"]), text(error), text(&v["message"]), text(&v["detail"])) {
            (Some(m), ..) => {
                Some(text(&error["type"]).or_else(|| text(&error["code"])).map_or(m.clone(), |t| format!("{t}: {m}")))
            }
            (_, Some(m), ..) | (_, _, Some(m), _) | (.., Some(m)) => Some(m),
            _ => None,
        }
    });
    found.unwrap_or_else(|| if body.is_empty() { "(empty response)".into() } else { excerpt(&body) })
}

/// The first 200 characters of some bytes, for error messages.
pub(crate) fn excerpt(data: &[u8]) -> String {
    let text = String::from_utf8_lossy(data);
    let text = text.trim();
    match text.char_indices().nth(200) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// One server-sent event: its `event:` name (empty when none) and its `data:` lines joined.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub event: String,
    pub data: String,
}

/// Incremental SSE parser (the WHATWG rules, minus `id`/`retry`, which no model API uses).
#[derive(Default)]
pub(crate) struct SseParser {
    buf: Vec<u8>,
    /// A chunk ended in CR: an LF starting the next chunk belongs to the same line break.
    skip_lf: bool,
    event: String,
    data: String,
    has_data: bool,
    pending_bytes: usize,
}

impl SseParser {
    /// Feeds bytes and returns the events they completed.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, String> {
        let mut events = Vec::new();
        let mut chunk = chunk;
        if self.skip_lf && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.skip_lf = false;
        let mut start = 0;
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            if b == b'\n' || b == b'\r' {
                if self.buf.is_empty() {
                    self.line(&chunk[start..i], &mut events);
                } else {
                    self.buf.extend_from_slice(&chunk[start..i]);
                    let line = std::mem::take(&mut self.buf);
                    self.line(&line, &mut events);
                }
                if b == b'\r' {
                    match chunk.get(i + 1) {
                        Some(b'\n') => i += 1,
                        None => self.skip_lf = true,
                        _ => {}
                    }
                }
                start = i + 1;
            }
            i += 1;
        }
        self.buf.extend_from_slice(&chunk[start..]);
        if self.buf.len() + self.pending_bytes > MAX_EVENT_BYTES {
            return Err(format!("an event grew beyond {} MiB without ending", MAX_EVENT_BYTES >> 20));
        }
        Ok(events)
    }

    /// The body ended: an event still missing its blank line is delivered anyway, since
    /// some servers end with `data: [DONE]\n` and nothing after it.
    pub(crate) fn finish(&mut self) -> Option<SseEvent> {
        let mut events = Vec::new();
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.line(&line, &mut events);
        }
        self.line(b"", &mut events);
        events.pop()
    }

    fn line(&mut self, line: &[u8], events: &mut Vec<SseEvent>) {
        if line.is_empty() {
            if self.has_data {
                events.push(SseEvent { event: std::mem::take(&mut self.event), data: std::mem::take(&mut self.data) });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            self.pending_bytes = 0;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        let value = String::from_utf8_lossy(value);
        match field {
            b"event" => self.event = value.into_owned(),
            b"data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
                self.pending_bytes += line.len();
            }
            _ => {}
        }
    }
}

/// Turns one API's events into `StreamEvent`s.
pub(crate) trait Decoder: Send + 'static {
    /// Handles one event; returns `true` once the answer is complete.
    fn event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) -> Result<bool, ProviderError>;
    /// The body ended before `event` returned `true`: finish up, or explain the cut.
    fn end(&mut self, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;
}

struct Reader<D, B> {
    body: Option<BoxStream<'static, reqwest::Result<B>>>,
    parser: SseParser,
    decoder: D,
    pending: VecDeque<Result<StreamEvent, ProviderError>>,
    cancel: CancellationToken,
    provider: String,
    idle: Duration,
}

impl<D: Decoder, B: AsRef<[u8]>> Reader<D, B> {
    /// Decodes events until one is ready to hand out or the stream is over.
    async fn next(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if self.body.is_some() && self.cancel.is_cancelled() {
                self.stop();
                return Some(Err(ProviderError::Cancelled));
            }
            if let Some(item) = self.pending.pop_front() {
                if item.is_err() {
                    self.stop();
                }
                return Some(item);
            }
            let body = self.body.as_mut()?;
            let chunk = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => {
                    self.stop();
                    return Some(Err(ProviderError::Cancelled));
                }
                chunk = tokio::time::timeout(self.idle, body.next()) => chunk,
            };
            let mut out = Vec::new();
            let result = match chunk {
                Err(_) => Err(ProviderError::Timeout { provider: self.provider.clone(), after: self.idle }),
                Ok(Some(Err(e))) => Err(ProviderError::Network {
                    provider: self.provider.clone(),
                    message: format!("the connection broke mid-answer: {}", chain(&e)),
                }),
                Ok(Some(Ok(bytes))) => self.feed(bytes.as_ref(), &mut out),
                Ok(None) => {
                    self.body = None;
                    let last = self.parser.finish();
                    match last.map(|e| self.decoder.event(e, &mut out)) {
                        Some(Ok(true)) => Ok(true),
                        Some(Err(e)) => Err(e),
                        _ => self.decoder.end(&mut out).map(|()| true),
                    }
                }
            };
            self.pending.extend(out.into_iter().map(Ok));
            match result {
                Ok(true) => self.body = None,
                Ok(false) => {}
                Err(e) => {
                    self.body = None;
                    self.pending.push_back(Err(e));
                }
            }
        }
    }

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Result<bool, ProviderError> {
        let events = self
            .parser
            .push(bytes)
            .map_err(|message| ProviderError::Protocol { provider: self.provider.clone(), message })?;
        for event in events {
            if self.decoder.event(event, out)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Drops the connection and anything not yet handed out.
    fn stop(&mut self) {
        self.body = None;
        self.pending.clear();
    }
}

/// Reads a successful streaming response through `decoder`. The connection is dropped as
/// soon as the answer is complete, an error occurs, or `cancel` fires.
pub(crate) fn decode<D: Decoder>(
    response: reqwest::Response,
    decoder: D,
    endpoint: &Endpoint,
    cancel: CancellationToken,
) -> Result<EventStream, ProviderError> {
    let is_json = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return Err(ProviderError::Protocol {
            provider: endpoint.provider.clone(),
            message: "expected an event stream but got a JSON document; does this server support `stream: true`?"
                .into(),
        });
    }
    let reader = Reader {
        body: Some(response.bytes_stream().boxed()),
        parser: SseParser::default(),
        decoder,
        pending: VecDeque::new(),
        cancel,
        provider: endpoint.provider.clone(),
        idle: endpoint.idle_timeout,
    };
    Ok(futures_util::stream::unfold(reader, |mut r| async move { r.next().await.map(|item| (item, r)) }).boxed())
}

#[cfg(test)]
pub(crate) mod fake {
    //! A stand-in for an LLM API on loopback: answers scripted replies in order, speaking
    //! whatever bytes the test gives it, and records every request it receives.

    use std::collections::VecDeque;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::body::{Body, Bytes};
    use axum::http::{HeaderMap, Method, Uri};

    #[derive(Clone)]
    pub struct Reply {
        status: u16,
        headers: Vec<(&'static str, String)>,
        chunks: Vec<String>,
        before_headers: Duration,
        gap: Duration,
        hang: bool,
    }

    impl Reply {
        /// A 200 event stream sending each chunk as written.
        pub fn sse<S: AsRef<str>>(chunks: &[S]) -> Reply {
            Reply {
                status: 200,
                headers: vec![("content-type", "text/event-stream".into())],
                chunks: chunks.iter().map(|c| c.as_ref().to_string()).collect(),
                before_headers: Duration::ZERO,
                gap: Duration::ZERO,
                hang: false,
            }
        }

        pub fn json(status: u16, body: &str) -> Reply {
            Reply { status, headers: vec![("content-type", "application/json".into())], ..Reply::sse(&[body]) }
        }

        pub fn header(mut self, name: &'static str, value: &str) -> Reply {
            self.headers.push((name, value.to_string()));
            self
        }

        pub fn delay_headers(mut self, by: Duration) -> Reply {
            self.before_headers = by;
            self
        }

        pub fn gap(mut self, gap: Duration) -> Reply {
            self.gap = gap;
            self
        }

        /// Keeps the response open after the chunks, sending an SSE comment every 50 ms.
        pub fn hang(mut self) -> Reply {
            self.hang = true;
            self
        }
    }

    #[derive(Debug, Clone)]
    pub struct Request {
        pub method: String,
        pub path: String,
        pub headers: HeaderMap,
        pub body: serde_json::Value,
    }

    pub struct FakeServer {
        pub url: String,
        requests: Arc<Mutex<Vec<Request>>>,
        /// Set once the server dropped a response body, i.e. the client went away.
        pub body_dropped: Arc<AtomicBool>,
    }

    struct SetOnDrop(Arc<AtomicBool>);

    impl Drop for SetOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    impl FakeServer {
        pub async fn start(replies: Vec<Reply>) -> FakeServer {
            let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
            let requests = Arc::new(Mutex::new(Vec::new()));
            let body_dropped = Arc::new(AtomicBool::new(false));
            let (log, dropped) = (requests.clone(), body_dropped.clone());
            let handler = move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (replies, log, dropped) = (replies.clone(), log.clone(), dropped.clone());
                async move {
                    let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str()).to_string();
                    log.lock().unwrap().push(Request { method: method.to_string(), path, headers, body });
                    let reply = replies.lock().unwrap().pop_front();
                    let reply = reply.unwrap_or_else(|| Reply::json(500, r#"{"error":"no reply scripted"}"#));
                    tokio::time::sleep(reply.before_headers).await;
                    let mut response = axum::http::Response::builder().status(reply.status);
                    for (name, value) in &reply.headers {
                        response = response.header(*name, value);
                    }
                    let state = (0usize, reply, SetOnDrop(dropped));
                    let stream = futures_util::stream::unfold(state, |(i, reply, flag)| async move {
                        let chunk = if i < reply.chunks.len() {
                            if i > 0 {
                                tokio::time::sleep(reply.gap).await;
                            }
                            reply.chunks[i].clone()
                        } else if reply.hang {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            ": keep-alive\n\n".to_string()
                        } else {
                            return None;
                        };
                        Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), (i + 1, reply, flag)))
                    });
                    response.body(Body::from_stream(stream)).unwrap()
                }
            };
            let app = axum::Router::new().fallback(handler);
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            FakeServer { url, requests, body_dropped }
        }

        pub fn requests(&self) -> Vec<Request> {
            self.requests.lock().unwrap().clone()
        }
    }

    /// Formats Anthropic-style events: `event: NAME` plus the JSON as one data line.
    pub fn named(events: &[&str]) -> Vec<String> {
        events
            .iter()
            .map(|json| {
                let v: serde_json::Value = serde_json::from_str(json).expect("test event is JSON");
                format!("event: {}\ndata: {json}\n\n", v["type"].as_str().unwrap())
            })
            .collect()
    }

    /// Formats OpenAI-style chunks: `data: JSON` lines.
    pub fn data(chunks: &[&str]) -> Vec<String> {
        chunks.iter().map(|c| format!("data: {c}\n\n")).collect()
    }

    /// Drains a stream into its events and the error that ended it, if any.
    pub async fn collect(
        mut stream: super::EventStream,
    ) -> (Vec<crate::agent::types::StreamEvent>, Option<super::ProviderError>) {
        use futures_util::StreamExt;
        let mut events = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(event) => events.push(event),
                Err(e) => {
                    assert!(stream.next().await.is_none(), "nothing may follow an error");
                    return (events, Some(e));
                }
            }
        }
        (events, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut p = SseParser::default();
        let mut events: Vec<SseEvent> = chunks.iter().flat_map(|c| p.push(c).unwrap()).collect();
        events.extend(p.finish());
        events
    }

    fn ev(event: &str, data: &str) -> SseEvent {
        SseEvent { event: event.into(), data: data.into() }
    }

    #[test]
    fn sse_parser_handles_split_chunks_line_endings_comments_and_multiline_data() {
        let events =
            parse_all(&[b"event: a\r", b"\ndata: 1\r\n\r\n: comment\n\nda", b"ta:2\ndata: 3\n\n", b"data: x\r\r"]);
        assert_eq!(events, [ev("a", "1"), ev("", "2\n3"), ev("", "x")]);
    }

    #[test]
    fn sse_parser_keeps_multibyte_characters_split_across_chunks() {
        let text = "data: héllo ✓\n\n".as_bytes();
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(parse_all(&chunks), [ev("", "héllo ✓")]);
    }

    #[test]
    fn sse_parser_delivers_a_last_event_without_its_blank_line_and_skips_empty_ones() {
        assert_eq!(parse_all(&[b"event: only-name\n\ndata: [DONE]"]), [ev("", "[DONE]")]);
    }

    #[test]
    fn sse_parser_refuses_an_endless_event() {
        let mut p = SseParser::default();
        let line = vec![b'x'; 1024 * 1024];
        let mut result = Ok(vec![]);
        for _ in 0..9 {
            result = p.push(&line);
        }
        assert!(result.is_err());
    }

    #[test]
    fn retry_after_reads_milliseconds_and_seconds() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("150"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(150)));
        h.clear();
        h.insert("retry-after", HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn the_https_client_builds_with_bundled_roots() {
        assert!(http_client(false).is_ok());
        assert!(http_client(true).is_ok());
    }
}
