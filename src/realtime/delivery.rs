//! Per-connection bookkeeping that makes delivery exactly-once, in seq order and
//! resumable. For each room it knows the next seq the client should get; a
//! message arriving early (another node's message still on its way, or one
//! missed while the bus was down) waits until the gap before it is filled, live
//! or from the database. Pure logic, no I/O.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;

use crate::domain::ids::RoomId;

/// How long a gap may wait for the missing message to arrive live before it is
/// fetched from the database.
pub const GAP_WAIT: Duration = Duration::from_millis(300);

#[derive(Default)]
struct Cursor {
    /// The seq to deliver next; `None` until the first message or resume sets it.
    /// This connection delivered `floor..next`, plus any backfill.
    next: Option<i64>,
    floor: i64,
    /// Older seqs a resume asked for after newer ones went out: sent as they come.
    backfill: Option<(i64, i64)>,
    /// Messages that arrived before their turn.
    held: BTreeMap<i64, Utf8Bytes>,
    /// When the current gap was noticed (or last asked to be filled).
    gap_since: Option<Instant>,
    /// A replay is running: its messages will fill the gap, no need to ask.
    resuming: bool,
    replayed: usize,
}

impl Cursor {
    /// Accepts a message; delivers it and whatever it unblocks, in order.
    fn accept(&mut self, seq: i64, frame: Utf8Bytes, out: &mut Vec<Utf8Bytes>) -> usize {
        if let Some((low, high)) = self.backfill
            && (low..=high).contains(&seq)
        {
            // The replay brings the backfill in order. Anything else in its
            // range is an old message fanned out again (a retried client_id):
            // taking it now would skip the ones below it.
            if seq != low {
                return 0;
            }
            out.push(frame);
            self.backfill = (seq < high).then_some((seq + 1, high));
            return 1;
        }
        let next = match self.next {
            Some(next) => next,
            None => {
                self.floor = seq;
                *self.next.insert(seq)
            }
        };
        if seq < next {
            return 0;
        }
        self.held.entry(seq).or_insert(frame);
        self.drain(out)
    }

    fn drain(&mut self, out: &mut Vec<Utf8Bytes>) -> usize {
        let Some(mut next) = self.next else { return 0 };
        let mut delivered = 0;
        while let Some(frame) = self.held.remove(&next) {
            out.push(frame);
            next += 1;
            delivered += 1;
        }
        // Anything below `next` left in `held` was already delivered.
        self.held.retain(|seq, _| *seq >= next);
        self.next = Some(next);
        if self.held.is_empty() {
            self.gap_since = None;
        } else if delivered > 0 || self.gap_since.is_none() {
            self.gap_since = Some(Instant::now());
        }
        delivered
    }
}

/// A request to fetch a room's messages after `after` from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fill {
    pub room: RoomId,
    pub after: i64,
}

#[derive(Default)]
pub struct Delivery {
    rooms: HashMap<RoomId, Cursor>,
}

impl Delivery {
    fn cursor(&mut self, room: &RoomId) -> &mut Cursor {
        // RoomId clones are a reference count, not a string copy.
        self.rooms.entry(room.clone()).or_default()
    }

    /// Deliver what follows `last_seq` (the client has it, or starts live from there).
    pub fn start_after(&mut self, room: &RoomId, last_seq: i64) {
        let cursor = self.cursor(room);
        let want = last_seq + 1;
        match cursor.next {
            None => {
                cursor.next = Some(want);
                cursor.floor = want;
            }
            Some(next) if want > next => cursor.next = Some(want),
            Some(_) => {}
        }
        let mut ignored = Vec::new();
        cursor.drain(&mut ignored);
    }

    /// A live message (from this node or another).
    pub fn live(&mut self, room: &RoomId, seq: i64, frame: Utf8Bytes, out: &mut Vec<Utf8Bytes>) {
        self.cursor(room).accept(seq, frame, out);
    }

    /// Messages read from the database to fill a gap or resync, ascending.
    pub fn fill(
        &mut self,
        room: &RoomId,
        messages: Vec<(i64, Utf8Bytes)>,
        out: &mut Vec<Utf8Bytes>,
    ) {
        let cursor = self.cursor(room);
        for (seq, frame) in messages {
            cursor.accept(seq, frame, out);
        }
    }

