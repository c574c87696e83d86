//! Who may do what in a room, cached: checked on every message sent, so it
//! must not cost a query each time. Every change to a room or its members
//! invalidates its entry, here and (over the bus) on every other node. An
//! invalidation lost while the bus was down is covered twice: the whole cache
//! is cleared when the bus comes back, and no entry is trusted for longer than
//! [`MAX_AGE`] anyway.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::ids::{RoomId, UserId};
use crate::domain::room::{Role, RoomKind};
use crate::store::{DynStore, StoreResult};

/// Rooms kept; beyond this the cache starts over (a bound, not an LRU).
const CAPACITY: usize = 10_000;
/// How long a loaded entry is used before it is read again: the bound on how
/// stale a permission can get if an invalidation never arrives.
pub const MAX_AGE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberAccess {
    pub role: Role,
    pub muted_until: Option<i64>,
}

/// The parts of a room that permissions depend on.
#[derive(Debug)]
pub struct RoomAccess {
    pub id: RoomId,
    pub kind: RoomKind,
    pub is_archived: bool,
    pub owner_id: Option<UserId>,
    /// Each member's role and mute (mutes outlive memberships, see `Store`).
    pub members: HashMap<UserId, MemberAccess>,
    /// Users banned from the room: they may not read or join it.
    pub banned: HashSet<UserId>,
    /// Direct rooms: one of the two blocks the other, so neither posts.
    pub blocked: bool,
}

struct Slot {
    generation: u64,
    /// The entry and when it was loaded.
    access: Option<(Arc<RoomAccess>, Instant)>,
}

pub struct RoomCache {
    slots: Mutex<HashMap<RoomId, Slot>>,
    /// Generations only grow; a load is kept only if its room's generation did
    /// not move while it ran, so a load racing an invalidation is discarded.
    clock: AtomicU64,
    /// The generation of rooms without a slot (raised when the cache starts over).
    floor: AtomicU64,
    max_age: Duration,
}

impl Default for RoomCache {
    fn default() -> Self {
        Self::with_max_age(MAX_AGE)
    }
}

impl RoomCache {
    /// A cache whose entries are read again after `max_age` (tests use a short one).
    pub fn with_max_age(max_age: Duration) -> Self {
        Self {
            slots: Mutex::default(),
            clock: AtomicU64::new(0),
            floor: AtomicU64::new(0),
            max_age,
        }
    }

    fn generation_of(&self, slots: &HashMap<RoomId, Slot>, room: &RoomId) -> u64 {
        slots
            .get(room)
            .map_or_else(|| self.floor.load(Ordering::SeqCst), |s| s.generation)
    }

    /// The room's access rules, from the cache or the store; `None` if no such room.
    pub async fn get(
        &self,
        store: &DynStore,
        room: &RoomId,
    ) -> StoreResult<Option<Arc<RoomAccess>>> {
        let generation = {
            let slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((access, loaded)) = slots.get(room).and_then(|s| s.access.as_ref())
                && loaded.elapsed() < self.max_age
            {
                return Ok(Some(access.clone()));
            }
            self.generation_of(&slots, room)
        };
        let loaded = Instant::now();
        let Some(found) = store.get_room(room).await? else {
            return Ok(None);
        };
        let members = store.list_members(room).await?;
        let banned = store
            .list_bans(room)
            .await?
            .into_iter()
            .map(|b| b.user_id)
            .collect();
        let blocked = match (found.kind, members.as_slice()) {
            (RoomKind::Direct, [(a, _), (b, _)]) => {
                store.is_blocked_between(a.user_id, b.user_id).await?
            }
            _ => false,
        };
        let access = Arc::new(RoomAccess {
            id: found.id,
            kind: found.kind,
            is_archived: found.is_archived,
            owner_id: found.owner_id,
            members: members
                .into_iter()
                .map(|(m, _)| {
                    (
                        m.user_id,
                        MemberAccess {
                            role: m.role,
                            muted_until: m.muted_until,
                        },
                    )
                })
                .collect(),
            banned,
            blocked,
        });
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if self.generation_of(&slots, room) == generation {
            if slots.len() >= CAPACITY {
                slots.clear();
                self.floor.store(
                    self.clock.fetch_add(1, Ordering::SeqCst) + 1,
                    Ordering::SeqCst,
                );
            } else {
                slots.insert(
                    room.clone(),
                    Slot {
                        generation,
                        access: Some((access.clone(), loaded)),
                    },
                );
            }
        }
        Ok(Some(access))
    }

    /// Forgets every room: after the bus was down, invalidations from other
    /// nodes may have been missed. Loads already running are discarded too.
    pub fn clear(&self) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots.clear();
        self.floor.store(
            self.clock.fetch_add(1, Ordering::SeqCst) + 1,
            Ordering::SeqCst,
        );
    }

    /// Forgets a room after any change to it or its members.
    pub fn invalidate(&self, room: &RoomId) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.clock.fetch_add(1, Ordering::SeqCst) + 1;
        slots.insert(
            room.clone(),
            Slot {
                generation,
                access: None,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{NewRoom, NewUser};

    async fn store_with_room() -> (tempfile::TempDir, DynStore, RoomId, UserId, UserId) {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = crate::store::connect(&url, 2).await.unwrap();
        store.migrate().await.unwrap();
        let mut ids = Vec::new();
        for name in ["ann", "bob"] {
            let user = store
                .insert_user(&NewUser {
                    id: UserId::new(),
                    username: name.into(),
                    password_hash: "x".into(),
                    display_name: String::new(),
                    is_admin: false,
                    created_at: 0,
                })
                .await
                .unwrap();
            ids.push(user.id);
        }
        let room = RoomId::parse("r").unwrap();
        store
            .insert_room(
                &NewRoom {
                    id: room.clone(),
                    kind: RoomKind::Group,
                    name: "r".into(),
                    description: String::new(),
                    owner_id: Some(ids[0]),
                    direct_key: None,
                    created_at: 0,
                    members: vec![(ids[0], Role::Owner), (ids[1], Role::Member)],
                    created_by: Some(ids[0]),
                },
                None,
            )
            .await
            .unwrap();
        (dir, store, room, ids[0], ids[1])
    }

    async fn is_member(cache: &RoomCache, store: &DynStore, room: &RoomId, user: UserId) -> bool {
        let access = cache.get(store, room).await.unwrap().unwrap();
        access.members.contains_key(&user)
    }

    /// A change whose invalidation never arrived (made on another node while
    /// the bus was down) is seen after `clear`.
    #[tokio::test]
    async fn clear_forgets_every_room() {
        let (_dir, store, room, _, bob) = store_with_room().await;
        let cache = RoomCache::default();
        assert!(is_member(&cache, &store, &room, bob).await);
        store.delete_member(&room, bob).await.unwrap();
        assert!(is_member(&cache, &store, &room, bob).await, "still cached");
        cache.clear();
        assert!(!is_member(&cache, &store, &room, bob).await);
    }

    /// ...and, failing everything else, once the entry is older than its max age.
    #[tokio::test]
    async fn entries_are_read_again_after_their_max_age() {
        let (_dir, store, room, _, bob) = store_with_room().await;
        let cache = RoomCache::with_max_age(Duration::from_millis(200));
        assert!(is_member(&cache, &store, &room, bob).await);
        store.delete_member(&room, bob).await.unwrap();
        assert!(is_member(&cache, &store, &room, bob).await, "still fresh");
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(!is_member(&cache, &store, &room, bob).await);
    }
}
