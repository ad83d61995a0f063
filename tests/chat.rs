//! Chat over the protocol against a fake Anthropic server: streaming events, history,
//! the `agent` method's two answers, tools, aborts, provider failures, and the answer
//! given while no model is configured.

mod common;

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

fn with_fake(fake: &FakeAnthropic) -> Gateway {
    let base = fake.base_url();
    Gateway::start(&[
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", &base),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test"),
        ("SKYNET_AGENT__MAX_STEPS", "3"),
    ])
}

#[tokio::test]
async fn without_a_model_every_answer_says_how_to_configure_one() {
    let g = Gateway::start(&[]);
    let (mut c, hello) = Client::backend(&g, 3).await;
    assert!(hello["features"]["methods"].as_array().unwrap().iter().any(|m| m == "chat.send"));
    let (_, fin) = chat_turn(&mut c, "main", "hello?", "no-model-1").await;
    assert_eq!(fin["payload"]["state"], "final");
    let text = fin["payload"]["message"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("no language model configured") && text.contains("[agent]"), "{text}");
}

#[tokio::test]
async fn chat_send_streams_cumulative_text_then_final_and_is_stored() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (events, fin) = chat_turn(&mut c, "main", "hello there", "run-1").await;

    let kinds: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["event"].as_str().unwrap(),
                e["payload"]["stream"].as_str().or(e["payload"]["state"].as_str()).unwrap_or("")
            )
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("agent:lifecycle"), "{kinds:?}");
    assert!(kinds.contains(&"agent:assistant".to_string()) && kinds.contains(&"chat:delta".to_string()), "{kinds:?}");
    let texts: Vec<&str> = events
        .iter()
        .filter(|e| e["payload"]["stream"] == "assistant")
        .map(|e| e["payload"]["data"]["text"].as_str().unwrap())
        .collect();
    assert!(texts.windows(2).all(|w| w[1].starts_with(w[0])), "v3 text is cumulative: {texts:?}");
    assert_eq!(*texts.last().unwrap(), "Echo: hello there");
    assert!(events.iter().all(|e| e.get("seq").is_some()));
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]), "{seqs:?}");

    assert_eq!(fin["payload"]["message"]["content"][0]["text"], "Echo: hello there");
    assert_eq!(fin["payload"]["sessionKey"], "agent:main:main");
    assert!(fin["payload"]["usage"]["cacheWrite"].as_u64().unwrap() > 0, "{fin}");

    let req = &fake.requests()[0];
    assert_eq!(req["model"], "claude-test");
    assert_eq!(req["stream"], true);
    let headers = fake.state.lock().unwrap().headers[0].clone();
    assert_eq!(headers["x-api-key"], "sk-ant-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");

    let h = c.call("chat.history", json!({"sessionKey": "main"})).await["payload"].clone();
    let msgs: Vec<(String, String)> = h["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"][0]["text"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(msgs, [("user".into(), "hello there".into()), ("assistant".into(), "Echo: hello there".into())]);
    assert_eq!(h["messages"][1]["model"], "claude-test");

    // The same idempotency key is answered from memory, not run again.
    let again =
        c.call("chat.send", json!({"sessionKey": "main", "message": "hello there", "idempotencyKey": "run-1"})).await;
    assert_eq!(again["payload"]["status"], "ok");
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn v4_chat_deltas_carry_delta_text() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, hello) = Client::backend(&g, 4).await;
    assert_eq!(hello["protocol"], 4);
    let (events, _) = chat_turn(&mut c, "v4", "slow please", "run-v4").await;
    let deltas: Vec<&Value> =
        events.iter().filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta").collect();
    assert!(deltas.len() >= 2, "throttled but several deltas over 4 s");
    let joined: String = deltas.iter().map(|d| d["payload"]["deltaText"].as_str().unwrap()).collect();
    let last = deltas.last().unwrap()["payload"]["message"]["content"][0]["text"].as_str().unwrap();
    assert_eq!(joined, last, "deltaText pieces add up to the cumulative text");
}

