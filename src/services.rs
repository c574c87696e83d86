//! Chat operations shared by the REST API and WebSocket sessions. Handlers
//! extract and respond; the rules live here.

pub mod accounts;
pub mod blocks;
pub mod messages;
pub mod presence;
pub mod profiles;
pub mod room_cache;
pub mod rooms;
pub mod tail_cache;
pub mod writer;
