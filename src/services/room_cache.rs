//! Who may do what in a room, cached: checked on every message sent, so it
//! must not cost a query each time. Every change to a room or its members
//! invalidates its entry.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::ids::{RoomId, UserId};
use crate::domain::room::{Role, RoomKind};
use crate::store::{DynStore, StoreResult};

/// Rooms kept; beyond this the cache starts over (a bound, not an LRU).
const CAPACITY: usize = 10_000;

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
    pub members: HashMap<UserId, MemberAccess>,
}

struct Slot {
    generation: u64,
    access: Option<Arc<RoomAccess>>,
}

#[derive(Default)]
pub struct RoomCache {
    slots: Mutex<HashMap<RoomId, Slot>>,
    /// Generations only grow; a load is kept only if its room's generation did
    /// not move while it ran, so a load racing an invalidation is discarded.
    clock: AtomicU64,
    /// The generation of rooms without a slot (raised when the cache starts over).
    floor: AtomicU64,
}

impl RoomCache {
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
            if let Some(access) = slots.get(room).and_then(|s| s.access.clone()) {
                return Ok(Some(access));
            }
            self.generation_of(&slots, room)
        };
        let Some(found) = store.get_room(room).await? else {
            return Ok(None);
        };
        let members = store.list_members(room).await?;
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
                        access: Some(access.clone()),
                    },
                );
            }
        }
        Ok(Some(access))
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
