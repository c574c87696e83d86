//! The bus: what every node must hear about, committed messages and live
//! events, and who is online. Events are applied to this node's hub first
//! (local clients never wait for Redis), then published so other nodes apply
//! them too. With no `--redis-url` this is just the local hub (`hub`, with
//! each connection's `outbox`). A carrier: it knows the store's permission
//! cache (to invalidate it) and `domain/`, never the rules (`services/`),
//! sessions (`realtime/`), `http/` or `bench/`.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use serde::{Deserialize, Serialize};

use crate::bus::hub::Hub;
use crate::bus::outbox::ChatFrame;
use crate::domain::ids::Credential;
use crate::domain::ids::{RoomId, SessionKey, TokenId, UserId};
use crate::store::room_cache::RoomCache;

pub mod hub;
pub mod outbox;
pub mod redis;

pub use self::redis::RedisLink;

/// A committed message as it travels between nodes: already serialized.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireChat {
    pub seq: i64,
    pub sender: Option<UserId>,
    pub own: String,
    pub others: String,
}

/// Something every node applies to its own connections.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// Committed messages of one room, ascending.
    Chat {
        room: RoomId,
        messages: Vec<WireChat>,
    },
    /// A frame for every connection following a room, except one user's.
    Room {
        room: RoomId,
        frame: String,
        skip_user: Option<UserId>,
        /// Typing, presence, read receipts: dropped for clients that are behind.
        /// (Absent from older nodes' events: those are delivered as needed.)
        #[serde(default)]
        ephemeral: bool,
    },
    /// A frame for a user's connections (`all_rooms_only`: only their `/ws/` ones).
    User {
        user: UserId,
        frame: String,
        all_rooms_only: bool,
    },
    /// The user now belongs to the room: their `/ws/` connections follow it.
    Follow { user: UserId, room: RoomId },
    /// The user no longer belongs to the room.
    Unfollow {
        user: UserId,
        room: RoomId,
        lost_access: bool,
    },
    /// The room or its members changed: cached permissions are stale.
    RoomChanged { room: RoomId },
    /// These login sessions were revoked (their token hashes, hex, as the
    /// store keeps them): the connections they authenticated close.
    SessionsRevoked { sessions: Vec<String> },
    /// This API token was deleted: the connections it authenticated close.
    TokenRevoked { token: TokenId },
}

/// What is published: the event and the node it came from (which ignores its own echo).
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    pub v: u8,
    pub origin: uuid::Uuid,
    pub event: Event,
}

#[derive(Clone)]
pub struct Bus {
    hub: Hub,
    rooms: Arc<RoomCache>,
    redis: Option<Arc<RedisLink>>,
}

impl Bus {
    pub fn new(hub: Hub, rooms: Arc<RoomCache>, redis: Option<Arc<RedisLink>>) -> Self {
        Self { hub, rooms, redis }
    }

