//! The rows both back ends read, and their mapping onto domain types: the same
//! tables and columns on SQLite and PostgreSQL, so one copy (`sqlx::FromRow`
//! decodes either database). Also the column lists the queries splice in and
//! the few helpers every query shares. Imports `domain/` only.

use std::sync::Arc;

use sqlx::FromRow;

use super::{Ban, Invite, SessionRecord, StoreError, StoreResult};
use crate::domain::ids::{MessageId, RoomId, UserId};
use crate::domain::message::{Message, MessageType, Sender};
use crate::domain::room::{Member, Role, Room, RoomKind};
use crate::domain::user::{Language, Membership, ThemeMode, ThemeStyle, User};

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Unavailable(format!("corrupt value in database: {what}").into())
}

pub(super) fn user_id(text: &str) -> StoreResult<UserId> {
    UserId::parse(text).map_err(|_| corrupt("user id"))
}

pub(super) fn room_id(text: &str) -> StoreResult<RoomId> {
    RoomId::parse(text).map_err(|_| corrupt("room id"))
}

macro_rules! user_cols {
    () => {
        "u.id, u.username, u.display_name, u.first_name, u.last_name, u.bio, u.email, u.membership, \
         u.membership_until, u.theme_mode, u.theme_style, u.language, u.is_admin, u.avatar_version, \
         u.created_at, u.last_seen_at, u.time_zone"
    };
}

#[derive(FromRow)]
pub(super) struct UserRow {
    pub(super) id: String,
    pub(super) username: String,
    pub(super) display_name: String,
    pub(super) first_name: String,
    pub(super) last_name: String,
    pub(super) bio: String,
    pub(super) email: String,
    pub(super) membership: String,
    pub(super) membership_until: Option<i64>,
    pub(super) theme_mode: String,
    pub(super) theme_style: String,
    pub(super) language: String,
    pub(super) is_admin: bool,
    pub(super) avatar_version: i64,
    pub(super) created_at: i64,
    pub(super) last_seen_at: Option<i64>,
    pub(super) time_zone: String,
}

impl UserRow {
    pub(super) fn into_user(self) -> StoreResult<User> {
        Ok(User {
            id: user_id(&self.id)?,
            username: self.username,
            display_name: self.display_name,
            first_name: self.first_name,
            last_name: self.last_name,
            bio: self.bio,
            email: self.email,
            membership: Membership::from_code(&self.membership)
                .ok_or_else(|| corrupt("membership"))?,
            membership_until: self.membership_until,
            theme_mode: ThemeMode::from_code(&self.theme_mode)
                .ok_or_else(|| corrupt("theme_mode"))?,
            theme_style: ThemeStyle::from_code(&self.theme_style)
                .ok_or_else(|| corrupt("theme_style"))?,
            language: Language::from_code(&self.language).ok_or_else(|| corrupt("language"))?,
            is_admin: self.is_admin,
            avatar_version: self.avatar_version,
            created_at: self.created_at,
            last_seen_at: self.last_seen_at,
            time_zone: self.time_zone,
        })
    }
}

pub(super) fn users(rows: Vec<UserRow>) -> StoreResult<Vec<User>> {
    rows.into_iter().map(UserRow::into_user).collect()
}

macro_rules! room_cols {
    () => {
        "r.id, r.kind, r.name, r.description, r.owner_id, r.is_archived, r.last_seq, r.created_at, r.updated_at"
    };
}

#[derive(FromRow)]
pub(super) struct RoomRow {
    pub(super) id: String,
    pub(super) kind: String,
    pub(super) name: String,
    pub(super) description: String,
    pub(super) owner_id: Option<String>,
    pub(super) is_archived: bool,
    pub(super) last_seq: i64,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
}

