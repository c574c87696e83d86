//! SQLite back end (the embedded default). WAL mode; all writes go through one
//! connection so writers never contend inside the process, reads use a pool.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, FromRow, QueryBuilder, SqlSafeStr, SqlStr, Sqlite};
use tracing::instrument;

use super::rows::*;
use super::thread_priority;
use super::wal_sync::WalSync;
use super::{
    ApiTokenRecord, Ban, Invite, MessagePage, NewRoom, NewUser, Page, ProfileChanges, RoomChanges,
    RoomCursor, RoomPage, RoomQuota, RoomSummary, SessionRecord, SqliteSync, Store, StoreError,
    StoreResult,
};
use crate::domain::ids::{MessageId, RoomId, TokenId, UserId};
use crate::domain::message::{InsertOutcome, Message, NewMessage};
use crate::domain::room::{Member, Role, Room};
use crate::domain::time::day_of;
use crate::domain::user::{Language, Membership, ThemeMode, ThemeStyle, User};

mod attachments;
mod batch;
mod checkpoints;

use crate::store::Conflict;
use batch::*;
use checkpoints::*;

pub struct SqliteStore {
    /// One connection: SQLite has one writer anyway, and this way it never waits on itself.
    writer: SqlitePool,
    reader: SqlitePool,
    /// Runs the periodic WAL checkpoints.
    checkpointer: SqlitePool,
    /// Set by the checkpoints when the WAL has grown large (see `restart_wal`).
    restart_wanted: Arc<AtomicBool>,
    batch: BatchSql,
    /// With `SqliteSync::Full`: message batches are synced together, beside
    /// the writer (see `wal_sync`); everything else syncs at its commit.
    wal: Option<WalSync>,
}

impl SqliteStore {
    pub async fn connect(
        url: &str,
        max_connections: u32,
        sync: SqliteSync,
    ) -> anyhow::Result<Self> {
        // In WAL mode FULL syncs the WAL at each commit (one sync per batch of
        // the group commit); NORMAL only at checkpoints.
        let synchronous = match sync {
            SqliteSync::Full => SqliteSynchronous::Full,
            SqliteSync::Normal => SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true)
            .pragma("cache_size", "-32000")
            .pragma("temp_store", "memory")
            // Checkpoints run on their own connection (see `checkpoints`), so a
            // commit never waits for one; the WAL file is cut back after a burst.
            .pragma("wal_autocheckpoint", "0")
            .pragma("journal_size_limit", WAL_LIMIT_BYTES.to_string());
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let writer =
            connect_background(WRITER_THREAD, options.clone().pragma("cache_size", "-4000"))
                .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        let wal_path =
            std::path::PathBuf::from(format!("{}-wal", options.get_filename().display()));
        let checkpointer = connect_background(CHECKPOINT_THREAD, options).await?;
        let restart_wanted = Arc::new(AtomicBool::new(false));
        tokio::spawn(checkpoints(checkpointer.clone(), restart_wanted.clone()));
        Ok(Self {
            writer,
            reader,
            checkpointer,
            restart_wanted,
            batch: BatchSql::new(),
            wal: match sync {
                SqliteSync::Full => Some(WalSync::open(wal_path)?),
                SqliteSync::Normal => None,
            },
        })
    }

    /// The pool to read with, once every message batch committed so far is
    /// on disk: what a client reads is never something a power cut could take
    /// back (see `wal_sync`).
    async fn read(&self) -> StoreResult<&SqlitePool> {
        if let Some(wal) = &self.wal
            && !wal.is_synced()
        {
            wal.wait_all()
                .await
                .map_err(|e| StoreError::Unavailable(e.into()))?;
        }
        Ok(&self.reader)
    }
}

impl SqliteStore {
    async fn is_banned(&self, room: &RoomId, user: UserId) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "select 1 from room_restrictions where room_id = ? and user_id = ? and banned_at is not null",
        )
        .bind(room.as_str())
        .bind(user.to_string())
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?;
        Ok(found.is_some())
    }
}

