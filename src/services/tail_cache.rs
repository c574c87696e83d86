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
mod tests {
    use super::*;
    use crate::domain::ids::MessageId;
    use crate::domain::message::MessageType;

    fn sender(name: &str) -> Arc<Sender> {
        Arc::new(Sender {
            id: UserId::new(),
            username: name.into(),
            display_name: String::new(),
            avatar_version: 0,
        })
    }

    fn room(id: &str) -> RoomId {
        RoomId::parse(id).unwrap()
    }

    fn message(room: &RoomId, seq: i64, from: &Arc<Sender>) -> Message {
        Message {
            id: MessageId::new(),
            room_id: room.clone(),
            seq,
            sender: Some(from.clone()),
            message_type: MessageType::Text,
            content: format!("message {seq}"),
            client_id: None,
            event: None,
            created_at: seq,
        }
    }

    fn seqs(page: &MessagePage) -> Vec<i64> {
        page.messages.iter().map(|m| m.seq).collect()
    }

    fn hit(cache: &TailCache, room: &RoomId, page: Page) -> MessagePage {
        match cache.lookup(room, page) {
            Lookup::Hit(page) => page,
            other => panic!("expected a hit for {page:?}, got {other:?}"),
        }
    }

    fn is_miss(cache: &TailCache, room: &RoomId, page: Page) -> bool {
        matches!(cache.lookup(room, page), Lookup::Miss(_))
    }

    /// A cache that knows `ann`'s name, with `r` holding seqs `1..=n`.
    fn filled(n: i64) -> (TailCache, RoomId, Arc<Sender>) {
        let cache = TailCache::new(1 << 20);
        let r = room("r");
        let ann = sender("ann");
        let all: Vec<Message> = (1..=n).map(|s| message(&r, s, &ann)).collect();
        cache.committed(&all);
        cache.learn_senders([ann.clone()], cache.ticket(&r));
        (cache, r, ann)
    }

    #[test]
    fn a_room_cached_from_its_first_message_serves_every_page() {
        let (cache, r, _) = filled(30);
        let latest = hit(&cache, &r, Page::Latest { limit: 10 });
        assert_eq!(seqs(&latest), (21..=30).collect::<Vec<_>>());
        assert!(latest.has_more);
        let all = hit(&cache, &r, Page::Latest { limit: 50 });
        assert_eq!(seqs(&all), (1..=30).collect::<Vec<_>>());
        assert!(!all.has_more);
        let before = hit(&cache, &r, Page::Before { seq: 5, limit: 10 });
        assert_eq!((seqs(&before), before.has_more), (vec![1, 2, 3, 4], false));
        let before = hit(&cache, &r, Page::Before { seq: 99, limit: 2 });
        assert_eq!((seqs(&before), before.has_more), (vec![29, 30], true));
        let after = hit(&cache, &r, Page::After { seq: 25, limit: 3 });
        assert_eq!((seqs(&after), after.has_more), (vec![26, 27, 28], true));
        let after = hit(&cache, &r, Page::After { seq: 28, limit: 3 });
        assert_eq!((seqs(&after), after.has_more), (vec![29, 30], false));
        let end = hit(&cache, &r, Page::After { seq: 30, limit: 3 });
        assert!(end.messages.is_empty() && !end.has_more);
        assert!(is_miss(&cache, &room("other"), Page::Latest { limit: 1 }));
    }

    #[test]
    fn a_tail_that_starts_mid_room_serves_only_what_it_holds() {
        let cache = TailCache::new(1 << 20);
        let r = room("r");
        let ann = sender("ann");
        // The server started when the room was at 100.
        let recent: Vec<Message> = (101..=110).map(|s| message(&r, s, &ann)).collect();
        cache.committed(&recent);
        cache.learn_senders([ann.clone()], cache.ticket(&r));
        assert_eq!(
            seqs(&hit(&cache, &r, Page::Latest { limit: 10 })),
            (101..=110).collect::<Vec<_>>()
        );
        assert!(is_miss(&cache, &r, Page::Latest { limit: 11 }));
        assert!(is_miss(&cache, &r, Page::After { seq: 99, limit: 5 }));
        assert_eq!(
            seqs(&hit(&cache, &r, Page::After { seq: 100, limit: 5 })),
            [101, 102, 103, 104, 105]
        );
        assert!(is_miss(&cache, &r, Page::Before { seq: 105, limit: 5 }));
        assert_eq!(
            seqs(&hit(&cache, &r, Page::Before { seq: 106, limit: 5 })),
            [101, 102, 103, 104, 105]
        );
    }

