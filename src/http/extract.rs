//! Extractors: JSON/query wrappers that reject with our error shape, the
//! authenticated user (session cookie + CSRF, or bearer token) and client info.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{
    ConnectInfo, FromRequest, FromRequestParts, OptionalFromRequestParts, Request,
};
use axum::http::header;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::domain::net::client_ip;
use crate::domain::user::User;
use crate::error::AppError;
use crate::http::identity::{Caller, Claim, csrf_failed};
use crate::http::state::AppState;
use crate::services::accounts::{self, ClientInfo};
use crate::store::SessionRecord;

pub const CSRF_COOKIE: &str = "csrftoken";
pub const CSRF_HEADER: &str = "x-csrftoken";

/// `Json<T>` whose rejections are `400 invalid_json` in our error shape.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(AppError::bad_request(
                "invalid_content_type",
                "send JSON with Content-Type: application/json",
            )),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AppError::PayloadTooLarge {
                    code: "payload_too_large",
                    message: "the request body is too large".into(),
                })
            }
            Err(rejection) => Err(AppError::bad_request("invalid_json", rejection.body_text())),
        }
    }
}

/// `Query<T>` whose rejections are `400 invalid_query`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(AppError::bad_request(
                "invalid_query",
                query_message(&rejection),
            )),
        }
    }
}

fn query_message(rejection: &QueryRejection) -> String {
    rejection.body_text()
}

/// The logged-in user. Cookie sessions must carry the CSRF token on every
/// state-changing request; bearer tokens are exempt (a browser never sends them
/// on its own).
pub struct AuthUser {
    pub user: User,
    /// The session, when authenticated by cookie.
    pub session: Option<SessionRecord>,
}

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (auth, csrf) = authenticate(parts, state).await?;
        match csrf {
            Csrf::Passed => Ok(auth),
            Csrf::Missing { .. } => Err(csrf_failed()),
        }
    }
}

/// Where a request stands with CSRF once the user is known.
enum Csrf {
    /// Bearer token, safe method, or the right `X-CSRFToken` header.
    Passed,
    /// A cookie-authenticated write without the header: the token must come
    /// from somewhere else (a form field) or the request is refused.
    Missing { expected: String },
}

/// The user behind a bearer token or session cookie, and whether the CSRF
/// header settled the request. A wrong header is refused here; a missing one
/// is left to the caller.
async fn authenticate(parts: &Parts, state: &AppState) -> Result<(AuthUser, Csrf), AppError> {
    let claim = Claim::of(&parts.headers)?.ok_or_else(AppError::unauthenticated)?;
    let (session, user) = match claim.identify(state).await? {
        Some(Caller::Token(_, user)) => {
            let auth = AuthUser {
                user,
                session: None,
            };
            return Ok((auth, Csrf::Passed));
        }
        Some(Caller::Session(session, user)) => (session, user),
        None => return Err(claim.refused()),
    };
    let csrf = if parts.method.is_safe() {
        Csrf::Passed
    } else {
        match parts.headers.get(CSRF_HEADER) {
            None => Csrf::Missing {
                expected: session.csrf_token.clone(),
            },
            Some(sent) => {
                let sent = sent.to_str().unwrap_or_default();
                if !accounts::constant_time_eq(sent, &session.csrf_token) {
                    return Err(csrf_failed());
                }
                Csrf::Passed
            }
        }
    };
    let auth = AuthUser {
        user,
        session: Some(session),
    };
    Ok((auth, csrf))
}

/// The logged-in user of a `multipart/form-data` request. A plain HTML form
/// cannot set headers, so a cookie request without `X-CSRFToken` may carry the
/// token in a `csrfmiddlewaretoken` field instead (Django's name), which only
/// the handler can read: it gets the user from [`FormAuthUser::verify`] once it
/// has read the form, so the check cannot be skipped.
pub struct FormAuthUser {
    auth: AuthUser,
    csrf: Csrf,
}

/// The form field that may carry the CSRF token.
pub const CSRF_FORM_FIELD: &str = "csrfmiddlewaretoken";

impl FormAuthUser {
    /// The user, if the header already passed the CSRF check or `form_token`
    /// (the `csrfmiddlewaretoken` field, if the form had one) is the right token.
    pub fn verify(self, form_token: Option<&str>) -> Result<AuthUser, AppError> {
        match self.csrf {
            Csrf::Passed => Ok(self.auth),
            Csrf::Missing { expected } => match form_token {
                Some(sent) if accounts::constant_time_eq(sent, &expected) => Ok(self.auth),
                _ => Err(csrf_failed()),
            },
        }
    }
}

impl FromRequestParts<AppState> for FormAuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let (auth, csrf) = authenticate(parts, state).await?;
        Ok(Self { auth, csrf })
    }
}

impl OptionalFromRequestParts<AppState> for AuthUser {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        match <Self as FromRequestParts<AppState>>::from_request_parts(parts, state).await {
            Ok(user) => Ok(Some(user)),
            Err(AppError::Unauthorized { .. }) => Ok(None),
            Err(other) => Err(other),
        }
    }
}

/// Client IP and user agent. Behind a trusted proxy (`--trusted-proxies`)
/// the IP comes from `X-Forwarded-For` (see `domain::net::client_ip`).
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |ConnectInfo(addr)| {
                addr.ip()
            });
        // Several headers are one list, in order.
        let forwarded = parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect::<Vec<&str>>();
        let ip = client_ip(peer, forwarded.into_iter(), &state.proxies);
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        Ok(Self(ClientInfo { ip, user_agent }))
    }
}
