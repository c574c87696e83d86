//! Accounts, passwords, login sessions and API tokens.

use std::net::IpAddr;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::domain::ids::Credential;
use crate::domain::ids::{SessionKey, TokenId, UserId};
use crate::domain::text;
use crate::domain::time::now_ms;
use crate::domain::user::{self, User};
use crate::error::{AppError, Result};
use crate::services::Services;
use crate::store::Conflict;
use crate::store::{ApiTokenRecord, NewUser, SessionRecord, StoreError};

/// Prefix of personal API tokens, so they are recognisable in logs and secret scanners.
pub const TOKEN_PREFIX: &str = "prl_";
/// A session is written back (sliding its expiry) at most this often.
const SESSION_TOUCH_MS: i64 = 3_600_000;

/// Where a request came from, for sessions and login throttling.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub ip: IpAddr,
    pub user_agent: String,
}

/// A freshly created login session: the cookie values to hand out.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
    pub expires_at: i64,
}

/// 32 random bytes, URL-safe base64 (43 characters).
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps of a secret token: its SHA-256, hex.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The same SHA-256 as bytes, as a connection remembers its session.
pub fn session_key(token: &str) -> SessionKey {
    SessionKey::from_digest(Sha256::digest(token.as_bytes()).into())
}

/// Equal-time comparison, so a CSRF token cannot be guessed byte by byte.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Argon2id with the crate's recommended parameters, off the async threads.
pub async fn hash_password(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password failed: {e}"))
    })
    .await
    .map_err(|e| anyhow::anyhow!("password hashing task failed: {e}"))?
    .map_err(AppError::from)
}

pub async fn verify_password(password: String, hash: String) -> Result<bool> {
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&hash) else {
            return false;
        };
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
    .await
    .map_err(|e| AppError::Internal(anyhow::anyhow!("password check task failed: {e}")))
}

pub struct Registration {
    pub username: String,
    pub password: String,
    pub display_name: Option<String>,
}

/// Creates an account (and joins the default room). Does not log in.
pub async fn create_account(ctx: &Services, input: Registration, is_admin: bool) -> Result<User> {
    let username = user::parse_username(input.username.trim())?;
    user::check_password(&input.password, &username)?;
    let display_name = match input.display_name {
        Some(name) => text::single_line(&name, "display_name", user::NAME_MAX)?,
        None => String::new(),
    };
    if ctx.store.get_user_by_username(&username).await?.is_some() {
        return Err(AppError::conflict(
            "username_taken",
            "that username is taken",
        ));
    }
    let password_hash = hash_password(input.password).await?;
    let new = NewUser {
        id: UserId::new(),
        username,
        password_hash,
        display_name,
        is_admin,
        created_at: now_ms(),
    };
    let user = ctx.store.insert_user(&new).await.map_err(|e| match e {
        StoreError::Conflict(_) => AppError::conflict("username_taken", "that username is taken"),
        other => other.into(),
    })?;
    crate::services::rooms::join_default_room(ctx, &user).await?;
    Ok(user)
}

/// `POST /tools/api/auth/register/`: creates the account and logs it in.
pub async fn register(
    ctx: &Services,
    input: Registration,
    client: &ClientInfo,
) -> Result<(User, NewSession)> {
    if !ctx.config.registration_open {
        return Err(AppError::forbidden(
            "registration_closed",
            "registration is closed on this server",
        ));
    }
    let user = create_account(ctx, input, false).await?;
    let session = start_session(ctx, user.id, client).await?;
    Ok((user, session))
}

/// `POST /tools/api/auth/login/`, throttled per username and per IP.
pub async fn login(
    ctx: &Services,
    username: &str,
    password: String,
    client: &ClientInfo,
) -> Result<(User, NewSession)> {
    let limits = &ctx.limits;
    if let Err(wait) = limits.check_login(username, client.ip).await {
        return Err(AppError::RateLimited {
            code: "too_many_attempts",
            message: "too many failed logins; try again later".into(),
            retry_after: wait,
        });
    }
    let credentials = ctx.store.get_credentials(username.trim()).await?;
    let (user_id, hash, known) = match credentials {
        Some((id, hash)) => (Some(id), hash, true),
        None => (None, ctx.dummy_password_hash.to_string(), false),
    };
    let valid = verify_password(password, hash).await? && known;
    let Some(user_id) = user_id.filter(|_| valid) else {
        limits.login_failed(username, client.ip).await;
        return Err(AppError::Unauthorized {
            code: "invalid_credentials",
            message: "wrong username or password".into(),
        });
    };
    limits.login_succeeded(username).await;
    let user = ctx
        .store
        .get_user(user_id)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    let session = start_session(ctx, user.id, client).await?;
    Ok((user, session))
}

