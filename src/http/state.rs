//! Everything a handler needs, passed explicitly (no globals): the services'
//! context and what only the web layer uses (the connection budget, the
//! proxies it trusts, the UI's strings and assets).

use std::ops::Deref;
use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::domain::net::IpNet;
use crate::http::assets::AssetBundle;
use crate::i18n::Catalogs;
use crate::realtime::user_slots::UserSlots;
use crate::services::Services;

#[derive(Clone)]
pub struct AppState {
    pub services: Services,
    /// WebSocket connections still allowed (`--max-connections`, clamped to
    /// what the open-file limit allows).
    pub connections: Arc<Semaphore>,
    /// WebSocket connections per user (`--max-connections-per-user`).
    pub user_slots: Arc<UserSlots>,
    /// Reverse proxies whose `X-Forwarded-For` is believed.
    pub proxies: Arc<[IpNet]>,
    /// The web app's UI strings, per language.
    pub i18n: Arc<Catalogs>,
    /// The web app's scripts and styles.
    pub assets: Arc<AssetBundle>,
}

/// Handlers call the services with `&state`: the web layer's state is the
/// services' context plus its own parts.
impl Deref for AppState {
    type Target = Services;

    fn deref(&self) -> &Services {
        &self.services
    }
}
