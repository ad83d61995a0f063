//! The Telegram channel: long polling of the Bot API with teloxide's client, every
//! message handed to the pipeline in a task of its own, answers sent as Telegram HTML.
//!
//! Start-up asks `getMe` (a refused token is a clear "failed" state, and the gateway
//! runs on), then polls `getUpdates` with the next offset, which confirms everything
//! before it: an update is handed over once, and a restart never replays it. Network
//! trouble turns the state to "reconnecting" and retries with backoff (1 s doubling to
//! 60 s). In groups the bot answers when @mentioned, when replied to, and to commands.
//! Webhook mode is not offered: polling needs no public address, and a webhook would
//! need one plus TLS in front of the gateway.

mod format;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use teloxide::payloads::{GetUpdatesSetters, SendChatActionSetters, SendMessageSetters};
use teloxide::requests::{Request, Requester};
use teloxide::types::{
    AllowedUpdate, BotCommand, ChatAction, ChatId, Me, Message, MessageId, ParseMode, ReplyParameters, ThreadId,
    UpdateKind,
};
use teloxide::{ApiError, Bot, RequestError};

use super::{Attachment, ChannelOut, Destination, Inbound, pipeline, split};
use crate::gateway::Gateway;
use crate::users::{Sender, parse_default_role};

const NAME: &str = "telegram";
/// Telegram's limit for a message's text (after entity parsing).
const MAX_LEN: usize = 4096;
/// How long one `getUpdates` waits for news.
const POLL_SECS: u32 = 25;
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const BAD_TOKEN: &str = "Telegram refused the bot token (401 Unauthorized): check [channels.telegram] token / \
                         SKYNET_CHANNELS__TELEGRAM__TOKEN";
/// The pipeline's commands; in groups a bare `/new` is for every bot, `/new@OtherBot` is not.
const COMMANDS: [&str; 8] = ["start", "help", "link", "code", "new", "model", "stop", "whoami"];
/// The menu Telegram shows under "/".
const MENU: [(&str, &str); 6] = [
    ("new", "Start a new conversation"),
    ("model", "Show or switch this chat's model"),
    ("stop", "Stop the answer being written"),
    ("link", "Link this account: /link CODE"),
    ("code", "Get a code to link another account"),
    ("whoami", "Who am I to Skynet"),
];

/// Starts the bot when a token is configured; problems end up in the channel's state.
pub fn start(gw: &Arc<Gateway>) {
    let cfg = &gw.config.channels.telegram;
    let token = cfg.token.expose().trim();
    if token.is_empty() {
        return;
    }
    gw.channels.set_state(NAME, "starting", None);
    if !cfg.default_role.is_empty()
        && let Err(e) = parse_default_role(&cfg.default_role)
    {
        return fail(gw, format!("[channels.telegram] default_role: {e}"));
    }
    match Bots::new(token, &cfg.api_url) {
        Ok(bots) => {
            gw.tasks.spawn(run(gw.clone(), bots, cfg.default_role.clone()));
        }
        Err(e) => fail(gw, e),
    }
}

fn fail(gw: &Gateway, why: String) {
    tracing::error!(channel = NAME, "{why}");
    gw.channels.set_state(NAME, "failed", Some(why));
}

/// Two clients: long polls need a longer timeout than teloxide's default 17 s, which
/// suits everything else.
struct Bots {
    poll: Bot,
    send: Bot,
    api: String,
}

impl Bots {
    fn new(token: &str, api_url: &str) -> Result<Bots, String> {
        let api = if api_url.trim().is_empty() { "https://api.telegram.org" } else { api_url.trim() };
        let api = api.trim_end_matches('/').to_string();
        let url = reqwest::Url::parse(&api).map_err(|e| {
            format!("[channels.telegram] api_url {api:?} is not a URL ({e}); leave it empty for Telegram's own")
        })?;
        let client = |timeout: Duration| {
            teloxide::net::default_reqwest_settings()
                .timeout(timeout)
                .build()
                .map_err(|e| format!("cannot set up the HTTP client for Telegram: {e}"))
        };
        let poll =
            Bot::with_client(token, client(Duration::from_secs(u64::from(POLL_SECS) + 10))?).set_api_url(url.clone());
        let send = Bot::with_client(token, client(Duration::from_secs(17))?).set_api_url(url);
        Ok(Bots { poll, send, api })
    }
}

/// What a failed call means for the connection.
enum Trouble {
    /// Retrying cannot help (the token is refused).
    Fatal(String),
    /// Try again later; at least this long when Telegram says so.
    Retry(String, Option<Duration>),
}