    #[test]
    fn a_store_read_seeds_the_tail_only_if_nothing_moved() {
        let cache = TailCache::new(1 << 20);
        let r = room("r");
        let ann = sender("ann");
        let store: Vec<Message> = (1..=80).map(|s| message(&r, s, &ann)).collect();
        let page = Page::Latest { limit: 50 };
        let answer = MessagePage {
            messages: store[30..].to_vec(),
            has_more: true,
        };

        // A commit lands while the read is on its way: the answer is not kept.
        let Lookup::Miss(ticket) = cache.lookup(&r, page) else {
            panic!("empty cache")
        };
        cache.committed([&message(&r, 81, &ann)]);
        cache.offer(&r, page, &answer, ticket);
        assert!(is_miss(&cache, &r, Page::Latest { limit: 2 }));

        // Another room evicted meanwhile: not kept either (its state moved).
        let r2 = room("r2");
        let Lookup::Miss(ticket) = cache.lookup(&r2, page) else {
            panic!()
        };
        cache.forget([&r]);
        let answer2 = MessagePage {
            messages: (1..=3).map(|s| message(&r2, s, &ann)).collect(),
            has_more: false,
        };
        cache.offer(&r2, page, &answer2, ticket);
        assert!(is_miss(&cache, &r2, page));

        // Quiet: the answer seeds the room, and the next page comes from memory.
        let ticket = cache.ticket(&r2);
        cache.offer(&r2, page, &answer2, ticket);
        assert_eq!(seqs(&hit(&cache, &r2, page)), [1, 2, 3]);
        // A deep page is never offered (it does not reach the end).
        let r3 = room("r3");
        let ticket = cache.ticket(&r3);
        cache.offer(&r3, Page::Before { seq: 4, limit: 3 }, &answer2, ticket);
        assert!(is_miss(&cache, &r3, page));
    }

    #[test]
    fn a_seed_extends_a_short_tail_backwards() {
        let cache = TailCache::new(1 << 20);
        let r = room("r");
        let ann = sender("ann");
        cache.committed([&message(&r, 60, &ann)]);
        let page = Page::Latest { limit: 50 };
        let Lookup::Miss(ticket) = cache.lookup(&r, page) else {
            panic!()
        };
        let answer = MessagePage {
            messages: (11..=60).map(|s| message(&r, s, &ann)).collect(),
            has_more: true,
        };
        cache.offer(&r, page, &answer, ticket);
        let served = hit(&cache, &r, page);
        assert_eq!(seqs(&served), (11..=60).collect::<Vec<_>>());
        assert!(served.has_more);
        cache.committed([&message(&r, 61, &ann)]);
        assert_eq!(seqs(&hit(&cache, &r, Page::Latest { limit: 2 })), [60, 61]);
    }

    #[test]
    fn a_skipped_seq_starts_the_room_over() {
        let (cache, r, ann) = filled(10);
        cache.committed([&message(&r, 12, &ann)]);
        assert!(is_miss(&cache, &r, Page::Latest { limit: 2 }));
        assert_eq!(seqs(&hit(&cache, &r, Page::Latest { limit: 1 })), [12]);
        assert!(is_miss(&cache, &r, Page::After { seq: 10, limit: 5 }));
    }

