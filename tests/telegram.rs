//! The Telegram channel through the real binary, teloxide talking to a fake Bot API on
//! loopback (tests/common/fake_telegram.rs) and the fake Anthropic model answering:
//! private chats, strangers, linking, groups, HTML, long answers, a refused token,
//! network loss and restarts.
#![cfg(feature = "telegram")]

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fake_anthropic::{FakeAnthropic, long_answer};
use common::fake_telegram::{BOT_USERNAME, FakeTelegram, Sent, parse_html, user};
use common::*;
use serde_json::{Value, json};

const TG_TOKEN: &str = "123456789:AAE-test_token-0123456789";
const ADMIN: [&str; 3] = ["operator.read", "operator.write", "operator.admin"];

struct Setup {
    ai: FakeAnthropic,
    tg: FakeTelegram,
    _tmp: tempfile::TempDir,
    home: std::path::PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        Setup { ai: FakeAnthropic::start(), tg: FakeTelegram::start(TG_TOKEN), _tmp: tmp, home }
    }

    /// Starts the gateway with the Telegram channel pointed at the fake.
    fn gateway(&self, extra: &[(&str, &str)]) -> Gateway {
        let (ai, tg) = (self.ai.base_url(), self.tg.api_url());
        let mut env = vec![
            ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
            ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", ai.as_str()),
            ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test"),
            ("SKYNET_CHANNELS__TELEGRAM__TOKEN", TG_TOKEN),
            ("SKYNET_CHANNELS__TELEGRAM__API_URL", tg.as_str()),
        ];
        env.extend_from_slice(extra);
        Gateway::start_in(&self.home, &env, &[]).unwrap_or_else(|(o, e)| panic!("start failed:\n{o}\n{e}"))
    }

    /// Waits until `n` messages went to `chat`; returns them.
    fn wait_sent(&self, g: &Gateway, chat: i64, n: usize) -> Vec<Sent> {
        let what =
            || format!("{n} messages to chat {chat}; calls: {:?}\ngateway log:\n{}", self.tg.calls(), g.stderr());
        wait_for(what, Duration::from_secs(20), || {
            let sent = self.tg.sent_to(chat);
            (sent.len() >= n).then_some(sent)
        })
    }

    /// The system prompt and messages of every model request, as text.
    fn prompts(&self) -> Vec<String> {
        self.ai.requests().iter().map(|r| format!("{}{}", r["system"], r["messages"])).collect()
    }
}

/// Polls `check` until it gives a value; `what` describes the wait (and what was seen) on
/// a timeout.
fn wait_for<T>(what: impl Fn() -> String, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {}", what());
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn telegram_health(g: &Gateway) -> Value {
    let (status, body) = g.get("/health");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).unwrap()["channels"]["telegram"].clone()
}

fn wait_state(g: &Gateway, state: &str, within: Duration) -> Value {
    wait_for(
        || format!("telegram state {state}; gateway log:\n{}", g.stderr()),
        within,
        || {
            let h = telegram_health(g);
            (h["state"] == state).then_some(h)
        },
    )
}

