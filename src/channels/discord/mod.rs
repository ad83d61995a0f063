//! The Discord channel (serenity): DMs and guild channels (the bot answers a mention or a
//! reply to it), threads (each its own conversation), the typing indicator, answers split
//! to 2,000 characters, and the slash commands `/link`, `/new` and `/model`.
//!
//! Health: the token is checked over REST before the gateway connects (a refused token,
//! over REST or at the gateway's Identify, is "failed", said once, and the rest of Skynet
//! runs on); serenity resumes a dropped gateway connection itself, or identifies again
//! every 5 s (Discord's pace for identifying), reported as "reconnecting" meanwhile;
//! anything that ends the client is retried with backoff (1 s doubling to 60 s).

mod out;
mod translate;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serenity::all::{
    Command, CommandOptionType, ConnectionStage, Context, CreateCommand, CreateCommandOption,
    CreateInteractionResponse, CreateInteractionResponseMessage, EventHandler, GatewayError, GatewayIntents,
    Interaction, Message, Ready, ShardManager, UserId,
};
use serenity::client::ClientBuilder;
use serenity::http::{Http, HttpBuilder};

use super::{ChannelOut, pipeline, split};
use crate::config::DiscordConfig;
use crate::gateway::Gateway;
use out::{DiscordOut, MAX_LEN};
use translate::CHANNEL;

/// Server messages, DMs, and their text (MESSAGE CONTENT is a privileged intent: it must be
/// switched on for the bot in the Developer Portal).
const INTENTS: GatewayIntents =
    GatewayIntents::GUILD_MESSAGES.union(GatewayIntents::DIRECT_MESSAGES).union(GatewayIntents::MESSAGE_CONTENT);

const TOKEN_REFUSED: &str = "Discord refused the bot token. Copy the token of your bot (Discord Developer Portal > \
     Applications > your app > Bot > Reset Token) into [channels.discord] token in skynet.toml or into \
     SKYNET_CHANNELS__DISCORD__TOKEN, then restart the gateway.";

const NOT_A_TOKEN: &str = "[channels.discord] token (or SKYNET_CHANNELS__DISCORD__TOKEN) is not a Discord bot \
     token: copy it again from the Discord Developer Portal > Applications > your app > Bot > Reset Token \
     (three parts separated by dots), then restart the gateway.";

const INTENTS_REFUSED: &str = "Discord refused the bot's intents: turn on \"Message Content Intent\" under Bot > \
     Privileged Gateway Intents in the Discord Developer Portal, then restart the gateway.";

/// Starts the adapter when a token is configured; it runs until the gateway shuts down.
pub fn start(gw: &Arc<Gateway>) {
    if gw.config.channels.discord.token.expose().trim().is_empty() {
        return;
    }
    gw.channels.set_state(CHANNEL, "starting", None);
    tokio::spawn(run(gw.clone()));
}

/// The REST client: Discord's API, or the API proxy `proxy_url` names in its place.
/// serenity sends every REST call to that base URL instead of `https://discord.com` (it
/// is not an HTTP CONNECT proxy), and its own rate limiter, which would bypass the proxy,
/// is off: the proxy is expected to keep Discord's rate limits, as twilight-http-proxy does.
fn http(cfg: &DiscordConfig) -> Http {
    let mut b = HttpBuilder::new(cfg.token.expose().trim());
    if !cfg.proxy_url.trim().is_empty() {
        b = b.proxy(cfg.proxy_url.trim()).ratelimiter_disabled(true);
    }
    b.build()
}

fn fail(gw: &Gateway, why: &str) {
    tracing::error!(channel = CHANNEL, "{why}");
    gw.channels.set_state(CHANNEL, "failed", Some(why.to_string()));
}

/// Waits `d`; false when the gateway shuts down meanwhile.
async fn pause(gw: &Gateway, d: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = gw.shutdown.cancelled() => false,
    }
}

/// 1 s, 2 s, 4 s, ... up to 60 s.
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = Duration::from_secs(1u64 << self.0.min(6)).min(Duration::from_secs(60));
        self.0 += 1;
        d
    }
}

