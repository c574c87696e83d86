//! `/tools/api/chat/<room_id>/messages/`, `.../send/` and `.../read/`.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{created, done, ok};
use crate::domain::ids::RoomId;
use crate::domain::message::InsertOutcome;
use crate::error::Result;
use crate::http::api::rooms::room_id;
use crate::http::extract::{ApiJson, ApiQuery, AuthUser};
use crate::http::state::AppState;
use crate::services::messages::{self, ReadUpTo};
use crate::services::rooms::sender_of;
use crate::services::writer::attachments_taken;
use crate::views::MessageView;

#[derive(Deserialize)]
pub struct HistoryQuery {
    before: Option<i64>,
    after: Option<i64>,
    limit: Option<u32>,
}

/// Not wrapped in `data`: the original system's clients read these fields at the top.
#[derive(Serialize)]
struct HistoryView<'a> {
    success: bool,
    room_id: &'a RoomId,
    messages: Vec<MessageView<'a>>,
    has_more: bool,
}

/// `GET /tools/api/chat/<room_id>/messages/?before=|after=<seq>&limit=` (ascending seq).
pub async fn list_messages(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Response> {
    let room = room_id(&id)?;
    let page = messages::page(query.before, query.after, query.limit)?;
    let (page, mine, others) = messages::history(&state, auth.user.id, &room, page).await?;
    let views = page
        .messages
        .iter()
        .map(|m| MessageView::for_viewer(m, auth.user.id, mine, others))
        .collect();
    Ok(axum::Json(HistoryView {
        success: true,
        room_id: &room,
        messages: views,
        has_more: page.has_more,
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct SendRequest {
    #[serde(alias = "message", default)]
    content: String,
    #[serde(default)]
    client_id: Option<String>,
    /// Ids of uploads (`POST …/uploads/`) the message posts; the content is
    /// then an optional caption.
    #[serde(default)]
    attachments: Vec<String>,
}

/// `POST /tools/api/chat/<room_id>/send/` `{"content","client_id"?,"attachments"?}` → 201 with the
/// stored message (200 with the original when the `client_id` was used before).
pub async fn send_message(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SendRequest>,
) -> Result<Response> {
    let room = room_id(&id)?;
    let sender = sender_of(&auth.user);
    let outcome = messages::post(
        &state,
        &sender,
        &room,
        &body.content,
        body.client_id.as_deref(),
        &body.attachments,
    )
    .await?;
    Ok(match &outcome {
        InsertOutcome::Inserted(m) => created(MessageView::new(m, true, false)),
        InsertOutcome::Duplicate(m) => ok(MessageView::new(m, true, false)),
        InsertOutcome::AttachmentsTaken => return Err(attachments_taken()),
    })
}

#[derive(Deserialize)]
pub struct ReadRequest {
    #[serde(default)]
    up_to_seq: Option<i64>,
    #[serde(default)]
    message_ids: Option<Vec<String>>,
}

/// `POST /tools/api/chat/<room_id>/read/` `{"up_to_seq"}` or `{"message_ids"}`.
pub async fn mark_read(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReadRequest>,
) -> Result<Response> {
    let room = room_id(&id)?;
    let target = match (body.up_to_seq, body.message_ids) {
        (Some(seq), None) => ReadUpTo::Seq(seq),
        (None, Some(ids)) => ReadUpTo::Messages(ids),
        _ => {
            return Err(crate::error::AppError::bad_request(
                "invalid_field",
                "give up_to_seq or message_ids",
            ));
        }
    };
    messages::mark_read(&state, auth.user.id, &room, target).await?;
    Ok(done())
}