fn cli(home: &Path, args: &[&str]) {
    let out = command(home).arg("user").args(args).output().unwrap();
    assert!(out.status.success(), "user {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn stop(g: &mut Gateway) {
    g.signal("TERM");
    assert!(g.wait_exit(Duration::from_secs(15)).success(), "{}", g.stderr());
}

#[test]
fn a_private_message_from_a_known_user_is_answered_with_typing_shown() {
    let s = Setup::new();
    let g = s.gateway(&[("SKYNET_CHANNELS__TELEGRAM__DEFAULT_ROLE", "user")]);
    let h = wait_state(&g, "connected", Duration::from_secs(10));
    assert_eq!(h["detail"], format!("@{BOT_USERNAME}"), "{h}");
    let menu = s.tg.calls_of("setMyCommands");
    assert!(menu[0].params["commands"].to_string().contains("\"link\""), "{menu:?}");

    let alice = user(1001, "Alice", "alice");
    s.tg.push_private(&alice, "hello there");
    let sent = s.wait_sent(&g, 1001, 1);
    assert_eq!(sent[0].text, "Echo: hello there");
    assert!(sent[0].html && sent[0].reply_to.is_none(), "{:?}", sent[0]);
    let typing = s.tg.calls_of("sendChatAction");
    assert!(typing.iter().any(|c| c.params["chat_id"] == 1001 && c.params["action"] == "typing"), "{typing:?}");

    // A photo with a caption reaches the model as text plus what was attached.
    let mut photo = json!({"from": alice, "chat": {"id": 1001, "type": "private", "first_name": "Alice"},
        "caption": "look", "photo": [
            {"file_id": "p1", "file_unique_id": "u1", "file_size": 1200, "width": 90, "height": 60},
            {"file_id": "p2", "file_unique_id": "u2", "file_size": 45000, "width": 800, "height": 600}]});
    photo["caption_entities"] = json!([]);
    s.tg.push_message(photo);
    let sent = s.wait_sent(&g, 1001, 2);
    assert_eq!(sent[1].text, "Echo: look\n[attached photo: unnamed]");

    let h = telegram_health(&g);
    assert_eq!((h["messagesIn"].as_u64(), h["messagesOut"].as_u64()), (Some(2), Some(2)), "{h}");
    // The update offset is acknowledged: each update was fetched once.
    let offsets: Vec<Value> = s.tg.calls_of("getUpdates").iter().map(|c| c.params["offset"].clone()).collect();
    assert!(offsets.contains(&json!(500_000_002)) && offsets.contains(&json!(500_000_003)), "{offsets:?}");
}

#[test]
fn a_ten_thousand_character_answer_arrives_in_ordered_parts_with_fences_intact() {
    let s = Setup::new();
    let g = s.gateway(&[("SKYNET_CHANNELS__TELEGRAM__DEFAULT_ROLE", "user")]);
    s.tg.push_private(&user(1001, "Alice", "alice"), "longanswer please");
    let answer = long_answer();
    assert_eq!(answer.chars().count(), 10_000);
    s.wait_sent(&g, 1001, 3);
    std::thread::sleep(Duration::from_millis(500));
    let sent = s.tg.sent_to(1001);
    assert!(sent.len() >= 3, "{} parts", sent.len());
    for part in &sent {
        assert!(part.html);
        assert!(part.text.encode_utf16().count() <= 4096, "a part of {} characters", part.text.chars().count());
        assert_eq!(part.raw.matches("<pre>").count(), part.raw.matches("</pre>").count(), "{}", part.raw);
    }
    // The fence crosses the first cut: closed at the end of one part, reopened in the next.
    assert!(sent[0].raw.ends_with("</code></pre>"), "{}", &sent[0].raw[sent[0].raw.len() - 80..]);
    assert!(sent[1].raw.starts_with("<pre><code class=\"language-rust\">let v"), "{}", &sent[1].raw[..80]);
    assert!(sent[0].raw.contains("a &lt; b &amp;&amp; c"));
    // Joined back (without fence lines and whitespace at the cuts) it is the answer, in order.
    let squash = |s: &str| s.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    let expected: String = answer.lines().filter(|l| !l.starts_with("```")).map(squash).collect();
    let got: String = sent.iter().map(|p| squash(&p.text)).collect();
    assert_eq!(got, expected);
}

#[test]
fn a_stranger_is_refused_politely_and_the_model_is_never_called() {
    let s = Setup::new();
    let g = s.gateway(&[]);
    let stranger = user(2002, "Mallory", "mallory");
    s.tg.push_private(&stranger, "hi, who are you?");
    s.tg.push_private(&stranger, "/start");
    let sent = s.wait_sent(&g, 2002, 2);
    for m in &sent {
        assert!(m.text.starts_with("I don't know you yet") && m.text.contains("/link CODE"), "{}", m.text);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.ai.requests().is_empty(), "the model saw a stranger's message");
}

#[tokio::test]
async fn link_joins_a_telegram_account_to_a_web_user_who_keeps_her_memory_after_a_restart() {
    let s = Setup::new();
    let mut g = s.gateway(&[]);
    cli(&s.home, &["add", "Alice", "--role", "user"]);
    cli(&s.home, &["link", "Alice", "webchat", "alice-laptop"]);
    let web = json!({"channel": "webchat", "id": "alice-laptop", "name": "Alice"});
    let (mut c, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &ADMIN)).await;

    // On the web, the model saves a fact about her.
    let fact = json!({"text": "Alice's cat is called Tom"});
    web_turn(&mut c, &web, &format!("call:memory_save {fact}"), "w1").await;
    let code = c.call("users.linkCode", json!({"sender": web})).await;
    let code = code["payload"]["code"].as_str().unwrap().to_string();

    let tg_alice = user(3003, "Ally", "ally_tg");
    s.tg.push_private(&tg_alice, &format!("/link {code}"));
    let sent = s.wait_sent(&g, 3003, 1);
    assert!(sent[0].text.starts_with("Linked: you are Alice"), "{}", sent[0].text);
    let who = c.call("users.whoami", json!({"sender": {"channel": "telegram", "id": "3003"}})).await;
    assert_eq!(who["payload"]["user"]["name"], "Alice", "{who}");
    // From the web, the model can now reach her on Telegram.
    let args = json!({"text": "A note for **Telegram**", "channel": "telegram"});
    web_turn(&mut c, &web, &format!("call:send_message {args}"), "w2").await;
    let sent = s.wait_sent(&g, 3003, 2);
    assert_eq!((sent[1].raw.as_str(), sent[1].reply_to), ("A note for <b>Telegram</b>", None));
    drop(c);

    stop(&mut g);
    let g = s.gateway(&[]);
    let before = s.ai.requests().len();
    s.tg.push_private(&tg_alice, "what is my cat called?");
    let sent = s.wait_sent(&g, 3003, 3);
    assert_eq!(sent[2].text, "Echo: what is my cat called?");
    let prompt = &s.prompts()[before];
    assert!(prompt.contains("You are talking with Alice"), "{prompt}");
    assert!(prompt.contains("cat is called Tom"), "the web memory is in the Telegram prompt: {prompt}");
    assert_eq!(s.tg.sent_to(3003).len(), 3, "the /link update was not answered again");
}

