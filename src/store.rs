//! The storage interface. SQLite is the embedded default; PostgreSQL implements
//! the same trait for multi-node setups. Each back end owns its SQL and maps its
//! own failures onto [`StoreError`]; nothing above this layer sees `sqlx`.
//! The store knows no rules, sockets or HTTP: it imports `domain/` only.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use url::Url;

use crate::domain::attachment::Attachment;
use crate::domain::ids::{AttachmentId, MessageId, RoomId, TokenId, UserId};
use crate::domain::message::{InsertOutcome, Message, NewMessage};
use crate::domain::room::{Member, Role, Room, RoomKind};
use crate::domain::user::{Language, Membership, ThemeMode, ThemeStyle, User};

pub mod postgres;
pub mod room_cache;
mod rows;
pub mod sqlite;
mod thread_priority;
mod wal_sync;

#[cfg(test)]
mod conformance;

/// Which uniqueness or quota rule a write broke. Its [`Conflict::code`] is
/// the error code clients see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// The user already belongs to the room.
    AlreadyMember,
    /// The user is banned from the room.
    Banned,
    /// An invite with this code exists (a random code repeated).
    InviteExists,
    /// The invite is unknown, expired or used up.
    InviteInvalid,
    /// The member is the room's owner, whom this cannot change.
    MemberIsOwner,
    /// The acting user is not (or no longer) the room's owner.
    NotOwner,
    /// The owner cannot leave while others remain: ownership must move first.
    OwnerMustTransfer,
    /// A room with this id exists.
    RoomExists,
    /// A session with this token exists (a random token repeated).
    SessionExists,
    /// An API token with this hash exists (a random token repeated).
    TokenExists,
    /// The user blocks as many users as `--max-blocks-per-user` allows.
    TooManyBlocks,
    /// The room has as many live invites as `--max-invites-per-room` allows.
    TooManyInvites,
    /// The user created as many rooms this hour as `--max-rooms-per-hour` allows.
    TooManyRooms,
    /// The user holds as many API tokens as `--max-tokens-per-user` allows.
    TooManyTokens,
    /// The user uploaded as many bytes in the last day as `--max-upload-bytes-per-day` allows.
    UploadQuotaExceeded,
    /// The username is taken.
    UsernameTaken,
}

impl Conflict {
    pub fn code(self) -> &'static str {
        match self {
            Self::AlreadyMember => "already_member",
            Self::Banned => "banned",
            Self::InviteExists => "invite_exists",
            Self::InviteInvalid => "invite_invalid",
            Self::MemberIsOwner => "member_is_owner",
            Self::NotOwner => "not_owner",
            Self::OwnerMustTransfer => "owner_must_transfer",
            Self::RoomExists => "room_exists",
            Self::SessionExists => "session_exists",
            Self::TokenExists => "token_exists",
            Self::TooManyBlocks => "too_many_blocks",
            Self::TooManyInvites => "too_many_invites",
            Self::TooManyRooms => "too_many_rooms",
            Self::TooManyTokens => "too_many_tokens",
            Self::UploadQuotaExceeded => "upload_quota_exceeded",
            Self::UsernameTaken => "username_taken",
        }
    }
}

impl std::fmt::Display for Conflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or quota rule was broken; the value names which.
    #[error("conflict: {0}")]
    Conflict(Conflict),
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
    /// A valid IANA zone name, or empty to forget it.
    pub time_zone: Option<String>,
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
    /// Who created it (counted by [`RoomQuota`]); `None` for the server's rooms.
    pub created_by: Option<UserId>,
}

/// A cap on rooms created per user and window: the insert is refused when the
/// room's `created_by` already created `max` rooms at or after `since`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomQuota {
    pub max: u32,
    pub since: i64,
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

/// Where a page of a user's room list continues: right after this room, in
/// the list's order (most recently active first, then by room id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomCursor {
    /// The room's last activity: its newest message, else its creation (Unix ms).
    pub active_at: i64,
    pub room_id: RoomId,
}

/// A page of a user's room list, and where the next one starts (`None`: this
/// was the last page).
#[derive(Debug, Clone)]
pub struct RoomPage {
    pub rooms: Vec<RoomSummary>,
    pub next: Option<RoomCursor>,
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

/// A ban: who may not be a member of a room (nor join, use an invite or be
/// added) until unbanned, by whom, since when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    pub room_id: RoomId,
    pub user_id: UserId,
    /// `None` once the user who banned is gone.
    pub banned_by: Option<UserId>,
    pub banned_at: i64,
    pub reason: String,
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

/// An upload as the store keeps it: whose, where, and which message posted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachmentRecord {
    pub attachment: Attachment,
    /// The room it was uploaded to; it may be posted only there.
    pub room_id: RoomId,
    pub uploader_id: UserId,
    /// `None` until a message posts it.
    pub message_id: Option<MessageId>,
    pub created_at: i64,
}