fn trouble(e: &RequestError, api: &str) -> Trouble {
    match e {
        RequestError::Api(ApiError::InvalidToken) => Trouble::Fatal(BAD_TOKEN.into()),
        RequestError::Api(ApiError::TerminatedByOtherGetUpdates) => Trouble::Retry(
            "another program is polling this bot's updates (only one may): stop it, or give this gateway its own bot"
                .into(),
            None,
        ),
        RequestError::RetryAfter(s) => Trouble::Retry("Telegram asked to slow down".into(), Some(s.duration())),
        RequestError::Network(e) => Trouble::Retry(format!("cannot reach the Telegram Bot API at {api}: {e}"), None),
        other => Trouble::Retry(format!("the Telegram Bot API at {api} failed: {other}"), None),
    }
}

/// 1 s doubling to 60 s; back to 1 s after a success.
struct Backoff {
    next: Duration,
    failing: bool,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: Duration::from_secs(1), failing: false }
    }

    fn fail(&mut self, at_least: Option<Duration>) -> Duration {
        let wait = self.next.max(at_least.unwrap_or_default());
        self.next = (self.next * 2).min(BACKOFF_MAX);
        self.failing = true;
        wait
    }

    /// Records a success; true when it ends a failing stretch.
    fn ok(&mut self) -> bool {
        let was = self.failing;
        *self = Backoff::new();
        was
    }
}

/// Reports `why` and waits out the backoff; false when the gateway shuts down (or the
/// token is refused) instead.
async fn wait_to_retry(gw: &Gateway, backoff: &mut Backoff, e: &RequestError, api: &str) -> bool {
    match trouble(e, api) {
        Trouble::Fatal(why) => {
            fail(gw, why);
            false
        }
        Trouble::Retry(why, at_least) => {
            let wait = backoff.fail(at_least);
            tracing::warn!(channel = NAME, retry_in_s = wait.as_secs(), "{why}");
            gw.channels.set_state(NAME, "reconnecting", Some(why));
            tokio::select! {
                () = gw.shutdown.cancelled() => false,
                () = tokio::time::sleep(wait) => true,
            }
        }
    }
}

async fn run(gw: Arc<Gateway>, bots: Bots, default_role: String) {
    let mut backoff = Backoff::new();
    let me = loop {
        let got = tokio::select! {
            () = gw.shutdown.cancelled() => return,
            r = bots.send.get_me().send() => r,
        };
        match got {
            Ok(me) if me.user.username.is_some() => break me,
            Ok(_) => return fail(&gw, "Telegram's getMe named no bot username; is api_url a Bot API server?".into()),
            Err(e) if !wait_to_retry(&gw, &mut backoff, &e, &bots.api).await => return,
            Err(_) => {}
        }
    };
    backoff.ok();
    // Polling and a webhook exclude each other; teloxide's own polling clears it too.
    if let Err(e) = bots.send.delete_webhook().send().await {
        tracing::warn!(channel = NAME, error = %e, "could not clear the bot's webhook; polling may be refused");
    }
    if let Err(e) = bots.send.set_my_commands(MENU.map(|(c, d)| BotCommand::new(c, d))).send().await {
        tracing::debug!(channel = NAME, error = %e, "command menu not set");
    }
    let out: Arc<dyn ChannelOut> = Arc::new(TelegramOut { bot: bots.send.clone() });
    gw.channels.register(NAME, out.clone());
    let username = me.username().to_string();
    gw.channels.set_state(NAME, "connected", Some(format!("@{username}")));
    tracing::info!(channel = NAME, bot = %username, "Telegram bot connected (long polling)");

    // 0: from the oldest update not confirmed yet (also after a restart).
    let mut offset: i32 = 0;
    loop {
        let mut req = bots.poll.get_updates().timeout(POLL_SECS).allowed_updates([AllowedUpdate::Message]);
        if offset != 0 {
            req = req.offset(offset);
        }
        let got = tokio::select! {
            () = gw.shutdown.cancelled() => break,
            r = req.send() => r,
        };
        let updates = match got {
            Ok(u) => u,
            Err(e) if !wait_to_retry(&gw, &mut backoff, &e, &bots.api).await => break,
            Err(_) => continue,
        };
        if backoff.ok() {
            tracing::info!(channel = NAME, "reconnected to Telegram");
            gw.channels.set_state(NAME, "connected", Some(format!("@{username}")));
        }
        for update in updates {
            offset = offset.max(update.id.0 as i32 + 1);
            let UpdateKind::Message(msg) = update.kind else { continue };
            let Some(inbound) = inbound(&msg, &me) else { continue };
            tracing::debug!(channel = NAME, chat = %inbound.to.chat_id, private = inbound.private, "message");
            pipeline::submit(&gw, NAME, default_role.clone(), inbound, out.clone());
        }
    }
    // Confirms what was handed over since the last poll, so a restart starts after it.
    if offset != 0 {
        let confirm = bots.send.get_updates().offset(offset).limit(1).timeout(0).send();
        let _ = tokio::time::timeout(Duration::from_secs(3), confirm).await;
    }
}