/// A chat turn on the web as `who`; waits for its final event.
async fn web_turn(c: &mut Client, who: &Value, message: &str, idem: &str) {
    let res = c
        .call("chat.send", json!({"sessionKey": "web", "message": message, "idempotencyKey": idem, "sender": who}))
        .await;
    assert_eq!(res["ok"], true, "{res}");
    loop {
        let ev = c.next_event("chat").await;
        if ev["payload"]["runId"] == idem && ev["payload"]["state"] != "delta" {
            assert_eq!(ev["payload"]["state"], "final", "{ev}");
            return;
        }
    }
}

#[test]
fn in_groups_the_bot_answers_mentions_replies_and_its_commands_only() {
    let s = Setup::new();
    let g = s.gateway(&[("SKYNET_CHANNELS__TELEGRAM__DEFAULT_ROLE", "user")]);
    let alice = user(1001, "Alice", "alice");
    const GROUP: i64 = -400_500;
    s.tg.push_group(GROUP, &alice, "just chatting among people", None);
    s.tg.push_group(GROUP, &alice, "/new@OtherBot", None);
    let mentioned = s.tg.push_group(GROUP, &alice, &format!("hey @{BOT_USERNAME} ping"), None);
    let sent = s.wait_sent(&g, GROUP, 1);
    assert_eq!(sent[0].text, "Echo: hey ping");
    assert_eq!(sent[0].reply_to, Some(mentioned), "answers thread to the message");

    let reply = s.tg.push_group(GROUP, &alice, "and once more", Some(77));
    let sent = s.wait_sent(&g, GROUP, 2);
    assert_eq!((sent[1].text.as_str(), sent[1].reply_to), ("Echo: and once more", Some(reply)));

    s.tg.push_group(GROUP, &alice, &format!("/whoami@{BOT_USERNAME}"), None);
    let sent = s.wait_sent(&g, GROUP, 3);
    assert_eq!(sent[2].text, "You are alice (user).");

    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.tg.sent_to(GROUP).len(), 3, "{:?}", s.tg.sent_to(GROUP));
    let prompts = s.prompts().join("\n");
    assert!(!prompts.contains("just chatting") && !prompts.contains("OtherBot"), "{prompts}");
}