/// A cap on the bytes a user uploads per window: an upload is refused when
/// the uploader's uploads at or after `since`, with it, would pass `max_bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadQuota {
    pub max_bytes: i64,
    pub since: i64,
}

/// A page of history in ascending seq, and whether more lies beyond it
/// (older for `Latest`/`Before`, newer for `After`).
#[derive(Debug, Clone)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    pub has_more: bool,
}

#[async_trait]
pub trait Store: AttachmentStore + Send + Sync + 'static {
    /// Applies pending migrations.
    async fn migrate(&self) -> StoreResult<()>;
    /// Cheap round trip, for readiness checks.
    async fn ping(&self) -> StoreResult<()>;
    /// Closes the pool once in-flight work finishes.
    async fn close(&self);

    // ---- users
    /// Creates a user. `Conflict(Conflict::UsernameTaken)` when the name exists in any case.
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
    /// Versions only grow, across removals too, so an avatar URL never names
    /// two images.
    async fn put_avatar(&self, id: UserId, png: &[u8], at: i64) -> StoreResult<User>;
    /// Drops the uploaded avatar (the generated one shows again) and returns
    /// the user; the version is kept, negated, for the next upload to follow.
    /// `NotFound` if the user does not exist; removing no avatar is not an error.
    async fn delete_avatar(&self, id: UserId) -> StoreResult<User>;
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
    /// Keeps the user's `keep` most recently used live sessions and deletes
    /// the others (and any expired ones); returns the token hashes deleted.
    async fn delete_excess_sessions(
        &self,
        user: UserId,
        keep: u32,
        now: i64,
    ) -> StoreResult<Vec<String>>;
    /// Deletes all of a user's sessions but `keep`; returns the token hashes
    /// of those deleted (so their live connections can be closed).
    async fn delete_other_sessions(
        &self,
        user: UserId,
        keep: Option<&str>,
    ) -> StoreResult<Vec<String>>;

    // ---- API tokens
    /// Refused with `Conflict(Conflict::TooManyTokens)` when the user already has
    /// `max` tokens (counted in the same transaction as the insert).
    async fn insert_api_token(&self, token: &ApiTokenRecord, max: u32) -> StoreResult<()>;
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
    /// Creates a room with its members. `Conflict(Conflict::RoomExists)` if the id or
    /// direct pair is taken; `Conflict(Conflict::TooManyRooms)` over `quota`, counted
    /// in the same transaction (so it holds for concurrent requests and nodes).
    async fn insert_room(&self, room: &NewRoom, quota: Option<RoomQuota>) -> StoreResult<Room>;
    /// How many rooms `user` created at or after `since`, and the oldest of
    /// their creation times (when a slot of a [`RoomQuota`] frees up).
    async fn rooms_created_since(
        &self,
        user: UserId,
        since: i64,
    ) -> StoreResult<(u32, Option<i64>)>;
    async fn get_room(&self, id: &RoomId) -> StoreResult<Option<Room>>;
    async fn get_direct_room(&self, direct_key: &str) -> StoreResult<Option<Room>>;
    async fn update_room(&self, id: &RoomId, changes: &RoomChanges, at: i64) -> StoreResult<Room>;
    /// Makes `to` the owner and `from` an admin, in one transaction that holds
    /// the room's one-owner rule against concurrent transfers and removals:
    /// `Conflict(Conflict::NotOwner)` unless `from` still owns the room when it runs,
    /// `NotFound` unless `to` is a member then (no such room: `NotFound` too).
    async fn transfer_ownership(
        &self,
        id: &RoomId,
        from: UserId,
        to: UserId,
        at: i64,
    ) -> StoreResult<Room>;
    /// Repairs a room's ownership: `to` (who must be a member, else `NotFound`)
    /// becomes its one owner, any other member holding the owner role becomes
    /// an admin, and `owner_id` names `to`, in one transaction.
    async fn set_owner(&self, id: &RoomId, to: UserId, at: i64) -> StoreResult<Room>;
    /// The rooms `user` belongs to, most recently active first.
    async fn list_rooms_for_user(&self, user: UserId) -> StoreResult<Vec<RoomSummary>>;
    /// A page of the same list: up to `limit` rooms after `after` (from the
    /// start with `None`), keyset-paged on (last activity, id), so a user in
    /// thousands of rooms pages through all of them without a gap or a repeat
    /// (as long as none of them changes its activity meanwhile).
    async fn list_room_page_for_user(
        &self,
        user: UserId,
        after: Option<&RoomCursor>,
        limit: u32,
    ) -> StoreResult<RoomPage>;
    async fn list_room_ids_for_user(&self, user: UserId) -> StoreResult<Vec<RoomId>>;
    /// Unarchived public rooms whose name or id contains `query`, with member counts.
    async fn list_public_rooms(&self, query: &str, limit: u32) -> StoreResult<Vec<(Room, i64)>>;

    // ---- members
    /// `Conflict(Conflict::AlreadyMember)` if present, `Conflict(Conflict::Banned)` if the
    /// user is banned from the room (checked in the same transaction as the
    /// insert, so a join racing a ban cannot slip in), `NotFound` if the room
    /// or user does not exist.
    async fn insert_member(
        &self,
        room: &RoomId,
        user: UserId,
        role: Role,
        at: i64,
    ) -> StoreResult<Member>;
    async fn get_member(&self, room: &RoomId, user: UserId) -> StoreResult<Option<Member>>;
    async fn list_members(&self, room: &RoomId) -> StoreResult<Vec<(Member, User)>>;
    /// Makes a member an admin or a member. The owner's role changes only by
    /// transfer: `Conflict(Conflict::MemberIsOwner)` for the owner or `role: Owner`.
    async fn update_member_role(
        &self,
        room: &RoomId,
        user: UserId,
        role: Role,
    ) -> StoreResult<Member>;
    /// Mutes a member until `until` (Unix ms) or unmutes them (`None`);
    /// `NotFound` if not a member. The mute stays with the user in the room
    /// after they leave: it applies again when they come back, by any way.
    async fn update_member_muted(
        &self,
        room: &RoomId,
        user: UserId,
        until: Option<i64>,
    ) -> StoreResult<Member>;
    /// Ends a membership; `NotFound` if not a member. The owner cannot be
    /// removed while anyone else is a member (`Conflict(Conflict::OwnerMustTransfer)`),
    /// checked in the same transaction, so a removal racing a transfer to its
    /// target cannot leave `owner_id` naming a non-member. The owner leaving
    /// as the last member leaves the room without an owner.
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

    // ---- bans
    /// Bans the user from the room and ends their membership, if any, in one
    /// transaction; returns whether they were a member. Banning again updates
    /// who, when and why. The owner cannot be banned (`Conflict(Conflict::MemberIsOwner)`);
    /// `NotFound` if the room or user does not exist. A mute is kept.
    async fn insert_ban(&self, ban: &Ban) -> StoreResult<bool>;
    /// The room's bans, most recent first.
    async fn list_bans(&self, room: &RoomId) -> StoreResult<Vec<Ban>>;
    /// Lifts a ban (a mute, if any, stays); `NotFound` if the user is not banned.
    async fn delete_ban(&self, room: &RoomId, user: UserId) -> StoreResult<()>;

    // ---- blocks
    /// `user` blocks `blocked` (doing it again changes nothing). Refused with
    /// `Conflict(Conflict::TooManyBlocks)` when `user` already blocks `max` others;
    /// `NotFound` if either user does not exist.
    async fn insert_block(
        &self,
        user: UserId,
        blocked: UserId,
        at: i64,
        max: u32,
    ) -> StoreResult<()>;
    /// The users `user` blocks, with when, most recent first.
    async fn list_blocks(&self, user: UserId) -> StoreResult<Vec<(User, i64)>>;
    /// `NotFound` if `user` does not block `blocked`.
    async fn delete_block(&self, user: UserId, blocked: UserId) -> StoreResult<()>;
    /// Those of `among` who block `user`.
    async fn list_blockers(&self, user: UserId, among: &[UserId]) -> StoreResult<Vec<UserId>>;
    /// Whether either of the two blocks the other.
    async fn is_blocked_between(&self, a: UserId, b: UserId) -> StoreResult<bool>;

    // ---- invites
    /// Refused with `Conflict(Conflict::TooManyInvites)` when the room already has
    /// `max_live` usable invites (not revoked, expired or used up at the
    /// invite's `created_at`), counted in the same transaction.
    async fn insert_invite(&self, invite: &Invite, max_live: u32) -> StoreResult<()>;
    async fn get_invite(&self, code: &str) -> StoreResult<Option<Invite>>;
    async fn list_invites(&self, room: &RoomId) -> StoreResult<Vec<Invite>>;
    async fn revoke_invite(&self, room: &RoomId, code: &str) -> StoreResult<()>;
    /// Counts a use of the invite and adds the member, atomically; fails with
    /// `Conflict(Conflict::InviteInvalid)` if it is unknown, expired, revoked or has
    /// no uses left, `Conflict(Conflict::Banned)` if the user is banned from the room
    /// (the use is not counted).
    async fn redeem_invite(&self, code: &str, user: UserId, at: i64) -> StoreResult<Member>;

    // ---- messages
    /// Stores a batch in one transaction. Per room, seqs continue from the room's
    /// last seq without gaps, in batch order. A message whose sender already used
    /// its `client_id` in that room is not stored again: its outcome is the original.
    /// Committed, but not necessarily on disk yet: call [`Store::sync_messages`]
    /// before anyone is told of the batch.
    async fn insert_messages(&self, batch: &[NewMessage]) -> StoreResult<Vec<InsertOutcome>>;
    /// Waits until every message batch committed before the call survives a
    /// power cut. The message writer calls it before anyone hears of a batch.
    /// Where commits are synced as they happen (PostgreSQL's
    /// `synchronous_commit`), or are not to be (`SqliteSync::Normal`), it
    /// returns at once.
    async fn sync_messages(&self) -> StoreResult<()> {
        Ok(())
    }
    async fn list_messages(&self, room: &RoomId, page: Page) -> StoreResult<MessagePage>;
    /// The message of `room` with this id.
    async fn get_message(&self, room: &RoomId, id: MessageId) -> StoreResult<Option<Message>>;
    /// The highest seq among these message ids in the room (ids elsewhere are ignored).
    async fn max_seq_of(&self, room: &RoomId, ids: &[MessageId]) -> StoreResult<Option<i64>>;
}

