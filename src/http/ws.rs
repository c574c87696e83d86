//! WebSocket upgrades: `/ws/chat/<room_id>/` (one room) and `/ws/` (all my rooms).
//! Everything is checked before upgrading, so refusals are plain HTTP errors.

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use url::Url;

use crate::bus::hub::{Scope, close};
use crate::domain::ids::Credential;
use crate::domain::user::User;
use crate::error::{AppError, Result};
use crate::http::api::rooms::room_id;
use crate::http::extract::ApiQuery;
use crate::http::identity::{Caller, Claim};
use crate::http::state::AppState;
use crate::realtime::session::{self, Opening, SessionStart, Tickets};
use crate::services::{accounts, rooms};

/// Largest frame or message a client may send.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Outgoing bytes gathered before a socket write, when more frames are queued.
const WRITE_BATCH_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
pub struct WsQuery {
    since_seq: Option<i64>,
}

/// `GET /ws/chat/<room_id>/[?since_seq=N]`.
pub async fn room_socket(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<WsQuery>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let revocations_before = state.bus.hub().revocations();
    let (user, login) = authenticate(&state, &headers).await?;
    let room = room_id(&id)?;
    rooms::access(&state, &room, user.id).await?;
    if query.since_seq.is_some_and(|s| s < 0) {
        return Err(AppError::bad_request(
            "invalid_query",
            "since_seq is 0 or more",
        ));
    }
    upgrade_to(
        state,
        upgrade,
        SessionStart {
            user,
            credential: login.credential,
            expires_at: login.expires_at,
            scope: Scope::Room(room),
            since_seq: query.since_seq,
            revocations_before,
            tickets: None,
        },
    )
}

/// `GET /ws/`: every room the user belongs to, following joins and leaves.
pub async fn user_socket(
    State(state): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    let revocations_before = state.bus.hub().revocations();
    let (user, login) = authenticate(&state, &headers).await?;
    upgrade_to(
        state,
        upgrade,
        SessionStart {
            user,
            credential: login.credential,
            expires_at: login.expires_at,
            scope: Scope::AllRooms,
            since_seq: None,
            revocations_before,
            tickets: None,
        },
    )
}

fn upgrade_to(
    state: AppState,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    mut start: SessionStart,
) -> Result<Response> {
    let upgrade =
        upgrade.map_err(|e| AppError::bad_request("websocket_required", e.body_text()))?;
    let permit =
        state
            .connections
            .clone()
            .try_acquire_owned()
            .map_err(|_| AppError::Unavailable {
                code: "too_many_connections",
                message: "the server is at its connection limit; try again later".into(),
            })?;
    let tasks = state.tasks.clone();
    let upgrade = configure(upgrade);
    let Some(user_slot) = state.user_slots.take(start.user.id) else {
        // Refused after the upgrade, with a close code a browser can read (it
        // hides the status of a refused upgrade). The newest goes, not the
        // oldest: closing old ones would have every tab reconnect in turn,
        // each closing another.
        let max = state.user_slots.max();
        tracing::info!(user_id = %start.user.id, max, "too many connections for one user");
        return Ok(upgrade.on_upgrade(move |socket| {
            tasks.track_future(session::refuse(
                socket,
                close::TOO_MANY_CONNECTIONS,
                "too_many_connections",
                format!("you already have {max} connections open; close some tabs or clients"),
                permit,
            ))
        }));
    };
    start.tickets = Some(Tickets { permit, user_slot });
    let opening = Box::new(Opening {
        ctx: state.services,
        start,
    });
    Ok(upgrade
        .on_upgrade(move |socket| tasks.track_future(session::run(Box::new(socket), opening))))
}

/// Frame limits and buffer sizes of every connection.
fn configure(upgrade: WebSocketUpgrade) -> WebSocketUpgrade {
    upgrade
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        // Small buffers: memory per idle connection is what limits how many we hold.
        .read_buffer_size(1024)
        // Frames queued together go out in one write (the writer flushes after
        // each batch); 0 would make a syscall per frame. The buffer only grows
        // as far as a batch needs, so idle connections stay small.
        .write_buffer_size(WRITE_BATCH_BYTES)
        .max_write_buffer_size(1024 * 1024)
}

/// What a connection was authenticated with, and until when it works.
struct Login {
    credential: Credential,
    /// Unix ms; `i64::MAX` for API tokens, which do not expire.
    expires_at: i64,
}

/// Bearer token, or session cookie from an allowed Origin (a browser sends
/// cookies on cross-site WebSocket requests too, so the Origin must be checked,
/// and must be there).
async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<(User, Login)> {
    let claim = Claim::of(headers)?.ok_or_else(AppError::unauthenticated)?;
    if let Claim::Session(_) = claim {
        // Browsers always send Origin on a WebSocket upgrade; a cookie request
        // without one is not a page we served, so it is refused like a foreign one.
        // Non-browser clients authenticate with a bearer token instead.
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or_default();
        if !origin_allowed(state, headers, origin) {
            return Err(AppError::forbidden(
                "origin_not_allowed",
                "cookie-authenticated WebSockets need an Origin header naming an allowed origin",
            ));
        }
    }
    match (claim.identify(state).await?, &claim) {
        (Some(Caller::Token(id, user)), _) => Ok((
            user,
            Login {
                credential: Credential::Token(id),
                expires_at: i64::MAX,
            },
        )),
        (Some(Caller::Session(session, user)), Claim::Session(cookie)) => Ok((
            user,
            Login {
                credential: Credential::Session(accounts::session_key(cookie)),
                expires_at: session.expires_at,
            },
        )),
        _ => Err(claim.refused()),
    }
}

/// Allowed: the public URL's origin, the origin the request was addressed to
/// (its Host), and `--allowed-origins`.
fn origin_allowed(state: &AppState, headers: &HeaderMap, origin: &str) -> bool {
    let Ok(origin) = Url::parse(origin) else {
        return false;
    };
    let origin = origin.origin();
    if state.config.public_url().origin() == origin {
        return true;
    }
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        let scheme = if state.config.secure_cookies() {
            "https"
        } else {
            "http"
        };
        if let Ok(own) = Url::parse(&format!("{scheme}://{host}/"))
            && own.origin() == origin
        {
            return true;
        }
    }
    state
        .config
        .allowed_origins
        .iter()
        .any(|allowed| Url::parse(allowed).is_ok_and(|u| u.origin() == origin))
}
