//! The rules: chat operations shared by the REST API and WebSocket sessions,
//! each taking the [`Services`] context. Handlers extract and respond; the
//! rules live here. Reaches the store, the bus and `domain/`, and what the
//! server tells clients (`events`); never `realtime/`, `http/`, `bench/` or
//! the command line, so a rule cannot depend on how it was asked for.

pub mod accounts;
pub mod attachments;
pub mod blocks;
mod context;
pub mod messages;
pub mod presence;
pub mod profiles;
pub mod rooms;
pub mod tail_cache;
pub mod typing;
pub mod writer;

pub use context::Services;
