//! The JSON API under `/tools/api/`. Success is `{"success":true,"data":...}`;
//! failure `{"success":false,"error":{"code","message"}}` (see `AppError`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub mod attachments;
pub mod auth;
pub mod messages;
pub mod rooms;
pub mod users;

#[derive(Serialize)]
struct Envelope<T> {
    success: bool,
    data: T,
}

/// 200 with `{"success":true,"data":data}`.
pub fn ok<T: Serialize>(data: T) -> Response {
    Json(Envelope {
        success: true,
        data,
    })
    .into_response()
}

/// 201 with `{"success":true,"data":data}`.
pub fn created<T: Serialize>(data: T) -> Response {
    (
        StatusCode::CREATED,
        Json(Envelope {
            success: true,
            data,
        }),
    )
        .into_response()
}

/// `{"success":true,"data":null}`, for actions with nothing to return.
pub fn done() -> Response {
    ok(())
}