/// A restriction row with neither a mute nor a ban left says nothing: drop it.
async fn forget_empty_restriction(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    room: &RoomId,
    user: &str,
) -> StoreResult<()> {
    sqlx::query(
        "delete from room_restrictions where room_id = ? and user_id = ? \
         and muted_until is null and banned_at is null",
    )
    .bind(room.as_str())
    .bind(user)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// The names of the writer's and the checkpointer's connection threads.
const WRITER_THREAD: &str = "sqlite-writer";
const CHECKPOINT_THREAD: &str = "sqlite-checkpnt";

/// A pool of one connection whose thread, named `thread`, runs below the
/// event loop's priority, so that under saturation deliveries go first (see
/// `thread_priority`). Each new connection is a new thread, lowered once it runs.
async fn connect_background(
    thread: &'static str,
    options: SqliteConnectOptions,
) -> Result<SqlitePool, sqlx::Error> {
    SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |_, _| {
            Box::pin(async move {
                thread_priority::lower_priority_of(thread);
                Ok(())
            })
        })
        .connect_with(options.thread_name(move |_| thread.to_owned()))
        .await
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

/// Inside a transaction that checked `to` is a member: `to` becomes the
/// room's one owner, whoever held the role before an admin.
async fn make_owner(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    id: &RoomId,
    to: UserId,
    at: i64,
) -> StoreResult<()> {
    let to = to.to_string();
    sqlx::query(
        "update room_members set role = 'admin' where room_id = ? and role = 'owner' and user_id <> ?",
    )
    .bind(id.as_str())
    .bind(&to)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
    sqlx::query("update room_members set role = 'owner' where room_id = ? and user_id = ?")
        .bind(id.as_str())
        .bind(&to)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    sqlx::query("update rooms set owner_id = ?, updated_at = ? where id = ?")
        .bind(&to)
        .bind(at)
        .bind(id.as_str())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.writer)
            .await
            .map_err(|e| StoreError::Unavailable(Box::new(e)))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1")
            .execute(self.read().await?)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn close(&self) {
        self.checkpointer.close().await;
        self.reader.close().await;
        // Last: closing the last connection checkpoints the whole WAL.
        self.writer.close().await;
    }

    // ---- users

    #[instrument(skip_all, fields(username = %user.username))]
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User> {
        sqlx::query(
            "insert into users (id, username, username_key, password_hash, display_name, is_admin, created_at) \
             values (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(crate::domain::user::username_key(&user.username))
        .bind(&user.password_hash)
        .bind(&user.display_name)
        .bind(user.is_admin)
        .bind(user.created_at)
        .execute(&self.writer)
        .await
        .map_err(unique_as(Conflict::UsernameTaken))?;
        self.get_user(user.id).await?.ok_or(StoreError::NotFound)
    }

    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "select ",
            user_cols!(),
            " from users u where u.id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?
        .map(UserRow::into_user)
        .transpose()
    }

    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "select ",
            user_cols!(),
            " from users u where u.username_key = ?"
        ))
        .bind(crate::domain::user::username_key(username))
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?
        .map(UserRow::into_user)
        .transpose()
    }

    async fn get_credentials(&self, username: &str) -> StoreResult<Option<(UserId, String)>> {
        let row: Option<(String, String)> =
            sqlx::query_as("select id, password_hash from users where username_key = ?")
                .bind(crate::domain::user::username_key(username))
                .fetch_optional(self.read().await?)
                .await
                .map_err(db_err)?;
        row.map(|(id, hash)| Ok((user_id(&id)?, hash))).transpose()
    }

    async fn get_password_hash(&self, id: UserId) -> StoreResult<Option<String>> {
        sqlx::query_scalar("select password_hash from users where id = ?")
            .bind(id.to_string())
            .fetch_optional(self.read().await?)
            .await
            .map_err(db_err)
    }

    async fn list_users(&self, ids: &[UserId]) -> StoreResult<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(concat!(
            "select ",
            user_cols!(),
            " from users u where u.id in ("
        ));
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.to_string());
        }
        query.push(")");
        users(
            query
                .build_query_as::<UserRow>()
                .fetch_all(self.read().await?)
                .await
                .map_err(db_err)?,
        )
    }

    async fn search_users(&self, query: &str, limit: u32) -> StoreResult<Vec<User>> {
        let pattern = like_pattern(query);
        users(
            sqlx::query_as::<_, UserRow>(concat!(
                "select ",
                user_cols!(),
                " from users u where u.username_key like ?1 escape '\\' or lower(u.display_name) like ?1 escape '\\' \
                 order by u.username_key limit ?2"
            ))
            .bind(pattern)
            .bind(i64::from(limit))
            .fetch_all(self.read().await?)
            .await
            .map_err(db_err)?,
        )
    }

    #[instrument(skip_all, fields(user_id = %id))]
    async fn update_profile(&self, id: UserId, changes: &ProfileChanges) -> StoreResult<User> {
        let done = sqlx::query(
            "update users set \
               display_name = coalesce(?, display_name), first_name = coalesce(?, first_name), \
               last_name = coalesce(?, last_name), bio = coalesce(?, bio), email = coalesce(?, email), \
               theme_mode = coalesce(?, theme_mode), theme_style = coalesce(?, theme_style), \
               language = coalesce(?, language), time_zone = coalesce(?, time_zone) \
             where id = ?",
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
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn update_password(&self, id: UserId, password_hash: &str) -> StoreResult<()> {
        let done = sqlx::query("update users set password_hash = ? where id = ?")
            .bind(password_hash)
            .bind(id.to_string())
            .execute(&self.writer)
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
            sqlx::query("update users set membership = ?, membership_until = ? where id = ?")
                .bind(membership.code())
                .bind(until)
                .bind(id.to_string())
                .execute(&self.writer)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn update_admin(&self, id: UserId, is_admin: bool) -> StoreResult<User> {
        let done = sqlx::query("update users set is_admin = ? where id = ?")
            .bind(is_admin)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn update_last_seen(&self, id: UserId, at: i64) -> StoreResult<()> {
        sqlx::query("update users set last_seen_at = ? where id = ?")
            .bind(at)
            .bind(id.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn put_avatar(&self, id: UserId, png: &[u8], at: i64) -> StoreResult<User> {
        let mut tx = self
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let done =
            sqlx::query("update users set avatar_version = abs(avatar_version) + 1 where id = ?")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "insert into avatars (user_id, image, updated_at) values (?, ?, ?) \
             on conflict (user_id) do update set image = excluded.image, updated_at = excluded.updated_at",
        )
        .bind(id.to_string())
        .bind(png.to_vec())
        .bind(at)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn delete_avatar(&self, id: UserId) -> StoreResult<User> {
        let mut tx = self
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let done =
            sqlx::query("update users set avatar_version = -abs(avatar_version) where id = ?")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("delete from avatars where user_id = ?")
            .bind(id.to_string())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        self.get_user(id).await?.ok_or(StoreError::NotFound)
    }

    async fn get_avatar(&self, id: UserId) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("select image from avatars where user_id = ?")
            .bind(id.to_string())
            .fetch_optional(self.read().await?)
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
        let mut query = QueryBuilder::<Sqlite>::new(
            "select user_id, count(*) from user_activity_days where day >= ",
        );
        query.push_bind(since_day).push(" and user_id in (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.to_string());
        }
        query.push(") group by user_id");
        let rows: Vec<(String, i64)> = query
            .build_query_as()
            .fetch_all(self.read().await?)
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
             values (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.token_hash)
        .bind(s.user_id.to_string())
        .bind(&s.csrf_token)
        .bind(s.created_at)
        .bind(s.expires_at)
        .bind(s.last_used_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&self.writer)
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
            " from sessions s join users u on u.id = s.user_id where s.token_hash = ? and s.expires_at > ?"
        ))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(self.read().await?)
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
        sqlx::query("update sessions set last_used_at = ?, expires_at = ? where token_hash = ?")
            .bind(last_used_at)
            .bind(expires_at)
            .bind(token_hash)
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        Ok(())
    }

    async fn list_sessions(&self, user: UserId, now: i64) -> StoreResult<Vec<SessionRecord>> {
        sqlx::query_as::<_, SessionRow>(
            "select token_hash, user_id, csrf_token, created_at, expires_at, last_used_at, user_agent, ip \
             from sessions where user_id = ? and expires_at > ? order by last_used_at desc",
        )
        .bind(user.to_string())
        .bind(now)
        .fetch_all(self.read().await?)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(SessionRow::into_session)
        .collect()
    }

    async fn delete_session(&self, token_hash: &str) -> StoreResult<()> {
        sqlx::query("delete from sessions where token_hash = ?")
            .bind(token_hash)
            .execute(&self.writer)
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
            "delete from sessions where user_id = ?1 and (expires_at <= ?3 or token_hash not in \
             (select token_hash from sessions where user_id = ?1 and expires_at > ?3 \
              order by last_used_at desc, created_at desc limit ?2)) \
             returning token_hash",
        )
        .bind(user.to_string())
        .bind(i64::from(keep))
        .bind(now)
        .fetch_all(&self.writer)
        .await
        .map_err(db_err)
    }

    async fn delete_other_sessions(
        &self,
        user: UserId,
        keep: Option<&str>,
    ) -> StoreResult<Vec<String>> {
        sqlx::query_scalar::<_, String>(
            "delete from sessions where user_id = ? and token_hash != coalesce(?, '') \
             returning token_hash",
        )
        .bind(user.to_string())
        .bind(keep)
        .fetch_all(&self.writer)
        .await
        .map_err(db_err)
    }

    // ---- API tokens

    async fn insert_api_token(&self, t: &ApiTokenRecord, max: u32) -> StoreResult<()> {
        let done = sqlx::query(
            "insert into api_tokens (id, user_id, name, token_hash, created_at, last_used_at) \
             select ?1, ?2, ?3, ?4, ?5, ?6 where (select count(*) from api_tokens where user_id = ?2) < ?7",
        )
        .bind(t.id.to_string())
        .bind(t.user_id.to_string())
        .bind(&t.name)
        .bind(&t.token_hash)
        .bind(t.created_at)
        .bind(t.last_used_at)
        .bind(i64::from(max))
        .execute(&self.writer)
        .await
        .map_err(unique_as(Conflict::TokenExists))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::TooManyTokens));
        }
        Ok(())
    }

    async fn list_api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiTokenRecord>> {
        sqlx::query_as::<_, ApiTokenRow>(
            "select id, user_id, name, token_hash, created_at, last_used_at from api_tokens \
             where user_id = ? order by created_at",
        )
        .bind(user.to_string())
        .fetch_all(self.read().await?)
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
            " from api_tokens t join users u on u.id = t.user_id where t.token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?
        .map(|row| {
            let token = TokenId::parse(&row.token_id).map_err(|_| corrupt("token id"))?;
            Ok::<_, StoreError>((token, row.user.into_user()?))
        })
        .transpose()?;
        if found.is_some() {
            // Minute resolution is plenty for "last used", and spares a write per request.
            sqlx::query("update api_tokens set last_used_at = ? where token_hash = ? and coalesce(last_used_at, 0) < ?")
                .bind(now)
                .bind(token_hash)
                .bind(now - 60_000)
                .execute(&self.writer)
                .await
                .map_err(db_err)?;
        }
        Ok(found)
    }

    async fn delete_api_token(&self, user: UserId, id: TokenId) -> StoreResult<()> {
        let done = sqlx::query("delete from api_tokens where id = ? and user_id = ?")
            .bind(id.to_string())
            .bind(user.to_string())
            .execute(&self.writer)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn delete_api_tokens(&self, user: UserId) -> StoreResult<Vec<TokenId>> {
        sqlx::query_scalar::<_, String>("delete from api_tokens where user_id = ? returning id")
            .bind(user.to_string())
            .fetch_all(&self.writer)
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
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        if let (Some(quota), Some(by)) = (quota, room.created_by) {
            let created: i64 = sqlx::query_scalar(
                "select count(*) from rooms where created_by = ? and created_at >= ?",
            )
            .bind(by.to_string())
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
             values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(room.id.as_str())
        .bind(room.kind.code())
        .bind(&room.name)
        .bind(&room.description)
        .bind(room.owner_id.map(|id| id.to_string()))
        .bind(room.direct_key.as_deref())
        .bind(room.created_at)
        .bind(room.created_at)
        .bind(room.created_by.map(|id| id.to_string()))
        .execute(&mut *tx)
        .await
        .map_err(unique_as(Conflict::RoomExists))?;
        for (user, role) in &room.members {
            sqlx::query(
                "insert into room_members (room_id, user_id, role, joined_at) values (?, ?, ?, ?)",
            )
            .bind(room.id.as_str())
            .bind(user.to_string())
            .bind(role.code())
            .bind(room.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
                _ => unique_as(Conflict::AlreadyMember)(e),
            })?;
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
            "select count(*), min(created_at) from rooms where created_by = ? and created_at >= ?",
        )
        .bind(user.to_string())
        .bind(since)
        .fetch_one(self.read().await?)
        .await
        .map_err(db_err)?;
        Ok((u32::try_from(count).unwrap_or(u32::MAX), oldest))
    }

    async fn get_room(&self, id: &RoomId) -> StoreResult<Option<Room>> {
        sqlx::query_as::<_, RoomRow>(concat!(
            "select ",
            room_cols!(),
            " from rooms r where r.id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?
        .map(RoomRow::into_room)
        .transpose()
    }

    async fn get_direct_room(&self, direct_key: &str) -> StoreResult<Option<Room>> {
        sqlx::query_as::<_, RoomRow>(concat!(
            "select ",
            room_cols!(),
            " from rooms r where r.direct_key = ?"
        ))
        .bind(direct_key)
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?
        .map(RoomRow::into_room)
        .transpose()
    }

    async fn update_room(&self, id: &RoomId, changes: &RoomChanges, at: i64) -> StoreResult<Room> {
        let done = sqlx::query(
            "update rooms set name = coalesce(?, name), description = coalesce(?, description), \
             is_archived = coalesce(?, is_archived), updated_at = ? where id = ?",
        )
        .bind(changes.name.as_deref())
        .bind(changes.description.as_deref())
        .bind(changes.is_archived)
        .bind(at)
        .bind(id.as_str())
        .execute(&self.writer)
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
        // `begin immediate` on the one writer connection: nothing else writes
        // between the checks and the updates.
        let mut tx = self
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let owner: Option<Option<String>> =
            sqlx::query_scalar("select owner_id from rooms where id = ?")
                .bind(id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        match owner {
            None => return Err(StoreError::NotFound),
            Some(owner) if owner.as_deref() != Some(from.to_string().as_str()) => {
                return Err(StoreError::Conflict(Conflict::NotOwner));
            }
            Some(_) => {}
        }
        let target: Option<String> =
            sqlx::query_scalar("select role from room_members where room_id = ? and user_id = ?")
                .bind(id.as_str())
                .bind(to.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if target.is_none() {
            return Err(StoreError::NotFound);
        }
        make_owner(&mut tx, id, to, at).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_room(id).await?.ok_or(StoreError::NotFound)
    }

    async fn set_owner(&self, id: &RoomId, to: UserId, at: i64) -> StoreResult<Room> {
        let mut tx = self
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let target: Option<String> =
            sqlx::query_scalar("select role from room_members where room_id = ? and user_id = ?")
                .bind(id.as_str())
                .bind(to.to_string())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if target.is_none() {
            return Err(StoreError::NotFound);
        }
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
                and x.message_type = 'text' and x.sender_id != rm.user_id limit 1000)) as unread \
             from room_members rm join rooms r on r.id = rm.room_id where rm.user_id = ? \
             order by coalesce(r.last_message_at, r.created_at) desc, r.id"
        ))
        .bind(&uid)
        .fetch_all(self.read().await?)
        .await
        .map_err(db_err)?;

        let last_messages = messages(
            sqlx::query_as::<_, MessageRow>(concat!(
                "select ",
                message_cols!(),
                " from room_members rm join rooms r on r.id = rm.room_id \
                 join messages m on m.room_id = r.id and m.seq = r.last_seq \
                 left join users u on u.id = m.sender_id where rm.user_id = ?"
            ))
            .bind(&uid)
            .fetch_all(self.read().await?)
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
             join room_members other on other.room_id = rm.room_id and other.user_id != rm.user_id \
             join users u on u.id = other.user_id where rm.user_id = ?"
        ))
        .bind(&uid)
        .fetch_all(self.read().await?)
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
                and x.message_type = 'text' and x.sender_id != rm.user_id limit 1000)) as unread \
             from room_members rm join rooms r on r.id = rm.room_id where rm.user_id = ?1 \
             and (?2 is null or coalesce(r.last_message_at, r.created_at) < ?2 \
                  or (coalesce(r.last_message_at, r.created_at) = ?2 and r.id > ?3)) \
             order by active_at desc, r.id limit ?4"
        ))
        .bind(&uid)
        .bind(after.map(|c| c.active_at))
        .bind(after.map(|c| c.room_id.as_str()))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.read().await?)
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
        let ids = json_text(&ids)?;

        let last_messages = messages(
            sqlx::query_as::<_, MessageRow>(concat!(
                "select ",
                message_cols!(),
                " from rooms r join messages m on m.room_id = r.id and m.seq = r.last_seq \
                 left join users u on u.id = m.sender_id where r.id in (select value from json_each(?))"
            ))
            .bind(&ids)
            .fetch_all(self.read().await?)
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
            " from rooms r join room_members other on other.room_id = r.id and other.user_id != ?1 \
             join users u on u.id = other.user_id \
             where r.kind = 'direct' and r.id in (select value from json_each(?2))"
        ))
        .bind(&uid)
        .bind(&ids)
        .fetch_all(self.read().await?)
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
            sqlx::query_scalar("select room_id from room_members where user_id = ?")
                .bind(user.to_string())
                .fetch_all(self.read().await?)
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
        let rows = sqlx::query_as::<_, Row>(concat!(
            "select ",
            room_cols!(),
            ", (select count(*) from room_members c where c.room_id = r.id) as member_count \
             from rooms r where r.kind = 'public' and r.is_archived = false \
             and (lower(r.name) like ?1 escape '\\' or r.id like ?1 escape '\\') \
             order by member_count desc, r.name limit ?2"
        ))
        .bind(like_pattern(query))
        .bind(i64::from(limit))
        .fetch_all(self.read().await?)
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
        // One statement on the one writer: the ban check and the insert cannot
        // be split by a ban.
        let done = sqlx::query(
            "insert into room_members (room_id, user_id, role, joined_at, last_read_seq) \
             select ?1, ?2, ?3, ?4, last_seq from rooms where id = ?1 and not exists \
             (select 1 from room_restrictions where room_id = ?1 and user_id = ?2 and banned_at is not null)",
        )
        .bind(room.as_str())
        .bind(user.to_string())
        .bind(role.code())
        .bind(at)
        .execute(&self.writer)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
            _ => unique_as(Conflict::AlreadyMember)(e),
        })?;
        if done.rows_affected() == 0 && self.is_banned(room, user).await? {
            return Err(StoreError::Conflict(Conflict::Banned));
        }
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
            " where rm.room_id = ? and rm.user_id = ?"
        ))
        .bind(room.as_str())
        .bind(user.to_string())
        .fetch_optional(self.read().await?)
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
            " join users u on u.id = rm.user_id where rm.room_id = ? order by rm.joined_at, u.username_key"
        ))
        .bind(room.as_str())
        .fetch_all(self.read().await?)
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
        let done = sqlx::query(
            "update room_members set role = ? where room_id = ? and user_id = ? and role <> 'owner'",
        )
        .bind(role.code())
        .bind(room.as_str())
        .bind(user.to_string())
        .execute(&self.writer)
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
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let uid = user.to_string();
        let member: Option<i64> =
            sqlx::query_scalar("select 1 from room_members where room_id = ? and user_id = ?")
                .bind(room.as_str())
                .bind(&uid)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        if member.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "insert into room_restrictions (room_id, user_id, muted_until) values (?, ?, ?) \
             on conflict (room_id, user_id) do update set muted_until = excluded.muted_until",
        )
        .bind(room.as_str())
        .bind(&uid)
        .bind(until)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        forget_empty_restriction(&mut tx, room, &uid).await?;
        tx.commit().await.map_err(db_err)?;
        self.get_member(room, user)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn delete_member(&self, room: &RoomId, user: UserId) -> StoreResult<()> {
        let mut tx = self
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let owner: Option<Option<String>> =
            sqlx::query_scalar("select owner_id from rooms where id = ?")
                .bind(room.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        let Some(owner) = owner else {
            return Err(StoreError::NotFound);
        };
        let uid = user.to_string();
        let is_owner = owner.as_deref() == Some(uid.as_str());
        if is_owner {
            let others: i64 = sqlx::query_scalar(
                "select count(*) from room_members where room_id = ? and user_id <> ?",
            )
            .bind(room.as_str())
            .bind(&uid)
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
            if others > 0 {
                return Err(StoreError::Conflict(Conflict::OwnerMustTransfer));
            }
        }
        let done = sqlx::query("delete from room_members where room_id = ? and user_id = ?")
            .bind(room.as_str())
            .bind(&uid)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if is_owner {
            sqlx::query("update rooms set owner_id = null where id = ?")
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
            "update room_members set last_read_seq = min(?1, (select last_seq from rooms where id = ?2)) \
             where room_id = ?2 and user_id = ?3 and last_read_seq < min(?1, (select last_seq from rooms where id = ?2)) \
             returning last_read_seq",
        )
        .bind(seq)
        .bind(room.as_str())
        .bind(user.to_string())
        .fetch_optional(&self.writer)
        .await
        .map_err(db_err)
    }

    async fn read_positions(&self, room: &RoomId, user: UserId) -> StoreResult<(i64, i64)> {
        sqlx::query_as(
            "select coalesce(max(case when user_id = ?2 then last_read_seq end), 0), \
                    coalesce(max(case when user_id != ?2 then last_read_seq end), 0) \
             from room_members where room_id = ?1",
        )
        .bind(room.as_str())
        .bind(user.to_string())
        .fetch_one(self.read().await?)
        .await
        .map_err(db_err)
    }

    // ---- bans

    #[instrument(skip_all, fields(room_id = %ban.room_id, user_id = %ban.user_id))]
    async fn insert_ban(&self, ban: &Ban) -> StoreResult<bool> {
        let mut tx = self
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let uid = ban.user_id.to_string();
        let owner: Option<Option<String>> =
            sqlx::query_scalar("select owner_id from rooms where id = ?")
                .bind(ban.room_id.as_str())
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_err)?;
        match owner {
            None => return Err(StoreError::NotFound),
            Some(Some(owner)) if owner == uid => {
                return Err(StoreError::Conflict(Conflict::MemberIsOwner));
            }
            Some(_) => {}
        }
        sqlx::query(
            "insert into room_restrictions (room_id, user_id, banned_at, banned_by, ban_reason) \
             values (?, ?, ?, ?, ?) on conflict (room_id, user_id) do update set \
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
        let removed = sqlx::query("delete from room_members where room_id = ? and user_id = ?")
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
             where room_id = ? and banned_at is not null order by banned_at desc, user_id",
        )
        .bind(room.as_str())
        .fetch_all(self.read().await?)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(BanRow::into_ban)
        .collect()
    }

    async fn delete_ban(&self, room: &RoomId, user: UserId) -> StoreResult<()> {
        let mut tx = self
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let uid = user.to_string();
        let done = sqlx::query(
            "update room_restrictions set banned_at = null, banned_by = null, ban_reason = '' \
             where room_id = ? and user_id = ? and banned_at is not null",
        )
        .bind(room.as_str())
        .bind(&uid)
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        forget_empty_restriction(&mut tx, room, &uid).await?;
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
        // One statement on the one writer: the count and the insert cannot be
        // split by another block.
        let done = sqlx::query(
            "insert into user_blocks (user_id, blocked_id, created_at) \
             select ?1, ?2, ?3 where (select count(*) from user_blocks where user_id = ?1) < ?4 \
             on conflict (user_id, blocked_id) do nothing",
        )
        .bind(user.to_string())
        .bind(blocked.to_string())
        .bind(at)
        .bind(i64::from(max))
        .execute(&self.writer)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
            _ => db_err(e),
        })?;
        if done.rows_affected() == 0 {
            let exists: Option<i64> = sqlx::query_scalar(
                "select 1 from user_blocks where user_id = ? and blocked_id = ?",
            )
            .bind(user.to_string())
            .bind(blocked.to_string())
            .fetch_optional(&self.writer)
            .await
            .map_err(db_err)?;
            if exists.is_none() {
                return Err(StoreError::Conflict(Conflict::TooManyBlocks));
            }
        }
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
            " from user_blocks b join users u on u.id = b.blocked_id where b.user_id = ? \
             order by b.created_at desc, u.username_key"
        ))
        .bind(user.to_string())
        .fetch_all(self.read().await?)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(|row| Ok((row.user.into_user()?, row.blocked_at)))
        .collect()
    }

    async fn delete_block(&self, user: UserId, blocked: UserId) -> StoreResult<()> {
        let done = sqlx::query("delete from user_blocks where user_id = ? and blocked_id = ?")
            .bind(user.to_string())
            .bind(blocked.to_string())
            .execute(&self.writer)
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
        let mut query =
            QueryBuilder::<Sqlite>::new("select user_id from user_blocks where blocked_id = ");
        query.push_bind(user.to_string()).push(" and user_id in (");
        let mut list = query.separated(", ");
        for id in among {
            list.push_bind(id.to_string());
        }
        query.push(")");
        let ids: Vec<String> = query
            .build_query_scalar()
            .fetch_all(self.read().await?)
            .await
            .map_err(db_err)?;
        ids.iter().map(|id| user_id(id)).collect()
    }

    async fn is_blocked_between(&self, a: UserId, b: UserId) -> StoreResult<bool> {
        let found: Option<i64> = sqlx::query_scalar(
            "select 1 from user_blocks where (user_id = ?1 and blocked_id = ?2) \
             or (user_id = ?2 and blocked_id = ?1) limit 1",
        )
        .bind(a.to_string())
        .bind(b.to_string())
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?;
        Ok(found.is_some())
    }

    // ---- invites

    async fn insert_invite(&self, invite: &Invite, max_live: u32) -> StoreResult<()> {
        // One statement on the one writer: the count and the insert cannot be
        // split by another invite.
        let done = sqlx::query(
            "insert into room_invites (code, room_id, created_by, created_at, expires_at, max_uses, uses, revoked) \
             select ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 where (select count(*) from room_invites \
               where room_id = ?2 and revoked = false and (expires_at is null or expires_at > ?4) \
               and (max_uses is null or uses < max_uses)) < ?9",
        )
        .bind(&invite.code)
        .bind(invite.room_id.as_str())
        .bind(invite.created_by.to_string())
        .bind(invite.created_at)
        .bind(invite.expires_at)
        .bind(invite.max_uses)
        .bind(invite.uses)
        .bind(invite.revoked)
        .bind(i64::from(max_live))
        .execute(&self.writer)
        .await
        .map_err(unique_as(Conflict::InviteExists))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::TooManyInvites));
        }
        Ok(())
    }

    async fn get_invite(&self, code: &str) -> StoreResult<Option<Invite>> {
        sqlx::query_as::<_, InviteRow>(
            "select code, room_id, created_by, created_at, expires_at, max_uses, uses, revoked \
             from room_invites where code = ?",
        )
        .bind(code)
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?
        .map(InviteRow::into_invite)
        .transpose()
    }

    async fn list_invites(&self, room: &RoomId) -> StoreResult<Vec<Invite>> {
        sqlx::query_as::<_, InviteRow>(
            "select code, room_id, created_by, created_at, expires_at, max_uses, uses, revoked \
             from room_invites where room_id = ? order by created_at desc",
        )
        .bind(room.as_str())
        .fetch_all(self.read().await?)
        .await
        .map_err(db_err)?
        .into_iter()
        .map(InviteRow::into_invite)
        .collect()
    }

    async fn revoke_invite(&self, room: &RoomId, code: &str) -> StoreResult<()> {
        let done =
            sqlx::query("update room_invites set revoked = true where room_id = ? and code = ?")
                .bind(room.as_str())
                .bind(code)
                .execute(&self.writer)
                .await
                .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn redeem_invite(&self, code: &str, user: UserId, at: i64) -> StoreResult<Member> {
        let mut tx = self
            .writer
            .begin_with("begin immediate")
            .await
            .map_err(db_err)?;
        let room: Option<String> = sqlx::query_scalar(
            "update room_invites set uses = uses + 1 where code = ? and revoked = false \
             and (expires_at is null or expires_at > ?) and (max_uses is null or uses < max_uses) returning room_id",
        )
        .bind(code)
        .bind(at)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        let Some(room) = room else {
            return Err(StoreError::Conflict(Conflict::InviteInvalid));
        };
        let banned: Option<i64> = sqlx::query_scalar(
            "select 1 from room_restrictions where room_id = ? and user_id = ? and banned_at is not null",
        )
        .bind(&room)
        .bind(user.to_string())
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_err)?;
        if banned.is_some() {
            // Dropping the transaction rolls the use back.
            return Err(StoreError::Conflict(Conflict::Banned));
        }
        sqlx::query(
            "insert into room_members (room_id, user_id, role, joined_at, last_read_seq) \
             select ?, ?, 'member', ?, last_seq from rooms where id = ?",
        )
        .bind(&room)
        .bind(user.to_string())
        .bind(at)
        .bind(&room)
        .execute(&mut *tx)
        .await
        .map_err(unique_as(Conflict::AlreadyMember))?;
        tx.commit().await.map_err(db_err)?;
        self.get_member(&room_id(&room)?, user)
            .await?
            .ok_or(StoreError::NotFound)
    }

    // ---- messages

    #[instrument(skip_all, fields(batch = batch.len()))]
    async fn insert_messages(&self, batch: &[NewMessage]) -> StoreResult<Vec<InsertOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // A resend of a message stored by an earlier batch is rare (a client
        // retrying after a reconnect), so the first attempt does not look for
        // one: if there is one, the unique index on client ids refuses the
        // insert and the batch is written again, this time with the lookup.
        let written = match self.write_batch(batch, false).await {
            Ok(Some(outcomes)) => Ok(outcomes),
            Ok(None) => self.write_batch(batch, true).await.and_then(|again| {
                again.ok_or_else(|| {
                    StoreError::Unavailable(
                        "a unique index refused a batch whose resends were looked up".into(),
                    )
                })
            }),
            Err(err) => Err(err),
        };
        if self.wal.is_some() {
            // Whatever became of the batch: the next writes sync at their commit.
            if let Err(err) = sqlx::query("pragma synchronous = full")
                .execute(&self.writer)
                .await
            {
                tracing::warn!(error = %err, "could not set synchronous back to full");
            }
        }
        written
    }

    async fn sync_messages(&self) -> StoreResult<()> {
        match &self.wal {
            Some(wal) => wal
                .wait_all()
                .await
                .map_err(|e| StoreError::Unavailable(e.into())),
            None => Ok(()),
        }
    }

    async fn list_messages(&self, room: &RoomId, page: Page) -> StoreResult<MessagePage> {
        let (sql, bound, limit, newest_first) = match page {
            Page::Latest { limit } => (
                concat!(
                    "select ",
                    message_cols!(),
                    " from messages m left join users u on u.id = m.sender_id \
                     where m.room_id = ? and m.seq < ? order by m.seq desc limit ?"
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
                     where m.room_id = ? and m.seq < ? order by m.seq desc limit ?"
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
                     where m.room_id = ? and m.seq > ? order by m.seq asc limit ?"
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
            .fetch_all(self.read().await?)
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
            " from messages m left join users u on u.id = m.sender_id where m.id = ? and m.room_id = ?"
        ))
        .bind(id.to_string())
        .bind(room.as_str())
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?
        .map(MessageRow::into_message)
        .transpose()
    }

    async fn max_seq_of(&self, room: &RoomId, ids: &[MessageId]) -> StoreResult<Option<i64>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let mut query =
            QueryBuilder::<Sqlite>::new("select max(seq) from messages where room_id = ");
        query
            .push_bind(room.as_str().to_string())
            .push(" and id in (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(id.to_string());
        }
        query.push(")");
        query
            .build_query_scalar::<Option<i64>>()
            .fetch_one(self.read().await?)
            .await
            .map_err(db_err)
    }
}

#[cfg(test)]
mod tests;
