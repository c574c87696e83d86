//! The accounting of deliveries. Each member connection keeps its own tally
//! (no shared state on the per-delivery path); senders keep the seqs their
//! messages were acknowledged with. At the end, every acknowledged seq of a
//! room must have reached every connection of that room that was following
//! it at the time, exactly once and in order.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

/// Latency histograms: microseconds, 1 µs to 100 s, 2 significant figures
/// (1 % resolution). Small enough to keep one per connection.
pub fn latency_histogram() -> anyhow::Result<Histogram<u32>> {
    Ok(Histogram::new_with_bounds(1, 100_000_000, 2)?)
}

/// What a received chat message was, for this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// The next one (possibly after a gap).
    InOrder,
    /// Received for the first time, but after a higher seq.
    OutOfOrder,
    /// Already received.
    Duplicate,
    /// Already received, and sent again on purpose: the server's answer to a
    /// message this connection resent with the same `client_id`.
    Repeat,
}

/// What one member connection received of its room.
#[derive(Debug, Clone)]
pub struct Tally {
    /// The room's last seq when this connection started following it: it
    /// expects everything after.
    start: i64,
    /// The highest seq received.
    last: i64,
    /// Bit `seq - start - 1` is set once `seq` was received.
    seen: Vec<u64>,
    /// Generated messages received (each counted once).
    pub delivered: u64,
    /// Anyone else's messages received (system messages, other clients).
    pub foreign: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Messages with a seq at or before `start`: the server should never send them.
    pub before_start: u64,
    /// Send-to-receive time of generated messages, in microseconds.
    pub latency: Option<Histogram<u32>>,
}

impl Tally {
    pub fn new(start: i64) -> Self {
        Self {
            start,
            last: start,
            seen: Vec::new(),
            delivered: 0,
            foreign: 0,
            duplicated: 0,
            out_of_order: 0,
            before_start: 0,
            latency: None,
        }
    }

    pub fn start(&self) -> i64 {
        self.start
    }

    /// The highest seq received (or the start): where a resume continues from.
    pub fn last_seq(&self) -> i64 {
        self.last
    }

    fn bit(&self, seq: i64) -> Option<(usize, u64)> {
        let index = usize::try_from(seq - self.start - 1).ok()?;
        Some((index / 64, 1u64 << (index % 64)))
    }

    pub fn has(&self, seq: i64) -> bool {
        self.bit(seq)
            .is_some_and(|(word, mask)| self.seen.get(word).is_some_and(|w| w & mask != 0))
    }

    /// Records a received chat message. `latency_us` is set for generated
    /// messages; `repeat_expected` when this connection resent the message.
    pub fn receive(
        &mut self,
        seq: i64,
        latency_us: Option<u64>,
        repeat_expected: bool,
        template: &Histogram<u32>,
    ) -> Receipt {
        let Some((word, mask)) = self.bit(seq) else {
            self.before_start += 1;
            return Receipt::OutOfOrder;
        };
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & mask != 0 {
            if repeat_expected {
                return Receipt::Repeat;
            }
            self.duplicated += 1;
            return Receipt::Duplicate;
        }
        self.seen[word] |= mask;
        match latency_us {
            Some(us) => {
                self.delivered += 1;
                self.latency
                    .get_or_insert_with(|| template.clone())
                    .saturating_record(us.max(1));
            }
            None => self.foreign += 1,
        }
        if seq > self.last {
            self.last = seq;
            Receipt::InOrder
        } else {
            self.out_of_order += 1;
            Receipt::OutOfOrder
        }
    }

    /// Of `acked` (ascending seqs of a room), how many this connection should
    /// have received and how many it did.
    pub fn expected_and_received(&self, acked: &[i64]) -> (u64, u64) {
        let after = acked.partition_point(|&seq| seq <= self.start);
        let expected = &acked[after..];
        let received = expected.iter().filter(|&&seq| self.has(seq)).count();
        (expected.len() as u64, received as u64)
    }
}

/// What one sending connection sent and had acknowledged.
#[derive(Debug, Clone, Default)]
pub struct Sent {
    pub sent: u64,
    pub acked: u64,
    /// The seq each acknowledged message was stored with.
    pub acked_seqs: Vec<i64>,
    /// `error` frames answering a sent message, by code (`rate_limited`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Messages sent again after a reconnect (same `client_id`).
    pub resent: u64,
    /// Send-to-acknowledgement time, in microseconds.
    pub ack_latency: Option<Histogram<u32>>,
}