    #[test]
    fn rooms_keep_their_newest_messages_and_old_rooms_go_first() {
        let (cache, r, ann) = filled(ROOM_MESSAGES as i64 + 44);
        let first = ROOM_MESSAGES as i64 + 44 - ROOM_MESSAGES as i64 + 1;
        assert_eq!(
            hit(&cache, &r, Page::Latest { limit: 200 }).messages[0].seq,
            ROOM_MESSAGES as i64 + 44 - 199
        );
        assert!(is_miss(
            &cache,
            &r,
            Page::After {
                seq: first - 2,
                limit: 5
            }
        ));

        // A budget of about three full rooms: the least recently used ones are dropped.
        let one_room = ROOM_OVERHEAD + ROOM_MESSAGES * (MESSAGE_OVERHEAD + 11);
        let small = TailCache::new(one_room * 3);
        for name in ["a", "b", "c", "d", "e"] {
            let id = room(name);
            let messages: Vec<Message> = (1..=ROOM_MESSAGES as i64)
                .map(|s| message(&id, s, &ann))
                .collect();
            small.committed(&messages);
            if name == "a" {
                small.learn_senders([ann.clone()], small.ticket(&id));
            }
            // `a` stays in use.
            let _ = small.lookup(&room("a"), Page::Latest { limit: 1 });
        }
        assert!(!is_miss(&small, &room("a"), Page::Latest { limit: 1 }));
        assert!(!is_miss(&small, &room("e"), Page::Latest { limit: 1 }));
        assert!(is_miss(&small, &room("b"), Page::Latest { limit: 1 }));
        let inner = small.lock().unwrap();
        assert!(inner.bytes <= inner.budget);
        let counted: usize = inner.rooms.values().map(|t| t.bytes).sum();
        assert_eq!(counted, inner.bytes);
    }

    #[test]
    fn sender_names_come_from_the_store_not_from_the_commit() {
        let cache = TailCache::new(1 << 20);
        let r = room("r");
        // Posted by a session that logged in as "ann" before she renamed herself.
        let stale = sender("ann");
        cache.committed([&message(&r, 1, &stale)]);
        let page = Page::Latest { limit: 5 };
        let Lookup::Senders { missing, ticket } = cache.lookup(&r, page) else {
            panic!("the commit's sender details are not trusted")
        };
        assert_eq!(missing, [stale.id]);
        let current = Arc::new(Sender {
            display_name: "Ann B.".into(),
            ..(*stale).clone()
        });
        cache.learn_senders([current.clone()], ticket);
        let served = hit(&cache, &r, page);
        assert_eq!(
            served.messages[0].sender.as_ref().unwrap().display_name,
            "Ann B."
        );

        // A rename: the name is forgotten, and a read that raced it is not kept.
        let Lookup::Hit(_) = cache.lookup(&r, page) else {
            panic!()
        };
        let ticket = cache.ticket(&r);
        cache.sender_changed(stale.id);
        cache.learn_senders([current.clone()], ticket);
        assert!(matches!(cache.lookup(&r, page), Lookup::Senders { .. }));
        // System messages without a sender need no name.
        let mut system = message(&r, 2, &stale);
        system.sender = None;
        cache.committed([&system]);
        let Lookup::Senders { missing, .. } = cache.lookup(&r, page) else {
            panic!()
        };
        assert_eq!(missing, [stale.id]);
    }

    #[test]
    fn a_disabled_cache_always_misses() {
        let cache = TailCache::new(0);
        let r = room("r");
        let ann = sender("ann");
        cache.committed([&message(&r, 1, &ann)]);
        cache.learn_senders([ann], cache.ticket(&r));
        assert!(is_miss(&cache, &r, Page::Latest { limit: 1 }));
    }

    mod model {
        //! Random commits, reads and evictions against a plain list of stored
        //! messages: whatever the cache serves must equal what the store holds.
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Commit {
                room: usize,
                count: usize,
            },
            /// `race`: 0 nothing, 1 a commit, 2 a commit and then the room evicted,
            /// between the store read and the offer of its answer.
            Read {
                room: usize,
                page: Page,
                race: u8,
            },
            Rename,
            FailedCommit {
                room: usize,
            },
        }

