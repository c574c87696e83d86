//! What WebSocket clients send ([`ClientMsg`]) and how it is decoded: JSON text
//! frames with a `type` field; see docs/protocol.md. What the server sends is
//! [`crate::events::ServerEvent`], shared with the services that produce it.

use serde::Deserialize;

use crate::domain::ids::RoomId;

/// A frame from a client. On `/ws/` frames name their room; on `/ws/chat/<room>/`
/// the room is implied and `room_id`, if given, must match.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Message {
        /// `message` is accepted too, as the original system's clients sent it.
        #[serde(alias = "message")]
        content: String,
        #[serde(default)]
        message_type: Option<String>,
        #[serde(default)]
        client_id: Option<String>,
        #[serde(default)]
        room_id: Option<RoomId>,
        /// Ids of the sender's uploads to this room that the message posts.
        #[serde(default)]
        attachments: Vec<String>,
    },
    Typing {
        is_typing: bool,
        #[serde(default)]
        room_id: Option<RoomId>,
    },
    ReadStatus {
        message_ids: Vec<String>,
        #[serde(default)]
        room_id: Option<RoomId>,
    },
    Read {
        up_to_seq: i64,
        #[serde(default)]
        room_id: Option<RoomId>,
    },
    Resume {
        since_seq: i64,
        #[serde(default)]
        room_id: Option<RoomId>,
    },
    Ping {
        #[serde(default)]
        timestamp: Option<serde_json::Value>,
    },
    HeartbeatAck {
        #[serde(default)]
        timestamp: Option<serde_json::Value>,
    },
}

/// The `type`s a client may send (the permission-matrix test walks them).
pub const CLIENT_TYPES: &[&str] = &[
    "message",
    "typing",
    "read_status",
    "read",
    "resume",
    "ping",
    "heartbeat_ack",
];

/// Why a frame could not be decoded: an error code and message for the `error` frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub code: &'static str,
    pub message: String,
    /// The frame's `client_id`, if one could be read, so the client can match the error.
    pub client_id: Option<String>,
}

impl ClientMsg {
    /// Decodes a text frame. Never panics, whatever the input.
    pub fn decode(text: &str) -> Result<Self, DecodeError> {
        serde_json::from_str(text).map_err(|err| classify(text, &err))
    }
}

