//! Parley: a self-hosted real-time chat server.
//!
//! A request flows `http` (routes, extractors) → `services` (the rules) →
//! `store` (SQLite or PostgreSQL) and, for live events, → `realtime::hub` →
//! each connection's `realtime::session`.

pub mod app;
pub mod avatar;
pub mod bench;
pub mod cluster;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod http;
pub mod i18n;
pub mod images;
pub mod limits;
pub mod realtime;
pub mod services;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod views;
