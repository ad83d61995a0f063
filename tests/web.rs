//! The web chat page: served at `/` next to the WebSocket with strict security headers,
//! assets with content types and ETags, and the page itself driven in a real headless
//! Chromium (Debian's `chromium`, through Playwright for Python from tests/clients/.venv,
//! which tests/setup-clients.sh installs) against a fake Anthropic provider.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or_default()
    }
}

/// One GET on a fresh connection (`Connection: close`, so the body ends at EOF).
fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    s.write_all(format!("{req}\r\n").as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete HTTP head");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply { status, headers, body: raw[split + 4..].to_vec() }
}

#[test]
fn the_page_at_root_is_html_with_a_strict_content_security_policy() {
    let g = Gateway::start(&[]);
    let r = get(&g.addr, "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), "text/html; charset=utf-8");
    let csp = r.header("content-security-policy");
    for part in ["default-src 'self'", "script-src 'self'", "connect-src 'self' ws: wss:", "frame-ancestors 'none'"] {
        assert!(csp.contains(part), "CSP lacks {part}: {csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.header("x-content-type-options"), "nosniff");
    assert_eq!(r.header("referrer-policy"), "no-referrer");
    let html = String::from_utf8(r.body).unwrap();
    assert!(html.contains(r#"<script src="/assets/app.js" defer></script>"#), "{html}");
    assert!(html.contains(r#"name="viewport""#));
    // Nothing inline the policy would block, nothing from another origin.
    assert_eq!(html.matches("<script").count(), 1);
    assert!(!html.contains(" style=") && !html.contains(" onclick=") && !html.contains("//cdn"), "{html}");
    assert!(!html.contains("http://") && !html.contains("https://"), "{html}");
}

#[test]
fn assets_have_content_types_etags_and_revalidate_to_304() {
    let g = Gateway::start(&[]);
    for (path, ty) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        ("/assets/icon.svg", "image/svg+xml"),
    ] {
        let r = get(&g.addr, path, &[]);
        assert_eq!((r.status, r.header("content-type")), (200, ty), "{path}");
        assert_eq!(r.header("x-content-type-options"), "nosniff");
        assert_eq!(r.header("cache-control"), "no-cache", "revalidated every time: the URLs carry no hash");
        let etag = r.header("etag").to_string();
        assert_eq!(etag, format!("\"{}\"", hex::encode(Sha256::digest(&r.body))), "{path}: ETag is the SHA-256");

        let again = get(&g.addr, path, &[("If-None-Match", &etag)]);
        assert_eq!(again.status, 304, "{path}");
        assert!(again.body.is_empty());
        assert_eq!(again.header("etag"), etag);
        let weak = format!("\"other\", W/{etag}");
        assert_eq!(get(&g.addr, path, &[("If-None-Match", &weak)]).status, 304);
        assert_eq!(get(&g.addr, path, &[("If-None-Match", "\"stale\"")]).status, 200);
    }
    let page = get(&g.addr, "/", &[]);
    let etag = page.header("etag").to_string();
    assert_eq!(get(&g.addr, "/", &[("If-None-Match", &etag)]).status, 304);

    for path in ["/assets/nope.js", "/assets/..%2Fskynet.toml", "/assets/"] {
        assert_eq!(get(&g.addr, path, &[]).status, 404, "{path}");
    }
}

#[tokio::test]
async fn the_websocket_upgrade_at_root_still_works_and_the_page_origin_may_connect() {
    let g = Gateway::start(&[]);
    let (mut c, hello) = Client::backend(&g, 4).await;
    assert_eq!(hello["protocol"], 4);
    assert_eq!(c.call("health", json!({})).await["ok"], true);

    // A browser on the page sends its own origin, which the gateway must accept.
    let mut req = g.ws_url().into_client_request().unwrap();
    req.headers_mut().insert("origin", format!("http://{}", g.addr).parse().unwrap());
    let (_ws, resp) = tokio_tungstenite::connect_async(req).await.expect("same-origin upgrade");
    assert_eq!(resp.status(), 101);

    let mut req = g.ws_url().into_client_request().unwrap();
    req.headers_mut().insert("origin", "http://evil.example".parse().unwrap());
    assert!(tokio_tungstenite::connect_async(req).await.is_err(), "another origin is refused");
}

fn chromium() -> PathBuf {
    let path = std::env::var_os("SKYNET_TEST_CHROMIUM").map(PathBuf::from).unwrap_or("/usr/bin/chromium".into());
    assert!(
        path.exists(),
        "Chromium is not installed at {}: run `apt-get install chromium` (Debian; .ci/run installs it), \
         or point SKYNET_TEST_CHROMIUM at a Chromium binary",
        path.display()
    );
    path
}

fn venv_python() -> PathBuf {
    let python = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.venv/bin/python");
    let ok =
        python.exists() && Command::new(&python).args(["-c", "import playwright"]).status().is_ok_and(|s| s.success());
    assert!(ok, "Playwright for Python is missing from tests/clients/.venv; run tests/setup-clients.sh first");
    python
}

/// Runs web_check.py with a deadline; restarts the gateway on the same port (same home)
/// when the script asks for it. Returns the JSON report, the first gateway (it owns the
/// temporary home) and the one now running.
fn run_browser_check(mut g: Gateway, env: &[(&str, &str)], screenshot: &Path) -> (Value, Gateway, Gateway) {
    let (browser, python) = (chromium(), venv_python());
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/web_check.py");
    let tmp = tempfile::tempdir().unwrap();
    let (out_path, err_path) = (tmp.path().join("out"), tmp.path().join("err"));
    let mut child = Command::new(python)
        .arg(script)
        .args([&format!("http://{}/", g.addr), TOKEN, screenshot.to_str().unwrap()])
        .arg("--chromium")
        .arg(&browser)
        .arg("--restart-dir")
        .arg(tmp.path())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(180);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("web_check.py took over 180 s\n{}", std::fs::read_to_string(&err_path).unwrap_or_default());
        }
        if first.is_none() && tmp.path().join("restart").exists() {
            g.signal("TERM");
            g.wait_exit(Duration::from_secs(15));
            let port = g.port().to_string();
            let next = Gateway::start_in(&g.home, env, &["--port", &port])
                .unwrap_or_else(|(out, err)| panic!("restart on port {port} failed:\n{out}\n{err}"));
            // The first keeps owning the temporary home.
            first = Some(std::mem::replace(&mut g, next));
            std::fs::write(tmp.path().join("restarted"), b"").unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let stderr = std::fs::read_to_string(&err_path).unwrap();
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("no JSON report from web_check.py:\n{stdout}\n{stderr}"));
    assert!(report.get("failed").is_none(), "the browser check failed: {report}\n{stderr}\n{}", g.stderr());
    let first = first.unwrap_or_else(|| panic!("the script never asked for the restart: {report}"));
    (report, first, g)
}

#[test]
fn a_real_browser_on_a_phone_screen_chats_streams_shows_tools_and_keeps_history() {
    let fake = FakeAnthropic::start();
    let base = fake.base_url();
    let env = [
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", &base),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test"),
        ("SKYNET_AGENT__MAX_STEPS", "3"),
    ];
    let g = Gateway::start(&env);
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("web-chat-390x844.png");
    let _ = std::fs::remove_file(&screenshot);
    // The running gateway (last) is dropped, and killed, before the first removes the home.
    let (r, _first, _running) = run_browser_check(g, &env, &screenshot);
    println!("browser report: {r}\nscreenshot: {}", screenshot.display());

    assert_eq!(r["connected"], true, "{r}");
    assert_eq!(r["session_label"], "session: main");
    assert_eq!(r["console_errors"], json!([]), "no script errors or CSP violations");

    // The answer grew in the page before it was final.
    let slow = "slow ".repeat(40);
    assert_eq!(r["stream"]["final_text"], slow.as_str(), "{r}");
    assert_eq!(r["stream"]["state"], "final");
    // (The last delta may carry the whole text just before the final event.)
    let partial: Vec<u64> = r["stream"]["partial_lengths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .filter(|&n| (n as usize) < slow.len())
        .collect();
    assert!(partial.len() >= 3, "the answer must be seen growing, several partial lengths: {partial:?}");

    // Tool activity as a chip in the answer.
    let tool = &r["tool"];
    assert_eq!(tool["state"], "final");
    assert!(tool["final_text"].as_str().unwrap().starts_with("Tool said: "), "{tool}");
    let chips = tool["chips"].as_array().unwrap();
    assert_eq!(chips.len(), 1, "{tool}");
    assert_eq!(chips[0]["name"], "current_time");
    assert!(chips[0]["cls"].as_str().unwrap().split(' ').any(|c| c == "ok"), "{tool}");

    // Phone layout: no sideways scrolling, the input at the bottom of the screen.
    let l = &r["layout"];
    assert!(l["scrollWidth"].as_u64() <= l["innerWidth"].as_u64(), "{l}");
    assert_eq!(l["composerBottom"], l["innerHeight"], "{l}");

    assert_eq!(r["layout_375"], json!([375, 375]), "fits a 375 px screen");
    let d = &r["dark"];
    assert_ne!(d["light_bg"], d["dark_bg"], "follows prefers-color-scheme: {d}");

    let png = std::fs::read(&screenshot).expect("the screenshot was written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 20_000, "{} bytes", png.len());

    // After a reload the token is remembered and the history is back.
    assert_eq!(r["login_after_reload"], false);
    let history: Vec<(String, String)> = r["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m[0].as_str().unwrap().to_string(), m[1].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(history.len(), 4, "{history:?}");
    assert_eq!(history[0], ("user".into(), "slow".into()));
    assert_eq!(history[1], ("assistant".into(), slow.clone()));
    assert_eq!(history[2], ("user".into(), "clock".into()));
    assert!(history[3].0 == "assistant" && history[3].1.starts_with("Tool said: "), "{history:?}");

    // Model text never becomes markup; code blocks render and stay inside the screen.
    let m = &r["markup"];
    assert_eq!(
        (m["imgs"].as_u64(), m["pwned"].as_bool(), m["shows_tag"].as_bool()),
        (Some(0), Some(false), Some(true)),
        "{m}"
    );
    assert_eq!((m["pre"].as_u64(), m["inline"].as_u64()), (Some(1), Some(1)), "{m}");
    assert!(m["scrollWidth"].as_u64() <= m["innerWidth"].as_u64(), "{m}");

    // The gateway restarted under the page: it said so, then reconnected by itself.
    let re = &r["reconnect"];
    assert!(re["offline_status"].as_str().unwrap().starts_with("offline"), "{re}");
    assert_eq!(re["send_disabled"], true, "{re}");
    assert_eq!(re["messages"], 4, "the stored history came back: {re}");

    // Stop aborts the run mid-answer and gives the input back.
    assert_eq!(r["stop"]["state"], "aborted", "{r}");
    assert!(r["stop"]["len"].as_u64().unwrap() < slow.len() as u64);
    assert_eq!(r["stop"]["send_visible"], true);

    // A wrong token: the gateway's message, the token form again, nothing kept.
    let w = &r["wrong_token"];
    assert!(w["error"].as_str().unwrap().contains("token mismatch"), "{w}");
    assert_eq!(w["login_visible"], true);
    assert_eq!(w["status"], "error");
    assert_eq!(w["stored_token"], Value::Null);
}
