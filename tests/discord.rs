//! The Discord channel end to end: the real binary, a fake Discord (REST through
//! `[channels.discord] proxy_url`, the gateway over `ws://`) and the fake Anthropic model.
//! DMs, guild mentions and replies, split answers, strangers, slash commands, a refused
//! token and a dropped connection.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::fake_anthropic::FakeAnthropic;
use common::fake_discord::{BOT_ID, FakeDiscord, person};
use common::*;
use serde_json::{Value, json};

const BOT_TOKEN: &str = "MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs";
const ALICE: &str = "111111111111111111";
const DM: &str = "222222222222222222";
const GUILD_CHANNEL: &str = "333333333333333333";

fn start(home: &Path, discord: &FakeDiscord, model: &FakeAnthropic, token: &str, extra: &[(&str, &str)]) -> Gateway {
    let (proxy, base) = (discord.url(), model.base_url());
    let mut env = vec![
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", base.as_str()),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test"),
        ("SKYNET_CHANNELS__DISCORD__TOKEN", token),
        ("SKYNET_CHANNELS__DISCORD__PROXY_URL", proxy.as_str()),
    ];
    env.extend_from_slice(extra);
    Gateway::start_in(home, &env, &[]).unwrap_or_else(|(o, e)| panic!("start failed:\n{o}\n{e}"))
}

/// A gateway whose strangers on Discord become users, connected to the fake.
fn connected(discord: &FakeDiscord, model: &FakeAnthropic, home: &Path) -> Gateway {
    let g = start(home, discord, model, BOT_TOKEN, &[("SKYNET_CHANNELS__DISCORD__DEFAULT_ROLE", "user")]);
    wait_state(&g, "connected", 30);
    g
}