        fn page() -> impl Strategy<Value = Page> {
            prop_oneof![
                (1u32..60).prop_map(|limit| Page::Latest { limit }),
                (1i64..120, 1u32..60).prop_map(|(seq, limit)| Page::Before { seq, limit }),
                (0i64..120, 1u32..60).prop_map(|(seq, limit)| Page::After { seq, limit }),
            ]
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (0usize..3, 1usize..8).prop_map(|(room, count)| Op::Commit { room, count }),
                6 => (0usize..3, page(), 0u8..3)
                    .prop_map(|(room, page, race)| Op::Read { room, page, race }),
                1 => Just(Op::Rename),
                1 => (0usize..3).prop_map(|room| Op::FailedCommit { room }),
            ]
        }

        /// What the store answers.
        fn read(stored: &[Message], page: Page) -> MessagePage {
            let last = stored.len() as i64;
            let (from, to, has_more) = match page {
                Page::Latest { limit } => {
                    let from = (last - i64::from(limit) + 1).max(1);
                    (from, last, from > 1)
                }
                Page::Before { seq, limit } => {
                    let to = (seq - 1).min(last);
                    let from = (to - i64::from(limit) + 1).max(1);
                    (from, to, from > 1)
                }
                Page::After { seq, limit } => {
                    let to = (seq + i64::from(limit)).min(last);
                    (seq + 1, to, to < last)
                }
            };
            let messages: Vec<Message> = (from..=to)
                .map(|s| stored[(s - 1) as usize].clone())
                .collect();
            MessagePage { messages, has_more }
        }

        proptest! {
            #[test]
            fn the_cache_serves_what_the_store_holds(ops in proptest::collection::vec(op(), 1..80)) {
                // A small budget, so evictions happen too.
                let cache = TailCache::new(12_000);
                let rooms: Vec<RoomId> = (0..3).map(|i| room(&format!("r{i}"))).collect();
                let mut stored: Vec<Vec<Message>> = vec![Vec::new(); 3];
                let ann_id = UserId::new();
                let mut name = 0;
                let current = |name: i32| Arc::new(Sender {
                    id: ann_id,
                    username: "ann".into(),
                    display_name: format!("Ann {name}"),
                    avatar_version: 0,
                });
                // Commits carry whatever name the poster logged in with.
                let mut session_name = 0;
                for op in ops {
                    match op {
                        Op::Commit { room, count } => {
                            let batch: Vec<Message> = (0..count)
                                .map(|_| {
                                    let seq = stored[room].len() as i64 + 1;
                                    let m = message(&rooms[room], seq, &current(session_name));
                                    stored[room].push(m.clone());
                                    m
                                })
                                .collect();
                            cache.committed(&batch);
                        }
                        Op::FailedCommit { room } => cache.forget([&rooms[room]]),
                        Op::Rename => {
                            name += 1;
                            cache.sender_changed(ann_id);
                            session_name = name - 1; // an older session keeps posting
                        }
                        Op::Read { room, page, race } => {
                            let now_named = |mut m: Message| {
                                m.sender = Some(current(name));
                                m
                            };
                            let expected = read(&stored[room], page);
                            let expected = MessagePage {
                                messages: expected.messages.into_iter().map(now_named).collect(),
                                has_more: expected.has_more,
                            };
                            let served = match cache.lookup(&rooms[room], page) {
                                Lookup::Hit(page) => Some(page),
                                Lookup::Senders { ticket, .. } => {
                                    cache.learn_senders([current(name)], ticket);
                                    match cache.lookup(&rooms[room], page) {
                                        Lookup::Hit(page) => Some(page),
                                        _ => None,
                                    }
                                }
                                Lookup::Miss(ticket) => {
                                    if race > 0 {
                                        // A commit lands between the read and the offer.
                                        let seq = stored[room].len() as i64 + 1;
                                        let m = message(&rooms[room], seq, &current(session_name));
                                        stored[room].push(m.clone());
                                        cache.committed([&m]);
                                    }
                                    if race > 1 {
                                        cache.forget([&rooms[room]]);
                                    }
                                    cache.offer(&rooms[room], page, &expected, ticket);
                                    None
                                }
                            };
                            if let Some(served) = served {
                                prop_assert_eq!(&served.messages, &expected.messages);
                                prop_assert_eq!(served.has_more, expected.has_more, "{:?}", page);
                            }
                        }
                    }
                }
            }
        }
    }
}
