//! PostgreSQL back end, for several Parley nodes sharing one database. It
//! behaves exactly like `sqlite.rs` (the conformance suite holds both to it);
//! what differs is how writers from different processes are kept apart: the
//! message path locks the rooms it writes to, in a fixed order, so seqs stay
//! gapless and `client_id`s stay idempotent across nodes.
//!
//! Text that Parley sorts or matches case-insensitively is compared with
//! `collate "C"`: byte order and ASCII-only `lower()`, as SQLite does, whatever
//! locale the database was created with.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{FromRow, PgConnection};
use tracing::instrument;

use super::rows::*;
use super::{
    ApiTokenRecord, Ban, Invite, MessagePage, NewRoom, NewUser, Page, ProfileChanges, RoomChanges,
    RoomCursor, RoomPage, RoomQuota, RoomSummary, SessionRecord, Store, StoreError, StoreResult,
};
use crate::domain::ids::{MessageId, RoomId, TokenId, UserId};
use crate::domain::message::{InsertOutcome, Message, NewMessage};
use crate::domain::room::{Member, Role, Room};
use crate::domain::time::day_of;
use crate::domain::user::{Language, Membership, ThemeMode, ThemeStyle, User};
use crate::store::Conflict;

/// How long a request waits for a pooled connection. Short, so that while
/// PostgreSQL is down requests fail fast with `Unavailable` (and clients retry)
/// instead of piling up behind a pool that cannot connect.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound on any one statement, lock waits included: every query Parley
/// runs is indexed and small, so anything slower is a stuck lock or an
/// overloaded server, and failing it beats holding the request open.
const STATEMENT_TIMEOUT: &str = "5s";
/// A node that freezes mid-transaction (stopped, swapped out) would otherwise
/// hold its rooms' locks and stall every other node's writes to them.
const IDLE_IN_TRANSACTION_TIMEOUT: &str = "10s";

mod attachments;
mod batch;

pub struct PostgresStore {
    pool: PgPool,
    /// The pool's options without the statement timeout, for migrations.
    migrate_options: PgConnectOptions,
}

impl PostgresStore {
    /// Connects eagerly, so a wrong URL or an unreachable server fails at startup.
    /// Settings given in the URL's `options` win over the timeouts set here.
    pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<Self> {
        let mut options = PgConnectOptions::from_str(url)?;
        let given = options.get_options().unwrap_or_default().to_string();
        for (key, value) in [
            ("statement_timeout", STATEMENT_TIMEOUT),
            (
                "idle_in_transaction_session_timeout",
                IDLE_IN_TRANSACTION_TIMEOUT,
            ),
        ] {
            if !given.contains(key) {
                options = options.options([(key, value)]);
            }
        }
        // Later `-c` settings override earlier ones.
        let migrate_options = options.clone().options([("statement_timeout", "0")]);
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        Ok(Self {
            pool,
            migrate_options,
        })
    }
}

fn db_err(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::RowNotFound => StoreError::NotFound,
        other => StoreError::Unavailable(Box::new(other)),
    }
}

/// Maps a unique-constraint failure to `Conflict(code)`, anything else as usual.
fn unique_as(code: Conflict) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(code),
        _ => db_err(e),
    }
}

/// Adding a member: an unknown room or user is `NotFound`, a repeat `already_member`.
fn member_insert_err(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
        _ => unique_as(Conflict::AlreadyMember)(e),
    }
}

fn id_strings(ids: &[UserId]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

/// Locks the room's row for the rest of the transaction and returns its
/// owner; `NotFound` if there is no such room. Ownership changes and member
/// removals all take this lock first, so they run one after another per room.
/// `no key update`, as the message path: foreign-key checks (joins) pass.
async fn lock_room_owner(tx: &mut PgConnection, id: &RoomId) -> StoreResult<Option<UserId>> {
    let owner: Option<Option<String>> =
        sqlx::query_scalar("select owner_id from rooms where id = $1 for no key update")
            .bind(id.as_str())
            .fetch_optional(&mut *tx)
            .await
            .map_err(db_err)?;
    let owner = owner.ok_or(StoreError::NotFound)?;
    owner.as_deref().map(user_id).transpose()
}

/// Locks `user`'s membership row; `NotFound` if they are not a member.
async fn lock_member(tx: &mut PgConnection, id: &RoomId, user: UserId) -> StoreResult<()> {
    let found: Option<String> = sqlx::query_scalar(
        "select role from room_members where room_id = $1 and user_id = $2 for update",
    )
    .bind(id.as_str())
    .bind(user.to_string())
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err)?;
    found.map(|_| ()).ok_or(StoreError::NotFound)
}

/// Inside a transaction holding the room's and `to`'s locks: `to` becomes
/// the room's one owner, whoever held the role before an admin.
async fn make_owner(tx: &mut PgConnection, id: &RoomId, to: UserId, at: i64) -> StoreResult<()> {
    let to = to.to_string();
    sqlx::query(
        "update room_members set role = 'admin' where room_id = $1 and role = 'owner' and user_id <> $2",
    )
    .bind(id.as_str())
    .bind(&to)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    sqlx::query("update room_members set role = 'owner' where room_id = $1 and user_id = $2")
        .bind(id.as_str())
        .bind(&to)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    sqlx::query("update rooms set owner_id = $1, updated_at = $2 where id = $3")
        .bind(&to)
        .bind(at)
        .bind(id.as_str())
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Holds a transaction-scoped advisory lock on `key` (namespaced to Parley):
/// transactions on any node that take the same key run one after another.
/// For rules over rows that may not exist yet (a quota, a ban racing a join),
/// which no row lock can cover.
async fn advisory_lock(tx: &mut PgConnection, key: &str) -> StoreResult<()> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("parley:{key}"))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// Serialises the changes to one user's place in one room (join, add,
/// invite, ban): a join racing a ban either sees it or is undone by it.
async fn lock_membership(tx: &mut PgConnection, room: &str, user: &str) -> StoreResult<()> {
    advisory_lock(tx, &format!("member:{room}:{user}")).await
}

