//! Client-facing errors. Every failure a handler or WebSocket session reports
//! is one of these: a stable `code`, an HTTP status and a readable message.

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::domain::Invalid;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    PayloadTooLarge { code: &'static str, message: String },
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        retry_after: Duration,
    },
    #[error("this path does not accept that method")]
    MethodNotAllowed,
    /// Temporarily unable to serve (too many connections, shutting down).
    #[error("{message}")]
    Unavailable { code: &'static str, message: String },
    /// Bounded work (image decoding) is at capacity: come back after `retry_after`.
    #[error("the server is busy; try again in a few seconds")]
    Busy { retry_after: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

impl AppError {
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// No valid session or token.
    pub fn unauthenticated() -> Self {
        Self::Unauthorized {
            code: "not_authenticated",
            message: "log in first".into(),
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::Forbidden {
            code,
            message: message.into(),
        }
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::NotFound {
            code,
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }

    pub fn too_large(code: &'static str, message: impl Into<String>) -> Self {
        Self::PayloadTooLarge {
            code,
            message: message.into(),
        }
    }

    pub fn room_not_found() -> Self {
        Self::not_found("room_not_found", "no such room")
    }

    pub fn user_not_found() -> Self {
        Self::not_found("user_not_found", "no such user")
    }

    pub fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            AppError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            AppError::Forbidden { .. } => StatusCode::FORBIDDEN,
            AppError::NotFound { .. } => StatusCode::NOT_FOUND,
            AppError::Conflict { .. } => StatusCode::CONFLICT,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            AppError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Store(StoreError::NotFound) => StatusCode::NOT_FOUND,
            AppError::Store(StoreError::Conflict(_)) => StatusCode::CONFLICT,
            AppError::Store(StoreError::Unavailable(_)) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable snake_case code clients match on.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadRequest { code, .. }
            | AppError::Unauthorized { code, .. }
            | AppError::Forbidden { code, .. }
            | AppError::NotFound { code, .. }
            | AppError::Conflict { code, .. }
            | AppError::PayloadTooLarge { code, .. }
            | AppError::RateLimited { code, .. }
            | AppError::Unavailable { code, .. } => code,
            AppError::MethodNotAllowed => "method_not_allowed",
            AppError::Busy { .. } => "busy",
            AppError::Store(StoreError::NotFound) => "not_found",
            AppError::Store(StoreError::Conflict(conflict)) => conflict.code(),
            AppError::Store(StoreError::Unavailable(_)) => "unavailable",
            AppError::Internal(_) => "internal_error",
        }
    }

    /// The message shown to clients: internal details never leave the server.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Store(StoreError::Unavailable(_)) => {
                "the database is unavailable; try again shortly".to_string()
            }
            AppError::Internal(_) => "internal error".to_string(),
            AppError::Store(StoreError::Conflict(code)) => format!("conflict: {code}"),
            other => other.to_string(),
        }
    }

    pub fn is_server_error(&self) -> bool {
        self.status().is_server_error()
    }
}

impl From<crate::images::PoolError> for AppError {
    fn from(err: crate::images::PoolError) -> Self {
        match err {
            crate::images::PoolError::Busy { retry_after } => AppError::Busy { retry_after },
            failed @ crate::images::PoolError::Failed(_) => AppError::Internal(failed.into()),
        }
    }
}

impl From<Invalid> for AppError {
    fn from(invalid: Invalid) -> Self {
        AppError::BadRequest {
            code: invalid.code,
            message: invalid.message,
        }
    }
}

/// `{"success":false,"error":{"code","message"}}`
#[derive(Serialize)]
struct ErrorBody {
    success: bool,
    error: ErrorDetail,
}

#[derive(Serialize)]
struct ErrorDetail {
    code: &'static str,
    message: String,
}

/// A handler panicked: the panic is logged, the client gets a plain 500.
pub fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    AppError::Internal(anyhow::anyhow!("a request handler panicked")).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.is_server_error() {
            tracing::error!(error = ?self, "request failed");
        } else {
            tracing::debug!(code = self.code(), "request rejected");
        }
        let body = ErrorBody {
            success: false,
            error: ErrorDetail {
                code: self.code(),
                message: self.public_message(),
            },
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        // An error is about this request only; never serve it from a cache.
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if let AppError::RateLimited { retry_after, .. } | AppError::Busy { retry_after } = &self {
            let secs = retry_after.as_secs().max(1);
            if let Ok(value) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}
