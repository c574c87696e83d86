//! WebSocket sessions: what clients send (`protocol`), each connection's
//! reader and writer (`session`), in-order exactly-once delivery (`delivery`)
//! and the per-connection budgets. Calls the services for every rule and the
//! bus's hub for fan-out; never reaches `http/` (the upgrade hands it a
//! socket) or `bench/`.

pub mod delivery;
pub mod frame_budget;
pub mod protocol;
pub mod session;
pub mod user_slots;
