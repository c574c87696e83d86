//! Live counters of a run, for the progress bar and for knowing when a phase
//! is over (everyone connected, everything acknowledged and delivered). The
//! exact accounting is per connection and merged at the end; these are only
//! running totals, bumped with relaxed atomics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

#[derive(Default)]
pub struct Counter(AtomicU64);

/// Release/acquire (free on x86): a reader that sees one counter move also
/// sees what the same task counted before it (the drain reads `stopped`,
/// then `sent`).
impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Release);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

pub struct Progress {
    pub connected: Counter,
    pub connect_failed: Counter,
    pub sent: Counter,
    pub acked: Counter,
    /// Generated messages received for the first time, at any connection.
    pub delivered: Counter,
    /// `error` frames answering sent messages (`rate_limited` among them).
    pub errors: Counter,
    pub rate_limited: Counter,
    /// Connections closed by the server or the network (not by us).
    pub disconnects: Counter,
    /// Connections back (resume complete) after the reconnect storm.
    pub back: Counter,
    /// Connections that obeyed `StopSending`: once all have, `sent` is final.
    pub stopped: Counter,
    /// Per room: acknowledged messages and connections following the room.
    pub room_acked: Vec<Counter>,
    pub room_connected: Vec<Counter>,
}

impl Progress {
    pub fn new(rooms: usize) -> Self {
        Self {
            connected: Counter::default(),
            connect_failed: Counter::default(),
            sent: Counter::default(),
            acked: Counter::default(),
            delivered: Counter::default(),
            errors: Counter::default(),
            rate_limited: Counter::default(),
            disconnects: Counter::default(),
            back: Counter::default(),
            stopped: Counter::default(),
            room_acked: (0..rooms).map(|_| Counter::default()).collect(),
            room_connected: (0..rooms).map(|_| Counter::default()).collect(),
        }
    }

    /// Deliveries due so far: each acknowledged message at each connection of its room.
    pub fn expected_deliveries(&self) -> u64 {
        self.room_acked
            .iter()
            .zip(&self.room_connected)
            .map(|(acked, connected)| acked.get() * connected.get())
            .sum()
    }
}

/// A bar on stderr (drawn only on a terminal, and not at all with `--no-progress`).
pub fn bar(enabled: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        None,
        if enabled {
            ProgressDrawTarget::stderr_with_hz(4)
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {prefix:>8} {bar:24} {wide_msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}

/// The bar's line while messages flow.
pub fn describe(progress: &Progress) -> String {
    let mut text = format!(
        "sent {} acked {} delivered {}/{}",
        progress.sent.get(),
        progress.acked.get(),
        progress.delivered.get(),
        progress.expected_deliveries()
    );
    let errors = progress.errors.get();
    if errors > 0 {
        text.push_str(&format!(
            " errors {errors} (rate_limited {})",
            progress.rate_limited.get()
        ));
    }
    let disconnects = progress.disconnects.get();
    if disconnects > 0 {
        text.push_str(&format!(" disconnects {disconnects}"));
    }
    text
}
