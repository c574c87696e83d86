//! `/tools/api/user/...`: profiles, profile edits, avatars and user search.

use axum::body::Bytes;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::ok;
use crate::avatar;
use crate::domain::ids::UserId;
use crate::error::{AppError, Result};
use crate::http::extract::{ApiJson, ApiQuery, AuthUser, CSRF_FORM_FIELD, FormAuthUser};
use crate::http::state::AppState;
use crate::services::blocks;
use crate::services::profiles::{self, ProfilePatch};

/// `me` or a user id; anything else is an unknown user.
fn user_id(raw: &str, auth: &AuthUser) -> Result<UserId> {
    if raw == "me" {
        return Ok(auth.user.id);
    }
    UserId::parse(raw).map_err(|_| AppError::user_not_found())
}

/// `GET /tools/api/user/<user_id>/profile/` (`me` works too).
pub async fn get_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = user_id(&id, &auth)?;
    Ok(ok(profiles::get(&state, id, &auth.user).await?))
}

#[derive(serde::Serialize)]
struct BlockView {
    user_id: UserId,
    username: String,
    display_name: String,
    avatar_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    blocked_at: Option<String>,
}

impl BlockView {
    fn new(user: &crate::domain::user::User, blocked_at: Option<i64>) -> Self {
        Self {
            user_id: user.id,
            username: user.username.clone(),
            display_name: user.shown_name().to_string(),
            avatar_url: crate::views::avatar_url(user.id, user.avatar_version, user.shown_name()),
            blocked_at: blocked_at.map(crate::domain::time::rfc3339),
        }
    }
}

/// `POST /tools/api/user/<user_id>/block/`: blocks that user (idempotent).
pub async fn block_user(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = user_id(&id, &auth)?;
    let blocked = blocks::block(&state, &auth.user, id).await?;
    Ok(ok(BlockView::new(&blocked, None)))
}

/// `DELETE /tools/api/user/<user_id>/block/`.
pub async fn unblock_user(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = user_id(&id, &auth)?;
    blocks::unblock(&state, &auth.user, id).await?;
    Ok(super::done())
}

/// `GET /tools/api/user/me/blocks/`: the users I block, most recent first.
pub async fn list_blocks(State(state): State<AppState>, auth: AuthUser) -> Result<Response> {
    let list = blocks::list(&state, &auth.user).await?;
    Ok(ok(list
        .iter()
        .map(|(user, at)| BlockView::new(user, Some(*at)))
        .collect::<Vec<_>>()))
}

/// `GET /tools/api/user/me/profile/`.
pub async fn get_my_profile(State(state): State<AppState>, auth: AuthUser) -> Result<Response> {
    Ok(ok(
        profiles::view(&state, &auth.user, Some(&auth.user)).await?
    ))
}

/// `PATCH /tools/api/user/me/profile/`.
pub async fn update_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(patch): ApiJson<ProfilePatch>,
) -> Result<Response> {
    Ok(ok(profiles::update(&state, &auth.user, patch).await?))
}

/// `POST /tools/api/user/me/avatar/` (multipart, field `avatar` or the first
/// file). A cookie request may carry its CSRF token in a `csrfmiddlewaretoken`
/// field instead of the header, so a plain HTML form can upload.
pub async fn upload_avatar(
    State(state): State<AppState>,
    auth: FormAuthUser,
    form: std::result::Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<Response> {
    let upload = read_avatar_form(form).await;
    // CSRF before anything about the body: a refused request learns nothing else.
    let form_token = upload.as_ref().ok().and_then(|u| u.csrf_token.as_deref());
    let auth = auth.verify(form_token)?;
    let bytes = upload?.file.ok_or_else(|| {
        AppError::bad_request(
            "missing_file",
            "send the image as a multipart file field \"avatar\"",
        )
    })?;
    Ok(ok(
        profiles::set_avatar(&state, &auth.user, bytes.to_vec()).await?
    ))
}

/// `DELETE /tools/api/user/me/avatar/`: back to the generated avatar.
pub async fn delete_avatar(State(state): State<AppState>, auth: AuthUser) -> Result<Response> {
    Ok(ok(profiles::remove_avatar(&state, &auth.user).await?))
}

/// What an avatar upload form holds.
struct AvatarForm {
    file: Option<Bytes>,
    csrf_token: Option<String>,
}

async fn read_avatar_form(
    form: std::result::Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Result<AvatarForm> {
    let mut form = form.map_err(|e| AppError::bad_request("invalid_upload", e.body_text()))?;
    let mut upload = AvatarForm {
        file: None,
        csrf_token: None,
    };
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| multipart_error(e.status(), e.body_text()))?
    {
        if field.name() == Some(CSRF_FORM_FIELD) && field.file_name().is_none() {
            let token = field
                .text()
                .await
                .map_err(|e| multipart_error(e.status(), e.body_text()))?;
            upload.csrf_token = Some(token);
            continue;
        }
        let is_file = field.file_name().is_some() || field.name() == Some("avatar");
        if is_file && upload.file.is_none() {
            upload.file = Some(
                field
                    .bytes()
                    .await
                    .map_err(|e| multipart_error(e.status(), e.body_text()))?,
            );
        }
    }
    Ok(upload)
}

fn multipart_error(status: axum::http::StatusCode, text: String) -> AppError {
    if status == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        AppError::PayloadTooLarge {
            code: "payload_too_large",
            message: "the upload is over 8 MB (avatars are at most 5 MB)".into(),
        }
    } else {
        AppError::bad_request("invalid_upload", text)
    }
}

/// `GET /avatars/<user_id>?v=...`: the uploaded avatar, or generated initials.
/// The URL changes with the image, so it is cached for a year.
pub async fn get_avatar(State(state): State<AppState>, Path(id): Path<String>) -> Result<Response> {
    let id = UserId::parse(&id).map_err(|_| AppError::user_not_found())?;
    let user = state
        .store
        .get_user(id)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    let cache = HeaderValue::from_static("public, max-age=31536000, immutable");
    if user.avatar_version > 0
        && let Some(png) = state.store.get_avatar(id).await?
    {
        return Ok((
            [
                (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
                (header::CACHE_CONTROL, cache),
            ],
            png,
        )
            .into_response());
    }
    let svg = avatar::generated_svg(user.id, user.shown_name());
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (header::CACHE_CONTROL, cache),
            // An SVG opened directly must not run anything.
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'"),
            ),
        ],
        svg,
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct SearchQuery {
    #[serde(default)]
    q: String,
}

/// `GET /tools/api/user/search/?q=`: users by username or display name.
pub async fn search_users(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<SearchQuery>,
) -> Result<Response> {
    Ok(ok(profiles::search(&state, &query.q, &auth.user).await?))
}
