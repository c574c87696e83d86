//! JSON views of domain values, shared by the REST API and the WebSocket protocol
//! so a message or profile looks the same wherever it arrives.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::domain::attachment::Attachment;
use crate::domain::ids::{AttachmentId, MessageId, RoomId, UserId};
use crate::domain::message::Message;
use crate::domain::room::{Member, Role, Room};
use crate::domain::tags::{self, Tag};
use crate::domain::time::rfc3339;
use crate::domain::user::User;
use crate::store::RoomSummary;

/// The URL of a user's avatar. It changes whenever the image does, so it can be
/// cached for ever: uploaded avatars carry their version, generated ones a hash
/// of the name their initials come from.
pub fn avatar_url(id: UserId, avatar_version: i64, shown_name: &str) -> String {
    if avatar_version > 0 {
        format!("/avatars/{id}?v={avatar_version}")
    } else {
        format!("/avatars/{id}?v=g{:08x}", fnv1a(shown_name.as_bytes()))
    }
}

/// FNV-1a: a tiny stable hash for cache-busting and colours (not for security).
pub fn fnv1a(bytes: &[u8]) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in bytes {
        hash ^= u32::from(*b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[derive(Debug, Clone, Serialize)]
pub struct ThemeView {
    pub mode: &'static str,
    pub style: &'static str,
}

/// `GET /tools/api/user/<id>/profile/` and everywhere a user is shown in full.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileView {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub first_name: String,
    pub last_name: String,
    pub avatar_url: String,
    pub bio: String,
    /// Chinese label of the membership in force (`免费用户` when expired).
    pub membership_type: &'static str,
    /// Code of the membership in force: free, basic, premium, vip.
    pub membership: &'static str,
    pub membership_expires_at: Option<String>,
    /// Chinese label of the theme mode (`极客模式`, ...).
    pub theme_mode: &'static str,
    pub theme: ThemeView,
    pub language: &'static str,
    pub tags: Vec<String>,
    pub tag_details: Vec<Tag>,
    pub is_online: bool,
    pub last_seen: Option<String>,
    /// IANA time zone name ("Asia/Shanghai"), `""` if unknown.
    pub time_zone: String,
    pub date_joined: String,
    pub is_staff: bool,
    /// Only for the user themself and site admins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
}

impl ProfileView {
    pub fn new(
        user: &User,
        now_ms: i64,
        active_days: u32,
        is_online: bool,
        show_email: bool,
    ) -> Self {
        let tag_details = tags::compute(user, now_ms, active_days);
        let membership = user.membership_at(now_ms);
        Self {
            id: user.id,
            username: user.username.clone(),
            display_name: user.display_name.clone(),
            first_name: user.first_name.clone(),
            last_name: user.last_name.clone(),
            avatar_url: avatar_url(user.id, user.avatar_version, user.shown_name()),
            bio: user.bio.clone(),
            membership_type: membership.label_zh(),
            membership: membership.code(),
            membership_expires_at: user
                .membership_until
                .filter(|_| membership.code() != "free")
                .map(rfc3339),
            theme_mode: user.theme_mode.label_zh(),
            theme: ThemeView {
                mode: user.theme_mode.code(),
                style: user.theme_style.code(),
            },
            language: user.language.code(),
            tags: tag_details.iter().map(Tag::text).collect(),
            tag_details,
            is_online,
            last_seen: user.last_seen_at.map(rfc3339),
            time_zone: user.time_zone.clone(),
            date_joined: rfc3339(user.created_at),
            is_staff: user.is_admin,
            email: show_email.then(|| user.email.clone()),
        }
    }
}

/// A member of a room, as in the participants list.
#[derive(Debug, Clone, Serialize)]
pub struct ParticipantView {
    #[serde(flatten)]
    pub profile: ProfileView,
    pub role: Role,
    pub muted_until: Option<String>,
    pub joined_at: String,
}

impl ParticipantView {
    pub fn new(profile: ProfileView, member: &Member, now_ms: i64) -> Self {
        Self {
            profile,
            role: member.role,
            muted_until: member.muted_until.filter(|&t| t > now_ms).map(rfc3339),
            joined_at: rfc3339(member.joined_at),
        }
    }
}

/// A message as a given viewer sees it (`is_own`, `is_read` depend on the viewer).
#[derive(Debug, Serialize)]
pub struct MessageView<'a> {
    pub id: MessageId,
    pub seq: i64,
    pub room_id: &'a RoomId,
    pub sender: Option<&'a str>,
    pub sender_id: Option<UserId>,
    pub sender_display_name: Option<&'a str>,
    pub sender_avatar: Option<String>,
    pub content: &'a str,
    pub message_type: &'static str,
    pub created_at: String,
    pub client_id: Option<&'a str>,
    pub is_own: bool,
    pub is_read: bool,
    /// For system messages: the structured event (see docs/protocol.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<&'a RawValue>,
    /// Left out for messages without any (text, system).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentView<'a>>,
}

