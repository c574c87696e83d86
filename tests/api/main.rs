//! Integration tests: one binary, the real server, real HTTP and WebSocket clients.

mod auth;
mod helpers;
mod lifecycle;
mod messages;
mod profiles;
mod rooms;
mod ws;
