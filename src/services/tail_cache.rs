//! The recent tail of each active room, in memory, so the latest history page
//! and resumes that start inside it need no query.
//!
//! Each cached room holds a run of consecutive seqs ending at the room's last
//! seq (at most [`ROOM_MESSAGES`]); rooms not used for a while go first when
//! the memory budget is reached. The rules that keep it exact:
//!
//! - **Every commit goes through here.** The message writer is the only path
//!   that stores messages, and it appends each committed batch before the
//!   batch is delivered or acknowledged, so whoever has seen a message finds
//!   it here. A seq that does not follow the cached tail (which cannot happen
//!   with one writer) drops the room rather than leave a gap; a failed commit
//!   drops its rooms, because it may have committed anyway.
//! - **Reads seed it only if nothing moved.** A history read that missed may
//!   fill the room from the store's answer, but only if the room's entry did
//!   not change (no commit, no eviction) since before the query was sent.
//! - **Senders are looked up, not remembered from the commit.** History shows
//!   each sender's current name and avatar, while a committed message carries
//!   the poster's details as of its login. So cached messages keep only the
//!   sender id, and names come from a separate map filled from store reads
//!   and emptied by every profile change (with the same "nothing moved" rule).
//! - **Per-viewer fields are not cached**: `is_own`/`is_read` are computed for
//!   each viewer from the read positions, as for store reads.
//! - **One node only.** With several nodes, other nodes' commits and profile
//!   changes reach this one only through the lossy bus, so a cache here could
//!   miss them: with `--redis-url` it is off (see `AppState` construction).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::domain::ids::{RoomId, UserId};
use crate::domain::message::{Message, Sender};
use crate::store::{MessagePage, Page};

/// Messages kept per room: covers the largest history page (200) and a
/// resume after a short disconnection from a busy room.
pub const ROOM_MESSAGES: usize = 256;
/// Sender names kept; past that the map starts over (they are cheap to reload).
const SENDERS_MAX: usize = 10_000;
/// Bookkeeping per cached message beyond its text, roughly.
const MESSAGE_OVERHEAD: usize = std::mem::size_of::<Message>() + 32;
/// Bookkeeping per cached room, roughly.
const ROOM_OVERHEAD: usize = 256;

/// The answer to a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// The page, exactly as the store would return it.
    Hit(MessagePage),
    /// The page is cached but these senders' current names are not: load
    /// them, [`TailCache::learn_senders`], and look up again.
    Senders {
        missing: Vec<UserId>,
        ticket: Ticket,
    },
    /// Not cached: read the store, then [`TailCache::offer`] the answer.
    Miss(Ticket),
}

/// The state of a room (and of sender names) before a store read, so that
/// what the read returns is only cached if nothing changed meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    room: u64,
    senders: u64,
}

struct RoomTail {
    /// Seq of `messages[0]`.
    first: i64,
    /// Consecutive seqs up to the room's last one.
    messages: VecDeque<Message>,
    /// Changes whenever the messages do (a global counter value).
    version: u64,
    last_used: u64,
    bytes: usize,
}

impl RoomTail {
    fn last(&self) -> i64 {
        self.first + self.messages.len() as i64 - 1
    }

    fn get(&self, seq: i64) -> Option<&Message> {
        usize::try_from(seq - self.first)
            .ok()
            .and_then(|i| self.messages.get(i))
    }
}

fn size_of(message: &Message) -> usize {
    MESSAGE_OVERHEAD
        + message.content.len()
        + message.client_id.as_ref().map_or(0, String::len)
        + message.event.as_ref().map_or(0, String::len)
}

struct Inner {
    rooms: HashMap<RoomId, RoomTail>,
    senders: HashMap<UserId, Arc<Sender>>,
    /// Source of versions and recency ticks; only grows.
    clock: u64,
    /// The version of every room without an entry; moves when one is dropped.
    absent: u64,
    /// Moves with every profile change.
    senders_version: u64,
    bytes: usize,
    budget: usize,
}

impl Inner {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn version_of(&self, room: &RoomId) -> u64 {
        self.rooms.get(room).map_or(self.absent, |t| t.version)
    }

    fn ticket(&self, room: &RoomId) -> Ticket {
        Ticket {
            room: self.version_of(room),
            senders: self.senders_version,
        }
    }

    fn remove(&mut self, room: &RoomId) {
        if let Some(tail) = self.rooms.remove(room) {
            self.bytes -= tail.bytes;
            self.absent = self.tick();
        }
    }