pub async fn start_session(
    ctx: &Services,
    user: UserId,
    client: &ClientInfo,
) -> Result<NewSession> {
    let token = random_token();
    let csrf_token = random_token();
    let now = now_ms();
    let expires_at = now + ttl_ms(ctx);
    let record = SessionRecord {
        token_hash: hash_token(&token),
        user_id: user,
        csrf_token: csrf_token.clone(),
        created_at: now,
        expires_at,
        last_used_at: now,
        user_agent: client.user_agent.chars().take(300).collect(),
        ip: client.ip.to_string(),
    };
    ctx.store.insert_session(&record).await?;
    // Past the quota the least recently used sessions end, rather than the
    // user being locked out of a new login.
    let ended = ctx
        .store
        .delete_excess_sessions(user, ctx.config.max_sessions_per_user, now)
        .await?;
    if !ended.is_empty() {
        ctx.bus.sessions_revoked(ended);
    }
    Ok(NewSession {
        token,
        csrf_token,
        expires_at,
    })
}

fn ttl_ms(ctx: &Services) -> i64 {
    i64::try_from(ctx.config.session_ttl.as_millis()).unwrap_or(i64::MAX / 2)
}

/// The session a cookie names, if valid; slides its expiry on use.
pub async fn session_user(ctx: &Services, token: &str) -> Result<Option<(SessionRecord, User)>> {
    let now = now_ms();
    let Some((mut session, user)) = ctx.store.get_session(&hash_token(token), now).await? else {
        return Ok(None);
    };
    if now - session.last_used_at > SESSION_TOUCH_MS {
        session.last_used_at = now;
        session.expires_at = now + ttl_ms(ctx);
        ctx.store
            .touch_session(&session.token_hash, now, session.expires_at)
            .await?;
    }
    Ok(Some((session, user)))
}

/// The id of a bearer token and the user it belongs to, if it is valid.
pub async fn token_user(ctx: &Services, token: &str) -> Result<Option<(TokenId, User)>> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    Ok(ctx
        .store
        .get_api_token_user(&hash_token(token), now_ms())
        .await?)
}

/// Ends the session, and the WebSockets it opened on every node.
pub async fn logout(ctx: &Services, token_hash: &str) -> Result<()> {
    ctx.store.delete_session(token_hash).await?;
    ctx.bus.sessions_revoked(vec![token_hash.to_string()]);
    Ok(())
}

