//! The one message pipeline every chat channel feeds: commands (`/start`, `/link CODE`,
//! `/code`, `/new`, `/model`, `/stop`, `/whoami`), then who the sender is (strangers get
//! the channel's default role or a polite refusal), then the agent run in its own task
//! with a typing indicator, then the answer split to the platform's size and delivered.

use std::sync::Arc;
use std::time::Duration;

use super::{ChannelOut, Destination, Inbound, split};
use crate::agent::{RunRequest, Status};
use crate::gateway::{Gateway, run_to_end};
use crate::store::{LinkError, Person};
use crate::users::{self, STRANGER_MESSAGE, parse_default_role};

/// How often "typing…" is renewed while the agent works (platforms show it ~5 s).
const TYPING_EVERY: Duration = Duration::from_secs(4);

/// The session a chat maps to: one per chat (and thread).
pub fn session_key(channel: &str, to: &Destination) -> String {
    match &to.thread_id {
        Some(t) => format!("agent:main:{channel}:{}:{t}", to.chat_id),
        None => format!("agent:main:{channel}:{}", to.chat_id),
    }
}

/// One message waiting its turn in its chat's queue.
pub struct Job {
    channel: &'static str,
    default_role: String,
    msg: Inbound,
    out: Arc<dyn ChannelOut>,
}

/// How long an idle chat keeps its worker.
const CHAT_IDLE: Duration = Duration::from_secs(60);

/// Hands a message over. Messages of one chat are answered one after another, in the order
/// they arrived; different chats run in parallel. Never blocks the adapter.
pub fn submit(gw: &Arc<Gateway>, channel: &'static str, default_role: String, msg: Inbound, out: Arc<dyn ChannelOut>) {
    let key = session_key(channel, &msg.to);
    let job = Job { channel, default_role, msg, out };
    let mut queues = gw.channels.queues();
    let job = match queues.get(&key) {
        Some(tx) => match tx.send(job) {
            Ok(()) => return,
            // The worker just retired: start a new one.
            Err(returned) => returned.0,
        },
        None => job,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = tx.send(job);
    queues.insert(key.clone(), tx);
    drop(queues);
    gw.tasks.spawn(chat_worker(gw.clone(), key, rx));
}

async fn chat_worker(gw: Arc<Gateway>, key: String, mut rx: tokio::sync::mpsc::UnboundedReceiver<Job>) {
    loop {
        let next = tokio::select! {
            () = gw.shutdown.cancelled() => None,
            next = tokio::time::timeout(CHAT_IDLE, rx.recv()) => match next {
                Ok(job) => job,
                Err(_) => {
                    // Idle: retire, unless a message slipped in meanwhile.
                    let mut queues = gw.channels.queues();
                    if rx.is_empty() {
                        queues.remove(&key);
                        return;
                    }
                    continue;
                }
            },
        };
        let Some(job) = next else {
            gw.channels.queues().remove(&key);
            return;
        };
        handle(gw.clone(), job.channel, job.default_role, job.msg, job.out).await;
    }
}

/// Handles one inbound message to the end (see `submit`, which keeps a chat in order).
pub async fn handle(
    gw: Arc<Gateway>,
    channel: &'static str,
    default_role: String,
    msg: Inbound,
    out: Arc<dyn ChannelOut>,
) {
    gw.channels.count(channel, true, None);
    let default_role = role_for_strangers(&gw, &default_role);
    let text = msg.text.trim();
    if let Some(reply) = command(&gw, channel, &msg, text, default_role).await {
        deliver(&gw, channel, &out, &msg.to, &reply).await;
        return;
    }
    let person = match users::resolve(&gw.store, &msg.sender, default_role).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            tracing::info!(channel, sender = %msg.sender.id, "message from a stranger refused");
            deliver(&gw, channel, &out, &msg.to, STRANGER_MESSAGE).await;
            return;
        }
        Err(e) => {
            tracing::error!(channel, error = %e, "cannot look up the sender");
            deliver(&gw, channel, &out, &msg.to, "Sorry, I cannot reach my database right now; try again soon.").await;
            return;
        }
    };
    let key = session_key(channel, &msg.to);
    let model = gw.store.session_model(&key).await.unwrap_or_default();
    let mut message = text.to_string();
    for a in &msg.attachments {
        message.push_str(&format!("\n[attached {}: {}]", a.kind, a.name.as_deref().unwrap_or("unnamed")));
    }
    let run_id = uuid::Uuid::new_v4().to_string();
    let mut req = RunRequest::new(run_id, key, message, model, channel);
    req.person = Some(person);

    let typing = {
        let (out, to) = (out.clone(), msg.to.clone());
        tokio::spawn(async move {
            loop {
                out.typing(&to).await;
                tokio::time::sleep(TYPING_EVERY).await;
            }
        })
    };
    let end = run_to_end(&gw, req).await;
    typing.abort();
    let reply = match end.map(|e| e.outcome) {
        Some(o) => match o.status {
            Status::Ok if o.text.trim().is_empty() => "(no answer)".to_string(),
            Status::Ok => o.text,
            Status::Error(e) => format!("Sorry, that did not work: {e}"),
            Status::Aborted => "(stopped)".to_string(),
        },
        None => "Sorry, the answer got lost; please send it again.".to_string(),
    };
    deliver(&gw, channel, &out, &msg.to, &reply).await;
}

/// The answer to a `/command` without delivering it, for platforms whose commands answer
/// in a reply of their own (Discord's slash commands); `None` when the text is not one.
pub async fn command_reply(gw: &Arc<Gateway>, channel: &str, default_role: &str, msg: &Inbound) -> Option<String> {
    gw.channels.count(channel, true, None);
    command(gw, channel, msg, msg.text.trim(), role_for_strangers(gw, default_role)).await
}

