//! How many WebSockets each user holds on this node (`--max-connections-per-user`).
//! A slot is taken before the upgrade, so a burst of simultaneous upgrades
//! cannot all pass the check before any of them registers; it is given back
//! when the connection's guard drops.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::ids::UserId;

pub struct UserSlots {
    max: usize,
    held: Mutex<HashMap<UserId, usize>>,
}

/// One of a user's connections; frees its slot when dropped.
pub struct UserSlot {
    slots: Arc<UserSlots>,
    user: UserId,
}

impl UserSlots {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            held: Mutex::default(),
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }

    // Nothing panics while holding the lock; the map is always consistent.
    fn lock(&self) -> MutexGuard<'_, HashMap<UserId, usize>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for one more connection of `user`, unless they hold the most already.
    pub fn take(self: &Arc<Self>, user: UserId) -> Option<UserSlot> {
        let mut held = self.lock();
        let count = held.entry(user).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(UserSlot {
            slots: self.clone(),
            user,
        })
    }

    /// Connections `user` holds now.
    pub fn held_by(&self, user: UserId) -> usize {
        self.lock().get(&user).copied().unwrap_or(0)
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut held = self.slots.lock();
        if let Some(count) = held.get_mut(&self.user) {
            *count -= 1;
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_holds_at_most_max_and_dropping_gives_back() {
        let slots = UserSlots::new(2);
        let (ann, bob) = (UserId::new(), UserId::new());
        let a1 = slots.take(ann).unwrap();
        let _a2 = slots.take(ann).unwrap();
        assert!(slots.take(ann).is_none(), "the third is refused");
        assert!(slots.take(bob).is_some(), "others are not affected");
        drop(a1);
        assert_eq!(slots.held_by(ann), 1);
        assert!(slots.take(ann).is_some());
        drop(_a2);
        assert_eq!(slots.held_by(bob), 0, "bob's slot went with its guard");
    }
}