fn discord_health(g: &Gateway) -> Value {
    let (status, body) = g.get("/health");
    assert_eq!(status, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    v["channels"]["discord"].clone()
}

fn wait_state(g: &Gateway, state: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let h = discord_health(g);
        if h["state"] == state {
            return h;
        }
        assert!(Instant::now() < deadline, "discord never became {state}: {h}\n{}", g.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn contents(posted: &[Value]) -> Vec<String> {
    posted.iter().map(|m| m["content"].as_str().unwrap_or_default().to_string()).collect()
}

#[test]
fn a_direct_message_is_answered_in_the_dm_after_a_typing_indicator() {
    let (discord, model) = (FakeDiscord::start(BOT_TOKEN), FakeAnthropic::start());
    let tmp = tempfile::tempdir().unwrap();
    let g = connected(&discord, &model, &tmp.path().join("home"));
    let identify = &discord.identifies()[0];
    // GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT
    assert_eq!(identify["intents"], (1 << 9) | (1 << 12) | (1 << 15), "{identify}");

    discord.send_message(DM, None, person(ALICE, "alice"), "hello bot");
    discord.wait_for(20, "the answer in the DM", |d| !d.posted(DM).is_empty());
    let posted = discord.posted(DM);
    assert_eq!(contents(&posted), ["Echo: hello bot"]);
    assert!(posted[0].get("message_reference").is_none_or(Value::is_null), "no reply reference in a DM: {posted:?}");
    let calls = discord.calls();
    let typing = calls.iter().position(|c| c.path == format!("/api/v10/channels/{DM}/typing"));
    let answer = calls.iter().position(|c| c.path == format!("/api/v10/channels/{DM}/messages"));
    assert!(typing.is_some() && typing < answer, "typing first: {calls:#?}");
    let system = model.requests()[0]["system"].to_string();
    assert!(system.contains("alice"), "the stranger became the user alice: {system}");
    let h = discord_health(&g);
    assert_eq!((h["messagesIn"].as_u64(), h["messagesOut"].as_u64()), (Some(1), Some(1)), "{h}");
}

#[test]
fn a_guild_message_is_answered_as_a_reply_only_when_it_mentions_the_bot() {
    let (discord, model) = (FakeDiscord::start(BOT_TOKEN), FakeAnthropic::start());
    let tmp = tempfile::tempdir().unwrap();
    let _g = connected(&discord, &model, &tmp.path().join("home"));

    discord.send_message(GUILD_CHANNEL, Some(common::fake_discord::GUILD_ID), person(ALICE, "alice"), "just chatting");
    let asked = discord.mention(GUILD_CHANNEL, person(ALICE, "alice"), "how are you");
    discord.wait_for(20, "the reply in the guild channel", |d| !d.posted(GUILD_CHANNEL).is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let posted = discord.posted(GUILD_CHANNEL);
    assert_eq!(contents(&posted), ["Echo: how are you"], "the mention is stripped, the other message ignored");
    assert_eq!(posted[0]["message_reference"]["message_id"], asked.as_str(), "{}", posted[0]);
    let mentions = &posted[0]["allowed_mentions"];
    assert!(
        mentions["parse"] == json!([]) && mentions["replied_user"] == true,
        "no @everyone from the model: {mentions}"
    );
    assert_eq!(model.requests().len(), 1, "the unmentioned message never reached the model");
}

#[test]
fn a_long_answer_arrives_in_parts_of_at_most_2000_characters_with_balanced_fences() {
    let (discord, model) = (FakeDiscord::start(BOT_TOKEN), FakeAnthropic::start());
    let tmp = tempfile::tempdir().unwrap();
    let _g = connected(&discord, &model, &tmp.path().join("home"));

    discord.send_message(DM, None, person(ALICE, "alice"), "discordlong please");
    discord.wait_for(20, "the last part", |d| {
        contents(&d.posted(DM)).last().is_some_and(|p| p.ends_with("one sentence after another."))
    });
    let parts = contents(&discord.posted(DM));
    assert!(parts.len() >= 3, "{parts:#?}");
    for p in &parts {
        assert!(p.chars().count() <= 2000, "{} characters", p.chars().count());
        assert_eq!(p.matches("```").count() % 2, 0, "balanced fences in {p:?}");
    }
    let joined = parts.concat();
    assert!(joined.contains("let value_000") && joined.contains("let value_099"), "nothing lost");
    assert!(parts.iter().skip(1).any(|p| p.starts_with("```rust\n")), "the fence reopens in the next part");
}

#[test]
fn a_stranger_is_refused_politely_and_links_with_the_slash_command() {
    let (discord, model) = (FakeDiscord::start(BOT_TOKEN), FakeAnthropic::start());
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let g = start(&home, &discord, &model, BOT_TOKEN, &[]);
    wait_state(&g, "connected", 30);

    discord.send_message(DM, None, person(ALICE, "alice"), "hello");
    discord.wait_for(20, "the refusal", |d| !d.posted(DM).is_empty());
    let refusal = contents(&discord.posted(DM)).remove(0);
    assert!(refusal.starts_with("I don't know you yet") && refusal.contains("/link CODE"), "{refusal}");
    assert!(model.requests().is_empty(), "the model never saw the stranger");

    let cli = |args: &[&str]| command(&home).arg("user").args(args).output().unwrap();
    assert!(cli(&["add", "Alice", "--role", "user"]).status.success());
    let code = cli(&["code", "Alice"]);
    let code = String::from_utf8_lossy(&code.stdout).trim().to_string();
    let id = discord.slash(DM, person(ALICE, "alice"), "link", &[("code", &code)]);
    let path = format!("/api/v10/interactions/{id}/itoken-{id}/callback");
    discord.wait_for(20, "the /link answer", |d| !d.bodies("POST", &path).is_empty());
    let answer = &discord.bodies("POST", &path)[0];
    assert_eq!(answer["type"], 4, "{answer}");
    assert_eq!(answer["data"]["flags"], 64, "only the linking person sees it: {answer}");
    assert!(answer["data"]["content"].as_str().unwrap().starts_with("Linked: you are Alice"), "{answer}");

    discord.send_message(DM, None, person(ALICE, "alice"), "hello again");
    discord.wait_for(20, "the answer", |d| d.posted(DM).len() == 2);
    assert_eq!(contents(&discord.posted(DM))[1], "Echo: hello again");
}

#[test]
fn slash_commands_are_registered_at_ready_and_answered_through_the_interaction_callback() {
    let (discord, model) = (FakeDiscord::start(BOT_TOKEN), FakeAnthropic::start());
    let tmp = tempfile::tempdir().unwrap();
    let _g = connected(&discord, &model, &tmp.path().join("home"));

    let path = format!("/api/v10/applications/{BOT_ID}/commands");
    discord.wait_for(20, "the command registration", |d| !d.bodies("PUT", &path).is_empty());
    let registered = discord.bodies("PUT", &path).remove(0);
    let names: Vec<&str> = registered.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["link", "new", "model"]);
    assert_eq!(registered[0]["options"][0]["name"], "code");
    assert_eq!(registered[0]["options"][0]["required"], true);

    discord.send_message(DM, None, person(ALICE, "alice"), "remember me");
    discord.wait_for(20, "the answer", |d| !d.posted(DM).is_empty());
    for (name, options, expected) in [
        ("new", vec![], "Started a new conversation."),
        ("model", vec![], "This chat uses anthropic/claude-test (the default)."),
    ] {
        let id = discord.slash(DM, person(ALICE, "alice"), name, &options);
        let cb = format!("/api/v10/interactions/{id}/itoken-{id}/callback");
        discord.wait_for(20, "the callback", |d| !d.bodies("POST", &cb).is_empty());
        let answer = &discord.bodies("POST", &cb)[0];
        let text = answer["data"]["content"].as_str().unwrap();
        assert!(text.starts_with(expected), "/{name}: {answer}");
    }
    assert_eq!(discord.posted(DM).len(), 1, "slash answers go through the callback, not as messages");
}

#[test]
fn a_refused_token_fails_the_channel_with_a_clear_message_and_the_gateway_runs_on() {
    let model = FakeAnthropic::start();
    // Refused over REST at start-up; refused at Identify (4004) when REST lets it through;
    // and not even shaped like a token.
    let rest_refuses = FakeDiscord::start(BOT_TOKEN);
    let identify_refuses = FakeDiscord::start_with(BOT_TOKEN, true);
    let wrong = "MTk4NjIy.Cl2FMQ.not-the-token";
    let cases = [
        (&rest_refuses, wrong, "Discord refused the bot token"),
        (&identify_refuses, wrong, "Discord refused the bot token"),
        (&rest_refuses, "no dots at all", "is not a Discord bot token"),
    ];
    let tmp = tempfile::tempdir().unwrap();
    for (i, (discord, token, says)) in cases.into_iter().enumerate() {
        let g = start(&tmp.path().join(format!("home{i}")), discord, &model, token, &[]);
        let h = wait_state(&g, "failed", 30);
        let detail = h["detail"].as_str().unwrap();
        assert!(
            detail.contains(says)
                && detail.contains("[channels.discord] token")
                && detail.contains("SKYNET_CHANNELS__DISCORD__TOKEN"),
            "{detail}"
        );
        let (status, body) = g.get("/health");
        assert!(status == 200 && body.contains("\"ok\":true"), "the gateway runs on: {body}");
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(g.stderr().matches(says).count(), 1, "said once:\n{}", g.stderr());
        assert_eq!(discord_health(&g)["state"], "failed", "and not retried");
    }
    assert_eq!(identify_refuses.identifies().len(), 1, "one Identify, no retries");
}

#[test]
fn a_dropped_gateway_connection_reconnects_and_messages_flow_again() {
    let (discord, model) = (FakeDiscord::start(BOT_TOKEN), FakeAnthropic::start());
    let tmp = tempfile::tempdir().unwrap();
    let g = connected(&discord, &model, &tmp.path().join("home"));

    discord.set_down(true);
    discord.close(4000);
    let h = wait_state(&g, "reconnecting", 20);
    assert!(h["detail"].as_str().unwrap().contains("reconnecting"), "{h}");
    discord.set_down(false);
    wait_state(&g, "connected", 40);
    discord.wait_for(5, "a live connection", FakeDiscord::connected);

    discord.send_message(DM, None, person(ALICE, "alice"), "still there?");
    discord.wait_for(20, "the answer", |d| !d.posted(DM).is_empty());
    assert_eq!(contents(&discord.posted(DM)), ["Echo: still there?"]);
}