/// The message as the pipeline takes it; `None` when it is not for the bot (a group
/// message that neither mentions nor answers it, another bot's, an empty one).
fn inbound(msg: &Message, me: &Me) -> Option<Inbound> {
    let from = msg.from.as_ref().filter(|u| !u.is_bot)?;
    let private = msg.chat.is_private();
    let raw = msg.text().or(msg.caption()).unwrap_or("");
    let attachments = attachments(msg);
    let text = if private {
        raw.to_string()
    } else {
        let replied = msg.reply_to_message().and_then(|r| r.from.as_ref()).is_some_and(|u| u.id == me.user.id);
        addressed(raw, me.username(), replied)?
    };
    if text.trim().is_empty() && attachments.is_empty() {
        return None;
    }
    let name = from.username.clone().unwrap_or_else(|| from.first_name.clone());
    Some(Inbound {
        sender: Sender { channel: NAME.into(), id: from.id.0.to_string(), name: Some(name) },
        to: Destination {
            chat_id: msg.chat.id.0.to_string(),
            thread_id: msg.thread_id.filter(|_| msg.is_topic_message).map(|t| t.0.0.to_string()),
            reply_to: (!private).then(|| msg.id.0.to_string()),
        },
        text,
        attachments,
        private,
    })
}

/// A group message's text if it is for the bot: a command (bare, or `/cmd@ThisBot`), an
/// @mention (removed from the text), or a reply to the bot.
fn addressed(text: &str, username: &str, replied: bool) -> Option<String> {
    if let Some(rest) = text.strip_prefix('/') {
        let word = rest.split_whitespace().next().unwrap_or("");
        match word.split_once('@') {
            Some((_, bot)) => return bot.eq_ignore_ascii_case(username).then(|| text.to_string()),
            None if COMMANDS.contains(&word.to_ascii_lowercase().as_str()) => return Some(text.to_string()),
            None => {}
        }
    }
    let (stripped, mentioned) = strip_mention(text, username);
    (mentioned || replied).then_some(stripped)
}

/// `text` without `@username` (whole word, any case), and whether it was there.
fn strip_mention(text: &str, username: &str) -> (String, bool) {
    let needle = format!("@{}", username.to_ascii_lowercase());
    // ASCII lowercasing keeps byte offsets, so indices found in `lower` cut `text`.
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut found = false;
    let mut from = 0;
    while let Some(k) = lower[from..].find(&needle) {
        let at = from + k;
        let end = at + needle.len();
        from = end;
        if lower[end..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.push_str(&text[last..at]);
        last = end;
        found = true;
    }
    out.push_str(&text[last..]);
    let tidy = out.split(' ').filter(|w| !w.is_empty()).collect::<Vec<_>>().join(" ");
    (tidy.trim_start_matches([',', ':']).trim().to_string(), found)
}

fn attachments(msg: &Message) -> Vec<Attachment> {
    let mut list = Vec::new();
    let mut add = |kind: &str, name: Option<&String>, size: u32| {
        list.push(Attachment { kind: kind.into(), name: name.cloned(), size: Some(u64::from(size)) });
    };
    if let Some(p) = msg.photo().and_then(|sizes| sizes.last()) {
        add("photo", None, p.file.size);
    }
    if let Some(d) = msg.document() {
        add("document", d.file_name.as_ref(), d.file.size);
    }
    if let Some(v) = msg.voice() {
        add("voice", None, v.file.size);
    }
    if let Some(a) = msg.audio() {
        add("audio", a.file_name.as_ref(), a.file.size);
    }
    if let Some(v) = msg.video() {
        add("video", v.file_name.as_ref(), v.file.size);
    }
    list
}

/// Sends for the pipeline and the outbound API.
struct TelegramOut {
    bot: Bot,
}

/// Where a message goes, in teloxide's types.
struct Target {
    chat: ChatId,
    thread: Option<ThreadId>,
    reply_to: Option<MessageId>,
}

impl Target {
    fn of(to: &Destination) -> Result<Target, String> {
        let chat = to.chat_id.parse().map_err(|_| format!("{:?} is not a Telegram chat id", to.chat_id))?;
        let num = |s: &Option<String>| s.as_deref().and_then(|s| s.parse().ok()).map(MessageId);
        Ok(Target { chat: ChatId(chat), thread: num(&to.thread_id).map(ThreadId), reply_to: num(&to.reply_to) })
    }
}

impl ChannelOut for TelegramOut {
    fn max_len(&self) -> usize {
        MAX_LEN
    }

    fn send(&self, to: &Destination, text: &str) -> BoxFuture<'static, Result<(), String>> {
        let (bot, to, text) = (self.bot.clone(), Target::of(to), text.to_string());
        Box::pin(async move { send_text(&bot, &to?, &text).await })
    }

    fn typing(&self, to: &Destination) -> BoxFuture<'static, ()> {
        let (bot, to) = (self.bot.clone(), Target::of(to));
        Box::pin(async move {
            let Ok(to) = to else { return };
            let mut req = bot.send_chat_action(to.chat, ChatAction::Typing);
            if let Some(t) = to.thread {
                req = req.message_thread_id(t);
            }
            if let Err(e) = req.send().await {
                tracing::debug!(channel = NAME, error = %e, "typing indicator not shown");
            }
        })
    }

    fn send_direct(&self, user_id: &str, text: &str) -> BoxFuture<'static, Result<(), String>> {
        let to = Destination { chat_id: user_id.to_string(), thread_id: None, reply_to: None };
        self.send(&to, text)
    }
}

