//! What the load generator reads from and writes to the WebSocket: server
//! frames parsed in one pass, keeping only the fields it measures, and the
//! `message` frames it sends, whose content carries the send time.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer as _};

/// The server frame types the generator reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kind {
    ConnectionEstablished,
    ChatMessage,
    ResumeComplete,
    Error,
    /// Presence, typing, heartbeat and the rest: counted, not measured.
    #[default]
    Other,
}

impl Kind {
    fn of(name: &str) -> Self {
        match name {
            "connection_established" => Kind::ConnectionEstablished,
            "chat_message" => Kind::ChatMessage,
            "resume_complete" => Kind::ResumeComplete,
            "error" => Kind::Error,
            _ => Kind::Other,
        }
    }
}

/// The `message` object of a `chat_message` frame, as far as it is measured.
#[derive(Debug, Deserialize)]
pub struct Chat<'a> {
    pub seq: i64,
    #[serde(borrow)]
    pub content: Cow<'a, str>,
    #[serde(default, borrow)]
    pub client_id: Option<Cow<'a, str>>,
    #[serde(default)]
    pub is_own: bool,
}

/// One server frame, with only the fields the generator needs.
#[derive(Debug, Default)]
pub struct Frame<'a> {
    pub kind: Kind,
    /// `connection_established` and `resume_complete`.
    pub last_seq: Option<i64>,
    /// `chat_message`.
    pub chat: Option<Chat<'a>>,
    /// `error`.
    pub code: Option<Cow<'a, str>>,
    /// `error`: the `client_id` of the message it refuses.
    pub client_id: Option<Cow<'a, str>>,
}

impl<'a> Frame<'a> {
    /// Parses a text frame; `None` if it is not a JSON object.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        de.deserialize_map(FrameVisitor).ok()
    }
}

struct FrameVisitor;

impl<'de> Visitor<'de> for FrameVisitor {
    type Value = Frame<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a server frame")
    }

    // One pass over the frame. `message` is an object in `chat_message` and a
    // string in `error`; the server writes `type` first, so by the time
    // `message` comes the kind is known and the object is parsed only when it
    // is a chat message.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Frame<'de>, A::Error> {
        let mut frame = Frame::default();
        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            match key.as_ref() {
                "type" => {
                    let CowStr(name) = map.next_value()?;
                    frame.kind = Kind::of(&name);
                }
                "message" if frame.kind == Kind::ChatMessage => {
                    frame.chat = Some(map.next_value()?);
                }
                "last_seq" => frame.last_seq = map.next_value()?,
                "code" => frame.code = map.next_value::<Option<CowStr<'de>>>()?.map(|c| c.0),
                "client_id" => {
                    frame.client_id = map.next_value::<Option<CowStr<'de>>>()?.map(|c| c.0)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(frame)
    }
}

/// A string borrowed from the frame when it has no escapes (the usual case).
struct CowStr<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_string())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// The content of a generated message: the send time in microseconds since
/// the run began, a marker, and padding up to `size` bytes.
pub fn content(sent_us: u64, size: usize) -> String {
    let mut text = format!("{sent_us} {MARKER}");
    while text.len() < size {
        text.push('.');
    }
    text
}

const MARKER: &str = "parley-bench";

/// The send time of a generated message; `None` for anyone else's message.
pub fn sent_us(content: &str) -> Option<u64> {
    let (time, rest) = content.split_once(' ')?;
    if !rest.starts_with(MARKER) {
        return None;
    }
    time.parse().ok()
}

/// The `client_id` of message `n` of connection `conn` in run `run`. The
/// server deduplicates by `client_id` per user and room, so ids must not
/// repeat across runs that reuse users and rooms; and the id names the
/// connection, so another connection of the same user (which also sees
/// `is_own: true`) can tell the message is not its own.
pub fn client_id(run: u64, conn: usize, n: u64) -> String {
    format!("b{run:x}.{conn}-{n}")
}

