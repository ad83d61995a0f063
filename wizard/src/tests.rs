//! The interactive wizard end to end with scripted answers: questions → answers → the
//! config text it would write.

use std::cell::RefCell;

use toml_edit::DocumentMut;

use crate::prompt::scripted::{Reply::*, Scripted};
use crate::testing::choices;
use crate::{Answers, Choice, Current, Error, Flags, Key, Wizard, apply};

const DEFAULTS: &str = "# Skynet gateway configuration.\n[gateway]\n# loopback only\nbind = \"127.0.0.1\"\nport = 18789\n\
    auth_token = \"\"\nmax_payload = 26214400\n\n[agent]\n# the model\nmodel = \"\"\nmax_steps = 8\n\n\
    [channels.telegram]\ntoken = \"\"\n\n[channels.discord]\ntoken = \"\"\n";

fn wizard<'a>(choices: &'a [Choice], file: Option<&str>, validate: Option<crate::Validate<'a>>) -> Wizard<'a> {
    let current = Current::read(file, DEFAULTS, "skynet.toml").unwrap();
    let known = |n: &str| choices.iter().any(|c| c.name == n);
    Wizard {
        choices,
        current: current.with_flags(&Flags::default(), &known),
        validate,
        config_path: "/h/skynet.toml".into(),
    }
}

/// Runs the scripted wizard over `file` (or a first setup) and returns the text it writes.
fn run(file: Option<&str>, replies: &[crate::prompt::scripted::Reply]) -> (Answers, String, Scripted) {
    let choices = choices();
    let w = wizard(&choices, file, None);
    let mut p = Scripted::new(replies);
    let a = w.ask(&mut p).unwrap_or_else(|e| panic!("{e}\n{}", p.transcript()));
    let text = apply(file.unwrap_or(DEFAULTS), &a).unwrap();
    (a, text, p)
}

fn doc(text: &str) -> DocumentMut {
    text.parse().unwrap()
}

#[test]
fn first_setup_with_anthropic_writes_model_key_and_a_new_token() {
    let (a, text, p) = run(
        None,
        &[
            Pick("Anthropic"),
            Pick("Type or paste"),
            Text("sk-ant-secret"),
            Enter, // model: the default
            Enter, // port
            Enter, // bind
            No,    // telegram
            No,    // discord
            No,    // service
            Yes,   // write
        ],
    );
    let d = doc(&text);
    assert_eq!(d["agent"]["model"].as_str(), Some("anthropic/claude-sonnet-4-5"));
    assert_eq!(d["providers"]["anthropic"]["api_key"].as_str(), Some("sk-ant-secret"));
    assert_eq!(d["gateway"]["port"].as_integer(), Some(18789));
    let token = d["gateway"]["auth_token"].as_str().unwrap();
    assert!(token.len() == 64 && a.token_generated, "{token}");
    assert!(!a.install_service);
    assert!(text.contains("# loopback only") && text.contains("# the model"), "{text}");
    let said = p.transcript();
    assert!(said.contains("Welcome to Skynet") && said.contains("auth token newly generated"), "{said}");
    assert!(!said.contains("sk-ant-secret"), "the key is never shown: {said}");
}

#[test]
fn the_claude_code_cli_asks_no_key_and_is_checked_as_it_is() {
    let choices = choices();
    let checked = RefCell::new(Vec::new());
    let check = |a: &Answers| {
        checked.borrow_mut().push((a.model_ref(), a.key.clone()));
        Ok(())
    };
    let w = wizard(&choices, None, Some(&check));
    let mut p = Scripted::new(&[Pick("Claude Code CLI"), Enter, Enter, Enter, No, No, No, Yes]);
    let a = w.ask(&mut p).unwrap_or_else(|e| panic!("{e}\n{}", p.transcript()));
    let said = p.transcript();
    assert!(said.contains("claude auth login") && !said.contains("Claude Code CLI API key"), "{said}");
    assert_eq!(*checked.borrow(), [("claude-cli/sonnet".to_string(), Key::None)]);
    let d = doc(&apply(DEFAULTS, &a).unwrap());
    assert_eq!(d["agent"]["model"].as_str(), Some("claude-cli/sonnet"));
    assert!(d.get("providers").is_none(), "nothing to store for it");
}

