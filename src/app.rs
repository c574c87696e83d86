//! Building and running the server: the same path for `main` and for tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::hub::Hub;
use crate::bus::{Bus, RedisLink};
use crate::config::Config;
use crate::domain::time::now_ms;
use crate::events::ServerEvent;
use crate::http::serve::ServeLimits;
use crate::http::state::AppState;
use crate::images::ImagePool;
use crate::limits::Limits;
use crate::realtime::user_slots::UserSlots;
use crate::services::tail_cache::TailCache;
use crate::services::typing::Typing;
use crate::services::writer::MessageWriter;
use crate::services::{Services, accounts, messages, presence, rooms};
use crate::store::room_cache::RoomCache;
use crate::store::{self, DynStore};

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// HTTP connections served at once (from the open-file budget).
    max_http_connections: usize,
    /// Stops the message writer, after every session has finished.
    writer_stop: CancellationToken,
    writer_task: tokio::task::JoinHandle<()>,
}

/// Connects to the store and applies migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<DynStore> {
    let url = config.database_url()?;
    let store = store::connect_with(
        &url,
        config.db_max_connections,
        config.sqlite_synchronous.store_setting(),
    )
    .await
    .with_context(|| {
        format!(
            "could not open the database {}",
            crate::store::redact_url(&url)
        )
    })?;
    store
        .migrate()
        .await
        .context("could not apply database migrations")?;
    Ok(store)
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        config.validate()?;
        let store = open_store(&config).await?;
        let listener =
            listen(config.bind).with_context(|| format!("could not listen on {}", config.bind))?;
        let open_files = crate::http::serve::open_file_limit();
        let budget = crate::http::serve::connection_budget(
            open_files,
            config.db_max_connections,
            config.max_connections,
        );
        if budget.websockets < config.max_connections {
            tracing::warn!(
                open_files,
                requested = config.max_connections,
                websockets = budget.websockets,
                http = budget.http,
                "--max-connections lowered to fit the open-file limit (raise `ulimit -n` for more)"
            );
        } else {
            tracing::info!(
                open_files,
                websockets = budget.websockets,
                http = budget.http,
                "connection limits"
            );
        }

        let hub = Hub::new();
        let rooms = Arc::new(RoomCache::default());
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let redis = match &config.redis_url {
            Some(url) => Some(
                RedisLink::start(
                    url,
                    &config.redis_namespace,
                    hub.clone(),
                    rooms.clone(),
                    &tasks,
                    shutdown.clone(),
                )
                .context("invalid --redis-url")?,
            ),
            None => None,
        };
        let bus = Bus::new(hub.clone(), rooms.clone(), redis.clone());
        // With several nodes the others' commits and profile changes arrive only
        // through the lossy bus: a tail fed by them could miss one, so it is off.
        let tail = Arc::new(match &config.redis_url {
            Some(_) => TailCache::disabled(),
            None => TailCache::new(config.tail_cache_mib * 1024 * 1024),
        });
        let writer_stop = CancellationToken::new();
        let (writer, writer_task) = MessageWriter::start(
            store.clone(),
            bus.clone(),
            tail.clone(),
            writer_stop.clone(),
        );
        let dummy_password_hash = accounts::hash_password(accounts::random_token()).await?;
        let images = Arc::new(ImagePool::new(
            config.image_workers(),
            config.image_queue,
            config.image_queue_timeout,
        ));
        let blobs = crate::storage::open(
            config.storage_url.as_deref(),
            &config.data_dir,
            &config.s3_options(),
        )
        .await
        .context("could not open the attachment storage")?;
        tracing::info!(storage = %blobs.describe(), "attachments");
        clear_spool(&config.data_dir).await;
        let services = Services {
            limits: Arc::new(Limits::new(&config, redis)),
            config: Arc::new(config),
            store,
            bus,
            rooms,
            tail,
            writer,
            typing: Arc::new(Typing::default()),
            dummy_password_hash: Arc::from(dummy_password_hash),
            shutdown,
            tasks,
            images,
            blobs,
        };
        let state = AppState {
            connections: Arc::new(Semaphore::new(budget.websockets)),
            user_slots: UserSlots::new(services.config.max_connections_per_user),
            proxies: Arc::from(services.config.proxies()),
            i18n: Arc::new(crate::i18n::Catalogs::load()?),
            assets: Arc::new(crate::http::assets::AssetBundle::load()),
            services,
        };
        rooms::ensure_default_room(&state.store, &state.config).await?;
        spawn_background(&state);
        spawn_bus_upkeep(&state);
        crate::services::attachments::spawn_cleanup(
            state.services.clone(),
            Duration::from_secs(15 * 60),
        );
        Ok(Self {
            listener,
            state,
            max_http_connections: budget.http,
            writer_stop,
            writer_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or(self.state.config.bind)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `state().shutdown` is cancelled, then shuts down in order:
    /// stop accepting, close WebSockets (1012) after their queued frames, finish
    /// message writes, close the database.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            listener,
            state,
            max_http_connections,
            writer_stop,
            writer_task,
        } = self;
        let app = crate::http::router(state.clone());
        let limits = ServeLimits {
            header_timeout: state.config.http_header_timeout,
            max_open: max_http_connections,
        };
        crate::http::serve::serve(listener, app, limits, state.shutdown.clone()).await;

        // axum does not wait for upgraded connections: sessions are in `tasks`,
        // and each closes with 1012 once its queued frames are written.
        state.tasks.close();
        let deadline = state.config.shutdown_timeout;
        if tokio::time::timeout(deadline, state.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some sessions did not finish within {deadline:?}");
        }
        // Users still in their grace period will not come back to this node:
        // they are gone now (other nodes hear it before this one leaves).
        let departures = state.bus.hub().take_all_departures();
        let announced = async {
            for (user, rooms) in departures {
                presence::depart(&state, user, &rooms).await;
            }
        };
        if tokio::time::timeout(deadline, announced).await.is_err() {
            tracing::warn!("some departures were not announced within {deadline:?}");
        }
        if let Some(redis) = state.bus.redis() {
            redis.leave().await;
        }
        writer_stop.cancel();
        if tokio::time::timeout(Duration::from_secs(10), writer_task)
            .await
            .is_err()
        {
            tracing::warn!("the message writer did not finish in time");
        }
        state.store.close().await;
        tracing::info!("shut down");
        Ok(())
    }
}