    /// Begins replaying stored messages with seq > `since`. Whatever this
    /// connection already delivered is not sent again.
    pub fn resume_start(&mut self, room: &RoomId, since: i64) {
        let cursor = self.cursor(room);
        let want = since + 1;
        match cursor.next {
            // Nothing delivered yet: simply start from the client's position.
            Some(next) if next == cursor.floor => {
                cursor.next = Some(want);
                cursor.floor = want;
            }
            None => {
                cursor.next = Some(want);
                cursor.floor = want;
            }
            // The client has more than this connection sent: skip ahead.
            Some(next) if want >= next => cursor.next = Some(want),
            Some(_) if want >= cursor.floor => {}
            // It lacks older messages than those already sent: send them as they come.
            Some(_) => {
                cursor.backfill = Some((want, cursor.floor - 1));
                cursor.floor = want;
            }
        }
        let mut ignored = Vec::new();
        cursor.drain(&mut ignored);
        cursor.resuming = true;
        cursor.replayed = 0;
    }

    /// Stored messages being replayed, ascending.
    pub fn resume_chunk(
        &mut self,
        room: &RoomId,
        messages: Vec<(i64, Utf8Bytes)>,
        out: &mut Vec<Utf8Bytes>,
    ) {
        let cursor = self.cursor(room);
        for (seq, frame) in messages {
            cursor.replayed += cursor.accept(seq, frame, out).min(1);
        }
    }

    /// Ends the replay; returns the last seq delivered and how many stored
    /// messages the replay delivered.
    pub fn resume_end(&mut self, room: &RoomId) -> (i64, usize) {
        let cursor = self.cursor(room);
        cursor.resuming = false;
        (
            cursor.next.map_or(0, |n| n - 1),
            std::mem::take(&mut cursor.replayed),
        )
    }

    /// Gaps that waited long enough to be fetched from the database. Each is
    /// asked for once per `GAP_WAIT`.
    pub fn due_fills(&mut self, now: Instant) -> Vec<Fill> {
        let mut fills = Vec::new();
        for (room, cursor) in &mut self.rooms {
            if cursor.resuming {
                continue;
            }
            if let (Some(since), Some(next)) = (cursor.gap_since, cursor.next)
                && now.duration_since(since) >= GAP_WAIT
            {
                cursor.gap_since = Some(now);
                fills.push(Fill {
                    room: room.clone(),
                    after: next - 1,
                });
            }
        }
        fills
    }

    /// When the earliest gap becomes due, if there is one.
    pub fn next_fill_at(&self) -> Option<Instant> {
        self.rooms
            .values()
            .filter(|c| !c.resuming)
            .filter_map(|c| c.gap_since)
            .min()
            .map(|since| since + GAP_WAIT)
    }

    /// Every room with a position, to re-check against the database (after the
    /// bus was down, messages may have been missed without any gap showing yet).
    pub fn resync(&self) -> Vec<Fill> {
        self.rooms
            .iter()
            .filter(|(_, c)| !c.resuming)
            .filter_map(|(room, c)| {
                c.next.map(|next| Fill {
                    room: room.clone(),
                    after: next - 1,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomId {
        RoomId::parse("r").unwrap()
    }

    fn frame(seq: i64) -> (i64, Utf8Bytes) {
        (seq, Utf8Bytes::from(seq.to_string()))
    }

    fn live(d: &mut Delivery, seq: i64, out: &mut Vec<Utf8Bytes>) {
        let (s, f) = frame(seq);
        d.live(&room(), s, f, out);
    }

    fn seqs(out: &[Utf8Bytes]) -> Vec<i64> {
        out.iter().map(|f| f.as_str().parse().unwrap()).collect()
    }

    #[test]
    fn live_messages_are_deduplicated() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        for seq in [1, 2, 2, 3, 1] {
            live(&mut d, seq, &mut out);
        }
        assert_eq!(seqs(&out), [1, 2, 3]);
    }

    #[test]
    fn early_messages_wait_for_the_gap() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 10);
        live(&mut d, 12, &mut out);
        live(&mut d, 13, &mut out);
        assert!(out.is_empty());
        assert!(d.next_fill_at().is_some());
        live(&mut d, 11, &mut out);
        assert_eq!(seqs(&out), [11, 12, 13]);
        assert!(d.next_fill_at().is_none());
    }

    #[test]
    fn a_lasting_gap_is_filled_from_the_store() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 10);
        live(&mut d, 14, &mut out);
        assert!(d.due_fills(Instant::now()).is_empty(), "not yet due");
        let due = d.due_fills(Instant::now() + GAP_WAIT);
        assert_eq!(
            due,
            vec![Fill {
                room: room(),
                after: 10
            }]
        );
        assert!(
            d.due_fills(Instant::now() + GAP_WAIT).is_empty(),
            "asked once per wait"
        );
        d.fill(&room(), (11..=14).map(frame).collect(), &mut out);
        assert_eq!(seqs(&out), [11, 12, 13, 14]);
        assert!(d.next_fill_at().is_none());
    }

