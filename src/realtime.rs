//! Real-time delivery: the hub, the WebSocket protocol and sessions.

pub mod delivery;
pub mod hub;
pub mod outbox;
pub mod protocol;
pub mod session;
pub mod typing;