/// Only reached on the error path: a second, lenient look at the frame to say what was wrong.
fn classify(text: &str, err: &serde_json::Error) -> DecodeError {
    #[derive(Deserialize)]
    struct Loose {
        #[serde(rename = "type")]
        kind: Option<serde_json::Value>,
        client_id: Option<serde_json::Value>,
    }
    let loose: Option<Loose> = match err.classify() {
        serde_json::error::Category::Data => serde_json::from_str(text).ok(),
        _ => None,
    };
    let Some(loose) = loose else {
        return DecodeError {
            code: "invalid_json",
            message: "frames must be JSON objects".to_string(),
            client_id: None,
        };
    };
    let client_id = loose.client_id.and_then(|v| v.as_str().map(str::to_string));
    match loose.kind {
        None => DecodeError {
            code: "invalid_frame",
            message: "the frame has no \"type\"".into(),
            client_id,
        },
        Some(serde_json::Value::String(kind)) if !CLIENT_TYPES.contains(&kind.as_str()) => {
            DecodeError {
                code: "unknown_type",
                message: format!("unknown frame type {kind:?}"),
                client_id,
            }
        }
        Some(_) => DecodeError {
            code: "invalid_frame",
            message: err.to_string(),
            client_id,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_every_client_type() {
        assert_eq!(
            ClientMsg::decode(r#"{"type":"message","content":"hi","client_id":"c1"}"#).unwrap(),
            ClientMsg::Message {
                content: "hi".into(),
                message_type: None,
                client_id: Some("c1".into()),
                room_id: None,
                attachments: Vec::new(),
            }
        );
        assert_eq!(
            ClientMsg::decode(r#"{"type":"typing","is_typing":true,"room_id":"general"}"#).unwrap(),
            ClientMsg::Typing {
                is_typing: true,
                room_id: Some(RoomId::parse("general").unwrap())
            }
        );
        assert!(matches!(
            ClientMsg::decode(r#"{"type":"read_status","message_ids":["a"]}"#),
            Ok(ClientMsg::ReadStatus { .. })
        ));
        assert!(matches!(
            ClientMsg::decode(r#"{"type":"read","up_to_seq":3}"#),
            Ok(ClientMsg::Read { .. })
        ));
        assert!(matches!(
            ClientMsg::decode(r#"{"type":"resume","since_seq":0}"#),
            Ok(ClientMsg::Resume { .. })
        ));
        assert!(matches!(
            ClientMsg::decode(r#"{"type":"ping"}"#),
            Ok(ClientMsg::Ping { .. })
        ));
        assert!(matches!(
            ClientMsg::decode(r#"{"type":"heartbeat_ack","timestamp":1}"#),
            Ok(ClientMsg::HeartbeatAck { .. })
        ));
    }

    /// `CLIENT_TYPES` is every variant serde knows: a new client frame type
    /// cannot be added without being listed (and so without its row in the
    /// permission matrix).
    #[test]
    fn client_types_are_every_variant() {
        let err = serde_json::from_str::<ClientMsg>(r#"{"type":"zzz"}"#).unwrap_err();
        let text = err.to_string();
        let expected = text
            .split("expected one of ")
            .nth(1)
            .unwrap_or_else(|| panic!("serde's message changed: {text}"));
        let names: Vec<&str> = expected
            .split(", ")
            .map(|n| {
                n.trim_matches(|c: char| c == '`' || c == ' ')
                    .split('`')
                    .next()
                    .unwrap_or("")
            })
            .collect();
        assert_eq!(names, CLIENT_TYPES, "from: {text}");
    }

    #[test]
    fn classifies_bad_frames() {
        assert_eq!(
            ClientMsg::decode("not json").unwrap_err().code,
            "invalid_json"
        );
        assert_eq!(
            ClientMsg::decode("[1,2]").unwrap_err().code,
            "invalid_frame"
        );
        assert_eq!(
            ClientMsg::decode(r#"{"content":"x"}"#).unwrap_err().code,
            "invalid_frame"
        );
        let unknown = ClientMsg::decode(r#"{"type":"launch","client_id":"k"}"#).unwrap_err();
        assert_eq!(unknown.code, "unknown_type");
        assert_eq!(unknown.client_id.as_deref(), Some("k"));
        let missing = ClientMsg::decode(r#"{"type":"message","client_id":"c9"}"#).unwrap_err();
        assert_eq!(missing.code, "invalid_frame");
        assert_eq!(missing.client_id.as_deref(), Some("c9"));
        assert_eq!(
            ClientMsg::decode(r#"{"type":"typing","is_typing":"yes"}"#)
                .unwrap_err()
                .code,
            "invalid_frame"
        );
        assert_eq!(
            ClientMsg::decode(r#"{"type":"message","content":"x","room_id":"../x"}"#)
                .unwrap_err()
                .code,
            "invalid_frame"
        );
        assert_eq!(
            ClientMsg::decode(r#"{"type":7}"#).unwrap_err().code,
            "invalid_frame"
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics(text in any::<String>()) {
            let _ = ClientMsg::decode(&text);
        }

        #[test]
        fn decode_never_panics_on_near_valid_frames(
            kind in prop::sample::select(vec!["message", "typing", "read", "read_status", "resume", "ping", "x", ""]),
            field in "[a-z_]{0,12}",
            value in prop_oneof![
                Just("null".to_string()), Just("true".to_string()), any::<i64>().prop_map(|n| n.to_string()),
                any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()), Just("[]".to_string()), Just("{}".to_string())
            ],
        ) {
            let frame = format!(r#"{{"type":"{kind}","{field}":{value}}}"#);
            match ClientMsg::decode(&frame) {
                Ok(_) => {}
                Err(e) => prop_assert!(["invalid_json", "invalid_frame", "unknown_type"].contains(&e.code)),
            }
        }
    }
}