/// Sends one part. Telegram counts UTF-16 units, so a part full of emoji is cut again.
async fn send_text(bot: &Bot, to: &Target, text: &str) -> Result<(), String> {
    if text.encode_utf16().count() <= MAX_LEN {
        return send_one(bot, to, text).await;
    }
    for part in split::split(text, MAX_LEN / 2) {
        send_one(bot, to, &part).await?;
    }
    Ok(())
}

/// Sends as HTML; a part Telegram cannot parse goes again as plain text.
async fn send_one(bot: &Bot, to: &Target, text: &str) -> Result<(), String> {
    match send_message(bot, to, &format::to_html(text), Some(ParseMode::Html)).await {
        Err(RequestError::Api(ApiError::CantParseEntities(why) | ApiError::Unknown(why)))
            if why.contains("can't parse entities") =>
        {
            tracing::warn!(channel = NAME, "Telegram could not parse the HTML ({why}); sending plain text");
            send_message(bot, to, text, None).await.map_err(|e| e.to_string())
        }
        Err(RequestError::Api(ApiError::MessageTextIsEmpty)) if !text.trim().is_empty() => {
            send_message(bot, to, text, None).await.map_err(|e| e.to_string())
        }
        other => other.map_err(|e| e.to_string()),
    }
}

/// sendMessage, waiting out Telegram's flood control up to three times.
async fn send_message(bot: &Bot, to: &Target, text: &str, mode: Option<ParseMode>) -> Result<(), RequestError> {
    let mut tries = 0;
    loop {
        let mut req = bot.send_message(to.chat, text);
        if let Some(m) = mode {
            req = req.parse_mode(m);
        }
        if let Some(t) = to.thread {
            req = req.message_thread_id(t);
        }
        if let Some(id) = to.reply_to {
            req = req.reply_parameters(ReplyParameters::new(id).allow_sending_without_reply());
        }
        match req.send().await {
            Err(RequestError::RetryAfter(s)) if tries < 3 => {
                tries += 1;
                tokio::time::sleep(s.duration()).await;
            }
            other => return other.map(drop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_messages_count_when_mentioned_replied_to_or_commanded() {
        assert_eq!(addressed("hello all", "SkyBot", false), None);
        assert_eq!(addressed("hey @skybot what time is it?", "SkyBot", false).as_deref(), Some("hey what time is it?"));
        assert_eq!(addressed("@SkyBot, hi", "SkyBot", false).as_deref(), Some("hi"));
        assert_eq!(addressed("ask @skybot_fan", "SkyBot", false), None, "a longer name is someone else");
        assert_eq!(addressed("sure", "SkyBot", true).as_deref(), Some("sure"));
        assert_eq!(addressed("/new", "SkyBot", false).as_deref(), Some("/new"));
        assert_eq!(addressed("/link@SkyBot ABC", "SkyBot", false).as_deref(), Some("/link@SkyBot ABC"));
        assert_eq!(addressed("/new@OtherBot", "SkyBot", false), None);
        assert_eq!(addressed("/unknown thing", "SkyBot", false), None);
    }

    #[test]
    fn backoff_doubles_to_a_minute_and_resets() {
        let mut b = Backoff::new();
        let waits: Vec<u64> = (0..8).map(|_| b.fail(None).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(b.fail(Some(Duration::from_secs(90))).as_secs(), 90);
        assert!(b.ok());
        assert!(!b.ok());
        assert_eq!(b.fail(None).as_secs(), 1);
    }
}
