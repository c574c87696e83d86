//! The chat app: `/` and `/tools/chat/enhanced/<room_id>/`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use crate::domain::ids::RoomId;
use crate::domain::user::User;
use crate::error::{AppError, Result};
use crate::http::state::AppState;
use crate::services::{profiles, rooms};
use crate::store::SessionRecord;
use crate::views::ProfileView;

use super::notice::message_page;
use super::{Page, html, script_boot, session_of, to_login, user_page};

#[derive(Template)]
#[template(path = "app.html")]
struct AppTemplate<'a> {
    page: Page<'a>,
    me: ProfileView,
    csrf: String,
    /// The room in the URL: without one, a phone starts at the room list.
    room: Option<String>,
}

#[derive(Serialize)]
struct AppBoot<'a> {
    me: &'a ProfileView,
    /// The room to open first (`/tools/chat/enhanced/<room_id>/`), if any.
    room: Option<&'a str>,
    max_message_chars: usize,
    /// Upload limits, so the web app refuses a file it knows is too large
    /// before sending it and names the limit when the server refuses one.
    max_upload_bytes: u64,
    max_upload_bytes_per_day: u64,
    max_attachments_per_message: usize,
    max_voice_seconds: u32,
}

/// `GET /`: the chat app.
pub async fn app_page(State(state): State<AppState>, jar: CookieJar, uri: Uri) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    render_app(&state, &session, &user, None).await
}

/// `GET /tools/chat/enhanced/<room_id>/`: the app opened on a room. An unknown
/// room is a not-found page: a GET never creates anything.
pub async fn enhanced_chat_page(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
    Path(room_id): Path<String>,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    let Ok(room) = RoomId::parse(&room_id) else {
        return Ok(room_missing_page(&state, &user));
    };
    match rooms::access(&state, &room, user.id).await {
        Ok(_) => render_app(&state, &session, &user, Some(room.as_str())).await,
        Err(AppError::NotFound { .. }) => Ok(room_missing_page(&state, &user)),
        Err(AppError::Forbidden { .. }) => Ok(message_page(
            &state,
            Some(&user),
            StatusCode::FORBIDDEN,
            "page.forbidden_room_title",
            state.i18n.get(user.language).t("page.forbidden_room_text"),
        )),
        Err(other) => Err(other),
    }
}

fn room_missing_page(state: &AppState, user: &User) -> Response {
    message_page(
        state,
        Some(user),
        StatusCode::NOT_FOUND,
        "page.missing_room_title",
        state.i18n.get(user.language).t("page.missing_room_text"),
    )
}

async fn render_app(
    state: &AppState,
    session: &SessionRecord,
    user: &User,
    room: Option<&str>,
) -> Result<Response> {
    let me = profiles::view(state, user, Some(user)).await?;
    let boot = AppBoot {
        me: &me,
        room,
        max_message_chars: state.config.max_message_chars,
        max_upload_bytes: state.config.max_upload_bytes,
        max_upload_bytes_per_day: state.config.max_upload_bytes_per_day,
        max_attachments_per_message: state.config.max_attachments_per_message,
        max_voice_seconds: state.config.max_voice_seconds,
    };
    let page = user_page(
        state,
        user,
        Some(script_boot(state, user, &session.csrf_token, boot)),
    );
    let template = AppTemplate {
        page,
        me,
        csrf: session.csrf_token.clone(),
        room: room.map(str::to_owned),
    };
    Ok(html(&template, StatusCode::OK))
}
