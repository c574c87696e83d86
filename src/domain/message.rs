//! Chat messages.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Invalid;
use super::attachment::{Attachment, AttachmentKind};
use super::ids::{MessageId, RoomId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageType {
    Text,
    /// Written by the server for joins, leaves, renames and similar events.
    System,
    /// One or more images (and a caption).
    Image,
    /// Files, or attachments of mixed kinds.
    File,
    /// One recorded voice message.
    Voice,
    /// One or more videos.
    Video,
}

impl MessageType {
    pub fn code(self) -> &'static str {
        match self {
            MessageType::Text => "text",
            MessageType::System => "system",
            MessageType::Image => "image",
            MessageType::File => "file",
            MessageType::Voice => "voice",
            MessageType::Video => "video",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "text" => Some(MessageType::Text),
            "system" => Some(MessageType::System),
            "image" => Some(MessageType::Image),
            "file" => Some(MessageType::File),
            "voice" => Some(MessageType::Voice),
            "video" => Some(MessageType::Video),
            _ => None,
        }
    }

    /// The type of a message carrying these attachments: their kind when they
    /// all share one, else `file`; text without any.
    pub fn of_attachments(attachments: &[Attachment]) -> Self {
        let Some(first) = attachments.first() else {
            return MessageType::Text;
        };
        if attachments.iter().any(|a| a.kind != first.kind) {
            return MessageType::File;
        }
        match first.kind {
            AttachmentKind::Image => MessageType::Image,
            AttachmentKind::File => MessageType::File,
            AttachmentKind::Voice => MessageType::Voice,
            AttachmentKind::Video => MessageType::Video,
        }
    }

    /// Whether a user writes messages of this type (the server alone writes system ones).
    pub fn is_user_written(self) -> bool {
        self != MessageType::System
    }
}

/// Who sent a message, as shown next to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub avatar_version: i64,
}

impl Sender {
    pub fn shown_name(&self) -> &str {
        if self.display_name.is_empty() {
            &self.username
        } else {
            &self.display_name
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: MessageId,
    pub room_id: RoomId,
    /// Per room, strictly increasing from 1, without gaps.
    pub seq: i64,
    /// `None` only for system messages not caused by a user.
    pub sender: Option<Arc<Sender>>,
    pub message_type: MessageType,
    pub content: String,
    pub client_id: Option<String>,
    /// For system messages: what happened, as JSON (a [`SystemEvent`]).
    pub event: Option<String>,
    /// Empty for text and system messages (an empty `Vec` allocates nothing).
    pub attachments: Vec<Attachment>,
    pub created_at: i64,
}

/// A message about to be stored; the store assigns `seq`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub id: MessageId,
    pub room_id: RoomId,
    pub sender: Option<Arc<Sender>>,
    pub message_type: MessageType,
    pub content: String,
    pub client_id: Option<String>,
    pub event: Option<String>,
    /// Uploads of the sender in this room, not yet posted: the store claims
    /// them for this message in the transaction that stores it, or refuses it.
    pub attachments: Vec<Attachment>,
    pub created_at: i64,
}

impl NewMessage {
    pub fn into_message(self, seq: i64) -> Message {
        Message {
            id: self.id,
            room_id: self.room_id,
            seq,
            sender: self.sender,
            message_type: self.message_type,
            content: self.content,
            client_id: self.client_id,
            event: self.event,
            attachments: self.attachments,
            created_at: self.created_at,
        }
    }
}

/// What storing a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InsertOutcome {
    Inserted(Message),
    /// The sender already stored a message with this `client_id` in this room: here it is.
    Duplicate(Message),
    /// Not stored: one of its attachments is not (or no longer) an unposted
    /// upload of its sender in its room, e.g. a second message racing for it.
    AttachmentsTaken,
}

impl InsertOutcome {
    /// The stored message (`None` when it was refused).
    pub fn message(&self) -> Option<&Message> {
        match self {
            InsertOutcome::Inserted(m) | InsertOutcome::Duplicate(m) => Some(m),
            InsertOutcome::AttachmentsTaken => None,
        }
    }
}

pub const CLIENT_ID_MAX: usize = 128;

/// A client's idempotency key: 1–128 printable characters.
pub fn parse_client_id(raw: &str) -> Result<String, Invalid> {
    let ok = !raw.is_empty() && raw.len() <= CLIENT_ID_MAX && !raw.chars().any(char::is_control);
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Invalid::new(
            "invalid_client_id",
            "client_id must be 1-128 printable characters",
        ))
    }
}

/// The structured form of a system message, so a UI can show it in its own language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SystemEvent {
    RoomCreated {
        user_id: UserId,
        username: String,
        name: String,
    },
    MemberJoined {
        user_id: UserId,
        username: String,
    },
    MemberLeft {
        user_id: UserId,
        username: String,
    },
    MemberAdded {
        user_id: UserId,
        username: String,
        by_id: UserId,
        by: String,
    },
    MemberRemoved {
        user_id: UserId,
        username: String,
        by_id: UserId,
        by: String,
    },
    RoomRenamed {
        name: String,
        by_id: UserId,
        by: String,
    },
    DescriptionChanged {
        by_id: UserId,
        by: String,
    },
    OwnershipTransferred {
        user_id: UserId,
        username: String,
        by_id: UserId,
        by: String,
    },
    RoomArchived {
        by_id: UserId,
        by: String,
    },
    RoomUnarchived {
        by_id: UserId,
        by: String,
    },
}

impl SystemEvent {
    /// Plain-text fallback for clients that do not render events themselves.
    pub fn text(&self) -> String {
        match self {
            SystemEvent::RoomCreated { username, name, .. } => {
                format!("{username} created the room \"{name}\"")
            }
            SystemEvent::MemberJoined { username, .. } => format!("{username} joined the room"),
            SystemEvent::MemberLeft { username, .. } => format!("{username} left the room"),
            SystemEvent::MemberAdded { username, by, .. } => format!("{by} added {username}"),
            SystemEvent::MemberRemoved { username, by, .. } => format!("{by} removed {username}"),
            SystemEvent::RoomRenamed { name, by, .. } => {
                format!("{by} renamed the room to \"{name}\"")
            }
            SystemEvent::DescriptionChanged { by, .. } => {
                format!("{by} changed the room description")
            }
            SystemEvent::OwnershipTransferred { username, by, .. } => {
                format!("{by} made {username} the owner")
            }
            SystemEvent::RoomArchived { by, .. } => format!("{by} archived the room"),
            SystemEvent::RoomUnarchived { by, .. } => format!("{by} unarchived the room"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids() {
        assert!(parse_client_id("abc-123").is_ok());
        assert!(parse_client_id("").is_err());
        assert!(parse_client_id(&"x".repeat(129)).is_err());
        assert!(parse_client_id("a\nb").is_err());
    }

    #[test]
    fn system_events_serialize_with_a_tag() {
        let id = UserId::new();
        let event = SystemEvent::MemberJoined {
            user_id: id,
            username: "ann".into(),
        };
        let json = serde_json::to_value(&event).unwrap();
        assert_eq!(json["event"], "member_joined");
        assert_eq!(json["username"], "ann");
        assert_eq!(event.text(), "ann joined the room");
    }
}
