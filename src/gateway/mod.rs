//! The gateway server: one axum app serving HTTP (health, readiness) and the protocol
//! WebSocket on the same port, with graceful shutdown threaded through every connection.

mod auth;
mod handshake;
mod http;
mod methods;
mod openai_api;
mod presence;
mod protocol;
mod runs;
mod web;
mod ws;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::agent::Agent;
use crate::config::Config;
use crate::home::Home;
use crate::store::Store;
use crate::users::Permissions;

pub use auth::FailureLimiter;
pub use runs::run_to_end;

/// What a connection's writer task sends; events get their `seq` there.
#[derive(Debug)]
pub enum Outbound {
    Frame(String),
    Event { name: &'static str, payload: Value, state_version: Option<Value> },
    Ping,
    Close(u16, String),
}

/// A live, authenticated connection as the rest of the gateway sees it.
struct ConnEntry {
    tx: mpsc::Sender<Outbound>,
    protocol: u32,
    scopes: Vec<String>,
    presence: Value,
    /// Cancelled when the client stops reading and its queue overflows.
    kick: CancellationToken,
}

/// Shared state of a running gateway.
pub struct Gateway {
    pub config: Config,
    pub home: Home,
    pub store: Store,
    pub agent: Arc<Agent>,
    /// The chat channels (Telegram, Discord) and their health.
    pub channels: crate::channels::Registry,
    runs: runs::Runs,
    pub started: Instant,
    pub started_at_ms: i64,
    pub limiter: FailureLimiter,
    /// Cancelled on SIGINT/SIGTERM.
    pub shutdown: CancellationToken,
    /// Every connection and in-flight request, awaited at shutdown.
    pub tasks: TaskTracker,
    conns: Mutex<HashMap<String, ConnEntry>>,
    presence_version: AtomicU64,
    health_version: AtomicU64,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or_default()
}

impl Gateway {
    pub fn new(config: Config, home: Home, store: Store) -> Arc<Gateway> {
        let channels = crate::channels::Registry::default();
        let agent = Agent::new(&config, store.clone(), home.root(), channels.clone());
        Arc::new(Gateway {
            config,
            home,
            store,
            agent: Arc::new(agent),
            channels,
            runs: runs::Runs::default(),
            started: Instant::now(),
            started_at_ms: now_ms(),
            limiter: FailureLimiter::new(),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            conns: Mutex::new(HashMap::new()),
            presence_version: AtomicU64::new(1),
            health_version: AtomicU64::new(1),
        })
    }

    /// Aborts the live runs of a session; returns their ids.
    pub fn abort_session(&self, key: &str) -> Vec<String> {
        self.runs.abort(key, None)
    }

    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn state_version(&self) -> Value {
        json!({
            "presence": self.presence_version.load(Ordering::Relaxed),
            "health": self.health_version.load(Ordering::Relaxed),
        })
    }

    pub fn connection_count(&self) -> usize {
        self.lock_conns().len()
    }

    fn lock_conns(&self) -> std::sync::MutexGuard<'_, HashMap<String, ConnEntry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(&self, conn_id: &str, entry: ConnEntry) {
        self.lock_conns().insert(conn_id.to_string(), entry);
        self.presence_changed();
    }

    fn unregister(&self, conn_id: &str) {
        if self.lock_conns().remove(conn_id).is_some() {
            self.presence_changed();
        }
    }

    fn presence_changed(&self) {
        self.presence_version.fetch_add(1, Ordering::Relaxed);
        self.broadcast("presence", json!({"presence": self.presence_list()}), Some(auth::SCOPE_READ));
    }

    /// The gateway itself plus every connected client.
    pub fn presence_list(&self) -> Vec<Value> {
        let mut list = vec![presence::gateway_entry(self)];
        list.extend(self.lock_conns().values().map(|c| c.presence.clone()));
        list
    }

    /// Sends an event to every connection holding `scope` (all connections when `None`).
    /// A connection whose queue is full is kicked rather than allowed to stall others.
    pub fn broadcast(&self, name: &'static str, payload: Value, scope: Option<&str>) {
        self.broadcast_by_protocol(name, scope, |_| payload.clone());
    }

    /// Like `broadcast`, with the payload shaped for each connection's protocol version.
    pub fn broadcast_by_protocol(&self, name: &'static str, scope: Option<&str>, payload: impl Fn(u32) -> Value) {
        let state_version = self.state_version();
        for entry in self.lock_conns().values() {
            if scope.is_some_and(|s| !auth::has_scope(&entry.scopes, s)) {
                continue;
            }
            let event =
                Outbound::Event { name, payload: payload(entry.protocol), state_version: Some(state_version.clone()) };
            if let Err(mpsc::error::TrySendError::Full(_)) = entry.tx.try_send(event) {
                entry.kick.cancel();
            }
        }
    }
}

