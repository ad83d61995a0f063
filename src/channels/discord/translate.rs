//! Discord's objects as the pipeline sees them: which messages the bot answers (every DM;
//! in a guild only a mention of the bot or a reply to it), the mention stripped from the
//! text, and slash commands turned back into the text commands the pipeline knows.

use serenity::model::application::{CommandDataOptionValue, CommandInteraction};
use serenity::model::channel::Message;
use serenity::model::id::UserId;

use crate::channels::{Attachment, Destination, Inbound};
use crate::users::Sender;

pub const CHANNEL: &str = "discord";

/// The message as an [`Inbound`], or `None` when the bot should stay quiet: its own or
/// another bot's messages, and guild messages that neither mention it nor reply to it.
///
/// A thread is a channel of its own in Discord (its own channel id), so it gets its own
/// session through `chat_id` alone and `thread_id` stays empty.
pub fn to_inbound(msg: &Message, bot: UserId) -> Option<Inbound> {
    if msg.author.bot || msg.author.id == bot {
        return None;
    }
    let private = msg.guild_id.is_none();
    if !private {
        let mentioned = msg.mentions.iter().any(|u| u.id == bot) || has_mention(&msg.content, bot);
        let replied_to_bot = msg.referenced_message.as_ref().is_some_and(|m| m.author.id == bot);
        if !mentioned && !replied_to_bot {
            return None;
        }
    }
    let text = strip_mention(&msg.content, bot);
    let attachments: Vec<Attachment> = msg
        .attachments
        .iter()
        .map(|a| Attachment {
            kind: a
                .content_type
                .as_deref()
                .and_then(|t| t.split('/').next())
                .filter(|k| !k.is_empty())
                .unwrap_or("file")
                .to_string(),
            name: Some(a.filename.clone()),
            size: Some(u64::from(a.size)),
        })
        .collect();
    if text.is_empty() && attachments.is_empty() {
        return None;
    }
    Some(Inbound {
        sender: Sender { channel: CHANNEL.into(), id: msg.author.id.to_string(), name: Some(msg.author.name.clone()) },
        to: Destination {
            chat_id: msg.channel_id.to_string(),
            thread_id: None,
            // In a guild the answer replies to the message, so it is clear whom it answers.
            reply_to: (!private).then(|| msg.id.to_string()),
        },
        text,
        attachments,
        private,
    })
}

fn has_mention(text: &str, bot: UserId) -> bool {
    text.contains(&format!("<@{bot}>")) || text.contains(&format!("<@!{bot}>"))
}

/// The text without the bot's mentions (`<@ID>`, and the older nickname form `<@!ID>`).
pub fn strip_mention(text: &str, bot: UserId) -> String {
    let without = text.replace(&format!("<@!{bot}>"), " ").replace(&format!("<@{bot}>"), " ");
    without.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ").trim().to_string()
}

