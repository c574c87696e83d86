//! Who is typing where. A typing state lasts 6 s unless refreshed; one shared
//! reaper expires them all (no timer per connection).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::domain::ids::{RoomId, UserId};

pub const TYPING_TTL: Duration = Duration::from_secs(6);

#[derive(Default)]
pub struct Typing {
    active: Mutex<HashMap<(RoomId, UserId), (Instant, String)>>,
}

impl Typing {
    /// Records typing; true if the user was not already typing there (announce it).
    pub fn start(&self, room: &RoomId, user: UserId, username: &str, now: Instant) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active
            .insert(
                (room.clone(), user),
                (now + TYPING_TTL, username.to_string()),
            )
            .is_none()
    }

    /// Clears typing; true if the user was typing there (announce the stop).
    pub fn stop(&self, room: &RoomId, user: UserId) -> bool {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        active.remove(&(room.clone(), user)).is_some()
    }

    /// Removes and returns the states that expired by `now`.
    pub fn expire(&self, now: Instant) -> Vec<(RoomId, UserId, String)> {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        let mut expired = Vec::new();
        active.retain(|(room, user), (deadline, name)| {
            if *deadline <= now {
                expired.push((room.clone(), *user, std::mem::take(name)));
                false
            } else {
                true
            }
        });
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typing_expires_after_six_seconds_unless_refreshed() {
        let typing = Typing::default();
        let room = RoomId::parse("r").unwrap();
        let ann = UserId::new();
        let t0 = Instant::now();
        assert!(typing.start(&room, ann, "ann", t0));
        assert!(!typing.start(&room, ann, "ann", t0 + Duration::from_secs(3)));
        assert!(typing.expire(t0 + Duration::from_secs(8)).is_empty());
        let expired = typing.expire(t0 + Duration::from_secs(9));
        assert_eq!(expired, vec![(room.clone(), ann, "ann".to_string())]);
        assert!(!typing.stop(&room, ann));
        assert!(typing.start(&room, ann, "ann", t0));
        assert!(typing.stop(&room, ann));
    }
}