impl RoomRow {
    pub(super) fn into_room(self) -> StoreResult<Room> {
        Ok(Room {
            id: room_id(&self.id)?,
            kind: RoomKind::from_code(&self.kind).ok_or_else(|| corrupt("room kind"))?,
            name: self.name,
            description: self.description,
            owner_id: self.owner_id.as_deref().map(user_id).transpose()?,
            is_archived: self.is_archived,
            last_seq: self.last_seq,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

macro_rules! member_cols {
    () => {
        "rm.room_id, rm.user_id, rm.role, rx.muted_until, rm.last_read_seq, rm.joined_at"
    };
}

/// Memberships with their restrictions (the mute lives there, see `member_cols`).
macro_rules! members_from {
    () => {
        "room_members rm left join room_restrictions rx on rx.room_id = rm.room_id and rx.user_id = rm.user_id"
    };
}

#[derive(FromRow)]
pub(super) struct MemberRow {
    pub(super) room_id: String,
    pub(super) user_id: String,
    pub(super) role: String,
    pub(super) muted_until: Option<i64>,
    pub(super) last_read_seq: i64,
    pub(super) joined_at: i64,
}

impl MemberRow {
    pub(super) fn into_member(self) -> StoreResult<Member> {
        Ok(Member {
            room_id: room_id(&self.room_id)?,
            user_id: user_id(&self.user_id)?,
            role: Role::from_code(&self.role).ok_or_else(|| corrupt("role"))?,
            muted_until: self.muted_until,
            last_read_seq: self.last_read_seq,
            joined_at: self.joined_at,
        })
    }
}

#[derive(FromRow)]
pub(super) struct MemberUserRow {
    #[sqlx(flatten)]
    pub(super) member: MemberRow,
    #[sqlx(flatten)]
    pub(super) user: UserRow,
}

macro_rules! message_cols {
    () => {
        "m.id, m.room_id, m.seq, m.sender_id, m.message_type, m.content, m.client_id, m.event, m.attachments, m.created_at, \
         u.username as sender_username, u.display_name as sender_display_name, \
         u.avatar_version as sender_avatar_version"
    };
}

#[derive(FromRow)]
pub(super) struct MessageRow {
    pub(super) id: String,
    pub(super) room_id: String,
    pub(super) seq: i64,
    pub(super) sender_id: Option<String>,
    pub(super) message_type: String,
    pub(super) content: String,
    pub(super) client_id: Option<String>,
    pub(super) event: Option<String>,
    pub(super) attachments: Option<String>,
    pub(super) created_at: i64,
    pub(super) sender_username: Option<String>,
    pub(super) sender_display_name: Option<String>,
    pub(super) sender_avatar_version: Option<i64>,
}

impl MessageRow {
    pub(super) fn into_message(self) -> StoreResult<Message> {
        let sender = match (self.sender_id, self.sender_username) {
            (Some(id), Some(username)) => Some(Arc::new(Sender {
                id: user_id(&id)?,
                username,
                display_name: self.sender_display_name.unwrap_or_default(),
                avatar_version: self.sender_avatar_version.unwrap_or_default(),
            })),
            _ => None,
        };
        Ok(Message {
            id: MessageId::parse(&self.id).map_err(|_| corrupt("message id"))?,
            room_id: room_id(&self.room_id)?,
            seq: self.seq,
            sender,
            message_type: MessageType::from_code(&self.message_type)
                .ok_or_else(|| corrupt("message type"))?,
            content: self.content,
            client_id: self.client_id,
            event: self.event,
            attachments: match self.attachments {
                Some(json) => serde_json::from_str(&json).map_err(|_| corrupt("attachments"))?,
                None => Vec::new(),
            },
            created_at: self.created_at,
        })
    }
}

pub(super) fn messages(rows: Vec<MessageRow>) -> StoreResult<Vec<Message>> {
    rows.into_iter().map(MessageRow::into_message).collect()
}

#[derive(FromRow)]
pub(super) struct SessionRow {
    pub(super) token_hash: String,
    pub(super) user_id: String,
    pub(super) csrf_token: String,
    pub(super) created_at: i64,
    pub(super) expires_at: i64,
    pub(super) last_used_at: i64,
    pub(super) user_agent: String,
    pub(super) ip: String,
}

impl SessionRow {
    pub(super) fn into_session(self) -> StoreResult<SessionRecord> {
        Ok(SessionRecord {
            token_hash: self.token_hash,
            user_id: user_id(&self.user_id)?,
            csrf_token: self.csrf_token,
            created_at: self.created_at,
            expires_at: self.expires_at,
            last_used_at: self.last_used_at,
            user_agent: self.user_agent,
            ip: self.ip,
        })
    }
}

#[derive(FromRow)]
pub(super) struct ApiTokenRow {
    pub(super) id: String,
    pub(super) user_id: String,
    pub(super) name: String,
    pub(super) token_hash: String,
    pub(super) created_at: i64,
    pub(super) last_used_at: Option<i64>,
}

#[derive(FromRow)]
pub(super) struct InviteRow {
    pub(super) code: String,
    pub(super) room_id: String,
    pub(super) created_by: String,
    pub(super) created_at: i64,
    pub(super) expires_at: Option<i64>,
    pub(super) max_uses: Option<i64>,
    pub(super) uses: i64,
    pub(super) revoked: bool,
}

impl InviteRow {
    pub(super) fn into_invite(self) -> StoreResult<Invite> {
        Ok(Invite {
            code: self.code,
            room_id: room_id(&self.room_id)?,
            created_by: user_id(&self.created_by)?,
            created_at: self.created_at,
            expires_at: self.expires_at,
            max_uses: self.max_uses,
            uses: self.uses,
            revoked: self.revoked,
        })
    }
}

#[derive(FromRow)]
pub(super) struct BanRow {
    pub(super) room_id: String,
    pub(super) user_id: String,
    pub(super) banned_by: Option<String>,
    pub(super) banned_at: i64,
    pub(super) ban_reason: String,
}

impl BanRow {
    pub(super) fn into_ban(self) -> StoreResult<Ban> {
        Ok(Ban {
            room_id: room_id(&self.room_id)?,
            user_id: user_id(&self.user_id)?,
            banned_by: self.banned_by.as_deref().map(user_id).transpose()?,
            banned_at: self.banned_at,
            reason: self.ban_reason,
        })
    }
}

#[derive(FromRow)]
pub(super) struct SummaryRow {
    #[sqlx(flatten)]
    pub(super) room: RoomRow,
    pub(super) role: String,
    pub(super) last_read_seq: i64,
    pub(super) member_count: i64,
    pub(super) unread: i64,
}

/// Escapes `%`, `_` and `\` so user text matches literally inside `like`.
pub(super) fn like_pattern(query: &str) -> String {
    let mut pattern = String::with_capacity(query.len() + 2);
    pattern.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

pub(super) use member_cols;
pub(super) use members_from;
pub(super) use message_cols;
pub(super) use room_cols;
pub(super) use user_cols;
