//! Parley: a self-hosted real-time chat server.
//!
//! A request flows `http` (routes, extractors) → `services` (the rules) →
//! `store` (SQLite or PostgreSQL) and, for live events, → `bus` (this node's
//! hub, and Redis to the others) → each connection's `realtime::session`.
//! README's Architecture section draws the layers; `tests/layers.rs` keeps
//! them.

pub mod app;
pub mod avatar;
pub mod bench;
pub mod bus;
pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod i18n;
pub mod images;
pub mod limits;
pub mod media;
pub mod realtime;
pub mod services;
pub mod storage;
pub mod store;
pub mod telemetry;
pub mod views;
