//! How many frames other than messages a connection may send: typing, read
//! receipts, resumes, pings and anything it gets wrong. Messages have their
//! own per-user rate (`Limits::check_message`) and back-pressure; these cost
//! little each, but a client sending thousands a second would make the
//! server work (and write to the database, for receipts) for nothing. A
//! token bucket: `RATE` a second, bursts of `BURST`; past it frames are
//! dropped, and the client hears so at most once a second.

use std::time::{Duration, Instant};

/// Frames a second, sustained. The web app sends a few a second at most
/// (typing changes, read receipts debounced to 4 a second, a ping every 25 s).
pub const RATE: f32 = 20.0;
/// Frames above the rate in a burst (a reconnect resumes several rooms at once).
pub const BURST: f32 = 60.0;
/// Least time between two `rate_limited` errors to one connection.
const WARN_EVERY: Duration = Duration::from_secs(1);

pub struct FrameBudget {
    tokens: f32,
    refilled: Instant,
    warned: Option<Instant>,
}

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Drop it and tell the client it is over the rate.
    DropAndWarn,
    /// Drop it silently (the client was told within the last second).
    Drop,
}

impl FrameBudget {
    pub fn new(now: Instant) -> Self {
        Self {
            tokens: BURST,
            refilled: now,
            warned: None,
        }
    }

    /// Spends one frame's worth at `now`.
    pub fn spend(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f32();
        self.tokens = (self.tokens + elapsed * RATE).min(BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        match self.warned {
            Some(at) if now < at + WARN_EVERY => Verdict::Drop,
            _ => {
                self.warned = Some(now);
                Verdict::DropAndWarn
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_and_one_warning_a_second() {
        let t0 = Instant::now();
        let mut budget = FrameBudget::new(t0);
        let allowed = (0..1000)
            .filter(|_| budget.spend(t0) == Verdict::Allow)
            .count();
        assert_eq!(allowed, BURST as usize);
        // Everything over the burst at the same instant: one warning, then silence.
        let mut budget = FrameBudget::new(t0);
        let verdicts: Vec<Verdict> = (0..100).map(|_| budget.spend(t0)).collect();
        assert_eq!(
            verdicts
                .iter()
                .filter(|v| **v == Verdict::DropAndWarn)
                .count(),
            1
        );
        // A second later the bucket holds RATE frames again, and may warn again.
        let later = t0 + Duration::from_secs(1);
        for _ in 0..RATE as usize {
            assert_eq!(budget.spend(later), Verdict::Allow);
        }
        assert_eq!(budget.spend(later), Verdict::DropAndWarn);
        assert_eq!(budget.spend(later), Verdict::Drop);
    }

    #[test]
    fn a_steady_client_under_the_rate_is_never_refused() {
        let t0 = Instant::now();
        let mut budget = FrameBudget::new(t0);
        for i in 0..10_000u64 {
            // 10 frames a second for 1 000 s.
            let at = t0 + Duration::from_millis(i * 100);
            assert_eq!(budget.spend(at), Verdict::Allow, "frame {i}");
        }
    }
}
