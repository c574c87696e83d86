//! `/invite/<code>`: where an invite link leads, and joining through it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

use crate::domain::room::RoomKind;
use crate::domain::time::now_ms;
use crate::error::Result;
use crate::http::state::AppState;
use crate::services::rooms;

use super::notice::message_page;
use super::{Page, Submitted, form_csrf, html, room_path, session_of, to_login, user_page};

#[derive(Template)]
#[template(path = "invite.html")]
struct InviteTemplate<'a> {
    page: Page<'a>,
    room_name: String,
    room_kind: &'static str,
    code: String,
    csrf: String,
}

/// `GET /invite/<code>`: what the link leads to, and a button to join.
pub async fn invite_page(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
    Path(code): Path<String>,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    let now = now_ms();
    let invite = state.store.get_invite(&code).await?.filter(|i| {
        !i.revoked
            && i.expires_at.is_none_or(|at| now < at)
            && i.max_uses.is_none_or(|max| i.uses < max)
    });
    let room = match &invite {
        Some(invite) => state.store.get_room(&invite.room_id).await?,
        None => None,
    };
    let Some(room) = room else {
        return Ok(message_page(
            &state,
            Some(&user),
            StatusCode::NOT_FOUND,
            "page.invite_invalid_title",
            state
                .i18n
                .get(user.language)
                .error("invite_invalid", "invalid invite"),
        ));
    };
    if state.store.get_member(&room.id, user.id).await?.is_some() {
        return Ok(Redirect::to(&room_path(room.id.as_str())).into_response());
    }
    let template = InviteTemplate {
        page: user_page(&state, &user, None),
        room_name: room.name,
        room_kind: if room.kind == RoomKind::Public {
            "public"
        } else {
            "group"
        },
        code,
        csrf: session.csrf_token.clone(),
    };
    Ok(html(&template, StatusCode::OK))
}

/// `POST /invite/<code>` (form): joins, then opens the room.
pub async fn invite_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
    Path(code): Path<String>,
    form: Submitted,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    form_csrf(form, &session)?;
    match rooms::redeem_invite(&state, &user, &code).await {
        Ok(room) => Ok(Redirect::to(&room_path(room.id.as_str())).into_response()),
        Err(err) if !err.is_server_error() => Ok(message_page(
            &state,
            Some(&user),
            err.status(),
            "page.invite_invalid_title",
            state
                .i18n
                .get(user.language)
                .error(err.code(), &err.public_message()),
        )),
        Err(err) => Err(err),
    }
}
