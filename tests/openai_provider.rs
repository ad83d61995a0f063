//! The real gateway against a fake OpenAI Chat Completions server speaking the public
//! wire format: streamed text and usage with cached tokens, tool calls streamed in
//! fragments, 429 with `retry-after`, streams that break, llama-cpp-python's repeated
//! tool-call ids and names, and failover to a second provider.

mod common;

use std::time::Duration;

use common::fake_openai::{Down, FakeOpenAi};
use common::*;
use serde_json::{Value, json};

const KEY: &str = "sk-proj-test-0123456789";

fn with_fake(fake: &FakeOpenAi) -> Gateway {
    let base = fake.base_url();
    Gateway::start(&[
        ("SKYNET_AGENT__MODEL", "openai/gpt-4o-mini"),
        ("SKYNET_PROVIDERS__OPENAI__BASE_URL", &base),
        ("SKYNET_PROVIDERS__OPENAI__API_KEY", KEY),
        ("SKYNET_AGENT__MAX_STEPS", "4"),
    ])
}

fn final_text(fin: &Value) -> &str {
    fin["payload"]["message"]["content"][0]["text"].as_str().unwrap_or_else(|| panic!("no text in {fin}"))
}

fn tool_events(events: &[Value]) -> Vec<&Value> {
    events.iter().filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "tool").collect()
}

/// (role, text) of every message in the session's visible history.
async fn history(c: &mut Client, key: &str) -> Vec<(String, String)> {
    let h = c.call("chat.history", json!({"sessionKey": key})).await;
    h["payload"]["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no history: {h}"))
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"][0]["text"].as_str().unwrap().to_string()))
        .collect()
}

