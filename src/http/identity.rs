//! Who is calling: the one way the API, the WebSocket upgrade and the pages
//! identify a caller (a bearer token, which wins, or the session cookie), and
//! the one CSRF refusal they share.

use axum::http::{HeaderMap, header};
use axum_extra::extract::cookie::CookieJar;

use crate::domain::ids::TokenId;
use crate::domain::user::User;
use crate::error::{AppError, Result};
use crate::services::{Services, accounts};
use crate::store::SessionRecord;

pub const SESSION_COOKIE: &str = "sessionid";

/// What a request presents to say who it is, not yet checked.
pub enum Claim {
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// The `sessionid` cookie.
    Session(String),
}

/// A caller whose claim checked out.
pub enum Caller {
    Token(TokenId, User),
    Session(SessionRecord, User),
}

impl Claim {
    /// The request's claim: a bearer token if there is one (a malformed
    /// `Authorization` header is refused), else the session cookie.
    pub fn of(headers: &HeaderMap) -> Result<Option<Self>> {
        if let Some(token) = bearer_token(headers)? {
            return Ok(Some(Self::Token(token.to_owned())));
        }
        Ok(Self::session(&CookieJar::from_headers(headers)))
    }

    /// Only the session cookie (pages are for browsers; they ignore tokens).
    pub fn session(jar: &CookieJar) -> Option<Self> {
        jar.get(SESSION_COOKIE)
            .map(|cookie| Self::Session(cookie.value().to_owned()))
    }

    /// Checks the claim against the store: `None` if the token or session is
    /// unknown, revoked or expired.
    pub async fn identify(&self, services: &Services) -> Result<Option<Caller>> {
        Ok(match self {
            Self::Token(token) => accounts::token_user(services, token)
                .await?
                .map(|(id, user)| Caller::Token(id, user)),
            Self::Session(cookie) => accounts::session_user(services, cookie)
                .await?
                .map(|(session, user)| Caller::Session(session, user)),
        })
    }

    /// The refusal when [`Claim::identify`] found nobody.
    pub fn refused(&self) -> AppError {
        match self {
            Self::Token(_) => AppError::Unauthorized {
                code: "invalid_token",
                message: "the API token is invalid or revoked".into(),
            },
            Self::Session(_) => AppError::unauthenticated(),
        }
    }
}

/// The token of an `Authorization: Bearer` header, if there is one.
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| Some(t.trim()))
        .ok_or_else(|| AppError::Unauthorized {
            code: "invalid_token",
            message: "use Authorization: Bearer <token>".into(),
        })
}

/// A state-changing request without the CSRF token its session expects: an
/// API call without the `X-CSRFToken` header's match, or a page's form
/// without its `csrfmiddlewaretoken` field's.
pub fn csrf_failed() -> AppError {
    AppError::forbidden(
        "csrf_failed",
        "CSRF check failed: reload the page and try again (API clients send the csrftoken \
         cookie's value in the X-CSRFToken header)",
    )
}