/// The channel's `default_role`, or the gateway's when the channel sets none.
fn role_for_strangers(gw: &Gateway, channel_setting: &str) -> Option<users::Role> {
    let setting = if channel_setting.is_empty() { &gw.config.users.default_role } else { channel_setting };
    parse_default_role(setting).unwrap_or(None)
}

/// Sends `text` in as many parts as the platform needs, in order.
async fn deliver(gw: &Gateway, channel: &str, out: &Arc<dyn ChannelOut>, to: &Destination, text: &str) {
    let parts = split::split(text, out.max_len());
    let n = parts.len();
    for (i, part) in parts.into_iter().enumerate() {
        let sent = out.send(to, &part).await;
        gw.channels.count(channel, false, sent.as_ref().err().cloned());
        if let Err(e) = sent {
            tracing::warn!(channel, chat = %to.chat_id, part = i + 1, parts = n, error = %e, "delivery failed");
            return;
        }
    }
    tracing::debug!(channel, chat = %to.chat_id, parts = n, "delivered");
}

/// A `/command`, answered without the model; `None` when the text is not one.
async fn command(
    gw: &Arc<Gateway>,
    channel: &str,
    msg: &Inbound,
    text: &str,
    default_role: Option<users::Role>,
) -> Option<String> {
    let rest = text.strip_prefix('/')?;
    let (name, arg) = rest.split_once(char::is_whitespace).map_or((rest, ""), |(n, a)| (n, a.trim()));
    // "/link@MyBot CODE" in groups.
    let name = name.split('@').next().unwrap_or(name).to_ascii_lowercase();
    let known = || users::resolve(&gw.store, &msg.sender, None);
    let key = session_key(channel, &msg.to);
    Some(match name.as_str() {
        "start" | "help" => match known().await.ok().flatten() {
            Some(p) => format!(
                "Hi {}! Just write to me. Commands: /new starts a new conversation, /model shows or changes \
                 the model, /stop stops an answer, /code gives you a code to link another account, /whoami.",
                p.name
            ),
            None if default_role.is_some() => {
                "Hi! Just write to me. If you already talk to me elsewhere, send /link CODE with a code from there."
                    .into()
            }
            None => STRANGER_MESSAGE.into(),
        },
        "link" if arg.is_empty() => {
            "Send /link CODE with the code you got from your other account (/code there).".into()
        }
        "link" => {
            let cfg = &gw.config.users;
            match gw
                .store
                .redeem_link_code(channel, &msg.sender.id, arg, cfg.link_code_ttl_secs, cfg.link_failures_per_hour)
                .await
            {
                Ok(p) => format!("Linked: you are {} here too, with the same memory.", p.name),
                Err(LinkError::Store(e)) => format!("Sorry, linking failed: {e}"),
                Err(e) => format!("Sorry: {e}"),
            }
        }
        "code" | "whoami" | "new" | "model" | "stop" => {
            let Some(p) = known().await.ok().flatten() else { return Some(STRANGER_MESSAGE.into()) };
            known_command(gw, &name, arg, &p, &key).await
        }
        _ => return None,
    })
}

async fn known_command(gw: &Arc<Gateway>, name: &str, arg: &str, p: &Person, key: &str) -> String {
    match name {
        "whoami" => format!("You are {} ({}).", p.name, p.role),
        "code" => {
            let ttl = gw.config.users.link_code_ttl_secs;
            match gw.store.create_link_code(p.id, ttl).await {
                Ok(code) => format!(
                    "Your link code: {code}\nSend /link {code} from your other account within {} minutes.",
                    ttl / 60
                ),
                Err(e) => format!("Sorry, no code: {e}"),
            }
        }
        "new" => {
            gw.abort_session(key);
            match gw.store.reset_session(key).await {
                Ok(_) => "Started a new conversation.".into(),
                Err(e) => format!("Sorry: {e}"),
            }
        }
        "stop" => match gw.abort_session(key).len() {
            0 => "Nothing to stop.".into(),
            _ => "Stopped.".into(),
        },
        _ => model_command(gw, arg, p, key).await,
    }
}

/// `/model` shows the chat's model; `/model NAME` switches this chat; `/model default`
/// goes back to the gateway's default.
async fn model_command(gw: &Arc<Gateway>, arg: &str, p: &Person, key: &str) -> String {
    let models = &gw.agent.models;
    let current = gw.store.session_model(key).await.unwrap_or_default();
    if arg.is_empty() {
        let settings = models.settings();
        let aliases: Vec<&str> = settings.agent.aliases.keys().map(String::as_str).collect();
        let shown = current.clone().unwrap_or_else(|| format!("{} (the default)", settings.agent.model));
        return format!(
            "This chat uses {shown}. Switch with /model NAME (<provider>/<model>{}), or /model default.",
            if aliases.is_empty() { String::new() } else { format!(" or {}", aliases.join(", ")) }
        );
    }
    if arg == "default" {
        return match gw.store.set_session_model(key, None).await {
            Ok(()) => "This chat uses the default model again.".into(),
            Err(e) => format!("Sorry: {e}"),
        };
    }
    let Some((provider, model)) = models.resolve(Some(arg)) else {
        return format!("{arg:?} is not a model: name it as <provider>/<model>, or use an alias.");
    };
    let resolved = format!("{provider}/{model}");
    if let Err(why) = models.settings().permissions.model(p.role, Some(arg), &resolved) {
        return format!("Sorry, {why}");
    }
    if let Err(e) = models.provider(&provider) {
        return format!("Sorry: {e}");
    }
    match gw.store.set_session_model(key, Some(arg.to_string())).await {
        Ok(()) => format!("This chat now uses {resolved}."),
        Err(e) => format!("Sorry: {e}"),
    }
}
