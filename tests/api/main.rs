//! Integration tests: one binary, the real server, real HTTP and WebSocket clients.

// Tests may unwrap: a panic is a failed test with a clear location.
#![allow(clippy::unwrap_used)]

mod attachments;
mod auth;
mod bench;
mod errors;
mod helpers;
mod hostile;
mod images;
mod input_rules;
mod lifecycle;
mod limits;
mod messages;
mod moderation;
mod multinode;
mod outage;
mod permissions;
mod profiles;
mod quotas;
mod response_headers;
mod room_list;
mod rooms;
mod sessions;
mod ws;
