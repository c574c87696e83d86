//! Per-connection bookkeeping that makes delivery exactly-once and resumable:
//! which seqs of each room this connection has delivered, and live messages
//! held back while stored ones are replayed. Pure logic, no I/O.

use std::collections::HashMap;

use axum::extract::ws::Utf8Bytes;

use crate::domain::ids::RoomId;

#[derive(Default)]
struct Cursor {
    /// Delivered seqs are `first..=last` (0 = none yet) plus everything replayed.
    first: i64,
    last: i64,
    resume: Option<Resume>,
}

struct Resume {
    since: i64,
    replayed: usize,
    highest_replayed: i64,
    held: Vec<(i64, Utf8Bytes)>,
}

#[derive(Default)]
pub struct Delivery {
    rooms: HashMap<RoomId, Cursor>,
}

impl Delivery {
    /// A live message: delivered unless already delivered; held while the room resumes.
    pub fn live(&mut self, room: &RoomId, seq: i64, frame: Utf8Bytes, out: &mut Vec<Utf8Bytes>) {
        if !self.rooms.contains_key(room) {
            self.rooms.insert(room.clone(), Cursor::default());
        }
        let Some(cursor) = self.rooms.get_mut(room) else {
            return;
        };
        if let Some(resume) = &mut cursor.resume {
            resume.held.push((seq, frame));
            return;
        }
        if seq > cursor.last {
            if cursor.first == 0 {
                cursor.first = seq;
            }
            cursor.last = seq;
            out.push(frame);
        }
    }

    /// Begins replaying stored messages with seq > `since`.
    pub fn resume_start(&mut self, room: RoomId, since: i64) {
        let cursor = self.rooms.entry(room).or_default();
        match &mut cursor.resume {
            Some(resume) => resume.since = resume.since.min(since),
            None => {
                cursor.resume = Some(Resume {
                    since,
                    replayed: 0,
                    highest_replayed: since,
                    held: Vec::new(),
                })
            }
        }
    }

    /// Stored messages, ascending: each is sent unless delivered live already.
    pub fn resume_chunk(
        &mut self,
        room: &RoomId,
        messages: Vec<(i64, Utf8Bytes)>,
        out: &mut Vec<Utf8Bytes>,
    ) {
        let Some(cursor) = self.rooms.get_mut(room) else {
            return;
        };
        let (first, last) = (cursor.first, cursor.last);
        let Some(resume) = &mut cursor.resume else {
            return;
        };
        for (seq, frame) in messages {
            let delivered_live = first != 0 && (first..=last).contains(&seq);
            if seq <= resume.highest_replayed || delivered_live {
                continue;
            }
            resume.highest_replayed = seq;
            resume.replayed += 1;
            out.push(frame);
        }
    }

    /// Ends the replay: held live messages not replayed are released. Returns
    /// the last seq now delivered and how many stored messages were replayed.
    pub fn resume_end(&mut self, room: &RoomId, out: &mut Vec<Utf8Bytes>) -> (i64, usize) {
        let Some(cursor) = self.rooms.get_mut(room) else {
            return (0, 0);
        };
        let Some(resume) = cursor.resume.take() else {
            return (cursor.last, 0);
        };
        // Everything after `since` up to the highest replayed or live seq is now delivered.
        let start = resume.since + 1;
        cursor.first = if cursor.first == 0 {
            start
        } else {
            cursor.first.min(start)
        };
        cursor.last = cursor.last.max(resume.highest_replayed).max(resume.since);
        for (seq, frame) in resume.held {
            if seq > cursor.last {
                cursor.last = seq;
                out.push(frame);
            }
        }
        (cursor.last, resume.replayed)
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

    fn seqs(out: &[Utf8Bytes]) -> Vec<i64> {
        out.iter().map(|f| f.as_str().parse().unwrap()).collect()
    }

    #[test]
    fn live_messages_are_deduplicated() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        for seq in [1, 2, 2, 3, 1] {
            let (s, f) = frame(seq);
            d.live(&room(), s, f, &mut out);
        }
        assert_eq!(seqs(&out), [1, 2, 3]);
    }

    #[test]
    fn resume_replays_then_releases_held_in_order() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.resume_start(room(), 10);
        // Live 14 and 15 arrive while 11..=14 are being read from the store.
        for seq in [14, 15] {
            let (s, f) = frame(seq);
            d.live(&room(), s, f, &mut out);
        }
        assert!(out.is_empty());
        d.resume_chunk(&room(), (11..=14).map(frame).collect(), &mut out);
        let (last, replayed) = d.resume_end(&room(), &mut out);
        assert_eq!(seqs(&out), [11, 12, 13, 14, 15]);
        assert_eq!((last, replayed), (15, 4));
        let (s, f) = frame(15);
        d.live(&room(), s, f, &mut out);
        let (s, f) = frame(16);
        d.live(&room(), s, f, &mut out);
        assert_eq!(seqs(&out), [11, 12, 13, 14, 15, 16]);
    }

    #[test]
    fn resume_after_live_skips_what_was_delivered() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        for seq in [7, 8] {
            let (s, f) = frame(seq);
            d.live(&room(), s, f, &mut out);
        }
        d.resume_start(room(), 4);
        d.resume_chunk(&room(), (5..=9).map(frame).collect(), &mut out);
        let (last, replayed) = d.resume_end(&room(), &mut out);
        assert_eq!(seqs(&out), [7, 8, 5, 6, 9]);
        assert_eq!((last, replayed), (9, 3));
    }

    #[test]
    fn resume_with_nothing_missed() {
        let mut d = Delivery::default();
        let mut out = Vec::new();
        d.resume_start(room(), 20);
        d.resume_chunk(&room(), Vec::new(), &mut out);
        assert_eq!(d.resume_end(&room(), &mut out), (20, 0));
        let (s, f) = frame(20);
        d.live(&room(), s, f, &mut out);
        assert!(out.is_empty());
    }
}
