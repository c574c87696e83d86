//! What the server tells clients: the frames of docs/protocol.md that the
//! services produce (a message committed, someone typing, a member leaving)
//! and the sessions send. Below both `services/` and `realtime/`, so the rules
//! can say what happened without knowing about sockets. Imports only
//! `domain/` and `views`.

use axum::extract::ws::Utf8Bytes;
use serde::Serialize;

use crate::domain::ids::{RoomId, UserId};
use crate::views::{MessageView, ProfileView, RoomView};

/// A room's state in `connection_established` on `/ws/`.
#[derive(Debug, Serialize)]
pub struct RoomPresence<'a> {
    pub room_id: &'a RoomId,
    pub last_seq: i64,
    pub online: Vec<UserId>,
}

/// Who is connected, in `connection_established`.
#[derive(Debug, Serialize)]
pub struct UserBrief<'a> {
    pub id: UserId,
    pub username: &'a str,
    pub display_name: &'a str,
}

/// Why someone no longer belongs to a room (`reason` of `room_left`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Departure {
    /// They left.
    Left,
    /// An admin removed or banned them.
    Removed,
}

/// A frame from the server.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent<'a> {
    ConnectionEstablished {
        /// The room of `/ws/chat/<room>/`; null on `/ws/`.
        room_id: Option<&'a RoomId>,
        user: UserBrief<'a>,
        user_profile: &'a ProfileView,
        /// Seconds between server heartbeats.
        heartbeat_interval: f64,
        /// The room's highest seq (single-room connections).
        #[serde(skip_serializing_if = "Option::is_none")]
        last_seq: Option<i64>,
        /// User ids present in the room (single-room connections).
        #[serde(skip_serializing_if = "Option::is_none")]
        online: Option<Vec<UserId>>,
        /// Every room followed (on `/ws/`).
        #[serde(skip_serializing_if = "Option::is_none")]
        rooms: Option<Vec<RoomPresence<'a>>>,
    },
    ChatMessage {
        room_id: &'a RoomId,
        message: MessageView<'a>,
    },
    UserJoined {
        room_id: &'a RoomId,
        user_id: UserId,
        username: &'a str,
        user_profile: &'a ProfileView,
    },
    UserLeft {
        room_id: &'a RoomId,
        user_id: UserId,
        username: &'a str,
        user_profile: &'a ProfileView,
    },
    UserTyping {
        room_id: &'a RoomId,
        user_id: UserId,
        username: &'a str,
        is_typing: bool,
    },
    ReadStatusUpdate {
        room_id: &'a RoomId,
        user_id: UserId,
        up_to_seq: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        message_ids: Option<&'a [String]>,
    },
    ResumeComplete {
        room_id: &'a RoomId,
        last_seq: i64,
        replayed: usize,
    },
    Heartbeat {
        /// Server time, Unix milliseconds.
        timestamp: i64,
    },
    Pong {
        timestamp: i64,
    },
    /// On `/ws/`: the user now belongs to this room (joined, added, invited).
    RoomJoined {
        room_id: &'a RoomId,
        room: RoomView<'a>,
    },
    /// The user no longer belongs to this room.
    RoomLeft {
        room_id: &'a RoomId,
        reason: Departure,
    },
    /// Name, description, owner or archived state changed.
    RoomUpdated {
        room_id: &'a RoomId,
        room: RoomView<'a>,
    },
    /// A member's role or mute changed.
    MemberUpdated {
        room_id: &'a RoomId,
        user_id: UserId,
        role: crate::domain::room::Role,
        muted_until: Option<String>,
    },
    Error {
        code: &'a str,
        message: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        client_id: Option<&'a str>,
    },
}

impl ServerEvent<'_> {
    /// Serializes once; the bytes are shared by every recipient.
    pub fn encode(&self) -> Utf8Bytes {
        match serde_json::to_string(self) {
            Ok(text) => Utf8Bytes::from(text),
            Err(err) => {
                tracing::error!(error = %err, "could not encode a server event");
                Utf8Bytes::from_static(
                    r#"{"type":"error","code":"internal_error","message":"internal error"}"#,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_events_are_tagged() {
        let room = RoomId::parse("general").unwrap();
        let frame = ServerEvent::ResumeComplete {
            room_id: &room,
            last_seq: 9,
            replayed: 2,
        }
        .encode();
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap();
        assert_eq!(value["type"], "resume_complete");
        assert_eq!(value["room_id"], "general");
        assert_eq!(value["last_seq"], 9);
    }
}
