//! What the rules need, passed explicitly to every service (no globals): the
//! store, the bus, the caches, the limits and the configuration. It holds
//! nothing of HTTP or of sockets; `http::state::AppState` wraps it with what
//! only the web layer needs.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::Bus;
use crate::config::Config;
use crate::images::ImagePool;
use crate::limits::Limits;
use crate::services::tail_cache::TailCache;
use crate::services::typing::Typing;
use crate::services::writer::MessageWriter;
use crate::storage::DynBlobStore;
use crate::store::DynStore;
use crate::store::room_cache::RoomCache;

#[derive(Clone)]
pub struct Services {
    pub config: Arc<Config>,
    pub store: DynStore,
    /// Events and presence across nodes; its `hub()` is this node's
    /// connections (all of the bus without Redis).
    pub bus: Bus,
    pub rooms: Arc<RoomCache>,
    /// The recent messages of active rooms (off with several nodes).
    pub tail: Arc<TailCache>,
    pub writer: MessageWriter,
    pub limits: Arc<Limits>,
    pub typing: Arc<Typing>,
    /// A password hash to verify against when the username does not exist,
    /// so a failed login takes as long whether or not the user exists.
    pub dummy_password_hash: Arc<str>,
    /// Cancelled when the server begins shutting down.
    pub shutdown: CancellationToken,
    /// Background tasks and WebSocket sessions, awaited at shutdown.
    pub tasks: TaskTracker,
    /// Image decoding, a few at once (`--image-workers`, `--image-queue`).
    pub images: Arc<ImagePool>,
    /// Where attachments' files are kept (a directory, or object storage
    /// shared by every node).
    pub blobs: DynBlobStore,
}