#[tokio::test]
async fn agent_method_answers_accepted_then_final() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    c.send_json(&json!({"type": "req", "id": "a1", "method": "agent", "params": {"message": "hi agent", "idempotencyKey": "ag-1"}})).await;
    let first = c.next_res().await;
    assert_eq!((first["id"].as_str(), first["payload"]["status"].as_str()), (Some("a1"), Some("accepted")));
    let second = c.next_res().await;
    assert_eq!(second["id"], "a1");
    assert_eq!(second["payload"]["status"], "ok");
    assert_eq!(second["payload"]["result"]["payloads"][0]["text"], "Echo: hi agent");
    assert_eq!(second["payload"]["result"]["meta"]["agentMeta"]["provider"], "anthropic");
    let w = c.call("agent.wait", json!({"runId": "ag-1", "timeoutMs": 1000})).await;
    assert_eq!(w["payload"]["status"], "ok");
}

#[tokio::test]
async fn the_model_can_call_a_tool_and_gets_its_result() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (events, fin) = chat_turn(&mut c, "tools", "what does the clock say", "tool-1").await;
    let tool: Vec<&Value> = events.iter().filter(|e| e["payload"]["stream"] == "tool").collect();
    assert_eq!(tool.len(), 2, "start and result");
    assert_eq!(tool[0]["payload"]["data"]["name"], "current_time");
    assert_eq!(tool[1]["payload"]["data"]["isError"], false);
    let text = fin["payload"]["message"]["content"][0]["text"].as_str().unwrap();
    assert!(text.starts_with("Tool said: {\"unix\":"), "{text}");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs[0]["tools"].as_array().unwrap().iter().any(|t| t["name"] == "current_time"));
    let last = reqs[1]["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["content"][0]["type"], "tool_result");
}

#[tokio::test]
async fn tool_mistakes_go_back_to_the_model_and_loops_stop_at_the_limit() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut c, "m", "call badtool", "bt").await;
    let text = fin["payload"]["message"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("there is no tool named \"no_such_tool\""), "{text}");
    let (_, fin) = chat_turn(&mut c, "m", "send badjson", "bj").await;
    let text = fin["payload"]["message"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("not valid JSON"), "{text}");
    let before = fake.requests().len();
    let (_, fin) = chat_turn(&mut c, "m", "loop forever", "lp").await;
    assert_eq!(fin["payload"]["state"], "final");
    assert!(fin["payload"]["message"]["content"][0]["text"].as_str().unwrap().contains("max_steps"));
    assert_eq!(fake.requests().len() - before, 3, "max_steps = 3 model calls");
    // The session is still consistent and usable.
    let (_, fin) = chat_turn(&mut c, "m", "still there?", "after").await;
    assert_eq!(fin["payload"]["message"]["content"][0]["text"], "Echo: still there?");
}

#[tokio::test]
async fn provider_failures_end_in_an_error_event_and_the_session_stays_usable() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    for (msg, id) in [("overloaded now", "ov"), ("garbage out", "gb")] {
        let (events, fin) = chat_turn(&mut c, "f", msg, id).await;
        assert_eq!(fin["payload"]["state"], "error", "{fin}");
        assert!(!fin["payload"]["errorMessage"].as_str().unwrap().is_empty());
        assert!(events.iter().any(|e| e["payload"]["data"]["phase"] == "error"));
    }
    let (_, fin) = chat_turn(&mut c, "f", "fine again", "ok").await;
    assert_eq!(fin["payload"]["message"]["content"][0]["text"], "Echo: fine again");
    assert!(g.stderr().contains("model call failed"));
}

#[tokio::test]
async fn chat_abort_stops_a_streaming_run() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (mut other, _) = Client::backend(&g, 3).await;
    let res =
        c.call("chat.send", json!({"sessionKey": "ab", "message": "slow story", "idempotencyKey": "slow-1"})).await;
    assert_eq!(res["payload"]["status"], "started");
    // Wait for streaming to begin, then abort from another connection.
    until_streaming(&mut c).await;
    let a = other.call("chat.abort", json!({"sessionKey": "ab"})).await;
    assert_eq!(a["payload"]["aborted"], true);
    assert_eq!(a["payload"]["runIds"], json!(["slow-1"]));
    loop {
        if let Got::Json(v) = c.next().await
            && v["event"] == "chat"
            && v["payload"]["state"] != "delta"
        {
            assert_eq!(v["payload"]["state"], "aborted");
            break;
        }
    }
    let h = c.call("chat.history", json!({"sessionKey": "ab"})).await;
    let last = h["payload"]["messages"].as_array().unwrap().last().unwrap().clone();
    assert!(last["content"][0]["text"].as_str().unwrap().ends_with("[aborted]"), "{last}");
}

