//! Real-time delivery: the hub, the WebSocket protocol and sessions.

pub mod delivery;
pub mod frame_budget;
pub mod hub;
pub mod outbox;
pub mod protocol;
pub mod session;
pub mod typing;
pub mod user_slots;
