//! `/tools/api/auth/...`: register, login, logout, me, password, sessions, API tokens.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};

use super::{created, done, ok};
use crate::domain::ids::TokenId;
use crate::domain::time::rfc3339;
use crate::domain::user::User;
use crate::error::{AppError, Result};
use crate::http::extract::{ApiJson, AuthUser, CSRF_COOKIE, Client};
use crate::http::identity::SESSION_COOKIE;
use crate::http::state::AppState;
use crate::services::accounts::{self, NewSession, Registration};
use crate::services::profiles;
use crate::views::ProfileView;

#[derive(Deserialize)]
pub struct RegisterRequest {
    username: String,
    password: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginRequest {
    username: String,
    password: String,
}

/// The profile plus the CSRF token the client must echo in `X-CSRFToken`.
#[derive(Serialize)]
struct SessionView {
    #[serde(flatten)]
    profile: ProfileView,
    csrf_token: String,
}

/// Sets `sessionid` (HttpOnly) and `csrftoken` (readable by the page's script).
pub fn session_cookies(state: &AppState, jar: CookieJar, session: &NewSession) -> CookieJar {
    let secure = state.config.secure_cookies();
    // The server slides the session's expiry on use; the cookie itself may
    // live as long as browsers allow, an expired session is refused anyway.
    let max_age = cookie::time::Duration::days(400);
    let session_cookie = Cookie::build((SESSION_COOKIE, session.token.clone()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(max_age)
        .build();
    let csrf_cookie = Cookie::build((CSRF_COOKIE, session.csrf_token.clone()))
        .path("/")
        .same_site(SameSite::Lax)
        .secure(secure)
        .max_age(max_age)
        .build();
    jar.add(session_cookie).add(csrf_cookie)
}

pub fn clear_session_cookies(jar: CookieJar) -> CookieJar {
    jar.remove(Cookie::build(SESSION_COOKIE).path("/"))
        .remove(Cookie::build(CSRF_COOKIE).path("/"))
}

async fn signed_in(
    state: &AppState,
    jar: CookieJar,
    user: &User,
    session: NewSession,
) -> Result<Response> {
    let profile = profiles::view(state, user, Some(user)).await?;
    let jar = session_cookies(state, jar, &session);
    Ok((
        jar,
        ok(SessionView {
            profile,
            csrf_token: session.csrf_token,
        }),
    )
        .into_response())
}

/// `POST /tools/api/auth/register/` `{"username","password","display_name"?}` → 201, logged in.
pub async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<Response> {
    let input = Registration {
        username: body.username,
        password: body.password,
        display_name: body.display_name,
    };
    let (user, session) = accounts::register(&state, input, &client).await?;
    let profile = profiles::view(&state, &user, Some(&user)).await?;
    let jar = session_cookies(&state, jar, &session);
    Ok((
        jar,
        created(SessionView {
            profile,
            csrf_token: session.csrf_token,
        }),
    )
        .into_response())
}

/// `POST /tools/api/auth/login/` `{"username","password"}`.
pub async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Response> {
    let (user, session) = accounts::login(&state, &body.username, body.password, &client).await?;
    signed_in(&state, jar, &user, session).await
}

/// `POST /tools/api/auth/logout/`: revokes the session.
pub async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
    jar: CookieJar,
) -> Result<Response> {
    if let Some(session) = &auth.session {
        accounts::logout(&state, &session.token_hash).await?;
    }
    Ok((clear_session_cookies(jar), done()).into_response())
}

/// `GET /tools/api/auth/me/`.
pub async fn me(State(state): State<AppState>, auth: AuthUser) -> Result<Response> {
    let profile = profiles::view(&state, &auth.user, Some(&auth.user)).await?;
    let csrf_token = auth.session.map(|s| s.csrf_token).unwrap_or_default();
    Ok(ok(SessionView {
        profile,
        csrf_token,
    }))
}

#[derive(Deserialize)]
pub struct PasswordRequest {
    current_password: String,
    new_password: String,
    /// Also delete every API token (default: tokens are kept).
    #[serde(default)]
    revoke_tokens: bool,
}

/// `POST /tools/api/auth/password/`: changes the password, revoking other
/// sessions and, when asked, API tokens.
pub async fn change_password(
    State(state): State<AppState>,
    Client(client): Client,
    auth: AuthUser,
    ApiJson(body): ApiJson<PasswordRequest>,
) -> Result<Response> {
    let keep = auth.session.as_ref().map(|s| s.token_hash.as_str());
    let change = accounts::PasswordChange {
        current: body.current_password,
        new: body.new_password,
        revoke_tokens: body.revoke_tokens,
    };
    let changed = accounts::change_password(&state, &auth.user, &client, change, keep).await?;
    Ok(ok(serde_json::json!({
        "sessions_revoked": changed.sessions_revoked,
        "tokens_revoked": changed.tokens_revoked,
    })))
}

#[derive(Serialize)]
struct SessionInfo {
    id: String,
    created_at: String,
    last_used_at: String,
    expires_at: String,
    user_agent: String,
    ip: String,
    current: bool,
}

/// `GET /tools/api/auth/sessions/`: the user's active sessions (ids are hash prefixes).
pub async fn list_sessions(State(state): State<AppState>, auth: AuthUser) -> Result<Response> {
    let current = auth.session.as_ref().map(|s| s.token_hash.as_str());
    let sessions: Vec<SessionInfo> = accounts::list_sessions(&state, &auth.user)
        .await?
        .into_iter()
        .map(|s| SessionInfo {
            id: s.token_hash[..12].to_string(),
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
            expires_at: rfc3339(s.expires_at),
            current: current == Some(s.token_hash.as_str()),
            user_agent: s.user_agent,
            ip: s.ip,
        })
        .collect();
    Ok(ok(sessions))
}

/// `POST /tools/api/auth/sessions/logout-others/`.
pub async fn logout_other_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Response> {
    let keep = auth.session.as_ref().map(|s| s.token_hash.as_str());
    let revoked = accounts::logout_other_sessions(&state, &auth.user, keep).await?;
    Ok(ok(serde_json::json!({ "sessions_revoked": revoked })))
}

#[derive(Deserialize)]
pub struct TokenRequest {
    name: String,
}

#[derive(Serialize)]
struct TokenView {
    id: TokenId,
    name: String,
    created_at: String,
    last_used_at: Option<String>,
    /// Only in the creation response.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

/// `POST /tools/api/auth/tokens/` `{"name"}` → 201 with the token, shown this once.
pub async fn create_token(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<TokenRequest>,
) -> Result<Response> {
    let (record, token) = accounts::create_api_token(&state, &auth.user, &body.name).await?;
    Ok(created(TokenView {
        id: record.id,
        name: record.name,
        created_at: rfc3339(record.created_at),
        last_used_at: None,
        token: Some(token),
    }))
}

/// `GET /tools/api/auth/tokens/`.
pub async fn list_tokens(State(state): State<AppState>, auth: AuthUser) -> Result<Response> {
    let tokens: Vec<TokenView> = accounts::list_api_tokens(&state, &auth.user)
        .await?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            created_at: rfc3339(t.created_at),
            last_used_at: t.last_used_at.map(rfc3339),
            token: None,
        })
        .collect();
    Ok(ok(tokens))
}

/// `DELETE /tools/api/auth/tokens/<id>/`.
pub async fn delete_token(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let id =
        TokenId::parse(&id).map_err(|_| AppError::not_found("token_not_found", "no such token"))?;
    accounts::delete_api_token(&state, &auth.user, id).await?;
    Ok(done())
}