    /// Appends one committed message to its room's tail.
    fn append(&mut self, message: &Message) {
        let now = self.tick();
        let follows = self
            .rooms
            .get(&message.room_id)
            .map(|t| (t.last(), t.first));
        match follows {
            Some((last, _)) if message.seq <= last => {
                // Already here: a store read seeded it between the commit and now.
            }
            Some((last, _)) if message.seq == last + 1 => {
                let size = size_of(message);
                if let Some(tail) = self.rooms.get_mut(&message.room_id) {
                    tail.messages.push_back(message.clone());
                    tail.bytes += size;
                    tail.version = now;
                    tail.last_used = now;
                }
                self.bytes += size;
                self.trim(&message.room_id);
            }
            _ => {
                // A new room, or (never expected) a seq that skips some: start
                // the room over from this message instead of keeping a gap.
                self.remove(&message.room_id);
                let size = size_of(message);
                self.rooms.insert(
                    message.room_id.clone(),
                    RoomTail {
                        first: message.seq,
                        messages: VecDeque::from([message.clone()]),
                        version: now,
                        last_used: now,
                        bytes: ROOM_OVERHEAD + size,
                    },
                );
                self.bytes += ROOM_OVERHEAD + size;
            }
        }
    }

    /// Keeps a room to its newest `ROOM_MESSAGES`.
    fn trim(&mut self, room: &RoomId) {
        let Some(tail) = self.rooms.get_mut(room) else {
            return;
        };
        while tail.messages.len() > ROOM_MESSAGES {
            if let Some(old) = tail.messages.pop_front() {
                let size = size_of(&old);
                tail.first += 1;
                tail.bytes -= size;
                self.bytes -= size;
            }
        }
    }

    /// Over budget: drops the least recently used rooms until a little under it.
    fn evict(&mut self) {
        if self.bytes <= self.budget {
            return;
        }
        let target = self.budget - self.budget / 8;
        let mut by_age: Vec<(u64, RoomId)> = self
            .rooms
            .iter()
            .map(|(room, tail)| (tail.last_used, room.clone()))
            .collect();
        by_age.sort_unstable_by_key(|(used, _)| *used);
        for (_, room) in by_age {
            if self.bytes <= target {
                break;
            }
            self.remove(&room);
        }
    }

    /// The messages of `range` (inclusive, within the tail) with current sender names,
    /// or the senders whose names are missing.
    fn collect(&self, tail: &RoomTail, from: i64, to: i64) -> Result<Vec<Message>, Vec<UserId>> {
        let mut missing = Vec::new();
        let mut messages = Vec::with_capacity(usize::try_from(to - from + 1).unwrap_or(0));
        for seq in from..=to {
            let Some(message) = tail.get(seq) else {
                continue;
            };
            let mut message = message.clone();
            if let Some(sender) = &message.sender {
                match self.senders.get(&sender.id) {
                    Some(current) => message.sender = Some(current.clone()),
                    None => {
                        if !missing.contains(&sender.id) {
                            missing.push(sender.id);
                        }
                    }
                }
            }
            messages.push(message);
        }
        if missing.is_empty() {
            Ok(messages)
        } else {
            Err(missing)
        }
    }

    fn learn(&mut self, senders: impl IntoIterator<Item = Arc<Sender>>) {
        for sender in senders {
            if self.senders.len() >= SENDERS_MAX && !self.senders.contains_key(&sender.id) {
                self.senders.clear();
            }
            self.senders.insert(sender.id, sender);
        }
    }
}

/// Which seqs a page covers, given the room's tail `first..=last`; `None`
/// if the tail does not hold the whole page. Seqs run from 1 without gaps,
/// so older messages exist exactly when the page starts after seq 1.
fn span(page: Page, first: i64, last: i64) -> Option<(i64, i64, bool)> {
    let (from, to, has_more) = match page {
        Page::Latest { limit } => {
            let from = (last - i64::from(limit) + 1).max(1);
            (from, last, from > 1)
        }
        Page::Before { seq, limit } => {
            let to = (seq - 1).min(last);
            if to < 1 {
                return Some((1, 0, false));
            }
            let from = (to - i64::from(limit) + 1).max(1);
            (from, to, from > 1)
        }
        Page::After { seq, limit } => {
            let from = seq + 1;
            if from > last {
                // Nothing after the room's last seq (only known once the
                // tail reaches back to `seq`).
                return (seq + 1 >= first).then_some((from, seq, false));
            }
            let to = (seq + i64::from(limit)).min(last);
            (from, to, to < last)
        }
    };
    (from >= first).then_some((from, to, has_more))
}

/// The cache; [`TailCache::disabled`] answers every lookup with a miss.
pub struct TailCache {
    inner: Option<Mutex<Inner>>,
}

impl TailCache {
    /// A cache using at most about `budget_bytes`; 0 disables it.
    pub fn new(budget_bytes: usize) -> Self {
        if budget_bytes == 0 {
            return Self::disabled();
        }
        Self {
            inner: Some(Mutex::new(Inner {
                rooms: HashMap::new(),
                senders: HashMap::new(),
                clock: 0,
                absent: 0,
                senders_version: 0,
                bytes: 0,
                budget: budget_bytes,
            })),
        }
    }