/// The error with its causes ("Error while sending HTTP request" alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.ends_with(&s_text) {
            text.push_str(&format!(": {s_text}"));
        }
        source = s.source();
    }
    text
}

fn unauthorized(e: &serenity::Error) -> bool {
    matches!(e, serenity::Error::Http(serenity::http::HttpError::UnsuccessfulRequest(r)) if r.status_code.as_u16() == 401)
}

async fn run(gw: Arc<Gateway>) {
    let cfg = gw.config.channels.discord.clone();
    if !cfg.default_role.is_empty()
        && let Err(e) = crate::users::parse_default_role(&cfg.default_role)
    {
        return fail(&gw, &format!("[channels.discord] default_role: {e}."));
    }
    if serenity::utils::validate_token(cfg.token.expose().trim()).is_err() {
        return fail(&gw, NOT_A_TOKEN);
    }
    let rest = Arc::new(http(&cfg));
    let mut backoff = Backoff(0);
    // Checks the token, and learns the bot's own id before any message can arrive.
    let bot = loop {
        match out::within(rest.get_current_user()).await {
            Ok(me) => break me,
            Err(Some(e)) if unauthorized(&e) => return fail(&gw, TOKEN_REFUSED),
            Err(e) => {
                let e = e.map_or_else(|| "no answer within 30 s".into(), |e| chain(&e));
                let why = format!("cannot reach Discord ({e}); retrying");
                tracing::warn!(channel = CHANNEL, "{why}");
                gw.channels.set_state(CHANNEL, "reconnecting", Some(why));
                if !pause(&gw, backoff.next()).await {
                    return;
                }
            }
        }
    };
    let out: Arc<dyn ChannelOut> = Arc::new(DiscordOut { http: rest });
    gw.channels.register(CHANNEL, out.clone());
    let handler = Arc::new(Handler {
        gw: gw.clone(),
        out,
        bot: bot.id,
        bot_name: bot.name.clone(),
        cfg: cfg.clone(),
        registered: AtomicBool::new(false),
        up: AtomicBool::new(false),
    });
    loop {
        let started = Instant::now();
        let why = match connect(&gw, &cfg, handler.clone()).await {
            Ended::Shutdown => return,
            Ended::Fatal(why) => return fail(&gw, why),
            Ended::Lost(why) => why,
        };
        if started.elapsed() > Duration::from_secs(60) {
            backoff = Backoff(0);
        }
        let wait = backoff.next();
        tracing::warn!(channel = CHANNEL, retry_in_s = wait.as_secs(), "Discord connection ended: {why}");
        gw.channels.set_state(CHANNEL, "reconnecting", Some(why));
        if !pause(&gw, wait).await {
            return;
        }
    }
}

enum Ended {
    Shutdown,
    Fatal(&'static str),
    Lost(String),
}

/// Runs one serenity client until it gives up, or the gateway shuts down.
async fn connect(gw: &Gateway, cfg: &DiscordConfig, handler: Arc<Handler>) -> Ended {
    let mut client = match ClientBuilder::new_with_http(http(cfg), INTENTS).event_handler_arc(handler.clone()).await {
        Ok(c) => c,
        Err(e) => return Ended::Lost(chain(&e)),
    };
    let shards = client.shard_manager.clone();
    tokio::select! {
        () = watch(&handler, &shards) => Ended::Lost("the gateway connection ended".into()),
        ended = client.start() => match ended {
            Err(serenity::Error::Gateway(GatewayError::InvalidAuthentication)) => Ended::Fatal(TOKEN_REFUSED),
            Err(serenity::Error::Gateway(GatewayError::DisallowedGatewayIntents | GatewayError::InvalidGatewayIntents)) => {
                Ended::Fatal(INTENTS_REFUSED)
            }
            Err(e) => Ended::Lost(chain(&e)),
            Ok(()) => Ended::Lost("the gateway connection ended".into()),
        },
        () = gw.shutdown.cancelled() => {
            shards.shutdown_all().await;
            Ended::Shutdown
        }
    }
}

/// Reports the connection's state as serenity sees it: a dropped connection shows as
/// "reconnecting" while serenity resumes it or identifies again, "connected" once it is
/// back. (Polled: serenity has no event for every way a connection drops.)
async fn watch(handler: &Handler, shards: &ShardManager) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let up = shards.runners.lock().await.values().any(|r| r.stage == ConnectionStage::Connected);
        if up && !handler.up.swap(true, Ordering::SeqCst) {
            handler.gw.channels.set_state(CHANNEL, "connected", Some(handler.logged_in()));
        } else if !up && handler.up.swap(false, Ordering::SeqCst) {
            tracing::warn!(channel = CHANNEL, "Discord connection lost; reconnecting");
            handler.gw.channels.set_state(CHANNEL, "reconnecting", Some("connection lost; reconnecting".into()));
        }
    }
}