    /// This node's connections: the bus's local end.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    pub fn redis(&self) -> Option<&Arc<RedisLink>> {
        self.redis.as_ref()
    }

    /// Delivers committed messages of one room here, then to the other nodes.
    pub fn chat(&self, room: &RoomId, frames: Vec<ChatFrame>) {
        let frames: Arc<[ChatFrame]> = Arc::from(frames);
        self.hub.broadcast_chat(room, &frames);
        if let Some(redis) = &self.redis {
            let messages = frames
                .iter()
                .map(|f| WireChat {
                    seq: f.seq,
                    sender: f.sender,
                    own: f.own.as_str().to_string(),
                    others: f.others.as_str().to_string(),
                })
                .collect();
            redis.publish(Event::Chat {
                room: room.clone(),
                messages,
            });
        }
    }

    /// Sends a frame to every follower of `room` on every node.
    pub fn to_room(&self, room: &RoomId, frame: Utf8Bytes, skip_user: Option<UserId>) {
        self.hub.broadcast(room, &frame, skip_user);
        self.publish(|| Event::Room {
            room: room.clone(),
            frame: frame.as_str().to_string(),
            skip_user,
            ephemeral: false,
        });
    }

    /// As [`Bus::to_room`], for what a client that is behind may miss:
    /// typing, presence and read receipts (see `Urgency::Ephemeral`).
    pub fn to_room_ephemeral(&self, room: &RoomId, frame: Utf8Bytes, skip_user: Option<UserId>) {
        self.hub.broadcast_ephemeral(room, &frame, skip_user);
        self.publish(|| Event::Room {
            room: room.clone(),
            frame: frame.as_str().to_string(),
            skip_user,
            ephemeral: true,
        });
    }

    /// Sends a frame to a user's connections on every node.
    pub fn to_user(&self, user: UserId, frame: Utf8Bytes, all_rooms_only: bool) {
        self.hub.send_to_user(user, &frame, all_rooms_only);
        self.publish(|| Event::User {
            user,
            frame: frame.as_str().to_string(),
            all_rooms_only,
        });
    }

    pub fn follow(&self, user: UserId, room: &RoomId) {
        self.hub.follow_room(user, room);
        self.publish(|| Event::Follow {
            user,
            room: room.clone(),
        });
    }

    pub fn unfollow(&self, user: UserId, room: &RoomId, lost_access: bool) {
        self.hub.unfollow_room(user, room, lost_access);
        self.publish(|| Event::Unfollow {
            user,
            room: room.clone(),
            lost_access,
        });
    }

    pub fn room_changed(&self, room: &RoomId) {
        self.rooms.invalidate(room);
        self.publish(|| Event::RoomChanged { room: room.clone() });
    }

    /// Closes, on every node, the connections authenticated by these login
    /// sessions (token hashes, hex). Call once they are gone from the store,
    /// so a client that reconnects at once is refused.
    pub fn sessions_revoked(&self, sessions: Vec<String>) {
        if sessions.is_empty() {
            return;
        }
        end_sessions(&self.hub, &sessions);
        self.publish(|| Event::SessionsRevoked { sessions });
    }

    /// Closes, on every node, the connections authenticated by this API
    /// token. Call once it is gone from the store.
    pub fn token_revoked(&self, token: TokenId) {
        self.hub.end_credential(Credential::Token(token));
        self.publish(|| Event::TokenRevoked { token });
    }

    fn publish(&self, event: impl FnOnce() -> Event) {
        if let Some(redis) = &self.redis {
            redis.publish(event());
        }
    }

    // ---- presence: online = at least one open connection on any live node

    /// Which of `users` are online anywhere.
    pub async fn online(&self, users: &[UserId]) -> HashSet<UserId> {
        let mut online: HashSet<UserId> = users
            .iter()
            .copied()
            .filter(|u| self.hub.is_online(*u))
            .collect();
        if let Some(redis) = &self.redis {
            let rest: Vec<UserId> = users
                .iter()
                .copied()
                .filter(|u| !online.contains(u))
                .collect();
            if !rest.is_empty() {
                online.extend(redis.online_elsewhere(&rest).await);
            }
        }
        online
    }

    pub async fn is_online(&self, user: UserId) -> bool {
        !self.online(&[user]).await.is_empty()
    }

    /// The user's first connection on this node opened; true if they were
    /// offline everywhere before (so their arrival should be announced).
    pub async fn came_online(&self, user: UserId) -> bool {
        match &self.redis {
            Some(redis) => redis.mark_online(user).await,
            None => true,
        }
    }

    /// The user's last connection on this node closed; true if they are now
    /// offline everywhere (so their departure should be announced).
    pub async fn went_offline(&self, user: UserId) -> bool {
        match &self.redis {
            Some(redis) => redis.mark_offline(user).await,
            None => true,
        }
    }
}

/// Applies an event from another node to this node's connections and caches.
pub fn apply(hub: &Hub, rooms: &RoomCache, event: Event) {
    match event {
        Event::Chat { room, messages } => {
            let frames: Vec<ChatFrame> = messages
                .into_iter()
                .map(|m| ChatFrame {
                    seq: m.seq,
                    sender: m.sender,
                    own: Utf8Bytes::from(m.own),
                    others: Utf8Bytes::from(m.others),
                })
                .collect();
            hub.broadcast_chat(&room, &Arc::from(frames));
        }
        Event::Room {
            room,
            frame,
            skip_user,
            ephemeral: false,
        } => hub.broadcast(&room, &Utf8Bytes::from(frame), skip_user),
        Event::Room {
            room,
            frame,
            skip_user,
            ephemeral: true,
        } => hub.broadcast_ephemeral(&room, &Utf8Bytes::from(frame), skip_user),
        Event::User {
            user,
            frame,
            all_rooms_only,
        } => hub.send_to_user(user, &Utf8Bytes::from(frame), all_rooms_only),
        Event::Follow { user, room } => {
            hub.follow_room(user, &room);
        }
        Event::Unfollow {
            user,
            room,
            lost_access,
        } => {
            hub.unfollow_room(user, &room, lost_access);
        }
        Event::RoomChanged { room } => rooms.invalidate(&room),
        Event::SessionsRevoked { sessions } => end_sessions(hub, &sessions),
        Event::TokenRevoked { token } => hub.end_credential(Credential::Token(token)),
    }
}

fn end_sessions(hub: &Hub, sessions: &[String]) {
    // A hash that is not hex cannot be one a connection here was opened with.
    for key in sessions
        .iter()
        .filter_map(|hash| SessionKey::from_hex(hash))
    {
        hub.end_credential(Credential::Session(key));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip() {
        let room = RoomId::parse("r").unwrap();
        let envelope = Envelope {
            v: 1,
            origin: uuid::Uuid::now_v7(),
            event: Event::Chat {
                room,
                messages: vec![WireChat {
                    seq: 3,
                    sender: None,
                    own: "{}".into(),
                    others: "{\"a\":1}".into(),
                }],
            },
        };
        let text = serde_json::to_string(&envelope).unwrap();
        let back: Envelope = serde_json::from_str(&text).unwrap();
        assert_eq!(back.origin, envelope.origin);
        assert!(
            matches!(back.event, Event::Chat { messages, .. } if messages[0].others == "{\"a\":1}")
        );
    }
}