#[tokio::test]
async fn sessions_can_be_listed_reset_and_deleted() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &["operator.admin"])).await;
    chat_turn(&mut c, "one", "a", "s1").await;
    chat_turn(&mut c, "two", "b", "s2").await;
    let l = c.call("sessions.list", json!({})).await["payload"].clone();
    let keys: Vec<&str> = l["sessions"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["agent:main:two", "agent:main:one"]);
    assert_eq!(c.call("sessions.reset", json!({"key": "one"})).await["payload"]["ok"], true);
    assert_eq!(c.call("chat.history", json!({"sessionKey": "one"})).await["payload"]["messages"], json!([]));
    assert_eq!(c.call("sessions.delete", json!({"key": "two"})).await["payload"]["deleted"], true);
    let m = c.call("models.list", json!({})).await["payload"].clone();
    assert_eq!(m["models"][0]["id"], "anthropic/claude-test");
    assert!(m["models"].as_array().unwrap().len() > 30, "presets are listed");
}

#[tokio::test]
async fn history_survives_a_restart() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let base = fake.base_url();
    let env = [
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", base.as_str()),
        ("ANTHROPIC_API_KEY", "sk-ant-env"),
    ];
    {
        let g = Gateway::start_in(&home, &env, &[]).unwrap();
        let (mut c, _) = Client::backend(&g, 3).await;
        chat_turn(&mut c, "main", "remember me", "r1").await;
    }
    let g = Gateway::start_in(&home, &env, &[]).unwrap();
    let (mut c, _) = Client::backend(&g, 3).await;
    chat_turn(&mut c, "main", "second", "r2").await;
    let reqs = fake.requests();
    let texts: Vec<String> = reqs[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| {
            m["content"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|b| b["text"].as_str().map(String::from))
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.starts_with("<context>"))
        .collect();
    assert_eq!(texts, ["remember me", "Echo: remember me", "second"]);
    assert_eq!(fake.state.lock().unwrap().headers[1]["x-api-key"], "sk-ant-env", "the key from ANTHROPIC_API_KEY");
}

#[tokio::test]
async fn a_20_turn_conversation_reads_most_of_its_prompt_from_the_cache() {
    let fake = FakeAnthropic::start();
    let g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let mut finals = Vec::new();
    for turn in 1..=20 {
        let (_, fin) =
            chat_turn(&mut c, "cache", &format!("turn number {turn}, tell me something"), &format!("c{turn}")).await;
        finals.push(fin);
    }
    let usage = fake.usage();
    assert_eq!(usage.len(), 20);
    let (mut read, mut all) = (0, 0);
    for (input, r, w) in &usage[1..] {
        read += r;
        all += input + r + w;
    }
    let ratio = read as f64 / all as f64;
    assert!(ratio >= 0.85, "only {:.1}% of input tokens were cache reads from turn 2 on: {usage:?}", ratio * 100.0);
    // The figures reach the client in each final event.
    let (_, r, w) = usage[19];
    assert_eq!(finals[19]["payload"]["usage"]["cacheRead"], r);
    assert_eq!(finals[19]["payload"]["usage"]["cacheWrite"], w);
    // The static and per-user tiers were byte-identical in every request.
    let reqs = fake.requests();
    assert!(reqs.iter().all(|r| r["system"] == reqs[0]["system"] && r["tools"] == reqs[0]["tools"]));
}