/// `POST /tools/api/auth/password/`.
pub struct PasswordChange {
    pub current: String,
    pub new: String,
    /// Also delete every API token of the user (and close their WebSockets).
    pub revoke_tokens: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordChanged {
    pub sessions_revoked: u64,
    pub tokens_revoked: u64,
}

/// Changes the password and revokes every other session of the user (and
/// their WebSockets), and their API tokens if asked. A wrong current password
/// counts as a failed login for the user's name and the client's IP: whoever
/// holds a stolen session cannot guess the password faster than at the login
/// form, and once throttled even the right one waits for the window to end.
pub async fn change_password(
    ctx: &Services,
    user: &User,
    client: &ClientInfo,
    change: PasswordChange,
    keep_session: Option<&str>,
) -> Result<PasswordChanged> {
    let limits = &ctx.limits;
    if let Err(wait) = limits.check_login(&user.username, client.ip).await {
        return Err(AppError::RateLimited {
            code: "too_many_attempts",
            message: "too many wrong passwords; try again later".into(),
            retry_after: wait,
        });
    }
    user::check_password(&change.new, &user.username)?;
    let hash = ctx
        .store
        .get_password_hash(user.id)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    if !verify_password(change.current, hash).await? {
        limits.login_failed(&user.username, client.ip).await;
        return Err(AppError::forbidden(
            "invalid_credentials",
            "the current password is wrong",
        ));
    }
    limits.login_succeeded(&user.username).await;
    let new_hash = hash_password(change.new).await?;
    ctx.store.update_password(user.id, &new_hash).await?;
    let sessions_revoked = logout_other_sessions(ctx, user, keep_session).await?;
    let tokens_revoked = if change.revoke_tokens {
        let revoked = ctx.store.delete_api_tokens(user.id).await?;
        for token in &revoked {
            ctx.bus.token_revoked(*token);
        }
        revoked.len() as u64
    } else {
        0
    };
    Ok(PasswordChanged {
        sessions_revoked,
        tokens_revoked,
    })
}

pub async fn list_sessions(ctx: &Services, user: &User) -> Result<Vec<SessionRecord>> {
    Ok(ctx.store.list_sessions(user.id, now_ms()).await?)
}

/// Revokes every session of the user but `keep` (and their WebSockets);
/// returns how many went.
pub async fn logout_other_sessions(ctx: &Services, user: &User, keep: Option<&str>) -> Result<u64> {
    let revoked = ctx.store.delete_other_sessions(user.id, keep).await?;
    let count = revoked.len() as u64;
    ctx.bus.sessions_revoked(revoked);
    Ok(count)
}

/// Connected sessions that expire before this (Unix ms) are due to be
/// extended: by the rule HTTP use follows, at most once per `SESSION_TOUCH_MS`.
pub fn refresh_sessions_expiring_before(ctx: &Services, now: i64) -> i64 {
    now + ttl_ms(ctx) - SESSION_TOUCH_MS
}

/// A WebSocket open on a session is a use of it: extends these sessions in
/// the store, as an HTTP request would, and keeps their connections here open
/// until the new expiry. A session the store no longer has was revoked or
/// expired without this node hearing of it (the bus was down): its
/// connections here close. Errors leave a session as it was, to retry at the
/// next heartbeat.
pub async fn refresh_connected_sessions(ctx: &Services, keys: Vec<SessionKey>) {
    for key in keys {
        if ctx.shutdown.is_cancelled() {
            return;
        }
        let hash = key.to_hex();
        let now = now_ms();
        match ctx.store.get_session(&hash, now).await {
            Ok(Some(_)) => {
                let expires_at = now + ttl_ms(ctx);
                match ctx.store.touch_session(&hash, now, expires_at).await {
                    Ok(()) => ctx.bus.hub().extend_session(key, expires_at),
                    Err(err) => {
                        tracing::debug!(error = %err, "could not extend a connected session")
                    }
                }
            }
            Ok(None) => ctx.bus.hub().end_credential(Credential::Session(key)),
            Err(err) => tracing::debug!(error = %err, "could not check a connected session"),
        }
    }
}

/// Whether the session or token that authenticated a connection of `user`
/// still works, for a connection that may have missed its revocation.
pub async fn credential_valid(
    ctx: &Services,
    user: UserId,
    credential: Credential,
) -> Result<bool> {
    match credential {
        Credential::Session(key) => Ok(ctx
            .store
            .get_session(&key.to_hex(), now_ms())
            .await?
            .is_some()),
        Credential::Token(id) => Ok(ctx
            .store
            .list_api_tokens(user)
            .await?
            .iter()
            .any(|t| t.id == id)),
    }
}

/// Creates a personal API token; the token itself is returned only now.
pub async fn create_api_token(
    ctx: &Services,
    user: &User,
    name: &str,
) -> Result<(ApiTokenRecord, String)> {
    let name = text::single_line(name, "name", 64)?;
    if name.is_empty() {
        return Err(AppError::bad_request(
            "invalid_field",
            "a token needs a name",
        ));
    }
    let token = format!("{TOKEN_PREFIX}{}", random_token());
    let record = ApiTokenRecord {
        id: TokenId::new(),
        user_id: user.id,
        name,
        token_hash: hash_token(&token),
        created_at: now_ms(),
        last_used_at: None,
    };
    let max = ctx.config.max_tokens_per_user;
    ctx.store
        .insert_api_token(&record, max)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(Conflict::TooManyTokens) => AppError::conflict(
                "too_many_tokens",
                format!("you already have {max} API tokens: delete one first"),
            ),
            other => other.into(),
        })?;
    Ok((record, token))
}

pub async fn list_api_tokens(ctx: &Services, user: &User) -> Result<Vec<ApiTokenRecord>> {
    Ok(ctx.store.list_api_tokens(user.id).await?)
}

/// Deletes the token, closing the WebSockets it opened on every node.
pub async fn delete_api_token(ctx: &Services, user: &User, id: TokenId) -> Result<()> {
    ctx.store
        .delete_api_token(user.id, id)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::not_found("token_not_found", "no such token"),
            other => other.into(),
        })?;
    ctx.bus.token_revoked(id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = random_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, random_token());
        assert_eq!(hash_token("x").len(), 64);
        assert_eq!(hash_token("x"), hash_token("x"));
        assert_eq!(session_key(&a).to_hex(), hash_token(&a));
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }

    #[tokio::test]
    async fn passwords_verify() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), hash.clone())
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong horse".into(), hash).await.unwrap());
        assert!(
            !verify_password("x".into(), "not a hash".into())
                .await
                .unwrap()
        );
    }
}