#[test]
fn a_rerun_keeps_unrelated_settings_comments_token_and_key() {
    let file = "# my own notes\n[gateway]\nbind = \"127.0.0.1\"\nport = 9000 # moved\n\
        auth_token = \"kept-token-0123456789\"\nmax_payload = 999999\n\n[agent]\nmodel = \"anthropic/claude-old\"\n\
        max_steps = 3\n\n[providers.anthropic]\napi_key = \"sk-ant-kept\"\ntimeout_secs = 30\n\n\
        [channels.telegram]\ntoken = \"111:tg\"\n";
    let (a, text, p) = run(
        Some(file),
        &[
            Enter,              // provider: Anthropic, the current one
            Enter,              // key: keep the current one
            Text("claude-new"), // model
            Enter,              // port: 9000 kept
            Enter,              // bind
            Enter,              // keep the token
            Enter,              // do not change the telegram token
            No,                 // discord
            Enter,              // service: no
            Enter,              // write: yes
        ],
    );
    assert!(p.transcript().contains("change what you like"));
    assert_eq!(a.key, Key::Value("sk-ant-kept".into()));
    let d = doc(&text);
    assert_eq!(d["agent"]["model"].as_str(), Some("anthropic/claude-new"));
    assert_eq!(d["gateway"]["auth_token"].as_str(), Some("kept-token-0123456789"));
    assert_eq!(d["gateway"]["port"].as_integer(), Some(9000));
    assert_eq!(d["channels"]["telegram"]["token"].as_str(), Some("111:tg"));
    for kept in ["# my own notes", "# moved", "max_payload = 999999", "max_steps = 3", "timeout_secs = 30"] {
        assert!(text.contains(kept), "{kept} lost:\n{text}");
    }
    // Only the model line changed.
    let changed: Vec<_> = file.lines().zip(text.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(changed, [("model = \"anthropic/claude-old\"", "model = \"anthropic/claude-new\"")]);
}

#[test]
fn a_failed_check_says_why_and_asks_again() {
    let choices = choices();
    let tried = RefCell::new(Vec::new());
    let check = |a: &Answers| {
        tried.borrow_mut().push(a.key.clone());
        match &a.key {
            Key::Value(k) if k == "sk-good" => Ok(()),
            _ => Err("the key was refused (HTTP 401: invalid x-api-key)".to_string()),
        }
    };
    let w = wizard(&choices, None, Some(&check));
    let mut p = Scripted::new(&[
        Pick("Anthropic"),
        Pick("Type"),
        Text("sk-bad"),
        Enter,
        Pick("again"),
        Enter, // provider: Anthropic again, offered as the default
        Pick("Type"),
        Text("sk-good"),
        Enter, // model
        Enter,
        Enter,
        No,
        No,
        No,
        Yes,
    ]);
    let a = w.ask(&mut p).unwrap_or_else(|e| panic!("{e}\n{}", p.transcript()));
    let said = p.transcript();
    assert!(said.contains("The check failed: the key was refused (HTTP 401: invalid x-api-key)"), "{said}");
    assert!(said.contains("OK: Anthropic answered"), "{said}");
    assert_eq!(a.key, Key::Value("sk-good".into()));
    assert!(!a.unchecked);
    assert_eq!(tried.borrow().len(), 2);
}

#[test]
fn a_failed_check_can_be_kept_after_a_confirm() {
    let choices = choices();
    let check = |_: &Answers| Err("cannot reach http://localhost:11434/v1".to_string());
    let w = wizard(&choices, None, Some(&check));
    let mut p = Scripted::new(&[
        Pick("Ollama"),
        Enter, // address
        Enter, // key: none
        Enter, // model llama3.2
        Pick("Keep them anyway"),
        Yes,
        Enter,
        Enter,
        No,
        No,
        No,
        Yes,
    ]);
    let a = w.ask(&mut p).unwrap_or_else(|e| panic!("{e}\n{}", p.transcript()));
    assert!(a.unchecked);
    assert_eq!((a.model_ref().as_str(), &a.key, &a.base_url), ("ollama/llama3.2", &Key::None, &None));
}

#[test]
fn answers_are_checked_as_typed_and_asked_again() {
    let (a, _, p) = run(
        None,
        &[
            Pick("Another service"),
            Pick("Your own server"),
            Text("Bad Name"),
            Text("anthropic"),
            Text("my-box"),
            Text("localhost:8080"),
            Text("http://127.0.0.1:8080/v1"),
            Pick("No key"),
            Text("qwen3 8b"),
            Text("qwen3:8b"),
            Text("0"),
            Text("8080"),
            Text("localhost"),
            Text("0.0.0.0"),
            No,
            No,
            Yes,
            Yes,
        ],
    );
    let said = p.transcript();
    for complaint in [
        "lowercase letters",
        "is a known service",
        "is not an address",
        "without spaces",
        "0 would pick",
        "not an IP address",
    ] {
        assert!(said.contains(complaint), "{complaint}:\n{said}");
    }
    assert!(said.contains("Other machines can reach the gateway"), "{said}");
    assert_eq!(a.model_ref(), "my-box/qwen3:8b");
    assert_eq!(a.base_url.as_deref(), Some("http://127.0.0.1:8080/v1"));
    assert_eq!((a.port, a.bind.as_str(), a.install_service), (8080, "0.0.0.0", true));
}

#[test]
fn a_service_needing_its_own_address_and_bot_tokens() {
    let (a, text, _) = run(
        None,
        &[
            Pick("Another service"),
            Pick("Azure"),
            Text("https://YOUR-RESOURCE.openai.azure.com/openai/v1"),
            Text("https://mine.openai.azure.com/openai/v1"),
            Pick("environment variable"),
            Text("gpt-4o"),
            Enter,
            Enter,
            Yes,
            Text("123:tg-token"),
            Yes,
            Text("discord-token"),
            No,
            Yes,
        ],
    );
    assert_eq!(a.key, Key::Env("AZURE_API_KEY".into()));
    let d = doc(&text);
    assert_eq!(d["providers"]["azure"]["base_url"].as_str(), Some("https://mine.openai.azure.com/openai/v1"));
    assert_eq!(d["providers"]["azure"]["api_key_env"].as_str(), Some("AZURE_API_KEY"));
    assert_eq!(d["channels"]["telegram"]["token"].as_str(), Some("123:tg-token"));
    assert_eq!(d["channels"]["discord"]["token"].as_str(), Some("discord-token"));
}

#[test]
fn declining_to_write_cancels() {
    let choices = choices();
    let w = wizard(&choices, None, None);
    let mut p = Scripted::new(&[Pick("Ollama"), Enter, Enter, Enter, Enter, Enter, No, No, No, No]);
    assert!(matches!(w.ask(&mut p), Err(Error::Cancelled)), "{}", p.transcript());
}
