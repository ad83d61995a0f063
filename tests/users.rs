//! Users, identities and roles through the real binary: a backend with the admin scope
//! speaks for channel identities (`sender`), as the channel adapters do. Roles are checked
//! where a tool runs; link codes, strangers, hourly limits and the `user` CLI.

mod common;

use std::path::Path;
use std::process::Output;

use common::fake_anthropic::FakeAnthropic;
use common::*;
use serde_json::{Value, json};

const ADMIN: [&str; 3] = ["operator.read", "operator.write", "operator.admin"];

fn start(home: &Path, fake: &FakeAnthropic, extra: &[(&str, &str)]) -> Gateway {
    let base = fake.base_url();
    let mut env = vec![
        ("SKYNET_AGENT__MODEL", "anthropic/claude-test"),
        ("SKYNET_PROVIDERS__ANTHROPIC__BASE_URL", base.as_str()),
        ("SKYNET_PROVIDERS__ANTHROPIC__API_KEY", "sk-ant-test"),
    ];
    env.extend_from_slice(extra);
    Gateway::start_in(home, &env, &[]).unwrap_or_else(|(o, e)| panic!("start failed:\n{o}\n{e}"))
}

fn sender(channel: &str, id: &str, name: &str) -> Value {
    json!({"channel": channel, "id": id, "name": name})
}

/// chat.send for `who`; returns the run's terminal chat event.
async fn say(c: &mut Client, who: &Value, key: &str, message: &str, idem: &str) -> Value {
    let res = c
        .call("chat.send", json!({"sessionKey": key, "message": message, "idempotencyKey": idem, "sender": who}))
        .await;
    assert_eq!(res["ok"], true, "{res}");
    loop {
        let ev = c.next_event("chat").await;
        if ev["payload"]["runId"] == idem && ev["payload"]["state"] != "delta" {
            return ev;
        }
    }
}

fn text(ev: &Value) -> String {
    ev["payload"]["message"]["content"][0]["text"].as_str().unwrap_or_default().to_string()
}

fn cli(home: &Path, args: &[&str]) -> Output {
    command(home).arg("user").args(args).output().unwrap()
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test]
async fn a_child_is_refused_a_tool_where_it_runs_and_an_admin_is_not() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let dir = home.join("tools/greet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("tool.toml"),
        "description = \"Greets.\"\ncommand = [\"echo\", \"hello from the plugin\"]\n",
    )
    .unwrap();
    let g = start(&home, &fake, &[("SKYNET_USERS__DEFAULT_ROLE", "child")]);
    let (mut c, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &ADMIN)).await;

    let kid = sender("telegram", "42", "Kid");
    let fin = say(&mut c, &kid, "kid", "call:greet", "kid-1").await;
    assert_eq!(fin["payload"]["state"], "final");
    let answer = text(&fin);
    assert!(answer.contains("refused: the child role may not use the greet tool"), "{answer}");
    // The model was not even offered the tool.
    let offered: Vec<String> =
        fake.requests()[0]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().into()).collect();
    assert!(!offered.contains(&"greet".to_string()) && offered.contains(&"current_time".to_string()), "{offered:?}");

    // The refusal is part of the stored turn.
    let db = rusqlite::Connection::open(home.join("skynet.db")).unwrap();
    let stored: String = db
        .query_row(
            "SELECT content FROM messages WHERE content LIKE '%tool_result%' ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(stored.contains("refused: the child role"), "{stored}");

    let fin = say(&mut c, &json!(null), "owner", "call:greet", "owner-1").await;
    assert_eq!(text(&fin), "Tool said: hello from the plugin\n");
    let who = c.call("users.whoami", json!({"sender": kid})).await;
    assert_eq!(who["payload"]["user"]["role"], "child");
}

#[tokio::test]
async fn link_codes_join_identities_once_and_strangers_are_refused() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let g = start(&home, &fake, &[]);
    let (mut c, _) = Client::connected(&g, connect_params(TOKEN, 3, 4, &ADMIN)).await;

    // default_role = "none": a stranger is refused with how to get access.
    let stranger = sender("telegram", "999", "Stranger");
    let res = c
        .call("chat.send", json!({"sessionKey": "s", "message": "hi", "idempotencyKey": "s-1", "sender": stranger}))
        .await;
    assert_eq!(res["ok"], false);
    assert!(res["error"]["message"].as_str().unwrap().contains("link code"), "{res}");
    assert!(fake.requests().is_empty(), "the model never saw the stranger");

    assert!(cli(&home, &["add", "Alice", "--role", "user"]).status.success());
    let o = cli(&home, &["link", "Alice", "webchat", "alice-laptop"]);
    assert!(o.status.success(), "{}", out(&o));
    let web = sender("webchat", "alice-laptop", "Alice");
    let code = c.call("users.linkCode", json!({"sender": web})).await;
    let code = code["payload"]["code"].as_str().unwrap().to_string();

    let res = c.call("users.link", json!({"code": "WRONG-CODE", "sender": stranger})).await;
    assert!(res["error"]["message"].as_str().unwrap().contains("not valid"), "{res}");
    let res = c.call("users.link", json!({"code": code, "sender": stranger})).await;
    assert_eq!(res["payload"]["user"]["name"], "Alice", "{res}");
    let res = c.call("users.link", json!({"code": code, "sender": sender("discord", "7", "x")})).await;
    assert!(res["error"]["message"].as_str().unwrap().contains("already used"), "{res}");

    let fin = say(&mut c, &stranger, "alice-tg", "hello", "a-1").await;
    assert_eq!(text(&fin), "Echo: hello");
    let system = fake.requests()[0]["system"].to_string();
    assert!(system.contains("You are talking with Alice (role: user)"), "{system}");

    let listing = out(&cli(&home, &["list"]));
    assert!(listing.contains("Alice") && listing.contains("telegram:999") && listing.contains("webchat:alice-laptop"));
    assert!(cli(&home, &["unlink", "telegram", "999"]).status.success());
    let res = c
        .call("chat.send", json!({"sessionKey": "s", "message": "hi", "idempotencyKey": "s-2", "sender": stranger}))
        .await;
    assert_eq!(res["ok"], false, "unlinked means a stranger again");

    // Only an admin connection may speak for others.
    let (mut plain, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &["operator.read", "operator.write"])).await;
    let res = plain
        .call("chat.send", json!({"sessionKey": "s", "message": "hi", "idempotencyKey": "s-3", "sender": web}))
        .await;
    assert!(res["error"]["message"].as_str().unwrap().contains("operator.admin"), "{res}");
}