    pub fn disabled() -> Self {
        Self { inner: None }
    }

    fn lock(&self) -> Option<MutexGuard<'_, Inner>> {
        self.inner
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A page of `room`, if the tail holds all of it.
    pub fn lookup(&self, room: &RoomId, page: Page) -> Lookup {
        let Some(mut inner) = self.lock() else {
            return Lookup::Miss(Ticket {
                room: 0,
                senders: 0,
            });
        };
        let ticket = inner.ticket(room);
        let now = inner.tick();
        let Some(tail) = inner.rooms.get(room) else {
            return Lookup::Miss(ticket);
        };
        let Some((from, to, has_more)) = span(page, tail.first, tail.last()) else {
            return Lookup::Miss(ticket);
        };
        let found = inner.collect(tail, from, to);
        match found {
            Ok(messages) => {
                if let Some(tail) = inner.rooms.get_mut(room) {
                    tail.last_used = now;
                }
                Lookup::Hit(MessagePage { messages, has_more })
            }
            Err(missing) => Lookup::Senders { missing, ticket },
        }
    }

    /// The current state of `room`, before a store read whose answer may be offered.
    pub fn ticket(&self, room: &RoomId) -> Ticket {
        self.lock().map_or(
            Ticket {
                room: 0,
                senders: 0,
            },
            |inner| inner.ticket(room),
        )
    }

    /// A store read of `room` that missed: its answer seeds the tail if it
    /// ends at the room's last seq (the latest page, or the end of a
    /// catch-up) and nothing changed since `ticket`.
    pub fn offer(&self, room: &RoomId, page: Page, answer: &MessagePage, ticket: Ticket) {
        let Some(mut inner) = self.lock() else {
            return;
        };
        if inner.senders_version == ticket.senders {
            inner.learn(answer.messages.iter().filter_map(|m| m.sender.clone()));
        }
        let reaches_the_end = match page {
            Page::Latest { .. } => true,
            Page::After { .. } => !answer.has_more,
            Page::Before { .. } => false,
        };
        let (Some(oldest), Some(newest)) = (answer.messages.first(), answer.messages.last()) else {
            return;
        };
        if !reaches_the_end || inner.version_of(room) != ticket.room || &oldest.room_id != room {
            return;
        }
        let now = inner.tick();
        let added: Vec<Message> = match inner.rooms.get(room) {
            // Unchanged since the read, so the read ended where the tail does.
            Some(tail) if tail.last() == newest.seq => answer
                .messages
                .iter()
                .take_while(|m| m.seq < tail.first)
                .cloned()
                .collect(),
            Some(_) => return,
            None => answer.messages.clone(),
        };
        let size: usize = added.iter().map(size_of).sum();
        match inner.rooms.get_mut(room) {
            Some(tail) => {
                for message in added.into_iter().rev() {
                    tail.first = message.seq;
                    tail.messages.push_front(message);
                }
                tail.bytes += size;
                tail.version = now;
                tail.last_used = now;
            }
            None => {
                inner.rooms.insert(
                    room.clone(),
                    RoomTail {
                        first: oldest.seq,
                        messages: added.into(),
                        version: now,
                        last_used: now,
                        bytes: ROOM_OVERHEAD + size,
                    },
                );
                inner.bytes += ROOM_OVERHEAD;
            }
        }
        inner.bytes += size;
        inner.trim(room);
        inner.evict();
    }

    /// Current sender names read from the store (users as they are now).
    pub fn learn_senders(&self, senders: impl IntoIterator<Item = Arc<Sender>>, ticket: Ticket) {
        if let Some(mut inner) = self.lock()
            && inner.senders_version == ticket.senders
        {
            inner.learn(senders);
        }
    }

    /// Messages just committed, in commit order.
    pub fn committed<'a>(&self, messages: impl IntoIterator<Item = &'a Message>) {
        let Some(mut inner) = self.lock() else {
            return;
        };
        for message in messages {
            inner.append(message);
        }
        inner.evict();
    }

    /// A commit of these rooms failed: it may have stored them all the same.
    pub fn forget<'a>(&self, rooms: impl IntoIterator<Item = &'a RoomId>) {
        if let Some(mut inner) = self.lock() {
            for room in rooms {
                inner.remove(room);
            }
        }
    }

    /// `user` changed their name or avatar: their messages must be shown with the new ones.
    pub fn sender_changed(&self, user: UserId) {
        if let Some(mut inner) = self.lock() {
            inner.senders.remove(&user);
            inner.senders_version = inner.tick();
        }
    }
}

#[cfg(test)]
mod tests;