pub type DynStore = Arc<dyn Store>;

/// Uploads, on their own trait so the message path's trait stays what it is;
/// every store implements both.
#[async_trait]
pub trait AttachmentStore: Send + Sync + 'static {
    /// Records an upload whose files are stored. Refused with
    /// `Conflict(Conflict::UploadQuotaExceeded)` over `quota`, counted in the
    /// same transaction (so it holds for concurrent uploads and nodes);
    /// `NotFound` if the room or uploader does not exist.
    async fn insert_attachment(
        &self,
        record: &AttachmentRecord,
        quota: UploadQuota,
    ) -> StoreResult<()>;
    async fn get_attachment(&self, id: AttachmentId) -> StoreResult<Option<AttachmentRecord>>;
    /// Bytes `user` uploaded at or after `since`, and when the oldest of
    /// those uploads was made (when quota frees up).
    async fn uploaded_since(&self, user: UserId, since: i64) -> StoreResult<(i64, Option<i64>)>;
    /// Uploads no message posted, made before `before`, oldest first.
    async fn list_unposted_attachments(
        &self,
        before: i64,
        limit: u32,
    ) -> StoreResult<Vec<AttachmentId>>;
    /// Deletes those of these uploads still unposted (a message claiming one
    /// meanwhile keeps it); returns the ids deleted, whose files may go.
    async fn delete_unposted_attachments(
        &self,
        ids: &[AttachmentId],
    ) -> StoreResult<Vec<AttachmentId>>;
    /// Those of these ids that have a row (for `parley storage check`).
    async fn existing_attachments(&self, ids: &[AttachmentId]) -> StoreResult<Vec<AttachmentId>>;
}