#[tokio::test]
async fn the_hourly_limit_of_a_role_refuses_further_messages_and_the_cli_changes_roles() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let g = start(
        &home,
        &fake,
        &[("SKYNET_USERS__DEFAULT_ROLE", "child"), ("SKYNET_ROLES__CHILD__MESSAGES_PER_HOUR", "2")],
    );
    let (mut c, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &ADMIN)).await;
    let kid = sender("discord", "1", "Kid");
    for i in 0..2 {
        let fin = say(&mut c, &kid, "k", &format!("message {i}"), &format!("k-{i}")).await;
        assert_eq!(fin["payload"]["state"], "final");
    }
    let fin = say(&mut c, &kid, "k", "one more", "k-2").await;
    assert_eq!(fin["payload"]["state"], "error");
    assert!(fin["payload"]["errorMessage"].as_str().unwrap().contains("the most the child role allows"), "{fin}");
    assert_eq!(fake.requests().len(), 2, "the model was not called");

    let o = cli(&home, &["role", "Kid", "user"]);
    assert!(o.status.success(), "{}", out(&o));
    let fin = say(&mut c, &kid, "k", "now as a user", "k-3").await;
    assert_eq!(fin["payload"]["state"], "final", "roles apply to the next message");
    let o = cli(&home, &["role", "Nobody", "admin"]);
    assert!(!o.status.success() && out(&o).contains("no user named"), "{}", out(&o));
    let o = cli(&home, &["add", "X", "--role", "wizard"]);
    assert!(!o.status.success() && out(&o).contains("not a role"), "{}", out(&o));
    let code = cli(&home, &["code", "Kid"]);
    assert!(code.status.success() && String::from_utf8_lossy(&code.stdout).trim().len() == 9, "{}", out(&code));
}

#[tokio::test]
async fn alice_links_telegram_and_is_remembered_there_after_a_restart() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let role = [("SKYNET_USERS__DEFAULT_ROLE", "user")];
    let mut g = start(&home, &fake, &role);
    let (mut c, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &ADMIN)).await;
    let web = sender("webchat", "alice-browser", "Alice");
    let fin = say(&mut c, &web, "alice-web", r#"call:memory_save {"text": "Alice's cat is called Tom"}"#, "w-1").await;
    assert!(text(&fin).starts_with("Tool said: "), "{fin}");
    let code = c.call("users.linkCode", json!({"sender": web})).await["payload"]["code"].as_str().unwrap().to_string();

    // A restart in between: identities, codes and memory live in SQLite.
    drop(c);
    g.signal("TERM");
    g.wait_exit(std::time::Duration::from_secs(15));
    let g = start(&home, &fake, &role);
    let (mut c, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &ADMIN)).await;
    let telegram = sender("telegram", "5551234", "alice_tg");
    let res = c.call("users.link", json!({"code": code, "sender": telegram})).await;
    assert_eq!(res["payload"]["user"]["name"], "Alice", "{res}");

    let before = fake.requests().len();
    let fin = say(&mut c, &telegram, "alice-tg", "what is my cat called?", "t-1").await;
    assert_eq!(fin["payload"]["state"], "final");
    let sent = &fake.requests()[before];
    let system = sent["system"].to_string();
    assert!(system.contains("You are talking with Alice"), "{system}");
    assert!(system.contains("Alice's cat is called Tom"), "her web memory reached the Telegram prompt: {system}");
    assert!(sent["messages"].to_string().contains("channel: telegram"), "the volatile tier names the channel");
}

#[tokio::test]
async fn a_child_asking_for_a_shell_command_is_refused_and_an_admin_is_not() {
    let fake = FakeAnthropic::start();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let g = start(&home, &fake, &[("SKYNET_USERS__DEFAULT_ROLE", "child")]);
    let (mut c, _) = Client::connected(&g, connect_params(TOKEN, 3, 3, &ADMIN)).await;
    let kid = sender("discord", "77", "Kid");
    let run = r#"call:shell {"command": "echo made-by-shell > shell.txt && cat shell.txt"}"#;
    let fin = say(&mut c, &kid, "kid", run, "kid-shell").await;
    let answer = text(&fin);
    assert!(answer.contains("refused: the child role may not use the shell tool"), "{answer}");
    assert!(!home.join("workspace/shell.txt").exists(), "nothing ran");
    let h = c.call("chat.history", json!({"sessionKey": "kid"})).await;
    assert!(h.to_string().contains("refused: the child role"), "the refusal is in the session: {h}");

    let fin = say(&mut c, &json!(null), "admin", run, "admin-shell").await;
    assert!(text(&fin).contains("made-by-shell"), "{fin}");
    assert!(home.join("workspace/shell.txt").exists());
}
