//! Delivery to Discord over its REST API: messages (as replies in guilds), the typing
//! indicator, and direct messages to a person by their user id.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serenity::builder::{CreateAllowedMentions, CreateMessage};
use serenity::http::Http;
use serenity::model::id::{ChannelId, MessageId, UserId};

use crate::channels::{ChannelOut, Destination};

/// Discord's limit for a message's content, in characters.
pub const MAX_LEN: usize = 2000;

/// serenity's HTTP client has no timeout of its own; a call that hangs must not hold an
/// answer (or the start-up check) forever.
const REST_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a REST call with [`REST_TIMEOUT`]; `Err(None)` when it took too long.
pub async fn within<T>(call: impl Future<Output = serenity::Result<T>>) -> Result<T, Option<serenity::Error>> {
    match tokio::time::timeout(REST_TIMEOUT, call).await {
        Ok(r) => r.map_err(Some),
        Err(_) => Err(None),
    }
}

pub fn error_text(e: Option<serenity::Error>) -> String {
    e.map_or_else(|| format!("Discord did not answer within {} s", REST_TIMEOUT.as_secs()), |e| e.to_string())
}

pub struct DiscordOut {
    pub http: Arc<Http>,
}

/// A Discord id (a snowflake) from its text form.
fn snowflake(s: &str) -> Result<u64, String> {
    s.parse::<u64>().ok().filter(|&n| n != 0).ok_or_else(|| format!("{s:?} is not a Discord id"))
}

/// Sends `text` to a channel, as a reply to `reply_to` when given. Only the replied-to
/// person is pinged: a model's `@everyone` or `<@id>` in an answer stays plain text.
async fn send(http: &Http, channel: ChannelId, reply_to: Option<MessageId>, text: &str) -> Result<(), String> {
    let mut msg = CreateMessage::new().content(text).allowed_mentions(CreateAllowedMentions::new().replied_user(true));
    if let Some(id) = reply_to {
        msg = msg.reference_message((channel, id));
    }
    within(channel.send_message(http, msg)).await.map(drop).map_err(error_text)
}

impl ChannelOut for DiscordOut {
    fn max_len(&self) -> usize {
        MAX_LEN
    }

    fn send(&self, to: &Destination, text: &str) -> BoxFuture<'static, Result<(), String>> {
        let (http, to, text) = (self.http.clone(), to.clone(), text.to_string());
        Box::pin(async move {
            let channel = ChannelId::new(snowflake(&to.chat_id)?);
            let reply_to = to.reply_to.as_deref().map(snowflake).transpose()?.map(MessageId::new);
            send(&http, channel, reply_to, &text).await
        })
    }

    fn typing(&self, to: &Destination) -> BoxFuture<'static, ()> {
        let (http, chat) = (self.http.clone(), to.chat_id.clone());
        Box::pin(async move {
            if let Ok(id) = snowflake(&chat)
                && let Err(e) = within(ChannelId::new(id).broadcast_typing(&http)).await
            {
                tracing::debug!(channel = "discord", chat, error = %error_text(e), "typing indicator failed");
            }
        })
    }

    fn send_direct(&self, user_id: &str, text: &str) -> BoxFuture<'static, Result<(), String>> {
        let (http, user, text) = (self.http.clone(), user_id.to_string(), text.to_string());
        Box::pin(async move {
            let user = UserId::new(snowflake(&user)?);
            let dm = within(user.create_dm_channel(&*http))
                .await
                .map_err(|e| format!("cannot open a DM: {}", error_text(e)))?;
            send(&http, dm.id, None, &text).await
        })
    }
}