/// When an SQLite commit reaches the disk. PostgreSQL follows the server's
/// own `synchronous_commit`, which is on unless its operator turns it off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSync {
    /// Every commit is synced to the WAL file before it returns: a message
    /// acknowledged or delivered survives a power cut or an OS crash.
    Full,
    /// Commits are synced only at checkpoints: the last commits before a power
    /// cut or an OS crash may roll back (never a corrupt database). Their seqs
    /// are then handed out again, so clients that saw them skip the new ones.
    Normal,
}

/// Opens the back end named by the URL scheme: `sqlite:` or `postgres://`
/// (also `postgresql://`), durable by default.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<DynStore> {
    connect_with(url, max_connections, SqliteSync::Full).await
}

/// As [`connect`], choosing how SQLite syncs its commits.
pub async fn connect_with(
    url: &str,
    max_connections: u32,
    sqlite_sync: SqliteSync,
) -> anyhow::Result<DynStore> {
    use anyhow::Context as _;
    if url.starts_with("sqlite:") {
        Ok(Arc::new(
            sqlite::SqliteStore::connect(url, max_connections, sqlite_sync).await?,
        ))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PostgresStore::connect(url, max_connections)
            .await
            .with_context(|| format!("could not connect to PostgreSQL at {}", redact_url(url)))?;
        Ok(Arc::new(store))
    } else {
        anyhow::bail!(
            "unsupported database URL {:?}: use sqlite: or postgres://",
            redact_url(url)
        )
    }
}

/// Hides the password in a URL such as `postgres://user:secret@host/db`.
pub fn redact_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("REDACTED"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}