impl Sent {
    pub fn record_ack(&mut self, seq: i64, latency_us: u64, template: &Histogram<u32>) {
        self.acked += 1;
        self.acked_seqs.push(seq);
        self.ack_latency
            .get_or_insert_with(|| template.clone())
            .saturating_record(latency_us.max(1));
    }

    pub fn record_error(&mut self, code: &str) {
        *self.errors.entry(code.to_string()).or_default() += 1;
    }
}

/// Delivery totals over every connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

/// Checks every connection's tally against the acknowledged seqs of its room.
/// `acked_by_room[r]` must be ascending; `tallies` are `(room, tally)`.
pub fn settle<'a>(
    acked_by_room: &[Vec<i64>],
    tallies: impl IntoIterator<Item = (usize, &'a Tally)>,
) -> Totals {
    let mut totals = Totals::default();
    for (room, tally) in tallies {
        let acked = acked_by_room.get(room).map_or(&[][..], Vec::as_slice);
        let (expected, received) = tally.expected_and_received(acked);
        totals.expected += expected;
        totals.lost += expected - received;
        totals.delivered += tally.delivered;
        totals.duplicated += tally.duplicated;
        totals.out_of_order += tally.out_of_order + tally.before_start;
        totals.foreign += tally.foreign;
    }
    totals
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(start: i64) -> (Tally, Histogram<u32>) {
        (Tally::new(start), latency_histogram().unwrap())
    }

    #[test]
    fn in_order_delivery_is_complete() {
        let (mut t, h) = tally(10);
        for seq in 11..=200 {
            assert_eq!(t.receive(seq, Some(5), false, &h), Receipt::InOrder);
        }
        assert_eq!(t.last_seq(), 200);
        let acked: Vec<i64> = (5..=200).collect();
        assert_eq!(t.expected_and_received(&acked), (190, 190));
        assert_eq!(t.latency.as_ref().unwrap().len(), 190);
        let totals = settle(&[acked], [(0, &t)]);
        assert_eq!(totals.lost, 0);
        assert_eq!(totals.delivered, 190);
    }

    #[test]
    fn gaps_duplicates_and_reordering_are_counted() {
        let (mut t, h) = tally(0);
        assert_eq!(t.receive(1, Some(1), false, &h), Receipt::InOrder);
        assert_eq!(t.receive(3, Some(1), false, &h), Receipt::InOrder);
        assert_eq!(t.receive(3, Some(1), false, &h), Receipt::Duplicate);
        assert_eq!(t.receive(2, Some(1), false, &h), Receipt::OutOfOrder);
        assert_eq!(t.receive(0, Some(1), false, &h), Receipt::OutOfOrder);
        // A message this connection resent comes back once more: not a duplicate.
        assert_eq!(t.receive(1, Some(1), true, &h), Receipt::Repeat);
        let totals = settle(&[vec![1, 2, 3, 4, 5]], [(0, &t)]);
        assert_eq!(
            totals,
            Totals {
                expected: 5,
                delivered: 3,
                lost: 2,
                duplicated: 1,
                out_of_order: 2,
                foreign: 0,
            }
        );
    }

    #[test]
    fn foreign_messages_are_not_deliveries() {
        let (mut t, h) = tally(4);
        t.receive(5, None, false, &h);
        t.receive(6, Some(3), false, &h);
        assert_eq!((t.foreign, t.delivered), (1, 1));
        // A connection that started later expects only what followed its start.
        let (late, _) = tally(6);
        let totals = settle(&[vec![6]], [(0, &t), (0, &late)]);
        assert_eq!((totals.expected, totals.lost), (1, 0));
    }

    #[test]
    fn acks_and_errors() {
        let h = latency_histogram().unwrap();
        let mut s = Sent {
            sent: 3,
            ..Sent::default()
        };
        s.record_ack(7, 120, &h);
        s.record_error("rate_limited");
        s.record_error("rate_limited");
        assert_eq!(s.acked_seqs, [7]);
        assert_eq!(s.errors["rate_limited"], 2);
        assert_eq!(s.ack_latency.unwrap().max(), 120);
    }
}
