//! Identifier newtypes. Users, messages and API tokens use UUIDv7 (time-ordered,
//! generated here so both back ends agree); rooms use URL-safe strings.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Invalid;

macro_rules! uuid_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("Identifier of a ", $what, " (UUIDv7).")]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub fn parse(text: &str) -> Result<Self, Invalid> {
                Uuid::try_parse(text).map(Self).map_err(|_| {
                    Invalid::new(
                        concat!("invalid_", $what, "_id"),
                        concat!("not a valid ", $what, " id"),
                    )
                })
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(UserId, "user");
uuid_id!(MessageId, "message");
uuid_id!(TokenId, "token");
uuid_id!(AttachmentId, "attachment");

/// A login session as the server knows it: the SHA-256 of its cookie value
/// (the store keeps the same bytes hex-encoded). 32 bytes inline, so a
/// connection can remember its session without a `String` of its own.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Self(digest)
    }

    /// From the hex form the store uses; `None` if it is not 64 hex digits.
    pub fn from_hex(hash: &str) -> Option<Self> {
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hash, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The hex form the store uses.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for SessionKey {
    /// The first six bytes only, as `GET /tools/api/auth/sessions/` shows
    /// them: enough to tell sessions apart in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionKey({}…)", hex::encode(&self.0[..6]))
    }
}

/// A room id: 1–64 characters of ASCII letters, digits, `-` and `_`, so it can
/// sit in a URL path unescaped. Cheap to clone (shared string).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RoomId(Arc<str>);

impl RoomId {
    pub const MAX_LEN: usize = 64;

    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let ok = !text.is_empty()
            && text.len() <= Self::MAX_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(Arc::from(text)))
        } else {
            Err(Invalid::new(
                "invalid_room_id",
                "room ids are 1-64 letters, digits, '-' or '_'",
            ))
        }
    }

    /// A fresh random id for rooms without a usable name (12 lowercase letters and digits).
    pub fn random() -> Self {
        use rand::RngExt;
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let id: String = (0..12)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Self(Arc::from(id))
    }

    /// The slug of a room name (`"Rust 爱好者"` → `rust-ai-hao-zhe`), if it yields a valid id.
    pub fn slug_of(name: &str) -> Option<Self> {
        let mut slug = slug::slugify(name);
        slug.truncate(48);
        let slug = slug.trim_end_matches('-');
        Self::parse(slug).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for RoomId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What authenticated a connection, so that revoking it can end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A login session (cookie).
    Session(SessionKey),
    /// A personal API token (bearer).
    Token(TokenId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_are_url_safe() {
        assert!(RoomId::parse("general").is_ok());
        assert!(RoomId::parse("a_b-C9").is_ok());
        assert!(RoomId::parse("").is_err());
        assert!(RoomId::parse("has space").is_err());
        assert!(RoomId::parse("../etc").is_err());
        assert!(RoomId::parse(&"x".repeat(65)).is_err());
        assert!(RoomId::parse(&"x".repeat(64)).is_ok());
    }

    #[test]
    fn slugs_transliterate_and_reject_empty() {
        assert_eq!(
            RoomId::slug_of("General Chat").unwrap().as_str(),
            "general-chat"
        );
        assert!(RoomId::slug_of("技术").is_some());
        assert!(RoomId::slug_of("!!!").is_none());
    }

    #[test]
    fn random_ids_parse() {
        let id = RoomId::random();
        assert_eq!(id.as_str().len(), 12);
        assert!(RoomId::parse(id.as_str()).is_ok());
    }

    #[test]
    fn session_keys_round_trip_through_hex() {
        let hex = "98a9f380ab5e".repeat(5) + "0123";
        let key = SessionKey::from_hex(&hex).unwrap();
        assert_eq!(key.to_hex(), hex);
        assert_eq!(format!("{key:?}"), "SessionKey(98a9f380ab5e…)");
        assert!(SessionKey::from_hex("a").is_none());
        assert!(SessionKey::from_hex(&"z".repeat(64)).is_none());
    }

    #[test]
    fn user_ids_round_trip() {
        let id = UserId::new();
        assert_eq!(UserId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(UserId::parse("nope").unwrap_err().code, "invalid_user_id");
    }
}