#[tokio::test]
async fn a_failing_provider_fails_over_to_the_next_model_before_any_output() {
    let fake = FakeAnthropic::start();
    let base = fake.base_url();
    let g = Gateway::start(&[
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
        // Nothing listens on port 1: connection refused.
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", "http://127.0.0.1:1"),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-dead"),
        ("SKYNET_AGENT__FALLBACKS", "backup/claude-test"),
        ("SKYNET_PROVIDERS__BACKUP__KIND", "anthropic"),
        ("SKYNET_PROVIDERS__BACKUP__BASE_URL", &base),
        ("SKYNET_PROVIDERS__BACKUP__API_KEY", "sk-ant-backup"),
    ]);
    let (mut c, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut c, "fo", "are you there", "fo-1").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    assert_eq!(fin["payload"]["message"]["content"][0]["text"], "Echo: are you there");
    assert_eq!(fin["payload"]["provider"], "backup");
    assert!(g.stderr().contains("failing over"));
    // The dead provider is now skipped without another attempt.
    let (_, fin) = chat_turn(&mut c, "fo", "again", "fo-2").await;
    assert_eq!(fin["payload"]["provider"], "backup");
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn doctor_checks_the_configured_model_with_the_provider() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    drop(Gateway::start_in(&home, &[], &[]).unwrap());
    let run = |model: &str| {
        command(&home)
            .env("SKYNET_AGENT__MODEL", model)
            .env("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", fake.base_url())
            .env("ANTHROPIC_API_KEY", "sk-ant-x")
            .arg("doctor")
            .output()
            .unwrap()
    };
    let out = run("anthropic/claude-test");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && report.contains("knows the model"), "{report}");
    let out = run("anthropic/claude-nonexistent");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success() && report.contains("does not list"), "{report}");
}

#[tokio::test]
async fn sigterm_lets_a_streaming_run_finish_before_closing() {
    let fake = FakeAnthropic::start();
    let mut g = with_fake(&fake);
    let (mut c, _) = Client::backend(&g, 3).await;
    let res =
        c.call("chat.send", json!({"sessionKey": "st", "message": "slow goodbye", "idempotencyKey": "st-1"})).await;
    assert_eq!(res["payload"]["status"], "started");
    until_streaming(&mut c).await;
    g.signal("TERM");
    let mut saw_shutdown = false;
    let fin = loop {
        match c.next().await {
            Got::Json(v) if v["event"] == "shutdown" => saw_shutdown = true,
            Got::Json(v) if v["event"] == "chat" && v["payload"]["state"] != "delta" => break v,
            Got::Json(_) => {}
            Got::Closed(code, reason) => panic!("closed ({code:?} {reason}) before the run finished"),
        }
    };
    assert!(saw_shutdown);
    assert_eq!(fin["payload"]["state"], "final");
    assert_eq!(fin["payload"]["message"]["content"][0]["text"], "slow ".repeat(40));
    assert_eq!(c.closed().await.0, Some(1012));
    assert_eq!(g.wait_exit(std::time::Duration::from_secs(20)).code(), Some(0));
}

#[tokio::test]
async fn a_run_longer_than_the_grace_period_is_aborted_and_stored() {
    let fake = FakeAnthropic::start();
    let base = fake.base_url();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("h");
    let env = [
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", base.as_str()),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test"),
        ("SKYNET_GATEWAY__SHUTDOWN_GRACE_MS", "500"),
    ];
    let mut g = Gateway::start_in(&home, &env, &[]).unwrap();
    let (mut c, _) = Client::backend(&g, 3).await;
    c.call("chat.send", json!({"sessionKey": "gr", "message": "slow and long", "idempotencyKey": "gr-1"})).await;
    until_streaming(&mut c).await;
    g.signal("TERM");
    assert_eq!(g.wait_exit(std::time::Duration::from_secs(20)).code(), Some(0));
    drop(g);
    let g = Gateway::start_in(&home, &env, &[]).unwrap();
    let (mut c, _) = Client::backend(&g, 3).await;
    let h = c.call("chat.history", json!({"sessionKey": "gr"})).await["payload"]["messages"].clone();
    assert_eq!(h.as_array().unwrap().len(), 2, "the turn is stored whole: {h}");
    assert!(h[1]["content"][0]["text"].as_str().unwrap().ends_with("[aborted]"), "{h}");
}
