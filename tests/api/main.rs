//! Integration tests: one binary, the real server, real HTTP and WebSocket clients.

// Tests may unwrap: a panic is a failed test with a clear location.
#![allow(clippy::unwrap_used)]

mod auth;
mod bench;
mod errors;
mod helpers;
mod images;
mod input_rules;
mod lifecycle;
mod messages;
mod multinode;
mod outage;
mod profiles;
mod response_headers;
mod rooms;
mod sessions;
mod ws;