/// Binds the listener, serves until a shutdown signal, drains, checkpoints the store.
pub async fn run(gw: Arc<Gateway>, on_listening: impl FnOnce(SocketAddr)) -> anyhow::Result<()> {
    let g = &gw.config.gateway;
    let addr = SocketAddr::new(g.bind.parse().context("gateway.bind was validated")?, g.port);
    let listener = TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr}. Another program (or another Skynet) may be using the port: \
             stop it, or choose another with `skynet-gateway run --port N` or [gateway] port in skynet.toml"
        )
    })?;
    let local = listener.local_addr()?;
    spawn_signal_handler(gw.shutdown.clone());
    spawn_reload_handler(gw.clone());
    on_listening(local);
    crate::memory::spawn_seeding(gw.store.clone(), gw.home.root().join("knowledge"));
    tracing::info!(%local, "gateway listening");

    crate::update::spawn_startup_check(&gw.config.update, gw.home.root());
    crate::channels::start(&gw);
    // Runs still going when the grace period ends are aborted, even while an HTTP stream
    // (a `/v1` answer) keeps the server itself waiting.
    let watchdog = gw.clone();
    tokio::spawn(async move {
        watchdog.shutdown.cancelled().await;
        tokio::time::sleep(Duration::from_millis(watchdog.config.gateway.shutdown_grace_ms)).await;
        watchdog.runs.abort_all();
    });
    let app = http::router(gw.clone());
    // Streamed events are small writes: without TCP_NODELAY, Nagle's algorithm holds each
    // one back until the client's delayed ACK (~40 ms) arrives.
    let listener = axum::serve::ListenerExt::tap_io(listener, |s| {
        let _ = s.set_nodelay(true);
    });
    let server = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(gw.shutdown.clone().cancelled_owned());
    server.await.context("the HTTP server failed")?;

    // The listener is closed; WebSocket connections are finishing their in-flight requests.
    let grace = Duration::from_millis(g.shutdown_grace_ms);
    gw.tasks.close();
    if tokio::time::timeout(grace + Duration::from_secs(1), gw.tasks.wait()).await.is_err() {
        tracing::warn!(grace_ms = g.shutdown_grace_ms, "shutdown deadline passed; aborting the runs still going");
        gw.runs.abort_all();
        // Aborted runs store what they have; give them a moment.
        let _ = tokio::time::timeout(Duration::from_secs(2), gw.tasks.wait()).await;
    }
    let store = gw.store.clone();
    match tokio::task::spawn_blocking(move || store.checkpoint()).await {
        Ok(Ok(())) => tracing::info!("database checkpointed"),
        Ok(Err(e)) => tracing::warn!(error = %e, "WAL checkpoint failed; the database is still consistent"),
        Err(e) => tracing::warn!(error = %e, "WAL checkpoint task failed"),
    }
    tracing::info!("gateway stopped");
    Ok(())
}

/// SIGHUP reloads the agent and provider settings from skynet.toml and the environment.
/// A bad file is reported and the running settings stay; gateway settings (port, bind,
/// token) need a restart.
fn spawn_reload_handler(gw: Arc<Gateway>) {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered before returning, so a SIGHUP right after start-up never kills the process.
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot install the SIGHUP handler; restart the gateway to apply config changes");
        return;
    };
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let home = gw.home.root().to_path_buf();
            let loaded =
                tokio::task::spawn_blocking(move || Config::load(&home, &crate::config::Overrides::default())).await;
            match loaded {
                Ok(Ok(config)) => {
                    gw.agent.models.replace(
                        config.agent.clone(),
                        config.providers.clone(),
                        Permissions::new(config.roles.clone()),
                    );
                    tracing::info!(model = %config.agent.model, "configuration reloaded (SIGHUP); [gateway] changes need a restart");
                }
                Ok(Err(e)) => tracing::error!("configuration not reloaded, the running settings stay: {e}"),
                Err(e) => tracing::error!(error = %e, "configuration reload failed"),
            }
        }
    });
}

/// First SIGINT/SIGTERM starts a graceful shutdown; a second one exits at once.
fn spawn_signal_handler(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered before returning (before the listening banner), so an early signal is
    // handled gracefully rather than killing the process.
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::error!("cannot install signal handlers; stop the gateway with SIGKILL");
        return;
    };
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down: no new connections, finishing in-flight requests");
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::warn!("second signal: exiting immediately");
        std::process::exit(130);
    });
}