    #[test]
    fn resume_replays_then_live_follows_in_order() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.resume_start(&room(), 10);
        // Live 14 and 15 arrive while 11..=14 are being read from the store.
        live(&mut d, 14, &mut out);
        live(&mut d, 15, &mut out);
        assert!(out.is_empty());
        assert!(
            d.due_fills(Instant::now() + GAP_WAIT * 2).is_empty(),
            "no fill during a resume"
        );
        d.resume_chunk(&room(), (11..=14).map(frame).collect(), &mut out);
        assert_eq!(d.resume_end(&room()), (15, 3));
        assert_eq!(seqs(&out), [11, 12, 13, 14, 15]);
        live(&mut d, 15, &mut out);
        live(&mut d, 16, &mut out);
        assert_eq!(seqs(&out), [11, 12, 13, 14, 15, 16]);
    }

    #[test]
    fn resume_after_live_sends_nothing_twice() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 6);
        live(&mut d, 7, &mut out);
        live(&mut d, 8, &mut out);
        // The client has up to 4: it lacks 5 and 6 (never sent here) and 9.
        d.resume_start(&room(), 4);
        d.resume_chunk(&room(), (5..=9).map(frame).collect(), &mut out);
        assert_eq!(d.resume_end(&room()), (9, 3));
        assert_eq!(seqs(&out), [7, 8, 5, 6, 9]);
        live(&mut d, 9, &mut out);
        assert_eq!(seqs(&out), [7, 8, 5, 6, 9]);
    }

    #[test]
    fn a_fresh_connection_resumes_from_an_older_seq() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 6);
        d.resume_start(&room(), 3);
        d.resume_chunk(&room(), (4..=6).map(frame).collect(), &mut out);
        assert_eq!(d.resume_end(&room()), (6, 3));
        live(&mut d, 7, &mut out);
        assert_eq!(seqs(&out), [4, 5, 6, 7]);
    }

    #[test]
    fn older_messages_are_backfilled_once() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 6);
        live(&mut d, 7, &mut out);
        d.resume_start(&room(), 3);
        live(&mut d, 8, &mut out);
        d.resume_chunk(&room(), (4..=8).map(frame).collect(), &mut out);
        assert_eq!(d.resume_end(&room()), (8, 3));
        assert_eq!(seqs(&out), [7, 8, 4, 5, 6]);
    }

    /// A retried client_id fans the stored message out again: wherever it
    /// lands, nobody gets it twice or loses anything around it.
    #[test]
    fn a_message_fanned_out_again_is_delivered_at_most_once() {
        // Already delivered: dropped.
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 0);
        for seq in [1, 2, 3, 2] {
            live(&mut d, seq, &mut out);
        }
        assert_eq!(seqs(&out), [1, 2, 3]);

        // Missed live (its first fan-out never happened): it fills the gap it left.
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 0);
        live(&mut d, 1, &mut out);
        live(&mut d, 3, &mut out);
        live(&mut d, 2, &mut out);
        assert_eq!(seqs(&out), [1, 2, 3]);
        assert!(d.next_fill_at().is_none(), "no gap left to fetch");

        // In the middle of a backfill: the replay still sends it in order, once.
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 6);
        live(&mut d, 7, &mut out);
        d.resume_start(&room(), 3);
        live(&mut d, 5, &mut out);
        live(&mut d, 7, &mut out);
        d.resume_chunk(&room(), (4..=7).map(frame).collect(), &mut out);
        assert_eq!(d.resume_end(&room()), (7, 3));
        assert_eq!(seqs(&out), [7, 4, 5, 6]);
    }

    #[test]
    fn resume_with_nothing_missed() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.resume_start(&room(), 20);
        d.resume_chunk(&room(), Vec::new(), &mut out);
        assert_eq!(d.resume_end(&room()), (20, 0));
        live(&mut d, 20, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn resync_names_every_room_with_a_position() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.start_after(&room(), 3);
        live(&mut d, 4, &mut out);
        assert_eq!(
            d.resync(),
            vec![Fill {
                room: room(),
                after: 4
            }]
        );
    }
}