#[tokio::test]
async fn streamed_text_arrives_in_pieces_and_usage_reports_cached_tokens() {
    let fake = FakeOpenAi::start(Some(KEY));
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (events, fin) = chat_turn(&mut c, "main", "stream hello there", "s-1").await;

    let assistant: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "agent" && e["payload"]["stream"] == "assistant")
        .map(|e| e["payload"]["data"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(assistant.len(), 5, "one agent event per streamed piece: {assistant:?}");
    let deltas: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
        .map(|e| e["payload"]["message"]["content"][0]["text"].as_str().unwrap())
        .collect();
    assert!(deltas.len() >= 3, "pieces 170 ms apart give several chat deltas: {deltas:?}");
    assert!(deltas.windows(2).all(|w| w[1].len() > w[0].len() && w[1].starts_with(w[0])), "{deltas:?}");
    assert!(deltas[0].len() < "Echo: stream hello there".len(), "the first delta came before the end: {deltas:?}");
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    assert_eq!(final_text(&fin), "Echo: stream hello there");
    assert_eq!(fin["payload"]["provider"], "openai");
    assert_eq!(fin["payload"]["model"], "gpt-4o-mini");
    assert_eq!(fin["payload"]["stopReason"], "end_turn");

    // The request, as the API received it.
    let req = &fake.requests()[0];
    assert_eq!(req["model"], "gpt-4o-mini");
    assert_eq!(req["stream"], true);
    assert_eq!(req["stream_options"], json!({"include_usage": true}));
    assert!(req["max_completion_tokens"].as_u64().unwrap() > 0, "OpenAI itself takes max_completion_tokens: {req}");
    assert!(req.get("max_tokens").is_none());
    assert_eq!(fake.headers()[0]["authorization"], format!("Bearer {KEY}"));
    assert_eq!(fake.headers()[0]["content-type"], "application/json");
    let msgs = req["messages"].as_array().unwrap();
    assert_eq!(msgs[0]["role"], "system");
    let soul = std::fs::read_to_string(g.home.join("workspace/SOUL.md")).unwrap();
    let system = msgs[0]["content"].as_str().unwrap();
    assert!(system.contains(soul.trim()), "the system prompt carries SOUL.md: {system}");
    let user = msgs.last().unwrap();
    assert_eq!(user["role"], "user");
    let content = user["content"].as_str().unwrap();
    assert!(content.starts_with("<context>") && content.ends_with("\n\nstream hello there"), "{content}");
    assert!(
        req["tools"].as_array().unwrap().iter().any(|t| t["type"] == "function"
            && t["function"]["name"] == "current_time"
            && t["function"]["parameters"]["type"] == "object"),
        "{}",
        req["tools"]
    );

    // Usage: the first request had nothing cached.
    let (prompt, cached, output) = fake.usage()[0];
    assert_eq!(cached, 0);
    assert_eq!(fin["payload"]["usage"], json!({"input": prompt, "output": output, "cacheRead": 0, "cacheWrite": 0}));

    // The second turn repeats the first as its prefix: the cached tokens reach the client.
    let (_, fin) = chat_turn(&mut c, "main", "and once more", "s-2").await;
    assert_eq!(final_text(&fin), "Echo: and once more");
    let (prompt, cached, output) = fake.usage()[1];
    assert!(cached > 0 && cached < prompt, "{:?}", fake.usage());
    assert_eq!(
        fin["payload"]["usage"],
        json!({"input": prompt - cached, "output": output, "cacheRead": cached, "cacheWrite": 0})
    );
    let second = &fake.requests()[1]["messages"];
    assert_eq!(second[2], json!({"role": "assistant", "content": "Echo: stream hello there"}));
}

#[tokio::test]
async fn a_tool_call_streamed_in_fragments_is_run_and_answered_with_its_id() {
    let fake = FakeOpenAi::start(Some(KEY));
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (events, fin) = chat_turn(&mut c, "tools", "what does the clock say", "t-1").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");

    let tools = tool_events(&events);
    assert_eq!(tools.len(), 2, "start and result: {tools:?}");
    let start = &tools[0]["payload"]["data"];
    assert_eq!(start["phase"], "start");
    assert_eq!(start["name"], "current_time");
    assert_eq!(start["toolCallId"], "call_qS5mxNV2WkT3bCcFhX4pBeYx");
    assert_eq!(start["args"], json!({"timezone": "UTC"}), "five argument fragments joined");
    let result = &tools[1]["payload"]["data"];
    assert_eq!((result["phase"].as_str(), result["isError"].as_bool()), (Some("result"), Some(false)), "{result}");

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let msgs = reqs[1]["messages"].as_array().unwrap();
    let n = msgs.len();
    assert_eq!(
        msgs[n - 2],
        json!({"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_qS5mxNV2WkT3bCcFhX4pBeYx", "type": "function",
            "function": {"name": "current_time", "arguments": "{\"timezone\":\"UTC\"}"},
        }]})
    );
    assert_eq!(msgs[n - 1]["role"], "tool");
    assert_eq!(msgs[n - 1]["tool_call_id"], "call_qS5mxNV2WkT3bCcFhX4pBeYx");
    let output: Value = serde_json::from_str(msgs[n - 1]["content"].as_str().unwrap()).unwrap();
    let unix = output["unix"].as_i64().unwrap();
    assert!((unix - now_ms() / 1000).abs() < 60, "{output}");
    assert_eq!(final_text(&fin), format!("Tool said: {}", msgs[n - 1]["content"].as_str().unwrap()));
    assert_eq!(fin["payload"]["stopReason"], "end_turn");
    // Two model calls, usage of both summed.
    let usage = fake.usage();
    assert_eq!(fin["payload"]["usage"]["output"], usage[0].2 + usage[1].2);

    // Two calls in one answer (indexes 0 and 1) are both run and both answered.
    let (events, fin) = chat_turn(&mut c, "tools", "twoclocks please", "t-2").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    let ids: Vec<&str> = tool_events(&events)
        .iter()
        .filter(|e| e["payload"]["data"]["phase"] == "start")
        .map(|e| e["payload"]["data"]["toolCallId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["call_Ab12Cd34Ef56Gh78Ij90Kl12", "call_Mn34Op56Qr78St90Uv12Wx34"]);
    let last = fake.requests().last().unwrap()["messages"].clone();
    let msgs = last.as_array().unwrap();
    let n = msgs.len();
    let calls = &msgs[n - 3]["tool_calls"];
    assert_eq!(calls[0]["function"]["arguments"], "{\"timezone\":\"UTC\"}");
    assert_eq!(calls[1]["function"]["arguments"], "{}");
    assert_eq!(
        (msgs[n - 2]["tool_call_id"].as_str(), msgs[n - 1]["tool_call_id"].as_str()),
        (Some("call_Ab12Cd34Ef56Gh78Ij90Kl12"), Some("call_Mn34Op56Qr78St90Uv12Wx34"))
    );
    assert!(final_text(&fin).starts_with("Tool said: {") && final_text(&fin).contains(" | {"), "{fin}");
    let h = history(&mut c, "tools").await;
    let roles: Vec<&str> = h.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"], "{h:?}");
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_that_long() {
    let fake = FakeOpenAi::start(Some(KEY));
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut c, "rl", "ratelimit me", "rl-1").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    assert_eq!(final_text(&fin), "Echo: ratelimit me");
    let times = fake.times();
    assert_eq!(times.len(), 2, "one refusal, one answer");
    let gap = times[1] - times[0];
    assert!(gap >= Duration::from_millis(950) && gap < Duration::from_millis(2500), "retry-after: 1 honoured: {gap:?}");
    assert_eq!(fake.requests()[0], fake.requests()[1], "the same request again");
    assert!(g.stderr().contains("retrying"), "{}", g.stderr());
}

#[tokio::test]
async fn broken_streams_end_the_run_with_an_error_and_the_session_stays_usable() {
    let fake = FakeOpenAi::start(Some(KEY));
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let cases = [
        ("cut short", "cut", "stream cut"),
        ("reset now", "reset", "connection broke"),
        ("midstream failure", "mid", "The server had an error while processing your request"),
    ];
    for (msg, id, expected) in cases {
        let (events, fin) = chat_turn(&mut c, "b", msg, id).await;
        assert_eq!(fin["payload"]["state"], "error", "{fin}");
        let error = fin["payload"]["errorMessage"].as_str().unwrap();
        assert!(error.contains(expected) && error.contains("openai"), "{msg}: {error}");
        assert!(
            events.iter().any(|e| e["payload"]["stream"] == "lifecycle" && e["payload"]["data"]["phase"] == "error"),
            "{events:?}"
        );
        // What streamed before the break reached the client.
        assert!(events.iter().any(|e| e["payload"]["data"]["text"] == "Partial answ"), "{events:?}");
    }
    assert_eq!(fake.requests().len(), 3, "a broken stream is not retried after output began");
    let (_, fin) = chat_turn(&mut c, "b", "are you still there", "ok").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    assert_eq!(final_text(&fin), "Echo: are you still there");

    let h = history(&mut c, "b").await;
    let roles: Vec<&str> = h.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(roles, ["user", "assistant"].repeat(4), "{h:?}");
    for (_, text) in h[1..6].iter().step_by(2) {
        assert!(text.starts_with("Partial answ [error: "), "the partial answer is kept with the error: {text}");
    }
    assert_eq!(h[7].1, "Echo: are you still there");
    // The stored turns went back to the model as valid alternating messages.
    let last = &fake.requests()[3]["messages"];
    let roles: Vec<&str> = last.as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant", "user", "assistant", "user"]);
}

#[tokio::test]
async fn llama_cpp_python_repeated_ids_and_names_make_one_call_with_one_name() {
    // A server of one's own with no key, as llama-cpp-python runs locally.
    let fake = FakeOpenAi::start(None);
    let base = fake.base_url();
    let g = Gateway::start(&[
        ("SKYNET_AGENT__MODEL", "llamapy/gemma3-270m"),
        ("SKYNET_PROVIDERS__LLAMAPY__BASE_URL", &base),
        ("SKYNET_AGENT__MAX_STEPS", "4"),
    ]);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (events, fin) = chat_turn(&mut c, "l", "llama, check the clock", "ll-1").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    let tools = tool_events(&events);
    assert_eq!(tools.len(), 2, "one call, started once: {tools:?}");
    assert_eq!(tools[0]["payload"]["data"]["name"], "current_time", "the name is not doubled");
    assert_eq!(tools[0]["payload"]["data"]["args"], json!({"timezone": "UTC"}));
    assert_eq!(tools[1]["payload"]["data"]["isError"], false, "{}", tools[1]);

    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert!(fake.headers()[0].get("authorization").is_none(), "no key, no header");
    assert!(reqs[0]["max_tokens"].as_u64().is_some() && reqs[0].get("max_completion_tokens").is_none());
    let msgs = reqs[1]["messages"].as_array().unwrap();
    let n = msgs.len();
    let calls = msgs[n - 2]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0]["id"], "call__0_current_time_cmpl-9f2a");
    assert_eq!(calls[0]["function"]["name"], "current_time");
    assert_eq!(msgs[n - 1]["tool_call_id"], "call__0_current_time_cmpl-9f2a");
    assert!(final_text(&fin).starts_with("Tool said: {"), "{fin}");
    // include_usage was ignored: no usage, no made-up numbers.
    assert_eq!(fin["payload"]["usage"], json!({"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0}));
}

#[tokio::test]
async fn server_errors_before_any_output_fail_over_to_the_next_provider() {
    for how in [Down::Http, Down::StreamError] {
        let dead = FakeOpenAi::down(Some(KEY), how);
        let backup = FakeOpenAi::start(Some("backup-key"));
        let (dead_url, backup_url) = (dead.base_url(), backup.base_url());
        let g = Gateway::start(&[
            ("SKYNET_AGENT__MODEL", "openai/gpt-4o-mini"),
            ("SKYNET_PROVIDERS__OPENAI__BASE_URL", &dead_url),
            ("SKYNET_PROVIDERS__OPENAI__API_KEY", KEY),
            ("SKYNET_AGENT__FALLBACKS", "backup/qwen2.5-7b-instruct"),
            ("SKYNET_PROVIDERS__BACKUP__BASE_URL", &backup_url),
            ("SKYNET_PROVIDERS__BACKUP__API_KEY", "backup-key"),
        ]);
        let (mut c, _) = Client::backend(&g, 3).await;
        let (_, fin) = chat_turn(&mut c, "fo", "are you there", "fo-1").await;
        assert_eq!(fin["payload"]["state"], "final", "{how:?}: {fin}");
        assert_eq!(final_text(&fin), "Echo: are you there");
        assert_eq!(fin["payload"]["provider"], "backup");
        assert_eq!(fin["payload"]["model"], "qwen2.5-7b-instruct");
        let expected_attempts = if how == Down::Http { 4 } else { 1 };
        assert_eq!(dead.requests().len(), expected_attempts, "{how:?}: first attempt plus retries of 5xx only");
        let sent = backup.requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0]["model"], "qwen2.5-7b-instruct");
        assert_eq!(backup.headers()[0]["authorization"], "Bearer backup-key");
        assert!(g.stderr().contains("failing over"), "{}", g.stderr());
        // The failed provider is skipped for a while: the next message goes to the backup.
        let (_, fin) = chat_turn(&mut c, "fo", "again", "fo-2").await;
        assert_eq!((fin["payload"]["provider"].as_str(), final_text(&fin)), (Some("backup"), "Echo: again"));
        assert_eq!(dead.requests().len(), expected_attempts);
        let h = history(&mut c, "fo").await;
        assert_eq!(h.len(), 4, "{h:?}");
    }
}