/// A slash command as the text command the pipeline answers (`/link CODE`, `/new`,
/// `/model NAME`), from whoever ran it, in the channel where it ran.
pub fn command_inbound(cmd: &CommandInteraction) -> Inbound {
    let mut text = format!("/{}", cmd.data.name);
    for opt in &cmd.data.options {
        match &opt.value {
            CommandDataOptionValue::String(s) => text.push_str(&format!(" {}", s.trim())),
            CommandDataOptionValue::Integer(n) => text.push_str(&format!(" {n}")),
            _ => {}
        }
    }
    let user = &cmd.user;
    Inbound {
        sender: Sender { channel: CHANNEL.into(), id: user.id.to_string(), name: Some(user.name.clone()) },
        to: Destination { chat_id: cmd.channel_id.to_string(), thread_id: None, reply_to: None },
        text,
        attachments: Vec::new(),
        private: cmd.guild_id.is_none(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const BOT: u64 = 900;

    fn user(id: u64, name: &str, bot: bool) -> Value {
        json!({"id": id.to_string(), "username": name, "discriminator": "0", "global_name": name,
               "avatar": null, "bot": bot})
    }

    fn message(content: &str, guild: bool, mentions: Vec<Value>, referenced: Option<Value>) -> Value {
        let mut m = json!({
            "id": "7001", "channel_id": "5001", "author": user(42, "alice", false), "content": content,
            "timestamp": "2025-01-01T00:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
            "mention_everyone": false, "mentions": mentions, "mention_roles": [], "attachments": [],
            "embeds": [], "pinned": false, "type": if referenced.is_some() { 19 } else { 0 },
            "referenced_message": referenced,
        });
        if guild {
            m["guild_id"] = json!("4001");
        }
        m
    }

    fn inbound(v: Value) -> Option<Inbound> {
        let msg: Message = serde_json::from_value(v).expect("a Discord message");
        to_inbound(&msg, UserId::new(BOT))
    }

    #[test]
    fn a_direct_message_is_private_and_answered_without_a_reply_reference() {
        let i = inbound(message("hello there", false, vec![], None)).unwrap();
        assert!(i.private);
        assert_eq!(i.text, "hello there");
        assert_eq!(i.sender, Sender { channel: "discord".into(), id: "42".into(), name: Some("alice".into()) });
        assert_eq!(i.to, Destination { chat_id: "5001".into(), thread_id: None, reply_to: None });
    }

    #[test]
    fn a_guild_message_needs_a_mention_which_is_stripped() {
        assert!(inbound(message("just chatting", true, vec![], None)).is_none());
        let i = inbound(message("<@900> what is  up?", true, vec![user(BOT, "skynet", true)], None)).unwrap();
        assert!(!i.private);
        assert_eq!(i.text, "what is up?");
        assert_eq!(i.to.reply_to.as_deref(), Some("7001"));
        let i = inbound(message("hey <@!900>, /new", true, vec![], None)).unwrap();
        assert_eq!(i.text, "hey , /new");
        let i = inbound(message("<@900> /new", true, vec![user(BOT, "skynet", true)], None)).unwrap();
        assert_eq!(i.text, "/new", "a command after the mention reaches the pipeline as a command");
    }

    #[test]
    fn a_reply_to_the_bot_counts_as_addressing_it_and_other_bots_are_ignored() {
        let mut earlier = message("an earlier answer", true, vec![], None);
        earlier["author"] = user(BOT, "skynet", true);
        assert_eq!(inbound(message("and then?", true, vec![], Some(earlier))).unwrap().text, "and then?");
        let mut other = message("<@900> hi", true, vec![user(BOT, "skynet", true)], None);
        other["author"] = user(77, "otherbot", true);
        assert!(inbound(other).is_none());
        assert!(inbound(message("<@900>", true, vec![user(BOT, "skynet", true)], None)).is_none(), "nothing to say");
    }

    #[test]
    fn attachments_are_described_by_kind_name_and_size() {
        let mut m = message("look", false, vec![], None);
        m["attachments"] = json!([{"id": "1", "filename": "cat.png", "size": 1234, "url": "https://cdn/x",
                                   "proxy_url": "https://media/x", "content_type": "image/png"},
                                  {"id": "2", "filename": "notes", "size": 5, "url": "u", "proxy_url": "p"}]);
        let i = inbound(m).unwrap();
        let got: Vec<_> = i.attachments.iter().map(|a| (a.kind.as_str(), a.name.as_deref(), a.size)).collect();
        assert_eq!(got, [("image", Some("cat.png"), Some(1234)), ("file", Some("notes"), Some(5))]);
    }

    #[test]
    fn a_slash_command_becomes_the_text_command() {
        let v = json!({
            "id": "8001", "application_id": "900", "type": 2, "token": "itoken", "version": 1,
            "channel_id": "5001", "locale": "en-US", "entitlements": [], "attachment_size_limit": 8388608,
            "user": user(42, "alice", false),
            "data": {"id": "3001", "name": "link", "type": 1,
                     "options": [{"name": "code", "type": 3, "value": " ABCD-1234 "}]},
        });
        let cmd: CommandInteraction = serde_json::from_value(v.clone()).expect("a command interaction");
        let i = command_inbound(&cmd);
        assert_eq!(i.text, "/link ABCD-1234");
        assert!(i.private);
        assert_eq!(i.sender.id, "42");
        assert_eq!(i.to.chat_id, "5001");

        // In a guild the person comes as `member.user`, and there is no `user`.
        let mut v = v;
        let person = v.as_object_mut().unwrap().remove("user").unwrap();
        v["guild_id"] = json!("4001");
        v["member"] = json!({"user": person, "roles": [], "joined_at": "2025-01-01T00:00:00.000000+00:00",
                             "deaf": false, "mute": false, "flags": 0, "nick": null, "avatar": null});
        v["data"] = json!({"id": "3002", "name": "model", "type": 1, "options": []});
        let cmd: CommandInteraction = serde_json::from_value(v).expect("a guild command interaction");
        let i = command_inbound(&cmd);
        assert_eq!((i.text.as_str(), i.private, i.sender.id.as_str()), ("/model", false, "42"));
    }
}