/// An attachment as clients see it: its metadata and where to fetch it.
#[derive(Debug, Serialize)]
pub struct AttachmentView<'a> {
    pub id: AttachmentId,
    pub kind: &'static str,
    pub name: &'a str,
    pub size: i64,
    pub mime: &'a str,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thumbnail_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub animated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waveform: Option<&'a [u8]>,
}

impl<'a> AttachmentView<'a> {
    pub fn new(attachment: &'a Attachment) -> Self {
        let base = format!("/tools/api/chat/attachments/{}/", attachment.id);
        let thumbs = attachment.has_thumbnails();
        Self {
            id: attachment.id,
            kind: attachment.kind.code(),
            name: &attachment.name,
            size: attachment.size,
            mime: &attachment.mime,
            thumbnail_url: thumbs.then(|| format!("{base}thumbnail/")),
            preview_url: thumbs.then(|| format!("{base}preview/")),
            url: base,
            width: attachment.width,
            height: attachment.height,
            animated: attachment.animated,
            placeholder: attachment.placeholder.as_deref(),
            duration_ms: attachment.duration_ms,
            waveform: attachment.waveform.as_deref(),
        }
    }
}

impl<'a> MessageView<'a> {
    pub fn new(message: &'a Message, is_own: bool, is_read: bool) -> Self {
        let sender = message.sender.as_deref();
        Self {
            id: message.id,
            seq: message.seq,
            room_id: &message.room_id,
            sender: sender.map(|s| s.username.as_str()),
            sender_id: sender.map(|s| s.id),
            sender_display_name: sender.map(|s| s.shown_name()),
            sender_avatar: sender.map(|s| avatar_url(s.id, s.avatar_version, s.shown_name())),
            content: &message.content,
            message_type: message.message_type.code(),
            created_at: rfc3339(message.created_at),
            client_id: message.client_id.as_deref(),
            is_own,
            is_read,
            event: message
                .event
                .as_deref()
                .and_then(|e| serde_json::from_str(e).ok()),
            attachments: message
                .attachments
                .iter()
                .map(AttachmentView::new)
                .collect(),
        }
    }

    /// How `viewer` sees the message, given the highest seq they have read and the
    /// highest seq any other member has read (for their own messages).
    pub fn for_viewer(
        message: &'a Message,
        viewer: UserId,
        my_read_seq: i64,
        others_read_seq: i64,
    ) -> Self {
        let is_own = message.sender.as_ref().is_some_and(|s| s.id == viewer);
        let is_read = if is_own {
            others_read_seq >= message.seq
        } else {
            my_read_seq >= message.seq
        };
        Self::new(message, is_own, is_read)
    }
}

/// A room. `my_role`, `unread` and friends are present in the caller's own lists.
#[derive(Debug, Serialize)]
pub struct RoomView<'a> {
    pub room_id: &'a RoomId,
    pub name: &'a str,
    pub description: &'a str,
    pub room_type: &'static str,
    pub owner_id: Option<UserId>,
    pub is_archived: bool,
    pub status: &'static str,
    pub last_seq: i64,
    pub created_at: String,
    pub updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member_count: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub my_role: Option<Role>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_message: Option<MessageView<'a>>,
    /// Direct rooms: the other user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<ProfileView>,
}

impl<'a> RoomView<'a> {
    pub fn new(room: &'a Room) -> Self {
        Self {
            room_id: &room.id,
            name: &room.name,
            description: &room.description,
            room_type: room.kind.code(),
            owner_id: room.owner_id,
            is_archived: room.is_archived,
            status: if room.is_archived {
                "archived"
            } else {
                "active"
            },
            last_seq: room.last_seq,
            created_at: rfc3339(room.created_at),
            updated_at: rfc3339(room.updated_at),
            member_count: None,
            my_role: None,
            unread: None,
            last_read_seq: None,
            last_message: None,
            peer: None,
        }
    }

    pub fn summary(summary: &'a RoomSummary, viewer: UserId, peer: Option<ProfileView>) -> Self {
        Self {
            member_count: Some(summary.member_count),
            my_role: Some(summary.role),
            unread: Some(summary.unread),
            last_read_seq: Some(summary.last_read_seq),
            last_message: summary
                .last_message
                .as_ref()
                .map(|m| MessageView::for_viewer(m, viewer, summary.last_read_seq, 0)),
            peer,
            ..Self::new(&summary.room)
        }
    }
}