/// Removes uploads a previous run was receiving when it stopped.
async fn clear_spool(data_dir: &std::path::Path) {
    let dir = crate::services::attachments::spool_dir(data_dir);
    if let Err(err) = tokio::fs::remove_dir_all(&dir).await
        && err.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(error = %err, dir = %dir.display(), "could not clear unfinished uploads");
    }
}

/// The shared timers: heartbeat for every connection, typing expiry, limit upkeep.
fn spawn_background(state: &AppState) {
    let s = state.clone();
    state.tasks.spawn(async move {
        let period = s.config.heartbeat_interval;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut previous_tick = now_ms();
        // Extending sessions waits on the database: it runs beside the
        // heartbeat, one batch at a time, so pings never wait for it.
        let mut refreshing: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = s.shutdown.cancelled() => break,
            }
            let now = now_ms();
            let frame = ServerEvent::Heartbeat { timestamp: now }.encode();
            // A peer that sent nothing since the previous tick did not answer
            // its ping; a connection whose session expired is closed.
            let due = s.bus.hub().heartbeat(
                &frame,
                previous_tick,
                now,
                accounts::refresh_sessions_expiring_before(&s, now),
            );
            previous_tick = now;
            // A session still due when a batch is running is due at the next tick too.
            if !due.is_empty() && refreshing.as_ref().is_none_or(|t| t.is_finished()) {
                let state = s.clone();
                refreshing = Some(s.tasks.spawn(async move {
                    accounts::refresh_connected_sessions(&state, due).await;
                }));
            }
        }
    });

    let s = state.clone();
    state.tasks.spawn(async move {
        let mut ticker = tokio::time::interval(Duration::from_secs(1));
        let mut last_housekeeping = Instant::now();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = s.shutdown.cancelled() => break,
            }
            messages::expire_typing(&s);
            // Users whose grace period ran out without a reconnect are gone.
            let departures = s.bus.hub().take_departures(Instant::now());
            if !departures.is_empty() {
                let state = s.clone();
                s.tasks.spawn(async move {
                    for (user, rooms) in departures {
                        presence::depart(&state, user, &rooms).await;
                    }
                });
            }
            if last_housekeeping.elapsed() > Duration::from_secs(60) {
                s.limits.housekeeping();
                last_housekeeping = Instant::now();
            }
        }
    });
}

/// With Redis: this node's heartbeat, and taking over nodes that died silently.
fn spawn_bus_upkeep(state: &AppState) {
    let Some(redis) = state.bus.redis().cloned() else {
        return;
    };
    let s = state.clone();
    state.tasks.spawn(async move {
        let mut ticker = tokio::time::interval(crate::bus::redis::HEARTBEAT);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = s.shutdown.cancelled() => break,
            }
            redis.heartbeat().await;
            presence::reap_dead_nodes(&s, &redis).await;
        }
    });
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn shutdown_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        #[cfg(unix)]
        let terminate = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(err) => {
                    tracing::error!(error = %err, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = ctrl_c => {}
            () = terminate => {}
        }
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}

/// Connections the kernel may hold waiting for `accept`. A reconnect storm
/// (thousands of clients at once) overflows tokio's default of 1 024, and each
/// dropped handshake costs its client a SYN retry a second or more later. The
/// kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 65_535;

fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As `TcpListener::bind` does: a restarted server can bind again at once.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}
