//! The storage interface. SQLite is the embedded default; PostgreSQL implements
//! the same trait for multi-node setups. Each back end owns its SQL and maps its
//! own failures onto [`StoreError`]; nothing above this layer sees `sqlx`.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::domain::ids::{MessageId, RoomId, TokenId, UserId};
use crate::domain::message::{InsertOutcome, Message, NewMessage};
use crate::domain::room::{Member, Role, Room, RoomKind};
use crate::domain::user::{Language, Membership, ThemeMode, ThemeStyle, User};

pub mod postgres;
pub mod sqlite;
mod thread_priority;

#[cfg(test)]
mod conformance;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was broken; the code names which (e.g. `username_taken`).
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A new account.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub display_name: String,
    pub is_admin: bool,
    pub created_at: i64,
}

/// Profile fields a user may change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProfileChanges {
    pub display_name: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub email: Option<String>,
    pub theme_mode: Option<ThemeMode>,
    pub theme_style: Option<ThemeStyle>,
    pub language: Option<Language>,
}

/// A login session; only the SHA-256 of its cookie value is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub token_hash: String,
    pub user_id: UserId,
    pub csrf_token: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: i64,
    pub user_agent: String,
    pub ip: String,
}

/// A personal API token; only the SHA-256 of the token is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRecord {
    pub id: TokenId,
    pub user_id: UserId,
    pub name: String,
    pub token_hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A new room and its first members.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub id: RoomId,
    pub kind: RoomKind,
    pub name: String,
    pub description: String,
    pub owner_id: Option<UserId>,
    /// Set for direct rooms: one room per pair of users.
    pub direct_key: Option<String>,
    pub created_at: i64,
    pub members: Vec<(UserId, Role)>,
}

/// Room fields that change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct RoomChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_archived: Option<bool>,
}

/// A room as listed for one of its members.
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub room: Room,
    pub role: Role,
    pub member_count: i64,
    pub unread: i64,
    pub last_read_seq: i64,
    pub last_message: Option<Message>,
    /// For direct rooms: the other user.
    pub peer: Option<User>,
}

/// An invite link to a group room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub code: String,
    pub room_id: RoomId,
    pub created_by: UserId,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub max_uses: Option<i64>,
    pub uses: i64,
    pub revoked: bool,
}

/// Which slice of a room's history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// The newest `limit` messages.
    Latest { limit: u32 },
    /// Up to `limit` messages with seq < `seq`, the closest ones.
    Before { seq: i64, limit: u32 },
    /// Up to `limit` messages with seq > `seq`, the closest ones.
    After { seq: i64, limit: u32 },
}

