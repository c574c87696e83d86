//! Rooms, their kinds and member roles.

use serde::{Deserialize, Serialize};

use super::Invalid;
pub use super::ids::RoomId;
use super::ids::UserId;
use super::text;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomKind {
    /// Exactly two users; one room per pair.
    Direct,
    /// Private: members are added by owner/admins or join through an invite link.
    Group,
    /// Listed; any user may read and join.
    Public,
}

impl RoomKind {
    pub fn code(self) -> &'static str {
        match self {
            RoomKind::Direct => "direct",
            RoomKind::Group => "group",
            RoomKind::Public => "public",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "direct" => Some(RoomKind::Direct),
            "group" => Some(RoomKind::Group),
            "public" => Some(RoomKind::Public),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn code(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// Admins and the owner moderate (add, remove, mute).
    pub fn can_moderate(self) -> bool {
        self >= Role::Admin
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: RoomId,
    pub kind: RoomKind,
    pub name: String,
    pub description: String,
    /// `None` for rooms the server created (such as the default room).
    pub owner_id: Option<UserId>,
    pub is_archived: bool,
    /// Highest message seq in the room (0 = none yet).
    pub last_seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub room_id: RoomId,
    pub user_id: UserId,
    pub role: Role,
    /// Muted (may not post) until this instant, Unix ms.
    pub muted_until: Option<i64>,
    pub last_read_seq: i64,
    pub joined_at: i64,
}

impl Member {
    pub fn is_muted_at(&self, now_ms: i64) -> bool {
        self.muted_until.is_some_and(|until| now_ms < until)
    }
}

/// "Muted until further notice": 9999-12-31T23:59:59Z, far off yet formattable.
pub const MUTED_FOREVER: i64 = 253_402_300_799_000;

/// Ids that would shadow fixed API paths (`/tools/api/chat/rooms/`, `.../direct/...`).
pub const RESERVED_ROOM_IDS: &[&str] = &["rooms", "direct", "invites", "enhanced", "attachments"];

pub const ROOM_NAME_MAX: usize = 80;
pub const ROOM_DESCRIPTION_MAX: usize = 1000;

pub fn parse_room_name(raw: &str) -> Result<String, Invalid> {
    let name = text::single_line(raw, "name", ROOM_NAME_MAX)
        .map_err(|e| Invalid::new("invalid_room_name", e.message))?;
    if name.is_empty() {
        return Err(Invalid::new("invalid_room_name", "a room needs a name"));
    }
    Ok(name)
}

pub fn parse_room_description(raw: &str) -> Result<String, Invalid> {
    text::multi_line(raw, "description", ROOM_DESCRIPTION_MAX)
        .map_err(|e| Invalid::new("invalid_description", e.message))
}

/// The key that makes one direct room per pair: both ids, smaller first.
pub fn direct_key(a: UserId, b: UserId) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    format!("{lo}:{hi}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_key_is_symmetric() {
        let (a, b) = (UserId::new(), UserId::new());
        assert_eq!(direct_key(a, b), direct_key(b, a));
        assert_ne!(direct_key(a, b), direct_key(a, a));
    }

    #[test]
    fn room_names() {
        assert_eq!(parse_room_name("  Rust 爱好者 ").unwrap(), "Rust 爱好者");
        assert!(parse_room_name("   ").is_err());
        assert_eq!(
            parse_room_name("\u{200B}\u{202E}\u{3164}")
                .unwrap_err()
                .code,
            "invalid_room_name"
        );
        assert!(parse_room_name(&"x".repeat(81)).is_err());
    }

    #[test]
    fn roles_order() {
        assert!(Role::Owner.can_moderate());
        assert!(Role::Admin.can_moderate());
        assert!(!Role::Member.can_moderate());
    }
}
