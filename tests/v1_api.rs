//! The OpenAI-compatible `/v1` API of the real gateway, driven by the official `openai`
//! Python SDK (pinned in tests/clients/requirements.txt, installed by
//! tests/setup-clients.sh) and by raw HTTP for what an SDK would never send.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

fn with_fake(fake: &FakeAnthropic) -> Gateway {
    let base = fake.base_url();
    Gateway::start(&[
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", &base),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test"),
    ])
}

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/.venv/bin/python");
    assert!(venv.exists(), "the openai SDK venv is missing; run tests/setup-clients.sh first");
    venv
}

/// One HTTP/1.1 request on a fresh connection; returns (status, body).
fn http(addr: &str, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn texts(req: &Value) -> String {
    req["messages"].to_string()
}

#[test]
fn the_official_openai_sdk_chats_streams_and_gets_clear_errors() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let out = Command::new(python())
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/openai_check.py"))
        .args([format!("http://{}/v1", g.addr), TOKEN.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}\n{}", String::from_utf8_lossy(&out.stderr), g.stderr());
    let r: Value = serde_json::from_str(stdout.trim()).unwrap();

    let plain = &r["plain"];
    assert_eq!(plain["object"], "chat.completion");
    assert_eq!(plain["content"], "Echo: plain question");
    assert_eq!((plain["role"].as_str(), plain["finish_reason"].as_str()), (Some("assistant"), Some("stop")));
    assert_eq!(plain["model"], "anthropic/claude-test");
    assert!(plain["prompt_tokens"].as_u64().unwrap() > 0 && plain["completion_tokens"].as_u64().unwrap() > 0);

    // The caller's history and system message reached the model.
    let reqs = fake.requests();
    let first = texts(&reqs[0]);
    assert!(first.contains("My name is Ann.") && first.contains("Hello Ann."), "{first}");
    assert!(first.contains("Answer in English."), "{first}");

    let stream = &r["stream"];
    assert_eq!(stream["text"], "slow ".repeat(40));
    assert!(stream["pieces"].as_u64().unwrap() >= 10, "streamed in pieces: {stream}");
    assert_eq!(stream["finish_reason"], "stop");
    assert!(stream["usage"]["prompt"].as_u64().unwrap() > 0, "{stream}");

    assert!(r["tool"].as_str().unwrap().starts_with("Tool said: {\"unix\""), "{}", r["tool"]);

    // `user` keeps a stored session: the second request carried the first turn.
    assert_eq!(r["session_last"], "Echo: second in session");
    let session_req = reqs.iter().rev().find(|q| texts(q).contains("second in session")).unwrap();
    assert!(texts(session_req).contains("first in session"), "stored history was sent");

    let models: Vec<&str> = r["models"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(models.contains(&"skynet") && models.contains(&"anthropic/claude-test"), "{models:?}");
    assert_eq!(r["unknown_model"], json!({"status": 404, "code": "model_not_found"}));
    assert_eq!(r["bad_request"]["status"], 400);
    assert!(r["bad_request"]["message"].as_str().unwrap().contains("last message must come from the user"));
    assert_eq!(r["wrong_token"], json!({"status": 401, "code": "invalid_api_key"}));
    assert_eq!(r["upstream_error"]["status"], 502);
    assert!(r["upstream_error"]["message"].as_str().unwrap().to_lowercase().contains("overloaded"), "{r}");
    assert!(!g.stderr().contains(TOKEN), "the token is never logged");
}

#[test]
fn malformed_requests_get_openai_style_errors_and_the_gateway_keeps_serving() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (status, body) = http(&g.addr, "POST", "/v1/chat/completions", Some(TOKEN), "{not json");
    assert_eq!(status, 400, "{body}");
    let err: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(err["error"]["type"], "invalid_request_error");
    assert!(err["error"]["message"].as_str().unwrap().contains("not a valid chat completion request"), "{body}");

    let (status, body) = http(&g.addr, "POST", "/v1/chat/completions", Some(TOKEN), r#"{"model":"skynet"}"#);
    assert_eq!(status, 400);
    assert!(body.contains("messages"), "names the missing field: {body}");

    let bad_role = r#"{"messages":[{"role":"wizard","content":"hi"}]}"#;
    let (status, body) = http(&g.addr, "POST", "/v1/chat/completions", Some(TOKEN), bad_role);
    assert_eq!(status, 400);
    assert!(body.contains("wizard"), "{body}");

    let (status, _) = http(&g.addr, "POST", "/v1/chat/completions", None, r#"{"messages":[]}"#);
    assert_eq!(status, 401);
    assert!(fake.requests().is_empty(), "nothing reached the model");

    let ok = r#"{"messages":[{"role":"user","content":[{"type":"text","text":"parts"}]}]}"#;
    let (status, body) = http(&g.addr, "POST", "/v1/chat/completions", Some(TOKEN), ok);
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["choices"][0]["message"]["content"], "Echo: parts");
    assert_eq!(g.get("/health").0, 200);
}

#[tokio::test]
async fn a_streaming_client_that_goes_away_aborts_its_run() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let addr = g.addr.clone();
    let body = r#"{"stream":true,"user":"leaver","messages":[{"role":"user","content":"slow"}]}"#;
    tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(&addr).unwrap();
        write!(
            s,
            "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        // Read until the model has streamed something, then hang up.
        let mut seen = String::new();
        let mut buf = [0u8; 4096];
        while !seen.contains("slow") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "stream ended early: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        assert!(seen.contains("text/event-stream") && seen.contains("chat.completion.chunk"), "{seen}");
    })
    .await
    .unwrap();

    let (mut c, _) = Client::backend(&g, 3).await;
    let key = "agent:main:openai:leaver";
    let mut last = Value::Null;
    for _ in 0..100 {
        let h = c.call("chat.history", json!({"sessionKey": key})).await;
        last = h["payload"]["messages"].clone();
        if last.as_array().is_some_and(|m| m.len() == 2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reply = last[1]["content"][0]["text"].as_str().unwrap_or_default();
    assert!(reply.ends_with("[aborted]"), "the run stopped when the client left: {last}");
    assert!(reply.len() < "slow ".repeat(40).len(), "long before the answer was complete: {reply}");
}