#[test]
fn markdown_becomes_telegram_html_and_unparsable_html_is_resent_as_plain_text() {
    let s = Setup::new();
    let g = s.gateway(&[("SKYNET_CHANNELS__TELEGRAM__DEFAULT_ROLE", "user")]);
    let alice = user(1001, "Alice", "alice");
    s.tg.push_private(&alice, "show <b>x</b> & **bold** `a<b`\n```rust\nlet a = 1 < 2;\n```");
    let sent = s.wait_sent(&g, 1001, 1);
    assert_eq!(
        sent[0].raw,
        "Echo: show &lt;b&gt;x&lt;/b&gt; &amp; <b>bold</b> <code>a&lt;b</code>\n\
         <pre><code class=\"language-rust\">let a = 1 &lt; 2;</code></pre>"
    );
    assert_eq!(sent[0].text, "Echo: show <b>x</b> & bold a<b\nlet a = 1 < 2;");

    s.tg.reject_html(1);
    s.tg.push_private(&alice, "once more **x**");
    let sent = s.wait_sent(&g, 1001, 2);
    assert!(!sent[1].html);
    assert_eq!(sent[1].raw, "Echo: once more **x**");
    let refused = s.tg.calls_of("sendMessage").into_iter().filter(|c| c.shown.is_err()).count();
    assert_eq!(refused, 1);
}

#[tokio::test]
async fn a_refused_token_fails_the_channel_clearly_and_the_gateway_runs_on() {
    let s = Setup::new();
    let g = s.gateway(&[("SKYNET_CHANNELS__TELEGRAM__TOKEN", "123456789:WRONG")]);
    let h = wait_state(&g, "failed", Duration::from_secs(10));
    let msg = "Telegram refused the bot token (401 Unauthorized): check [channels.telegram] token / \
               SKYNET_CHANNELS__TELEGRAM__TOKEN";
    assert_eq!(h["detail"], msg, "{h}");

    let (mut c, _) = Client::backend(&g, 3).await;
    let (_, fin) = chat_turn(&mut c, "main", "still here?", "r1").await;
    assert_eq!(fin["payload"]["state"], "final", "{fin}");
    let status = c.call("status", json!({})).await;
    assert_eq!(status["payload"]["channelSummary"]["telegram"]["state"], "failed", "{status}");

    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(g.stderr().matches(msg).count(), 1, "logged once:\n{}", g.stderr());
    assert_eq!(s.tg.calls().len(), 1, "no retries with a refused token: {:?}", s.tg.calls());
}

#[test]
fn after_losing_the_network_the_channel_reconnects_and_messages_flow_again() {
    let s = Setup::new();
    let g = s.gateway(&[("SKYNET_CHANNELS__TELEGRAM__DEFAULT_ROLE", "user")]);
    wait_state(&g, "connected", Duration::from_secs(10));
    s.tg.stop();
    let h = wait_state(&g, "reconnecting", Duration::from_secs(10));
    assert!(h["detail"].as_str().unwrap().contains("cannot reach the Telegram Bot API"), "{h}");
    s.tg.push_private(&user(1001, "Alice", "alice"), "sent while the bot was away");
    std::thread::sleep(Duration::from_millis(1500));
    s.tg.restart();
    wait_state(&g, "connected", Duration::from_secs(10));
    let sent = s.wait_sent(&g, 1001, 1);
    assert_eq!(sent[0].text, "Echo: sent while the bot was away");
    s.tg.push_private(&user(1001, "Alice", "alice"), "and after");
    assert_eq!(s.wait_sent(&g, 1001, 2)[1].text, "Echo: and after");
}

