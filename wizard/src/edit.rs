//! Writes the answers into the text of `skynet.toml` with `toml_edit`, touching only the
//! keys the wizard owns, so a re-run keeps every other setting, comment and blank line.

use toml_edit::{DocumentMut, Item, Table, TableLike, Value};

use crate::{Answers, Key};

/// The config text with the answers applied.
pub fn apply(text: &str, a: &Answers) -> Result<String, String> {
    let mut doc: DocumentMut =
        text.parse().map_err(|e: toml_edit::TomlError| format!("skynet.toml is not valid TOML: {}", e.message()))?;

    set(table_at(&mut doc, &["agent"])?, "model", a.model_ref().into());

    if a.key != Key::None || a.base_url.is_some() {
        let section = table_at(&mut doc, &["providers", &a.provider])?;
        match &a.key {
            Key::None => {}
            // The other way of giving the key would win or confuse: drop it.
            Key::Value(key) => {
                set(section, "api_key", key.as_str().into());
                section.remove("api_key_env");
            }
            Key::Env(var) => {
                set(section, "api_key_env", var.as_str().into());
                section.remove("api_key");
            }
        }
        if let Some(url) = &a.base_url {
            set(section, "base_url", url.as_str().into());
        }
    }

    let gateway = table_at(&mut doc, &["gateway"])?;
    set(gateway, "bind", a.bind.as_str().into());
    set(gateway, "port", i64::from(a.port).into());
    set(gateway, "auth_token", a.auth_token.as_str().into());

    for (channel, token) in [("telegram", &a.telegram_token), ("discord", &a.discord_token)] {
        if let Some(token) = token {
            set(table_at(&mut doc, &["channels", channel])?, "token", token.as_str().into());
        }
    }
    Ok(doc.to_string())
}

/// The table at `path`, created when missing; parents made only for it stay implicit,
/// so a new provider shows as `[providers.groq]` alone.
fn table_at<'a>(doc: &'a mut DocumentMut, path: &[&str]) -> Result<&'a mut dyn TableLike, String> {
    let mut table: &mut dyn TableLike = doc.as_table_mut();
    for (i, key) in path.iter().enumerate() {
        if table.get(key).is_none() {
            let mut new = Table::new();
            new.set_implicit(i + 1 < path.len());
            table.insert(key, Item::Table(new));
        }
        let name = path[..=i].join(".");
        table = table.get_mut(key).and_then(Item::as_table_like_mut).ok_or_else(|| {
            format!("`{name}` in skynet.toml is not a table; correct or remove it, then run setup again.")
        })?;
    }
    Ok(table)
}

/// Sets a value, leaving an equal one untouched and keeping the comments around a changed
/// one (replacing the item in place keeps the key, which carries the comment above it).
fn set(table: &mut dyn TableLike, key: &str, mut value: Value) {
    let Some(item) = table.get_mut(key) else {
        table.insert(key, Item::Value(value));
        return;
    };
    if let Some(old) = item.as_value() {
        let same = match (old, &value) {
            (Value::String(o), Value::String(n)) => o.value() == n.value(),
            (Value::Integer(o), Value::Integer(n)) => o.value() == n.value(),
            _ => false,
        };
        if same {
            return;
        }
        *value.decor_mut() = old.decor().clone();
    }
    *item = Item::Value(value);
}

/// A new gateway token: 32 random bytes, hex encoded.
pub fn generate_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("cannot get random bytes for the token: {e}"))?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::answers;

    const FILE: &str = "# my notes stay\n[gateway]\nbind = \"127.0.0.1\"\nport = 18789 # my port comment\n\
        auth_token = \"old-token-0123456789\"\nmax_payload = 99999999\n\n[agent]\nmodel = \"\" # pick one\n\
        max_steps = 3\n\n[channels.telegram]\ntoken = \"\"\napi_url = \"http://tg.local\"\n";

    fn table(text: &str) -> toml_edit::DocumentMut {
        text.parse().unwrap()
    }

    #[test]
    fn answers_land_in_their_keys_and_everything_else_stays() {
        let mut a = answers();
        a.port = 9000;
        a.telegram_token = Some("123:tg".into());
        a.discord_token = Some("dc-token".into());
        let out = apply(FILE, &a).unwrap();
        let doc = table(&out);
        assert_eq!(doc["agent"]["model"].as_str(), Some("anthropic/claude-sonnet-4-5"));
        assert_eq!(doc["providers"]["anthropic"]["api_key"].as_str(), Some("sk-ant-1"));
        assert_eq!(doc["gateway"]["port"].as_integer(), Some(9000));
        assert_eq!(doc["gateway"]["auth_token"].as_str(), Some(a.auth_token.as_str()));
        assert_eq!(doc["channels"]["telegram"]["token"].as_str(), Some("123:tg"));
        assert_eq!(doc["channels"]["discord"]["token"].as_str(), Some("dc-token"));
        for kept in ["# my notes stay", "# my port comment", "# pick one", "max_payload = 99999999", "max_steps = 3"] {
            assert!(out.contains(kept), "{kept} lost:\n{out}");
        }
        assert!(out.contains("api_url = \"http://tg.local\""), "{out}");
        assert!(out.contains("[providers.anthropic]") && !out.contains("[providers]\n"), "{out}");
    }

    #[test]
    fn a_key_from_the_environment_replaces_a_stored_one_and_back() {
        let mut a = answers();
        let stored = apply(FILE, &a).unwrap();
        a.key = Key::Env("MY_KEY".into());
        a.base_url = Some("http://127.0.0.1:9/".into());
        let doc = table(&apply(&stored, &a).unwrap());
        let section = &doc["providers"]["anthropic"];
        assert_eq!(section["api_key_env"].as_str(), Some("MY_KEY"));
        assert!(section.get("api_key").is_none());
        assert_eq!(section["base_url"].as_str(), Some("http://127.0.0.1:9/"));
        a.key = Key::None;
        a.base_url = None;
        let again = apply(&doc.to_string(), &a).unwrap();
        assert_eq!(table(&again)["providers"]["anthropic"]["api_key_env"].as_str(), Some("MY_KEY"), "None leaves it");
    }

    #[test]
    fn applying_the_same_answers_twice_changes_nothing() {
        let once = apply(FILE, &answers()).unwrap();
        assert_eq!(apply(&once, &answers()).unwrap(), once);
    }

    #[test]
    fn a_key_that_is_not_a_table_is_reported() {
        let err = apply("providers = 3\n", &answers()).unwrap_err();
        assert!(err.contains("`providers`") && err.contains("not a table"), "{err}");
    }

    #[test]
    fn tokens_are_64_hex_characters_and_differ() {
        let (a, b) = (generate_token().unwrap(), generate_token().unwrap());
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