/// The slash commands, registered globally at READY (Discord may take a while to show
/// changed global commands in every client; new bots see them at once).
fn commands() -> Vec<CreateCommand> {
    vec![
        CreateCommand::new("link").description("Link this Discord account to your Skynet user with a code").add_option(
            CreateCommandOption::new(CommandOptionType::String, "code", "The code from /code on your other account")
                .required(true),
        ),
        CreateCommand::new("new").description("Start a new conversation in this chat"),
        CreateCommand::new("model").description("Show or change the model of this chat").add_option(
            CreateCommandOption::new(CommandOptionType::String, "name", "<provider>/<model>, an alias, or default")
                .required(false),
        ),
    ]
}

impl Handler {
    fn logged_in(&self) -> String {
        format!("logged in as {}", self.bot_name)
    }
}

struct Handler {
    gw: Arc<Gateway>,
    out: Arc<dyn ChannelOut>,
    bot: UserId,
    bot_name: String,
    cfg: DiscordConfig,
    /// Slash commands are registered once per start, not at every reconnect.
    registered: AtomicBool,
    /// Whether the state shown is "connected".
    up: AtomicBool,
}

#[serenity::async_trait]
impl EventHandler for Handler {
    async fn ready(&self, ctx: Context, ready: Ready) {
        tracing::info!(channel = CHANNEL, bot = %ready.user.name, guilds = ready.guilds.len(), "connected to Discord");
        self.up.store(true, Ordering::SeqCst);
        self.gw.channels.set_state(CHANNEL, "connected", Some(self.logged_in()));
        if !self.registered.swap(true, Ordering::SeqCst)
            && let Err(e) = out::within(Command::set_global_commands(&ctx.http, commands())).await
        {
            self.registered.store(false, Ordering::SeqCst);
            let e = out::error_text(e);
            tracing::warn!(channel = CHANNEL, error = %e, "cannot register the slash commands; text commands still work");
        }
    }

    async fn message(&self, _ctx: Context, msg: Message) {
        let Some(inbound) = translate::to_inbound(&msg, self.bot) else { return };
        let role = self.cfg.default_role.clone();
        // Each message runs in its own task: one slow answer never holds up the next.
        pipeline::submit(&self.gw, CHANNEL, role, inbound, self.out.clone());
    }

    async fn interaction_create(&self, ctx: Context, interaction: Interaction) {
        let Interaction::Command(cmd) = interaction else { return };
        let inbound = translate::command_inbound(&cmd);
        let reply = pipeline::command_reply(&self.gw, CHANNEL, &self.cfg.default_role, &inbound)
            .await
            .unwrap_or_else(|| format!("/{} is not a command I know.", cmd.data.name));
        let reply = split::split(&reply, MAX_LEN).into_iter().next().unwrap_or_default();
        // Only the person who ran it sees the answer: a link result is nobody else's business.
        let msg = CreateInteractionResponseMessage::new().content(reply).ephemeral(true);
        let sent = out::within(cmd.create_response(&ctx.http, CreateInteractionResponse::Message(msg))).await;
        let error = sent.err().map(out::error_text);
        if let Some(e) = &error {
            tracing::warn!(channel = CHANNEL, command = %cmd.data.name, error = %e, "slash command answer failed");
        }
        self.gw.channels.count(CHANNEL, false, error);
    }
}