#[test]
fn a_restarted_gateway_does_not_answer_old_updates_again() {
    let s = Setup::new();
    let env = [("SKYNET_CHANNELS__TELEGRAM__DEFAULT_ROLE", "user")];
    let mut g = s.gateway(&env);
    let alice = user(1001, "Alice", "alice");
    s.tg.push_private(&alice, "first");
    s.wait_sent(&g, 1001, 1);
    stop(&mut g);

    let polls = s.tg.calls_of("getUpdates").len();
    let g = s.gateway(&env);
    wait_for(
        || "a poll by the new process".into(),
        Duration::from_secs(10),
        || (s.tg.calls_of("getUpdates").len() > polls).then_some(()),
    );
    s.tg.push_private(&alice, "second");
    s.wait_sent(&g, 1001, 2);
    std::thread::sleep(Duration::from_millis(500));
    let texts: Vec<String> = s.tg.sent_to(1001).into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["Echo: first", "Echo: second"]);
    assert_eq!(s.ai.requests().len(), 2);
}

#[test]
fn the_fake_parses_html_like_telegram() {
    assert_eq!(parse_html("a &lt;b&gt; <b>c</b> &amp; &quot;x&quot; &#33;").unwrap(), "a <b> c & \"x\" !");
    assert!(parse_html("<b>x</i>").unwrap_err().contains("Unmatched end tag"));
    assert!(parse_html("<foo>").unwrap_err().contains("Unsupported start tag"));
    assert!(parse_html("<b>x").unwrap_err().contains("Can't find end tag"));
    assert!(parse_html("<code><b>x</b></code>").is_err());
    assert_eq!(parse_html("<pre><code class=\"language-rust\">x</code></pre>").unwrap(), "x");
}

#[test]
fn odd_updates_are_skipped_and_a_burst_is_answered_in_order_per_chat_in_parallel_across_chats() {
    let s = Setup::new();
    let g = s.gateway(&[("SKYNET_CHANNELS__TELEGRAM__DEFAULT_ROLE", "user")]);
    wait_state(&g, "connected", Duration::from_secs(10));
    let (ann, bob) = (user(2001, "Ann", "ann"), user(2002, "Bob", "bob"));
    let chat = json!({"id": 2001, "type": "private", "first_name": "Ann"});
    // Nothing to answer in these, and nothing breaks: no text, a sticker, an edit, a bot.
    s.tg.push_message(json!({"from": ann, "chat": chat}));
    s.tg.push_message(json!({"from": ann, "chat": chat, "sticker": {"file_id": "s1", "file_unique_id": "su1",
        "type": "regular", "width": 512, "height": 512, "is_animated": false, "is_video": false, "emoji": "👍"}}));
    s.tg.push_update("edited_message", json!({"from": ann, "chat": chat, "text": "an edit"}));
    let robot = json!({"id": 3003, "is_bot": true, "first_name": "Robot", "username": "robot_bot"});
    s.tg.push_message(json!({"from": robot, "chat": chat, "text": "from a bot"}));
    // A burst: 50 messages from each of two chats, interleaved.
    for i in 0..50 {
        s.tg.push_private(&ann, &format!("a{i}"));
        s.tg.push_private(&bob, &format!("b{i}"));
    }
    let to_ann = s.wait_sent(&g, 2001, 50);
    let to_bob = s.wait_sent(&g, 2002, 50);
    let texts = |sent: &[Sent]| sent.iter().map(|m| m.text.clone()).collect::<Vec<_>>();
    assert_eq!(texts(&to_ann), (0..50).map(|i| format!("Echo: a{i}")).collect::<Vec<_>>(), "Ann's answers in order");
    assert_eq!(texts(&to_bob), (0..50).map(|i| format!("Echo: b{i}")).collect::<Vec<_>>(), "Bob's answers in order");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.ai.requests().len(), 100, "the odd updates never reached the model");
    assert_eq!(g.get("/health").0, 200);
}
