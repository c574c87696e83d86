//! A connection's queue of outgoing items. The hub and the session push; the
//! connection's writer takes everything queued at once.
//!
//! Bounded: a full outbox means the client is not reading (a slow consumer).
//! Ephemeral items (typing, presence, read receipts: what a client can do
//! without) are refused once the outbox is half full, and that is no fault
//! of the client's; so a burst of them never closes anyone, and only a reader
//! that cannot keep up with what it must not miss is ever called slow.
//! It holds no buffer while empty, which is most of the time for most
//! connections: memory per idle connection is what limits how many a server
//! holds (a channel would keep a block of slots allocated for each one).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;

use crate::domain::ids::{RoomId, UserId};

/// What a connection's writer is asked to do.
#[derive(Debug)]
pub enum Outbound {
    /// Send this frame as it is.
    Frame(Utf8Bytes),
    /// Committed chat messages of one room, ascending (one commit's worth): each
    /// is sent unless this connection already delivered its seq.
    Chat {
        room: RoomId,
        messages: Arc<[ChatFrame]>,
    },
    /// Heartbeat: send a WebSocket ping and this `heartbeat` frame.
    Tick(Utf8Bytes),
    /// The client has these rooms up to these seqs: deliver what follows, in order.
    StartAfter(Vec<(RoomId, i64)>),
    /// A resume began: stored messages after `since` follow as chunks.
    ResumeStart { room: RoomId, since: i64 },
    /// Stored messages being replayed, ascending.
    ResumeChunk {
        room: RoomId,
        messages: Vec<(i64, Utf8Bytes)>,
    },
    /// Replay finished: send `resume_complete`.
    ResumeEnd { room: RoomId },
    /// Stored messages fetched to fill a gap, ascending.
    Fill {
        room: RoomId,
        messages: Vec<(i64, Utf8Bytes)>,
    },
    /// Messages may have been missed: re-check every room against the store.
    /// With `membership`, membership changes may have been missed too (the bus
    /// was down): re-check which rooms the connection may follow.
    Resync { membership: bool },
}

/// A committed message serialized for its sender (`is_own: true`) and for everyone else.
#[derive(Debug)]
pub struct ChatFrame {
    pub seq: i64,
    pub sender: Option<UserId>,
    pub own: Utf8Bytes,
    pub others: Utf8Bytes,
}

impl ChatFrame {
    /// The copy meant for `user`.
    pub fn for_user(&self, user: UserId) -> &Utf8Bytes {
        if self.sender == Some(user) {
            &self.own
        } else {
            &self.others
        }
    }
}

/// Why an item was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// `capacity` items are waiting already.
    Full,
    /// An ephemeral item, refused because the outbox is half full: dropped,
    /// and the client is not to blame.
    Shed,
    /// The connection is ending; nobody will take it.
    Closed,
}

pub struct Outbox {
    queue: Mutex<Queue>,
    capacity: usize,
    /// Wakes the writer: items arrived, or the outbox closed.
    filled: Notify,
    /// Wakes a session waiting for room in a full outbox.
    drained: Notify,
}

#[derive(Default)]
struct Queue {
    items: VecDeque<Outbound>,
    closed: bool,
}

