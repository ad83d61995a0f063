//! Channels: the places people chat (Telegram, Discord, the web page). Every adapter
//! only translates: it turns a platform message into an [`Inbound`], hands it to the one
//! pipeline (pipeline.rs), and delivers what comes back through its [`ChannelOut`]. The
//! [`Registry`] knows the running adapters and their health, for `status`, `/health` and
//! for delivering to a user from anywhere (the `send_message` tool, the scheduler).

#![cfg_attr(not(feature = "telegram"), allow(dead_code, reason = "no adapter compiled in feeds the pipeline"))]

#[cfg(feature = "discord")]
mod discord;
pub mod pipeline;
pub mod send_tool;
pub mod split;
#[cfg(feature = "telegram")]
mod telegram;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::store::{Store, StoreError};
use crate::users::Sender;

/// Starts the adapters whose tokens are configured, each in its own task after the
/// listener is up; a failing one reports its state and never stops the gateway.
pub fn start(gw: &Arc<Gateway>) {
    #[cfg(feature = "discord")]
    discord::start(gw);
    let _ = gw;
    #[cfg(feature = "telegram")]
    telegram::start(gw);
}

/// A message as every channel hands it over.
#[derive(Debug, Clone)]
pub struct Inbound {
    pub sender: Sender,
    /// Where the conversation happens (a chat, a channel); answers go there.
    pub to: Destination,
    pub text: String,
    pub attachments: Vec<Attachment>,
    /// A private chat (true) or a group.
    pub private: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub chat_id: String,
    pub thread_id: Option<String>,
    /// The message being answered, for platforms that thread replies.
    pub reply_to: Option<String>,
}

/// What was attached (the content itself is not fetched yet).
#[derive(Debug, Clone, Serialize)]
pub struct Attachment {
    pub kind: String,
    pub name: Option<String>,
    pub size: Option<u64>,
}

/// What an adapter offers the pipeline and the outbound API.
pub trait ChannelOut: Send + Sync {
    /// The longest message the platform takes, in characters.
    fn max_len(&self) -> usize;
    /// Sends one message (already short enough).
    fn send(&self, to: &Destination, text: &str) -> BoxFuture<'static, Result<(), String>>;
    /// Shows "typing…" for a few seconds.
    fn typing(&self, to: &Destination) -> BoxFuture<'static, ()>;
    /// Sends a private message to a person by their id on this platform.
    fn send_direct(&self, user_id: &str, text: &str) -> BoxFuture<'static, Result<(), String>>;
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelState {
    /// starting | connected | reconnecting | failed
    pub state: &'static str,
    pub detail: Option<String>,
    pub since_ms: i64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub last_error: Option<String>,
}

/// The running adapters, shared by the gateway and the agent's outbound tool.
#[derive(Clone, Default)]
pub struct Registry {
    inner: Arc<Mutex<RegistryInner>>,
}

#[derive(Default)]
struct RegistryInner {
    states: BTreeMap<String, ChannelState>,
    outs: BTreeMap<String, Arc<dyn ChannelOut>>,
    /// Per-chat queues, so one chat's messages are answered in order (pipeline::submit).
    queues: std::collections::HashMap<String, tokio::sync::mpsc::UnboundedSender<pipeline::Job>>,
}

/// The per-chat queues, under the registry's lock.
pub struct Queues<'a>(std::sync::MutexGuard<'a, RegistryInner>);

impl std::ops::Deref for Queues<'_> {
    type Target = std::collections::HashMap<String, tokio::sync::mpsc::UnboundedSender<pipeline::Job>>;
    fn deref(&self) -> &Self::Target {
        &self.0.queues
    }
}

impl std::ops::DerefMut for Queues<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0.queues
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistryInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn queues(&self) -> Queues<'_> {
        Queues(self.lock())
    }

    /// Records an adapter's state; `detail` says why (shown in status and /health).
    pub fn set_state(&self, channel: &str, state: &'static str, detail: Option<String>) {
        let mut inner = self.lock();
        let entry = inner.states.entry(channel.to_string()).or_insert(ChannelState {
            state,
            detail: None,
            since_ms: now_ms(),
            messages_in: 0,
            messages_out: 0,
            last_error: None,
        });
        if entry.state != state {
            entry.since_ms = now_ms();
        }
        if state == "failed" || state == "reconnecting" {
            entry.last_error = detail.clone();
        }
        entry.state = state;
        entry.detail = detail;
    }

    /// Makes the adapter reachable for outbound messages.
    pub fn register(&self, channel: &str, out: Arc<dyn ChannelOut>) {
        self.lock().outs.insert(channel.to_string(), out);
    }

    pub fn out(&self, channel: &str) -> Option<Arc<dyn ChannelOut>> {
        self.lock().outs.get(channel).cloned()
    }

    pub fn count(&self, channel: &str, inbound: bool, error: Option<String>) {
        let mut inner = self.lock();
        if let Some(s) = inner.states.get_mut(channel) {
            if inbound {
                s.messages_in += 1;
            } else if error.is_none() {
                s.messages_out += 1;
            }
            if error.is_some() {
                s.last_error = error;
            }
        }
    }

    /// Every adapter's state, for status and /health.
    pub fn snapshot(&self) -> Value {
        json!(self.lock().states)
    }

    /// Names of adapters that are configured but not working.
    #[allow(dead_code, reason = "for readiness and status summaries; no caller yet")]
    pub fn failing(&self) -> Vec<String> {
        self.lock().states.iter().filter(|(_, s)| s.state == "failed").map(|(k, _)| k.clone()).collect()
    }

    /// Delivers `text` to a user on one of their linked channels (the named one, or the
    /// first whose adapter runs); returns the channel used.
    pub async fn deliver_to_user(
        &self,
        store: &Store,
        user_id: i64,
        text: &str,
        channel: Option<&str>,
    ) -> Result<String, String> {
        let identities = store.identities_of(user_id).await.map_err(|e: StoreError| e.to_string())?;
        let candidates: Vec<(String, String)> =
            identities.into_iter().filter(|(c, _)| channel.is_none_or(|want| want == c)).collect();
        for (ch, external_id) in &candidates {
            let Some(out) = self.out(ch) else { continue };
            let mut last = Ok(());
            for part in split::split(text, out.max_len()) {
                last = out.send_direct(external_id, &part).await;
                if last.is_err() {
                    break;
                }
            }
            self.count(ch, false, last.as_ref().err().cloned());
            return last.map(|()| ch.clone()).map_err(|e| format!("{ch} did not take the message: {e}"));
        }
        Err(match channel {
            Some(c) => format!("the user has no {c} account linked, or the {c} channel is not running"),
            None => "the user has no linked account on a running channel (Telegram, Discord)".into(),
        })
    }
}