/// `(connection, n)` of a `client_id` generated in run `run`.
pub fn parse_client_id(run: u64, id: &str) -> Option<(usize, u64)> {
    let (run_hex, rest) = id.strip_prefix('b')?.split_once('.')?;
    if u64::from_str_radix(run_hex, 16).ok()? != run {
        return None;
    }
    let (conn, n) = rest.split_once('-')?;
    Some((conn.parse().ok()?, n.parse().ok()?))
}

/// A `message` frame. Content and client id are plain ASCII, so no escaping is needed.
pub fn message_frame(content: &str, client_id: &str) -> String {
    format!(r#"{{"type":"message","content":"{content}","client_id":"{client_id}"}}"#)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_chat_message_as_the_server_writes_it() {
        let text = r#"{"type":"chat_message","room_id":"r","message":{"id":"01a2","seq":9,
            "room_id":"r","sender":"alice","sender_id":"01a2","sender_display_name":"Alice \"A\"",
            "sender_avatar":"/avatars/x?v=2","content":"12 parley-bench..","message_type":"text",
            "created_at":"2026-11-24T08:55:35.688Z","client_id":"b1f.3-7","is_own":true,"is_read":false}}"#;
        let frame = Frame::parse(text).unwrap();
        assert_eq!(frame.kind, Kind::ChatMessage);
        let chat = frame.chat.unwrap();
        assert_eq!(chat.seq, 9);
        assert!(chat.is_own);
        assert_eq!(chat.client_id.as_deref(), Some("b1f.3-7"));
        assert_eq!(sent_us(&chat.content), Some(12));
    }

    #[test]
    fn parses_errors_whose_message_is_a_string() {
        let text = r#"{"type":"error","code":"rate_limited","message":"you are sending messages too fast","client_id":"b1-2"}"#;
        let frame = Frame::parse(text).unwrap();
        assert_eq!(frame.kind, Kind::Error);
        assert!(frame.chat.is_none());
        assert_eq!(frame.code.as_deref(), Some("rate_limited"));
        assert_eq!(frame.client_id.as_deref(), Some("b1-2"));
    }

    #[test]
    fn reads_positions_and_ignores_the_rest() {
        let hello = r#"{"type":"connection_established","room_id":"r","user":{"id":"u"},
            "user_profile":{"tags":["a"],"theme":{"mode":"work"}},"heartbeat_interval":30.0,
            "last_seq":41,"online":["u"]}"#;
        let frame = Frame::parse(hello).unwrap();
        assert_eq!(frame.kind, Kind::ConnectionEstablished);
        assert_eq!(frame.last_seq, Some(41));
        let done =
            Frame::parse(r#"{"type":"resume_complete","room_id":"r","last_seq":50,"replayed":9}"#)
                .unwrap();
        assert_eq!((done.kind, done.last_seq), (Kind::ResumeComplete, Some(50)));
        let other = Frame::parse(r#"{"type":"user_joined","user_profile":{"a":[1,2]}}"#).unwrap();
        assert_eq!(other.kind, Kind::Other);
        assert!(Frame::parse("[1]").is_none());
        assert!(Frame::parse("not json").is_none());
    }

    #[test]
    fn content_and_client_ids_round_trip() {
        let text = content(123_456, 64);
        assert_eq!(text.len(), 64);
        assert_eq!(sent_us(&text), Some(123_456));
        assert_eq!(sent_us("hello there"), None);
        assert_eq!(sent_us("12 hello"), None);
        assert_eq!(parse_client_id(9, &client_id(9, 17, 4)), Some((17, 4)));
        assert_eq!(
            parse_client_id(8, &client_id(9, 17, 4)),
            None,
            "another run's"
        );
        assert_eq!(parse_client_id(9, "a-1"), None);
        let frame = message_frame(&text, &client_id(9, 1, 1));
        let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(value["type"], "message");
        assert_eq!(value["content"], text.as_str());
    }
}