impl Outbox {
    pub fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            queue: Mutex::default(),
            capacity,
            filled: Notify::new(),
            drained: Notify::new(),
        })
    }

    // Nothing panics while holding the lock, and a queue left between two
    // statements is still a valid queue.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues without waiting.
    pub fn try_push(&self, item: Outbound) -> Result<(), Refused> {
        self.enqueue(item, self.capacity).map_err(|(why, _)| why)
    }

    /// Queues an item the client can do without (typing, presence, read
    /// receipts), unless half the outbox is taken: the other half stays for
    /// messages and everything else a client must not miss.
    pub fn try_push_ephemeral(&self, item: Outbound) -> Result<(), Refused> {
        match self.enqueue(item, self.capacity / 2) {
            Ok(()) => Ok(()),
            Err((Refused::Full, _)) => Err(Refused::Shed),
            Err((why, _)) => Err(why),
        }
    }

    /// Queues, waiting while the outbox is full (back-pressure for long replays).
    pub async fn push(&self, item: Outbound) -> Result<(), Refused> {
        let mut item = item;
        loop {
            match self.enqueue(item, self.capacity) {
                Err((Refused::Full, back)) => item = back,
                done => return done.map_err(|(why, _)| why),
            }
            // A take between the check and here leaves a permit: no wake-up is lost.
            self.drained.notified().await;
        }
    }

    /// Queues unless `limit` items are waiting, or gives the item back with
    /// the reason it was refused.
    fn enqueue(&self, item: Outbound, limit: usize) -> Result<(), (Refused, Outbound)> {
        let mut queue = self.lock();
        if queue.closed {
            return Err((Refused::Closed, item));
        }
        if queue.items.len() >= limit {
            return Err((Refused::Full, item));
        }
        queue.items.push_back(item);
        drop(queue);
        self.filled.notify_one();
        Ok(())
    }

    /// Everything queued, oldest first, once there is something; `None` once
    /// the outbox is closed and empty. Only the writer calls it.
    pub async fn take(&self) -> Option<VecDeque<Outbound>> {
        loop {
            let items = self.try_take();
            if !items.is_empty() {
                return Some(items);
            }
            if self.lock().closed {
                return None;
            }
            // A push between the check and here leaves a permit: no wake-up is lost.
            self.filled.notified().await;
        }
    }

    /// Everything queued now, oldest first (possibly nothing).
    pub fn try_take(&self) -> VecDeque<Outbound> {
        let items = std::mem::take(&mut self.lock().items);
        if !items.is_empty() {
            self.drained.notify_one();
        }
        items
    }

    /// No more items will be accepted; the writer takes what is queued, then ends.
    pub fn close(&self) {
        self.lock().closed = true;
        self.filled.notify_one();
        self.drained.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::extract::ws::Utf8Bytes;

    use super::*;

    fn frame(text: &'static str) -> Outbound {
        Outbound::Frame(Utf8Bytes::from_static(text))
    }

    fn texts(items: VecDeque<Outbound>) -> Vec<String> {
        items
            .into_iter()
            .map(|item| match item {
                Outbound::Frame(f) => f.as_str().to_owned(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[tokio::test]
    async fn items_come_out_in_order_and_all_at_once() {
        let outbox = Outbox::new(8);
        outbox.try_push(frame("a")).unwrap();
        outbox.try_push(frame("b")).unwrap();
        assert_eq!(texts(outbox.take().await.unwrap()), ["a", "b"]);
        assert!(outbox.try_take().is_empty());
    }

    #[tokio::test]
    async fn a_full_outbox_refuses_until_taken() {
        let outbox = Outbox::new(2);
        outbox.try_push(frame("a")).unwrap();
        outbox.try_push(frame("b")).unwrap();
        assert_eq!(outbox.try_push(frame("c")), Err(Refused::Full));
        assert_eq!(texts(outbox.try_take()), ["a", "b"]);
        outbox.try_push(frame("d")).unwrap();
        assert_eq!(texts(outbox.try_take()), ["d"]);
    }

    #[tokio::test]
    async fn ephemeral_items_are_shed_past_half_and_leave_room_for_the_rest() {
        let outbox = Outbox::new(4);
        outbox.try_push_ephemeral(frame("typing 1")).unwrap();
        outbox.try_push_ephemeral(frame("typing 2")).unwrap();
        assert_eq!(
            outbox.try_push_ephemeral(frame("typing 3")),
            Err(Refused::Shed)
        );
        outbox.try_push(frame("message 1")).unwrap();
        outbox.try_push(frame("message 2")).unwrap();
        assert_eq!(outbox.try_push(frame("message 3")), Err(Refused::Full));
        assert_eq!(
            texts(outbox.try_take()),
            ["typing 1", "typing 2", "message 1", "message 2"]
        );
        outbox.close();
        assert_eq!(
            outbox.try_push_ephemeral(frame("late")),
            Err(Refused::Closed)
        );
    }

    #[tokio::test]
    async fn the_writer_wakes_for_an_item_pushed_while_it_waits() {
        let outbox = Outbox::new(4);
        let writer = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.take().await.map(texts) }
        });
        tokio::task::yield_now().await;
        outbox.try_push(frame("late")).unwrap();
        let taken = tokio::time::timeout(Duration::from_secs(5), writer).await;
        assert_eq!(taken.unwrap().unwrap(), Some(vec!["late".to_owned()]));
    }

    #[tokio::test]
    async fn push_waits_for_room_then_queues() {
        let outbox = Outbox::new(1);
        outbox.try_push(frame("first")).unwrap();
        let pusher = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push(frame("second")).await }
        });
        tokio::task::yield_now().await;
        assert!(!pusher.is_finished(), "no room yet");
        assert_eq!(texts(outbox.try_take()), ["first"]);
        let pushed = tokio::time::timeout(Duration::from_secs(5), pusher).await;
        assert_eq!(pushed.unwrap().unwrap(), Ok(()));
        assert_eq!(texts(outbox.try_take()), ["second"]);
    }

    #[tokio::test]
    async fn closing_ends_the_writer_after_what_is_queued_and_refuses_more() {
        let outbox = Outbox::new(4);
        outbox.try_push(frame("last")).unwrap();
        outbox.close();
        assert_eq!(outbox.try_push(frame("too late")), Err(Refused::Closed));
        assert_eq!(texts(outbox.take().await.unwrap()), ["last"]);
        assert!(outbox.take().await.is_none());
    }

    #[tokio::test]
    async fn closing_releases_a_waiting_push() {
        let outbox = Outbox::new(1);
        outbox.try_push(frame("full")).unwrap();
        let pusher = tokio::spawn({
            let outbox = outbox.clone();
            async move { outbox.push(frame("blocked")).await }
        });
        tokio::task::yield_now().await;
        outbox.close();
        let pushed = tokio::time::timeout(Duration::from_secs(5), pusher).await;
        assert_eq!(pushed.unwrap().unwrap(), Err(Refused::Closed));
    }
}