/// A page of history in ascending seq, and whether more lies beyond it
/// (older for `Latest`/`Before`, newer for `After`).
#[derive(Debug, Clone)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Cheap round trip, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Closes the pool once in-flight work finishes.
    async fn close(&self);

    // ---- users
    /// Creates a user. `Conflict("username_taken")` when the name exists in any case.
    async fn insert_user(&self, user: &NewUser) -> StoreResult<User>;
    async fn get_user(&self, id: UserId) -> StoreResult<Option<User>>;
    /// Case-insensitive lookup.
    async fn get_user_by_username(&self, username: &str) -> StoreResult<Option<User>>;
    /// The user's id and password hash, by case-insensitive username.
    async fn get_credentials(&self, username: &str) -> StoreResult<Option<(UserId, String)>>;
    async fn get_password_hash(&self, id: UserId) -> StoreResult<Option<String>>;
    /// The users with these ids that exist, in no particular order.
    async fn list_users(&self, ids: &[UserId]) -> StoreResult<Vec<User>>;
    /// Users whose username or display name contains `query` (case-insensitive), by username.
    async fn search_users(&self, query: &str, limit: u32) -> StoreResult<Vec<User>>;
    /// `NotFound` if the user does not exist.
    async fn update_profile(&self, id: UserId, changes: &ProfileChanges) -> StoreResult<User>;
    async fn update_password(&self, id: UserId, password_hash: &str) -> StoreResult<()>;
    async fn update_membership(
        &self,
        id: UserId,
        membership: Membership,
        until: Option<i64>,
    ) -> StoreResult<User>;
    async fn update_admin(&self, id: UserId, is_admin: bool) -> StoreResult<User>;
    async fn update_last_seen(&self, id: UserId, at: i64) -> StoreResult<()>;
    /// Stores a (re-encoded) avatar and returns the user with its new version.
    async fn put_avatar(&self, id: UserId, png: &[u8], at: i64) -> StoreResult<User>;
    async fn get_avatar(&self, id: UserId) -> StoreResult<Option<Vec<u8>>>;
    /// For each user, on how many distinct UTC days >= `since_day` they sent a message.
    async fn count_active_days(
        &self,
        ids: &[UserId],
        since_day: i64,
    ) -> StoreResult<HashMap<UserId, u32>>;

    // ---- sessions
    async fn insert_session(&self, session: &SessionRecord) -> StoreResult<()>;
    /// The unexpired session with this token hash, and its user.
    async fn get_session(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(SessionRecord, User)>>;
    async fn touch_session(
        &self,
        token_hash: &str,
        last_used_at: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    async fn list_sessions(&self, user: UserId, now: i64) -> StoreResult<Vec<SessionRecord>>;
    async fn delete_session(&self, token_hash: &str) -> StoreResult<()>;
    /// Deletes all of a user's sessions but `keep`; returns the token hashes
    /// of those deleted (so their live connections can be closed).
    async fn delete_other_sessions(
        &self,
        user: UserId,
        keep: Option<&str>,
    ) -> StoreResult<Vec<String>>;

    // ---- API tokens
    async fn insert_api_token(&self, token: &ApiTokenRecord) -> StoreResult<()>;
    async fn list_api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiTokenRecord>>;
    /// The token's id and owner, recording the use.
    async fn get_api_token_user(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<(TokenId, User)>>;
    /// `NotFound` unless `user` owns the token.
    async fn delete_api_token(&self, user: UserId, id: TokenId) -> StoreResult<()>;
    /// Deletes every token of `user` in one statement; returns their ids.
    async fn delete_api_tokens(&self, user: UserId) -> StoreResult<Vec<TokenId>>;

    // ---- rooms
    /// Creates a room with its members. `Conflict("room_exists")` if the id or direct pair is taken.
    async fn insert_room(&self, room: &NewRoom) -> StoreResult<Room>;
    async fn get_room(&self, id: &RoomId) -> StoreResult<Option<Room>>;
    async fn get_direct_room(&self, direct_key: &str) -> StoreResult<Option<Room>>;
    async fn update_room(&self, id: &RoomId, changes: &RoomChanges, at: i64) -> StoreResult<Room>;
    /// Makes `to` the owner and the previous owner an admin, atomically.
    async fn transfer_ownership(
        &self,
        id: &RoomId,
        from: UserId,
        to: UserId,
        at: i64,
    ) -> StoreResult<Room>;
    /// The rooms `user` belongs to, most recently active first.
    async fn list_rooms_for_user(&self, user: UserId) -> StoreResult<Vec<RoomSummary>>;
    async fn list_room_ids_for_user(&self, user: UserId) -> StoreResult<Vec<RoomId>>;
    /// Unarchived public rooms whose name or id contains `query`, with member counts.
    async fn list_public_rooms(&self, query: &str, limit: u32) -> StoreResult<Vec<(Room, i64)>>;

    // ---- members
    /// `Conflict("already_member")` if present.
    async fn insert_member(
        &self,
        room: &RoomId,
        user: UserId,
        role: Role,
        at: i64,
    ) -> StoreResult<Member>;
    async fn get_member(&self, room: &RoomId, user: UserId) -> StoreResult<Option<Member>>;
    async fn list_members(&self, room: &RoomId) -> StoreResult<Vec<(Member, User)>>;
    async fn update_member_role(
        &self,
        room: &RoomId,
        user: UserId,
        role: Role,
    ) -> StoreResult<Member>;
    async fn update_member_muted(
        &self,
        room: &RoomId,
        user: UserId,
        until: Option<i64>,
    ) -> StoreResult<Member>;
    /// `NotFound` if not a member.
    async fn delete_member(&self, room: &RoomId, user: UserId) -> StoreResult<()>;
    /// Raises the member's read position to `seq`, capped at the room's last seq.
    /// Returns the new position if it moved, `None` if it was already there or past it.
    async fn update_last_read(
        &self,
        room: &RoomId,
        user: UserId,
        seq: i64,
    ) -> StoreResult<Option<i64>>;
    /// `user`'s read position (0 if not a member) and the highest of everyone else's.
    async fn read_positions(&self, room: &RoomId, user: UserId) -> StoreResult<(i64, i64)>;

    // ---- invites
    async fn insert_invite(&self, invite: &Invite) -> StoreResult<()>;
    async fn get_invite(&self, code: &str) -> StoreResult<Option<Invite>>;
    async fn list_invites(&self, room: &RoomId) -> StoreResult<Vec<Invite>>;
    async fn revoke_invite(&self, room: &RoomId, code: &str) -> StoreResult<()>;
    /// Counts a use of the invite and adds the member, atomically; fails with
    /// `Conflict("invite_exhausted")` if it has no uses left.
    async fn redeem_invite(&self, code: &str, user: UserId, at: i64) -> StoreResult<Member>;

    // ---- messages
    /// Stores a batch in one transaction. Per room, seqs continue from the room's
    /// last seq without gaps, in batch order. A message whose sender already used
    /// its `client_id` in that room is not stored again: its outcome is the original.
    async fn insert_messages(&self, batch: &[NewMessage]) -> StoreResult<Vec<InsertOutcome>>;
    async fn list_messages(&self, room: &RoomId, page: Page) -> StoreResult<MessagePage>;
    /// The highest seq among these message ids in the room (ids elsewhere are ignored).
    async fn max_seq_of(&self, room: &RoomId, ids: &[MessageId]) -> StoreResult<Option<i64>>;
}

pub type DynStore = Arc<dyn Store>;

/// Opens the back end named by the URL scheme: `sqlite:` or `postgres://`
/// (also `postgresql://`).
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DynStore> {
    use anyhow::Context as _;
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect(url, max_connections).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PostgresStore::connect(url, max_connections)
            .await
            .with_context(|| {
                format!(
                    "could not connect to PostgreSQL at {}",
                    crate::config::redact_url(url)
                )
            })?;
        Ok(Arc::new(store))
    } else {
        anyhow::bail!(
            "unsupported database URL {:?}: use sqlite: or postgres://",
            crate::config::redact_url(url)
        )
    }
}
