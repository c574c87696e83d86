//! Everything a handler or session needs, passed explicitly (no globals).

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cluster::Cluster;
use crate::config::Config;
use crate::domain::net::IpNet;
use crate::http::assets::AssetBundle;
use crate::i18n::Catalogs;
use crate::images::ImagePool;
use crate::limits::Limits;
use crate::realtime::hub::Hub;
use crate::realtime::typing::Typing;
use crate::realtime::user_slots::UserSlots;
use crate::services::room_cache::RoomCache;
use crate::services::tail_cache::TailCache;
use crate::services::writer::MessageWriter;
use crate::store::DynStore;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: DynStore,
    /// This node's connections.
    pub hub: Hub,
    /// Events and presence across nodes (just `hub` without Redis).
    pub cluster: Cluster,
    pub rooms: Arc<RoomCache>,
    /// The recent messages of active rooms (off with several nodes).
    pub tail: Arc<TailCache>,
    pub writer: MessageWriter,
    pub limits: Arc<Limits>,
    pub typing: Arc<Typing>,
    /// WebSocket connections still allowed (`--max-connections`, clamped to
    /// what the open-file limit allows).
    pub connections: Arc<Semaphore>,
    /// WebSocket connections per user (`--max-connections-per-user`).
    pub user_slots: Arc<UserSlots>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: Arc<[IpNet]>,
    /// A password hash to verify against when the username does not exist,
    /// so a failed login takes as long whether or not the user exists.
    pub dummy_password_hash: Arc<str>,
    /// The web app's UI strings, per language.
    pub i18n: Arc<Catalogs>,
    /// The web app's scripts and styles.
    pub assets: Arc<AssetBundle>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Background tasks and WebSocket sessions, awaited at shutdown.
    pub tasks: TaskTracker,
    /// Image decoding, a few at once (`--image-workers`, `--image-queue`).
    pub images: Arc<ImagePool>,
}
