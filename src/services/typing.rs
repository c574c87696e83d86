//! Who is typing where. A typing state lasts 6 s unless refreshed; one shared
//! timer expires them all (no timer per connection).
//!
//! Changes are coalesced: a room hears at most one change of one user's typing
//! per [`MIN_CHANGE_INTERVAL`]. A client toggling typing thousands of times a
//! second would otherwise send every member of the room thousands of frames;
//! now the room hears the first change at once and the state it ends in when
//! the interval is over (from the shared timer, `Typing::due`).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::domain::ids::{RoomId, UserId};

pub const TYPING_TTL: Duration = Duration::from_secs(6);
/// Least time between two announced changes of one user's typing in one room.
pub const MIN_CHANGE_INTERVAL: Duration = Duration::from_secs(1);

struct Entry {
    typing: bool,
    /// When typing ends unless refreshed (while `typing`).
    expires: Instant,
    /// What the room was last told, and when.
    announced: bool,
    announced_at: Option<Instant>,
    username: String,
}

impl Entry {
    /// Whether a change may be announced at `now` (the interval has passed).
    fn may_announce(&self, now: Instant) -> bool {
        self.announced_at
            .is_none_or(|at| now >= at + MIN_CHANGE_INTERVAL)
    }
}

/// A change the room is to hear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypingChange {
    pub room: RoomId,
    pub user: UserId,
    pub username: String,
    pub is_typing: bool,
}

#[derive(Default)]
pub struct Typing {
    active: Mutex<HashMap<(RoomId, UserId), Entry>>,
}

impl Typing {
    // Nothing panics while holding the lock; the map is always consistent.
    fn lock(&self) -> MutexGuard<'_, HashMap<(RoomId, UserId), Entry>> {
        self.active.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The user says they are typing (which refreshes the state) or stopped.
    /// `Some(state)` if the room is to hear it now; a change within the
    /// interval of the last one is told later by [`Typing::due`].
    pub fn set(
        &self,
        room: &RoomId,
        user: UserId,
        username: &str,
        is_typing: bool,
        now: Instant,
    ) -> Option<bool> {
        let mut active = self.lock();
        let key = (room.clone(), user);
        let entry = match active.get_mut(&key) {
            Some(entry) => entry,
            None if !is_typing => return None,
            None => active.entry(key).or_insert(Entry {
                typing: false,
                expires: now,
                announced: false,
                announced_at: None,
                username: username.to_string(),
            }),
        };
        entry.typing = is_typing;
        if is_typing {
            entry.expires = now + TYPING_TTL;
        }
        if entry.typing == entry.announced || !entry.may_announce(now) {
            return None;
        }
        entry.announced = entry.typing;
        entry.announced_at = Some(now);
        Some(entry.typing)
    }

    /// The user stopped typing because they sent a message or left: true if
    /// the room believes they are typing and is to hear otherwise now (not
    /// held back: the message itself is the change).
    pub fn stop(&self, room: &RoomId, user: UserId) -> bool {
        let mut active = self.lock();
        let Some(entry) = active.get_mut(&(room.clone(), user)) else {
            return false;
        };
        entry.typing = false;
        if !entry.announced {
            return false;
        }
        entry.announced = false;
        entry.announced_at = Some(Instant::now());
        true
    }

    /// Run every second: typing states that expired by `now`, and changes
    /// held back whose interval is over, to announce. Forgets what needs no
    /// more remembering.
    pub fn due(&self, now: Instant) -> Vec<TypingChange> {
        let mut active = self.lock();
        let mut due = Vec::new();
        active.retain(|(room, user), entry| {
            if entry.typing && entry.expires <= now {
                entry.typing = false;
            }
            if entry.typing != entry.announced && entry.may_announce(now) {
                entry.announced = entry.typing;
                entry.announced_at = Some(now);
                due.push(TypingChange {
                    room: room.clone(),
                    user: *user,
                    username: entry.username.clone(),
                    is_typing: entry.typing,
                });
            }
            entry.typing || entry.announced || !entry.may_announce(now)
        });
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(room: &RoomId, user: UserId, is_typing: bool) -> TypingChange {
        TypingChange {
            room: room.clone(),
            user,
            username: "ann".into(),
            is_typing,
        }
    }

    #[test]
    fn typing_expires_after_six_seconds_unless_refreshed() {
        let typing = Typing::default();
        let room = RoomId::parse("r").unwrap();
        let ann = UserId::new();
        let t0 = Instant::now();
        assert_eq!(typing.set(&room, ann, "ann", true, t0), Some(true));
        assert_eq!(
            typing.set(&room, ann, "ann", true, t0 + Duration::from_secs(3)),
            None,
            "a refresh is not a change"
        );
        assert!(typing.due(t0 + Duration::from_secs(8)).is_empty());
        assert_eq!(
            typing.due(t0 + Duration::from_secs(9)),
            vec![change(&room, ann, false)]
        );
        assert!(!typing.stop(&room, ann), "already told");
    }

    #[test]
    fn stopping_by_sending_is_told_at_once() {
        let typing = Typing::default();
        let room = RoomId::parse("r").unwrap();
        let ann = UserId::new();
        let t0 = Instant::now();
        assert!(!typing.stop(&room, ann), "never typed");
        assert_eq!(typing.set(&room, ann, "ann", true, t0), Some(true));
        assert!(typing.stop(&room, ann));
        assert!(!typing.stop(&room, ann));
        assert_eq!(
            typing.set(&room, ann, "ann", false, t0),
            None,
            "stopping when not typing"
        );
    }

    #[test]
    fn a_flood_of_toggles_is_one_change_now_and_the_last_state_after_the_interval() {
        let typing = Typing::default();
        let room = RoomId::parse("general").unwrap();
        let ann = UserId::new();
        let t0 = Instant::now();
        let mut told = 0;
        for i in 0..20_000u32 {
            let at = t0 + Duration::from_micros(u64::from(i) * 10);
            if typing.set(&room, ann, "ann", i % 2 == 0, at).is_some() {
                told += 1;
            }
        }
        assert_eq!(told, 1, "only the first change goes out at once");
        // The flood ended on "not typing"; still within the interval: nothing yet.
        assert!(typing.due(t0 + Duration::from_millis(500)).is_empty());
        assert_eq!(
            typing.due(t0 + Duration::from_secs(1)),
            vec![change(&room, ann, false)]
        );
        assert!(typing.due(t0 + Duration::from_secs(3)).is_empty());
        // The entry is forgotten once nothing is pending.
        assert!(typing.lock().is_empty());
    }

    #[test]
    fn a_change_back_within_the_interval_tells_nothing() {
        let typing = Typing::default();
        let room = RoomId::parse("r").unwrap();
        let ann = UserId::new();
        let t0 = Instant::now();
        assert_eq!(typing.set(&room, ann, "ann", true, t0), Some(true));
        let soon = t0 + Duration::from_millis(100);
        assert_eq!(typing.set(&room, ann, "ann", false, soon), None);
        assert_eq!(typing.set(&room, ann, "ann", true, soon), None);
        assert!(
            typing.due(t0 + Duration::from_secs(2)).is_empty(),
            "it ended as the room was told"
        );
    }
}