async fn is_banned(tx: &mut PgConnection, room: &str, user: &str) -> StoreResult<bool> {
    let found: Option<i32> = sqlx::query_scalar(
        "select 1 from room_restrictions where room_id = $1 and user_id = $2 and banned_at is not null",
    )
    .bind(room)
    .bind(user)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db_err)?;
    Ok(found.is_some())
}

/// A restriction row with neither a mute nor a ban left says nothing: drop it.
async fn forget_empty_restriction(
    tx: &mut PgConnection,
    room: &str,
    user: &str,
) -> StoreResult<()> {
    sqlx::query(
        "delete from room_restrictions where room_id = $1 and user_id = $2 \
         and muted_until is null and banned_at is null",
    )
    .bind(room)
    .bind(user)
    .execute(&mut *tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Idempotency key of a stored or incoming message: (room, sender, client_id).
type ClientKey = (String, String, String);

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> StoreResult<()> {
        // A pool of its own: a migration may take longer than the statement
        // timeout, and a setting changed on a shared connection would outlive it.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(self.migrate_options.clone())
            .await
            .map_err(db_err)?;
        let result = sqlx::migrate!("migrations/postgres").run(&pool).await;
        pool.close().await;
        result.map_err(|e| StoreError::Unavailable(Box::new(e)))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    // ---- users

    #[instrument(skip_all, fields(username = %user.username))]
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User> {
        sqlx::query(
            "insert into users (id, username, username_key, password_hash, display_name, is_admin, created_at) \
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(crate::domain::user::username_key(&user.username))
        .bind(&user.password_hash)
        .bind(&user.display_name)
        .bind(user.is_admin)
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(unique_as(Conflict::UsernameTaken))?;
        self.get_user(user.id).await?.ok_or(StoreError::NotFound)
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "select ",
            user_cols!(),
            " from users u where u.id = $1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(UserRow::into_user)
        .transpose()
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "select ",
            user_cols!(),
            " from users u where u.username_key = $1"
        ))
        .bind(crate::domain::user::username_key(username))
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(UserRow::into_user)
        .transpose()
    }

    async fn get_credentials(&self, username: &str) -> StoreResult<Option<(UserId, String)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("select id, password_hash from users where username_key = $1")
                .bind(crate::domain::user::username_key(username))
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        row.map(|(id, hash)| Ok((user_id(&id)?, hash))).transpose()
    }

    async fn get_password_hash(&self, id: UserId) -> StoreResult<Option<String>> {
        sqlx::query_scalar("select password_hash from users where id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn list_users(&self, ids: &[UserId]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        users(
            sqlx::query_as::<_, UserRow>(concat!(
                "select ",
                user_cols!(),
                " from users u where u.id = any($1)"
            ))
            .bind(id_strings(ids))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?,
        )
    }

    async fn search_users(&self, query: &str, limit: u32) -> StoreResult<Vec<User>> {
        users(
            sqlx::query_as::<_, UserRow>(concat!(
                "select ",
                user_cols!(),
                " from users u where u.username_key like $1 escape '\\' \
                 or lower(u.display_name collate \"C\") like $1 escape '\\' \
                 order by u.username_key collate \"C\" limit $2"
            ))
            .bind(like_pattern(query))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?,
        )
    }

    #[instrument(skip_all, fields(user_id = %id))]
    async fn update_profile(&self, id: UserId, changes: &ProfileChanges) -> StoreResult<User> {
        let done = sqlx::query(
            "update users set \
               display_name = coalesce($1, display_name), first_name = coalesce($2, first_name), \
               last_name = coalesce($3, last_name), bio = coalesce($4, bio), email = coalesce($5, email), \
               theme_mode = coalesce($6, theme_mode), theme_style = coalesce($7, theme_style), \
               language = coalesce($8, language), time_zone = coalesce($9, time_zone) \
             where id = $10",
        )
        .bind(changes.display_name.as_deref())
        .bind(changes.first_name.as_deref())
        .bind(changes.last_name.as_deref())
        .bind(changes.bio.as_deref())
        .bind(changes.email.as_deref())
        .bind(changes.theme_mode.map(ThemeMode::code))
        .bind(changes.theme_style.map(ThemeStyle::code))
        .bind(changes.language.map(Language::code))
        .bind(changes.time_zone.as_deref())
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn update_password(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
        let done = sqlx::query("update users set password_hash = $1 where id = $2")
            .bind(password_hash)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn update_membership(
        &self,
        id: UserId,
        membership: Membership,
        until: Option<i64>,
    ) -> StoreResult<User> {
        let done =
            sqlx::query("update users set membership = $1, membership_until = $2 where id = $3")
                .bind(membership.code())
                .bind(until)
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn update_admin(&self, id: UserId, is_admin: bool) -> StoreResult<User> {
        let done = sqlx::query("update users set is_admin = $1 where id = $2")
            .bind(is_admin)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn update_last_seen(&self, id: UserId, at: i64) -> StoreResult<()> {
        sqlx::query("update users set last_seen_at = $1 where id = $2")
            .bind(at)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn put_avatar(&self, id: UserId, png: &[u8], at: i64) -> StoreResult<User> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done =
            sqlx::query("update users set avatar_version = abs(avatar_version) + 1 where id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "insert into avatars (user_id, image, updated_at) values ($1, $2, $3) \
             on conflict (user_id) do update set image = excluded.image, updated_at = excluded.updated_at",
        )
        .bind(id.to_string())
        .bind(png)
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn delete_avatar(&self, id: UserId) -> StoreResult<User> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let done =
            sqlx::query("update users set avatar_version = -abs(avatar_version) where id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("delete from avatars where user_id = $1")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn get_avatar(&self, id: UserId) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("select image from avatars where user_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(db_err)
    }

    async fn count_active_days(
        &self,
        ids: &[UserId],
        since_day: i64,
    ) -> StoreResult<HashMap<UserId, u32>> {
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "select user_id, count(*) from user_activity_days \
             where day >= $1 and user_id = any($2) group by user_id",
        )
        .bind(since_day)
        .bind(id_strings(ids))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|(id, n)| Ok((user_id(&id)?, u32::try_from(n).unwrap_or(u32::MAX))))
            .collect()
    }

    // ---- sessions

    async fn insert_session(&self, s: &SessionRecord) -> StoreResult<()> {
        sqlx::query(
            "insert into sessions (token_hash, user_id, csrf_token, created_at, expires_at, last_used_at, user_agent, ip) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&s.token_hash)
        .bind(s.user_id.to_string())
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.last_used_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&self.pool)
        .await
        .map_err(unique_as(Conflict::SessionExists))?;
        Ok(())
    }

    async fn get_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(SessionRecord, User)>> {
        #[derive(FromRow)]
        struct Row {
            token_hash: String,
            csrf_token: String,
            s_created_at: i64,
            expires_at: i64,
            last_used_at: i64,
            user_agent: String,
            ip: String,
            #[sqlx(flatten)]
            user: UserRow,
        }
        let row = sqlx::query_as::<_, Row>(concat!(
            "select s.token_hash, s.csrf_token, s.created_at as s_created_at, s.expires_at, s.last_used_at, \
             s.user_agent, s.ip, ",
            user_cols!(),
            " from sessions s join users u on u.id = s.user_id where s.token_hash = $1 and s.expires_at > $2"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        let user = row.user.into_user()?;
        let session = SessionRecord {
            token_hash: row.token_hash,
            user_id: user.id,
            csrf_token: row.csrf_token,
            created_at: row.s_created_at,
            expires_at: row.expires_at,
            last_used_at: row.last_used_at,
            user_agent: row.user_agent,
            ip: row.ip,
        };
        Ok(Some((session, user)))
    }

    async fn touch_session(
        &self,
        token_hash: &str,
        last_used_at: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        sqlx::query("update sessions set last_used_at = $1, expires_at = $2 where token_hash = $3")
            .bind(last_used_at)
            .bind(expires_at)
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn list_sessions(&self, user: UserId, now: i64) -> StoreResult<Vec<SessionRecord>> {
        sqlx::query_as::<_, SessionRow>(
            "select token_hash, user_id, csrf_token, created_at, expires_at, last_used_at, user_agent, ip \
             from sessions where user_id = $1 and expires_at > $2 order by last_used_at desc",
        )
        .bind(user.to_string())
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(SessionRow::into_session)
        .collect()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from sessions where token_hash = $1")
            .bind(token_hash)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn delete_excess_sessions(
        &self,
        user: UserId,
        keep: u32,
        now: i64,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar::<_, String>(
            "delete from sessions where user_id = $1 and (expires_at <= $3 or token_hash not in \
             (select token_hash from sessions where user_id = $1 and expires_at > $3 \
              order by last_used_at desc, created_at desc limit $2)) \
             returning token_hash",
        )
        .bind(user.to_string())
        .bind(i64::from(keep))
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn delete_other_sessions(
        &self,
        user: UserId,
        keep: Option<&str>,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar::<_, String>(
            "delete from sessions where user_id = $1 and token_hash <> coalesce($2, '') \
             returning token_hash",
        )
        .bind(user.to_string())
        .bind(keep)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }

    // ---- API tokens

    async fn insert_api_token(&self, t: &ApiTokenRecord, max: u32) -> StoreResult<()> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        let uid = t.user_id.to_string();
        // One user's tokens are counted and added one request at a time, on any node.
        advisory_lock(&mut tx, &format!("tokens:{uid}")).await?;
        let count: i64 = sqlx::query_scalar("select count(*) from api_tokens where user_id = $1")
            .bind(&uid)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if count >= i64::from(max) {
            return Err(StoreError::Conflict(Conflict::TooManyTokens));
        }
        sqlx::query(
            "insert into api_tokens (id, user_id, name, token_hash, created_at, last_used_at) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(t.id.to_string())
        .bind(&uid)
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.created_at)
        .bind(t.last_used_at)
        .execute(&mut *tx)
        .await
        .map_err(unique_as(Conflict::TokenExists))?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn list_api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiTokenRecord>> {
        sqlx::query_as::<_, ApiTokenRow>(
            "select id, user_id, name, token_hash, created_at, last_used_at from api_tokens \
             where user_id = $1 order by created_at",
        )
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|r| {
            Ok(ApiTokenRecord {
                id: TokenId::parse(&r.id).map_err(|_| corrupt("token id"))?,
                user_id: user_id(&r.user_id)?,
                name: r.name,
                token_hash: r.token_hash,
                created_at: r.created_at,
                last_used_at: r.last_used_at,
            })
        })
        .collect()
    }

    async fn get_api_token_user(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(TokenId, User)>> {
        #[derive(FromRow)]
        struct Row {
            token_id: String,
            #[sqlx(flatten)]
            user: UserRow,
        }
        let found = sqlx::query_as::<_, Row>(concat!(
            "select t.id as token_id, ",
            user_cols!(),
            " from api_tokens t join users u on u.id = t.user_id where t.token_hash = $1"
        ))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(|row| {
            let token = TokenId::parse(&row.token_id).map_err(|_| corrupt("token id"))?;
            Ok::<_, StoreError>((token, row.user.into_user()?))
        })
        .transpose()?;
        if found.is_some() {
            // Minute resolution is plenty for "last used", and spares a write per request.
            sqlx::query(
                "update api_tokens set last_used_at = $1 \
                 where token_hash = $2 and coalesce(last_used_at, 0) < $3",
            )
            .bind(now)
            .bind(token_hash)
            .bind(now - 60_000)
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        }
        Ok(found)
    }

    async fn delete_api_token(&self, user: UserId, id: TokenId) -> StoreResult<()> {
        let done = sqlx::query("delete from api_tokens where id = $1 and user_id = $2")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_api_tokens(&self, user: UserId) -> StoreResult<Vec<TokenId>> {
        sqlx::query_scalar::<_, String>("delete from api_tokens where user_id = $1 returning id")
            .bind(user.to_string())
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?
            .iter()
            .map(|id| TokenId::parse(id).map_err(|_| corrupt("token id")))
            .collect()
    }

    // ---- rooms

    #[instrument(skip_all, fields(room_id = %room.id))]
    async fn insert_room(&self, room: &NewRoom, quota: Option<RoomQuota>) -> StoreResult<Room> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        if let (Some(quota), Some(by)) = (quota, room.created_by) {
            // One user's rooms are counted and created one request at a time, on any node.
            let by = by.to_string();
            advisory_lock(&mut tx, &format!("rooms:{by}")).await?;
            let created: i64 = sqlx::query_scalar(
                "select count(*) from rooms where created_by = $1 and created_at >= $2",
            )
            .bind(&by)
            .bind(quota.since)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if created >= i64::from(quota.max) {
                return Err(StoreError::Conflict(Conflict::TooManyRooms));
            }
        }
        sqlx::query(
            "insert into rooms (id, kind, name, description, owner_id, direct_key, created_at, updated_at, created_by) \
             values ($1, $2, $3, $4, $5, $6, $7, $7, $8)",
        )
        .bind(room.id.as_str())
        .bind(room.kind.code())
        .bind(&room.name)
        .bind(&room.description)
        .bind(room.owner_id.map(|id| id.to_string()))
        .bind(room.direct_key.as_deref())
        .bind(room.created_at)
        .bind(room.created_by.map(|id| id.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(unique_as(Conflict::RoomExists))?;
        if !room.members.is_empty() {
            let (ids, roles): (Vec<String>, Vec<&str>) = room
                .members
                .iter()
                .map(|(user, role)| (user.to_string(), role.code()))
                .unzip();
            sqlx::query(
                "insert into room_members (room_id, user_id, role, joined_at) \
                 select $1, m.user_id, m.role, $2 from unnest($3::text[], $4::text[]) as m(user_id, role)",
            )
            .bind(room.id.as_str())
            .bind(room.created_at)
            .bind(ids)
            .bind(roles)
            .execute(&mut *tx)
            .await
            .map_err(member_insert_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        self.get_room(&room.id).await?.ok_or(StoreError::NotFound)
    }

    async fn rooms_created_since(
        &self,
        user: UserId,
        since: i64,
    ) -> StoreResult<(u32, Option<i64>)> {
        let (count, oldest): (i64, Option<i64>) = sqlx::query_as(
            "select count(*), min(created_at) from rooms where created_by = $1 and created_at >= $2",
        )
        .bind(user.to_string())
        .bind(since)
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok((u32::try_from(count).unwrap_or(u32::MAX), oldest))
    }

    async fn get_room(&self, id: &RoomId) -> StoreResult<Option<Room>> {
        sqlx::query_as::<_, RoomRow>(concat!(
            "select ",
            room_cols!(),
            " from rooms r where r.id = $1"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(RoomRow::into_room)
        .transpose()
    }

    async fn get_direct_room(&self, direct_key: &str) -> StoreResult<Option<Room>> {
        sqlx::query_as::<_, RoomRow>(concat!(
            "select ",
            room_cols!(),
            " from rooms r where r.direct_key = $1"
        ))
        .bind(direct_key)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(RoomRow::into_room)
        .transpose()
    }

    async fn update_room(&self, id: &RoomId, changes: &RoomChanges, at: i64) -> StoreResult<Room> {
        let done = sqlx::query(
            "update rooms set name = coalesce($1, name), description = coalesce($2, description), \
             is_archived = coalesce($3, is_archived), updated_at = $4 where id = $5",
        )
        .bind(changes.name.as_deref())
        .bind(changes.description.as_deref())
        .bind(changes.is_archived)
        .bind(at)
        .bind(id.as_str())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_room(id).await?.ok_or(StoreError::NotFound)
    }

    async fn transfer_ownership(
        &self,
        id: &RoomId,
        from: UserId,
        to: UserId,
        at: i64,
    ) -> StoreResult<Room> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        // The room row first (as removals take it): a second transfer waits
        // here, then reads the owner the first one committed.
        let owner = lock_room_owner(&mut tx, id).await?;
        if owner != Some(from) {
            return Err(StoreError::Conflict(Conflict::NotOwner));
        }
        lock_member(&mut tx, id, to).await?;
        make_owner(&mut tx, id, to, at).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_room(id).await?.ok_or(StoreError::NotFound)
    }

    async fn set_owner(&self, id: &RoomId, to: UserId, at: i64) -> StoreResult<Room> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        lock_room_owner(&mut tx, id).await?;
        lock_member(&mut tx, id, to).await?;
        make_owner(&mut tx, id, to, at).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_room(id).await?.ok_or(StoreError::NotFound)
    }

    async fn list_rooms_for_user(&self, user: UserId) -> StoreResult<Vec<RoomSummary>> {
        let uid = user.to_string();
        // Unread counts stop at 1000: a badge shows "999+" and the count stays cheap.
        let rows = sqlx::query_as::<_, SummaryRow>(concat!(
            "select ",
            room_cols!(),
            ", rm.role, rm.last_read_seq, \
             (select count(*) from room_members c where c.room_id = r.id) as member_count, \
             (select count(*) from (select 1 from messages x where x.room_id = r.id and x.seq > rm.last_read_seq \
                and x.message_type = 'text' and x.sender_id <> rm.user_id limit 1000) as unread_rows) as unread \
             from room_members rm join rooms r on r.id = rm.room_id where rm.user_id = $1 \
             order by coalesce(r.last_message_at, r.created_at) desc, r.id collate \"C\""
        ))
        .bind(&uid)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;

        let last_messages = messages(
            sqlx::query_as::<_, MessageRow>(concat!(
                "select ",
                message_cols!(),
                " from room_members rm join rooms r on r.id = rm.room_id \
                 join messages m on m.room_id = r.id and m.seq = r.last_seq \
                 left join users u on u.id = m.sender_id where rm.user_id = $1"
            ))
            .bind(&uid)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?,
        )?;
        let mut last_by_room: HashMap<RoomId, Message> = last_messages
            .into_iter()
            .map(|m| (m.room_id.clone(), m))
            .collect();

        #[derive(FromRow)]
        struct PeerRow {
            peer_room_id: String,
            #[sqlx(flatten)]
            user: UserRow,
        }
        let peers = sqlx::query_as::<_, PeerRow>(concat!(
            "select rm.room_id as peer_room_id, ",
            user_cols!(),
            " from room_members rm join rooms r on r.id = rm.room_id and r.kind = 'direct' \
             join room_members other on other.room_id = rm.room_id and other.user_id <> rm.user_id \
             join users u on u.id = other.user_id where rm.user_id = $1"
        ))
        .bind(&uid)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut peer_by_room = HashMap::new();
        for row in peers {
            peer_by_room.insert(room_id(&row.peer_room_id)?, row.user.into_user()?);
        }

        rows.into_iter()
            .map(|row| {
                let room = row.room.into_room()?;
                Ok(RoomSummary {
                    role: Role::from_code(&row.role).ok_or_else(|| corrupt("role"))?,
                    member_count: row.member_count,
                    unread: row.unread,
                    last_read_seq: row.last_read_seq,
                    last_message: last_by_room.remove(&room.id),
                    peer: peer_by_room.remove(&room.id),
                    room,
                })
            })
            .collect()
    }

    async fn list_room_page_for_user(
        &self,
        user: UserId,
        after: Option<&RoomCursor>,
        limit: u32,
    ) -> StoreResult<RoomPage> {
        #[derive(FromRow)]
        struct PageRow {
            #[sqlx(flatten)]
            summary: SummaryRow,
            active_at: i64,
        }
        let uid = user.to_string();
        // One row past the page says whether another follows.
        let mut rows = sqlx::query_as::<_, PageRow>(concat!(
            "select ",
            room_cols!(),
            ", rm.role, rm.last_read_seq, coalesce(r.last_message_at, r.created_at) as active_at, \
             (select count(*) from room_members c where c.room_id = r.id) as member_count, \
             (select count(*) from (select 1 from messages x where x.room_id = r.id and x.seq > rm.last_read_seq \
                and x.message_type = 'text' and x.sender_id <> rm.user_id limit 1000) as unread_rows) as unread \
             from room_members rm join rooms r on r.id = rm.room_id where rm.user_id = $1 \
             and ($2::bigint is null or coalesce(r.last_message_at, r.created_at) < $2 \
                  or (coalesce(r.last_message_at, r.created_at) = $2 and r.id collate \"C\" > $3)) \
             order by active_at desc, r.id collate \"C\" limit $4"
        ))
        .bind(&uid)
        .bind(after.map(|c| c.active_at))
        .bind(after.map(|c| c.room_id.as_str()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = match (more, rows.last()) {
            (true, Some(last)) => Some(RoomCursor {
                active_at: last.active_at,
                room_id: room_id(&last.summary.room.id)?,
            }),
            _ => None,
        };
        let ids: Vec<&str> = rows.iter().map(|r| r.summary.room.id.as_str()).collect();

        let last_messages = messages(
            sqlx::query_as::<_, MessageRow>(concat!(
                "select ",
                message_cols!(),
                " from rooms r join messages m on m.room_id = r.id and m.seq = r.last_seq \
                 left join users u on u.id = m.sender_id where r.id = any($1)"
            ))
            .bind(&ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?,
        )?;
        let mut last_by_room: HashMap<RoomId, Message> = last_messages
            .into_iter()
            .map(|m| (m.room_id.clone(), m))
            .collect();

        #[derive(FromRow)]
        struct PeerRow {
            peer_room_id: String,
            #[sqlx(flatten)]
            user: UserRow,
        }
        let peers = sqlx::query_as::<_, PeerRow>(concat!(
            "select other.room_id as peer_room_id, ",
            user_cols!(),
            " from rooms r join room_members other on other.room_id = r.id and other.user_id <> $1 \
             join users u on u.id = other.user_id where r.kind = 'direct' and r.id = any($2)"
        ))
        .bind(&uid)
        .bind(&ids)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        let mut peer_by_room = HashMap::new();
        for row in peers {
            peer_by_room.insert(room_id(&row.peer_room_id)?, row.user.into_user()?);
        }

        let rooms = rows
            .into_iter()
            .map(|row| {
                let row = row.summary;
                let room = row.room.into_room()?;
                Ok(RoomSummary {
                    role: Role::from_code(&row.role).ok_or_else(|| corrupt("role"))?,
                    member_count: row.member_count,
                    unread: row.unread,
                    last_read_seq: row.last_read_seq,
                    last_message: last_by_room.remove(&room.id),
                    peer: peer_by_room.remove(&room.id),
                    room,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(RoomPage { rooms, next })
    }

    async fn list_room_ids_for_user(&self, user: UserId) -> StoreResult<Vec<RoomId>> {
        let ids: Vec<String> =
            sqlx::query_scalar("select room_id from room_members where user_id = $1")
                .bind(user.to_string())
                .fetch_all(&self.pool)
                .await
                .map_err(db_err)?;
        ids.iter().map(|id| room_id(id)).collect()
    }

    async fn list_public_rooms(&self, query: &str, limit: u32) -> StoreResult<Vec<(Room, i64)>> {
        #[derive(FromRow)]
        struct Row {
            #[sqlx(flatten)]
            room: RoomRow,
            member_count: i64,
        }
        // lower() on the id too: SQLite's like ignores ASCII case on both sides.
        let rows = sqlx::query_as::<_, Row>(concat!(
            "select ",
            room_cols!(),
            ", (select count(*) from room_members c where c.room_id = r.id) as member_count \
             from rooms r where r.kind = 'public' and r.is_archived = false \
             and (lower(r.name collate \"C\") like $1 escape '\\' or lower(r.id collate \"C\") like $1 escape '\\') \
             order by member_count desc, r.name collate \"C\" limit $2"
        ))
        .bind(like_pattern(query))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        rows.into_iter()
            .map(|r| Ok((r.room.into_room()?, r.member_count)))
            .collect()
    }

    // ---- members

    async fn insert_member(
        &self,
        room: &RoomId,
        user: UserId,
        role: Role,
        at: i64,
    ) -> StoreResult<Member> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        let uid = user.to_string();
        lock_membership(&mut tx, room.as_str(), &uid).await?;
        if is_banned(&mut tx, room.as_str(), &uid).await? {
            return Err(StoreError::Conflict(Conflict::Banned));
        }
        sqlx::query(
            "insert into room_members (room_id, user_id, role, joined_at, last_read_seq) \
             select $1, $2, $3, $4, last_seq from rooms where id = $1",
        )
        .bind(room.as_str())
        .bind(&uid)
        .bind(role.code())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(member_insert_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_member(room, user)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn get_member(&self, room: &RoomId, user: UserId) -> StoreResult<Option<Member>> {
        sqlx::query_as::<_, MemberRow>(concat!(
            "select ",
            member_cols!(),
            " from ",
            members_from!(),
            " where rm.room_id = $1 and rm.user_id = $2"
        ))
        .bind(room.as_str())
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(MemberRow::into_member)
        .transpose()
    }

    async fn list_members(&self, room: &RoomId) -> StoreResult<Vec<(Member, User)>> {
        sqlx::query_as::<_, MemberUserRow>(concat!(
            "select ",
            member_cols!(),
            ", ",
            user_cols!(),
            " from ",
            members_from!(),
            " join users u on u.id = rm.user_id where rm.room_id = $1 \
             order by rm.joined_at, u.username_key collate \"C\""
        ))
        .bind(room.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|row| Ok((row.member.into_member()?, row.user.into_user()?)))
        .collect()
    }

    async fn update_member_role(
        &self,
        room: &RoomId,
        user: UserId,
        role: Role,
    ) -> StoreResult<Member> {
        if role == Role::Owner {
            return Err(StoreError::Conflict(Conflict::MemberIsOwner));
        }
        // A transfer to this member holds its row: the update waits for it and
        // then re-checks the role, so it never demotes a fresh owner.
        let done = sqlx::query(
            "update room_members set role = $1 where room_id = $2 and user_id = $3 and role <> 'owner'",
        )
        .bind(role.code())
        .bind(room.as_str())
        .bind(user.to_string())
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        let member = self
            .get_member(room, user)
            .await?
            .ok_or(StoreError::NotFound)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::MemberIsOwner));
        }
        Ok(member)
    }

    async fn update_member_muted(
        &self,
        room: &RoomId,
        user: UserId,
        until: Option<i64>,
    ) -> StoreResult<Member> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        lock_member(&mut tx, room, user).await?;
        let uid = user.to_string();
        sqlx::query(
            "insert into room_restrictions (room_id, user_id, muted_until) values ($1, $2, $3) \
             on conflict (room_id, user_id) do update set muted_until = excluded.muted_until",
        )
        .bind(room.as_str())
        .bind(&uid)
        .bind(until)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        forget_empty_restriction(&mut tx, room.as_str(), &uid).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_member(room, user)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn delete_member(&self, room: &RoomId, user: UserId) -> StoreResult<()> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        // The room row, as transfers take it first: a removal racing a transfer
        // to its target runs wholly before or after it, and sees its owner.
        let is_owner = lock_room_owner(&mut tx, room).await? == Some(user);
        if is_owner {
            let others: i64 = sqlx::query_scalar(
                "select count(*) from room_members where room_id = $1 and user_id <> $2",
            )
            .bind(room.as_str())
            .bind(user.to_string())
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if others > 0 {
                return Err(StoreError::Conflict(Conflict::OwnerMustTransfer));
            }
        }
        let done = sqlx::query("delete from room_members where room_id = $1 and user_id = $2")
            .bind(room.as_str())
            .bind(user.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if is_owner {
            sqlx::query("update rooms set owner_id = null where id = $1")
                .bind(room.as_str())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        }
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn update_last_read(
        &self,
        room: &RoomId,
        user: UserId,
        seq: i64,
    ) -> StoreResult<Option<i64>> {
        sqlx::query_scalar(
            "update room_members set last_read_seq = least($1, (select last_seq from rooms where id = $2)) \
             where room_id = $2 and user_id = $3 \
             and last_read_seq < least($1, (select last_seq from rooms where id = $2)) \
             returning last_read_seq",
        )
        .bind(seq)
        .bind(room.as_str())
        .bind(user.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)
    }

    async fn read_positions(&self, room: &RoomId, user: UserId) -> StoreResult<(i64, i64)> {
        sqlx::query_as(
            "select coalesce(max(case when user_id = $2 then last_read_seq end), 0), \
                    coalesce(max(case when user_id <> $2 then last_read_seq end), 0) \
             from room_members where room_id = $1",
        )
        .bind(room.as_str())
        .bind(user.to_string())
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)
    }

    // ---- bans

    #[instrument(skip_all, fields(room_id = %ban.room_id, user_id = %ban.user_id))]
    async fn insert_ban(&self, ban: &Ban) -> StoreResult<bool> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        // The room row first, as transfers do: the owner read here stays the owner.
        if lock_room_owner(&mut tx, &ban.room_id).await? == Some(ban.user_id) {
            return Err(StoreError::Conflict(Conflict::MemberIsOwner));
        }
        let uid = ban.user_id.to_string();
        lock_membership(&mut tx, ban.room_id.as_str(), &uid).await?;
        sqlx::query(
            "insert into room_restrictions (room_id, user_id, banned_at, banned_by, ban_reason) \
             values ($1, $2, $3, $4, $5) on conflict (room_id, user_id) do update set \
             banned_at = excluded.banned_at, banned_by = excluded.banned_by, ban_reason = excluded.ban_reason",
        )
        .bind(ban.room_id.as_str())
        .bind(&uid)
        .bind(ban.banned_at)
        .bind(ban.banned_by.map(|id| id.to_string()))
        .bind(&ban.reason)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
            _ => db_err(e),
        })?;
        let removed = sqlx::query("delete from room_members where room_id = $1 and user_id = $2")
            .bind(ban.room_id.as_str())
            .bind(&uid)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(removed.rows_affected() > 0)
    }

    async fn list_bans(&self, room: &RoomId) -> StoreResult<Vec<Ban>> {
        sqlx::query_as::<_, BanRow>(
            "select room_id, user_id, banned_by, banned_at, ban_reason from room_restrictions \
             where room_id = $1 and banned_at is not null order by banned_at desc, user_id collate \"C\"",
        )
        .bind(room.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(BanRow::into_ban)
        .collect()
    }

    async fn delete_ban(&self, room: &RoomId, user: UserId) -> StoreResult<()> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        let uid = user.to_string();
        let done = sqlx::query(
            "update room_restrictions set banned_at = null, banned_by = null, ban_reason = '' \
             where room_id = $1 and user_id = $2 and banned_at is not null",
        )
        .bind(room.as_str())
        .bind(&uid)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        forget_empty_restriction(&mut tx, room.as_str(), &uid).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    // ---- blocks

    async fn insert_block(
        &self,
        user: UserId,
        blocked: UserId,
        at: i64,
        max: u32,
    ) -> StoreResult<()> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        let uid = user.to_string();
        // One user's blocks are counted and added one request at a time, on any node.
        advisory_lock(&mut tx, &format!("blocks:{uid}")).await?;
        let exists: Option<i32> =
            sqlx::query_scalar("select 1 from user_blocks where user_id = $1 and blocked_id = $2")
                .bind(&uid)
                .bind(blocked.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if exists.is_some() {
            return Ok(());
        }
        let count: i64 = sqlx::query_scalar("select count(*) from user_blocks where user_id = $1")
            .bind(&uid)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        if count >= i64::from(max) {
            return Err(StoreError::Conflict(Conflict::TooManyBlocks));
        }
        sqlx::query(
            "insert into user_blocks (user_id, blocked_id, created_at) values ($1, $2, $3)",
        )
        .bind(&uid)
        .bind(blocked.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
            _ => db_err(e),
        })?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn list_blocks(&self, user: UserId) -> StoreResult<Vec<(User, i64)>> {
        #[derive(FromRow)]
        struct Row {
            blocked_at: i64,
            #[sqlx(flatten)]
            user: UserRow,
        }
        sqlx::query_as::<_, Row>(concat!(
            "select b.created_at as blocked_at, ",
            user_cols!(),
            " from user_blocks b join users u on u.id = b.blocked_id where b.user_id = $1 \
             order by b.created_at desc, u.username_key collate \"C\""
        ))
        .bind(user.to_string())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|row| Ok((row.user.into_user()?, row.blocked_at)))
        .collect()
    }

    async fn delete_block(&self, user: UserId, blocked: UserId) -> StoreResult<()> {
        let done = sqlx::query("delete from user_blocks where user_id = $1 and blocked_id = $2")
            .bind(user.to_string())
            .bind(blocked.to_string())
            .execute(&self.pool)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn list_blockers(&self, user: UserId, among: &[UserId]) -> StoreResult<Vec<UserId>> {
        if among.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = sqlx::query_scalar(
            "select user_id from user_blocks where blocked_id = $1 and user_id = any($2)",
        )
        .bind(user.to_string())
        .bind(id_strings(among))
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        ids.iter().map(|id| user_id(id)).collect()
    }

    async fn is_blocked_between(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        let found: Option<i32> = sqlx::query_scalar(
            "select 1 from user_blocks where (user_id = $1 and blocked_id = $2) \
             or (user_id = $2 and blocked_id = $1) limit 1",
        )
        .bind(a.to_string())
        .bind(b.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(found.is_some())
    }

    // ---- invites

    async fn insert_invite(&self, invite: &Invite, max_live: u32) -> StoreResult<()> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        // A room's invites are counted and added one request at a time, on any node.
        advisory_lock(&mut tx, &format!("invites:{}", invite.room_id)).await?;
        let live: i64 = sqlx::query_scalar(
            "select count(*) from room_invites where room_id = $1 and revoked = false \
             and (expires_at is null or expires_at > $2) and (max_uses is null or uses < max_uses)",
        )
        .bind(invite.room_id.as_str())
        .bind(invite.created_at)
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if live >= i64::from(max_live) {
            return Err(StoreError::Conflict(Conflict::TooManyInvites));
        }
        sqlx::query(
            "insert into room_invites (code, room_id, created_by, created_at, expires_at, max_uses, uses, revoked) \
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&invite.code)
        .bind(invite.room_id.as_str())
        .bind(invite.created_by.to_string())
        .bind(invite.created_at)
        .bind(invite.expires_at)
        .bind(invite.max_uses)
        .bind(invite.uses)
        .bind(invite.revoked)
        .execute(&mut *tx)
        .await
        .map_err(unique_as(Conflict::InviteExists))?;
        tx.commit().await.map_err(db_err)?;
        Ok(())
    }

    async fn get_invite(&self, code: &str) -> StoreResult<Option<Invite>> {
        sqlx::query_as::<_, InviteRow>(
            "select code, room_id, created_by, created_at, expires_at, max_uses, uses, revoked \
             from room_invites where code = $1",
        )
        .bind(code)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(InviteRow::into_invite)
        .transpose()
    }

    async fn list_invites(&self, room: &RoomId) -> StoreResult<Vec<Invite>> {
        sqlx::query_as::<_, InviteRow>(
            "select code, room_id, created_by, created_at, expires_at, max_uses, uses, revoked \
             from room_invites where room_id = $1 order by created_at desc",
        )
        .bind(room.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(InviteRow::into_invite)
        .collect()
    }

    async fn revoke_invite(&self, room: &RoomId, code: &str) -> StoreResult<()> {
        let done =
            sqlx::query("update room_invites set revoked = true where room_id = $1 and code = $2")
                .bind(room.as_str())
                .bind(code)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn redeem_invite(&self, code: &str, user: UserId, at: i64) -> StoreResult<Member> {
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;
        // The update locks the invite row, so concurrent redemptions on other
        // nodes queue behind it and re-check `uses < max_uses` once it commits.
        let room: Option<String> = sqlx::query_scalar(
            "update room_invites set uses = uses + 1 where code = $1 and revoked = false \
             and (expires_at is null or expires_at > $2) and (max_uses is null or uses < max_uses) \
             returning room_id",
        )
        .bind(code)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(room) = room else {
            return Err(StoreError::Conflict(Conflict::InviteInvalid));
        };
        let uid = user.to_string();
        lock_membership(&mut tx, &room, &uid).await?;
        if is_banned(&mut tx, &room, &uid).await? {
            // Dropping the transaction rolls the use back.
            return Err(StoreError::Conflict(Conflict::Banned));
        }
        sqlx::query(
            "insert into room_members (room_id, user_id, role, joined_at, last_read_seq) \
             select $1, $2, 'member', $3, last_seq from rooms where id = $1",
        )
        .bind(&room)
        .bind(user.to_string())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(unique_as(Conflict::AlreadyMember))?;
        tx.commit().await.map_err(db_err)?;
        self.get_member(&room_id(&room)?, user)
            .await?
            .ok_or(StoreError::NotFound)
    }

    // ---- messages

    async fn insert_messages(&self, batch: &[NewMessage]) -> StoreResult<Vec<InsertOutcome>> {
        self.insert_batch(batch).await
    }

    async fn list_messages(&self, room: &RoomId, page: Page) -> StoreResult<MessagePage> {
        let (sql, bound, limit, newest_first) = match page {
            Page::Latest { limit } => (
                concat!(
                    "select ",
                    message_cols!(),
                    " from messages m left join users u on u.id = m.sender_id \
                     where m.room_id = $1 and m.seq < $2 order by m.seq desc limit $3"
                ),
                i64::MAX,
                limit,
                true,
            ),
            Page::Before { seq, limit } => (
                concat!(
                    "select ",
                    message_cols!(),
                    " from messages m left join users u on u.id = m.sender_id \
                     where m.room_id = $1 and m.seq < $2 order by m.seq desc limit $3"
                ),
                seq,
                limit,
                true,
            ),
            Page::After { seq, limit } => (
                concat!(
                    "select ",
                    message_cols!(),
                    " from messages m left join users u on u.id = m.sender_id \
                     where m.room_id = $1 and m.seq > $2 order by m.seq asc limit $3"
                ),
                seq,
                limit,
                false,
            ),
        };
        // One extra row tells whether more lies beyond the page.
        let mut rows = sqlx::query_as::<_, MessageRow>(sql)
            .bind(room.as_str())
            .bind(bound)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        if newest_first {
            rows.reverse();
        }
        Ok(MessagePage {
            messages: messages(rows)?,
            has_more,
        })
    }

    async fn get_message(&self, room: &RoomId, id: MessageId) -> StoreResult<Option<Message>> {
        sqlx::query_as::<_, MessageRow>(concat!(
            "select ",
            message_cols!(),
            " from messages m left join users u on u.id = m.sender_id where m.id = $1 and m.room_id = $2"
        ))
        .bind(id.to_string())
        .bind(room.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?
        .map(MessageRow::into_message)
        .transpose()
    }

    async fn max_seq_of(&self, room: &RoomId, ids: &[MessageId]) -> StoreResult<Option<i64>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        sqlx::query_scalar("select max(seq) from messages where room_id = $1 and id = any($2)")
            .bind(room.as_str())
            .bind(ids)
            .fetch_one(&self.pool)
            .await
            .map_err(db_err)
    }
}

#[cfg(any(test, feature = "test-support"))]
mod test_support;
#[cfg(any(test, feature = "test-support"))]
pub use test_support::{Relay, TestSchema, test_schema};

#[cfg(test)]
mod tests;
