//! What a run found, as JSON (for scripts and later comparison) and as a
//! table for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

/// Percentiles of a latency histogram (recorded in microseconds), in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(histogram: &Histogram<u32>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Some(Self {
            samples: histogram.len(),
            p50: ms(histogram.value_at_quantile(0.50)),
            p90: ms(histogram.value_at_quantile(0.90)),
            p99: ms(histogram.value_at_quantile(0.99)),
            p99_9: ms(histogram.value_at_quantile(0.999)),
            max: ms(histogram.max()),
            mean: histogram.mean() / 1000.0,
        })
    }

    fn line(&self) -> String {
        format!(
            "p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (ms, {} samples)",
            self.p50, self.p90, self.p99, self.p99_9, self.max, self.samples
        )
    }
}

/// The server's memory and CPU, sampled from /proc (same machine only).
#[derive(Debug, Clone, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    pub rss_before_kib: u64,
    /// Once every connection was open (before any message).
    pub rss_connected_kib: u64,
    pub rss_end_kib: u64,
    /// (end − before) / open connections: what each held connection costs
    /// once the run settled (the end sample is taken before closing them).
    pub rss_per_connection_kib: Option<f64>,
    /// Over the measured phase, in percent of one core.
    pub cpu_percent: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub rooms: usize,
    pub members_per_room: usize,
    pub connections: usize,
    pub users: usize,
    pub senders: usize,
    /// `open 5/s per sender`, `closed 10 in flight per sender`, or `idle`.
    pub pace: String,
    pub duration_s: f64,
    pub message_bytes: usize,
    pub reconnect_at_s: Option<f64>,
    pub source_addresses: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    pub attempted: u64,
    pub ok: u64,
    pub failed: u64,
    pub failures: BTreeMap<String, u64>,
    /// TCP connect + upgrade + `connection_established`.
    pub connect_ms: Option<Latency>,
    /// Connections lost during the run that we did not close (not the storm's).
    pub disconnects: BTreeMap<String, u64>,
    pub reconnects: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Messages {
    pub sent: u64,
    pub acknowledged: u64,
    /// Sent and never acknowledged nor refused (e.g. lost with a dropped connection).
    pub unacknowledged: u64,
    pub resent: u64,
    /// `error` answers to sent messages, by code. `rate_limited` means the
    /// server's `--message-rate`/`--message-burst` is below the offered load.
    pub errors: BTreeMap<String, u64>,
    pub rate_limited: u64,
    /// Error frames not tied to a sent message, by code.
    pub other_errors: BTreeMap<String, u64>,
    /// Each acknowledged message at each connection following its room.
    pub expected_deliveries: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Messages not sent by this run (system messages, other users).
    pub foreign: u64,
    pub sent_per_second: f64,
    pub deliveries_per_second: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Reconnect {
    pub clients: u64,
    pub back: u64,
    /// From the drop until the last client had its `resume_complete`.
    pub all_back_ms: Option<f64>,
    pub back_ms: Option<Latency>,
    pub gave_up: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub setup_s: f64,
    pub connect_s: f64,
    pub run_s: f64,
    pub drain_s: f64,
}

/// The result of `parley bench` (WebSocket scenarios).
#[derive(Debug, Clone, Serialize)]
pub struct ChatReport {
    pub name: Option<String>,
    pub target: String,
    pub settings: Settings,
    pub connections: Connections,
    pub messages: Messages,
    pub latency_ms: Option<Latency>,
    pub ack_latency_ms: Option<Latency>,
    pub reconnect: Option<Reconnect>,
    pub server: Option<ServerUsage>,
    pub generator_cpu_percent: f64,
    pub phases: Phases,
    pub warnings: Vec<String>,
}

/// One kind of history page (`latest` or `deep`).
#[derive(Debug, Clone, Serialize)]
pub struct PageStats {
    pub query: String,
    pub requests: u64,
    /// Non-200 answers and failed requests, by status or reason.
    pub errors: BTreeMap<String, u64>,
    pub per_second: f64,
    pub messages_per_page: f64,
    pub latency_ms: Option<Latency>,
}

/// The result of `parley bench history`.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    pub name: Option<String>,
    pub target: String,
    pub room: String,
    pub last_seq: i64,
    pub concurrency: usize,
    pub duration_s: f64,
    pub pages: Vec<PageStats>,
    pub server: Option<ServerUsage>,
    pub generator_cpu_percent: f64,
}

/// Writes the report as pretty JSON to `path` (`-` for stdout).
pub fn write_json(report: &impl Serialize, path: &Path) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    if path == Path::new("-") {
        println!("{text}");
        return Ok(());
    }
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

fn map_line(map: &BTreeMap<String, u64>) -> String {
    if map.is_empty() {
        return "none".into();
    }
    map.iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn server_lines(out: &mut String, server: &Option<ServerUsage>, generator_cpu: f64) {
    if let Some(s) = server {
        let _ = writeln!(
            out,
            "server pid {}      RSS {} KiB before, {} KiB connected, {} KiB at the end; CPU {:.0} %",
            s.pid, s.rss_before_kib, s.rss_connected_kib, s.rss_end_kib, s.cpu_percent
        );
        if let Some(per) = s.rss_per_connection_kib {
            let _ = writeln!(
                out,
                "server RSS per connection  {per:.2} KiB (end of the run − before connecting)"
            );
        }
    }
    let _ = writeln!(out, "generator CPU        {generator_cpu:.0} %");
}

impl ChatReport {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let s = &self.settings;
        let c = &self.connections;
        let m = &self.messages;
        let _ = writeln!(
            out,
            "parley bench{}  →  {}",
            self.name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default(),
            self.target
        );
        let _ = writeln!(
            out,
            "layout               {} rooms × {} = {} connections, {} users, {} senders, {}, {} B messages, {:.1} s",
            s.rooms,
            s.members_per_room,
            s.connections,
            s.users,
            s.senders,
            s.pace,
            s.message_bytes,
            s.duration_s
        );
        let _ = writeln!(
            out,
            "connections          {} ok, {} failed of {} ({}); failures: {}",
            c.ok,
            c.failed,
            c.attempted,
            match s.source_addresses {
                0 => "source address chosen by the system".to_string(),
                n => format!("from {n} source addresses"),
            },
            map_line(&c.failures)
        );
        if let Some(connect) = &c.connect_ms {
            let _ = writeln!(out, "connect time         {}", connect.line());
        }
        let _ = writeln!(
            out,
            "disconnects          {}; reconnects {}",
            map_line(&c.disconnects),
            c.reconnects
        );
        let _ = writeln!(
            out,
            "messages             sent {}, acknowledged {}, unacknowledged {}, resent {}, {:.0} sent/s",
            m.sent, m.acknowledged, m.unacknowledged, m.resent, m.sent_per_second
        );
        let _ = writeln!(
            out,
            "errors               {} (rate_limited: {}); other: {}",
            map_line(&m.errors),
            m.rate_limited,
            map_line(&m.other_errors)
        );
        let _ = writeln!(
            out,
            "deliveries           {} of {} expected: lost {}, duplicated {}, out of order {}; {:.0} deliveries/s",
            m.delivered,
            m.expected_deliveries,
            m.lost,
            m.duplicated,
            m.out_of_order,
            m.deliveries_per_second
        );
        if let Some(latency) = &self.latency_ms {
            let _ = writeln!(out, "delivery latency     {}", latency.line());
        }
        if let Some(latency) = &self.ack_latency_ms {
            let _ = writeln!(out, "ack latency          {}", latency.line());
        }
        if let Some(r) = &self.reconnect {
            let _ = writeln!(
                out,
                "reconnect storm      {} of {} back{}; gave up: {}",
                r.back,
                r.clients,
                r.all_back_ms
                    .map(|ms| format!(", all within {ms:.0} ms"))
                    .unwrap_or_default(),
                map_line(&r.gave_up)
            );
            if let Some(back) = &r.back_ms {
                let _ = writeln!(out, "time to be back      {}", back.line());
            }
        }
        server_lines(&mut out, &self.server, self.generator_cpu_percent);
        let p = &self.phases;
        let _ = writeln!(
            out,
            "phases               setup {:.1} s, connect {:.1} s, run {:.1} s, drain {:.1} s",
            p.setup_s, p.connect_s, p.run_s, p.drain_s
        );
        for warning in &self.warnings {
            let _ = writeln!(out, "warning: {warning}");
        }
        out
    }
}

impl HistoryReport {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "parley bench history{}  →  {} room {} (last seq {}), {} concurrent, {:.1} s",
            self.name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default(),
            self.target,
            self.room,
            self.last_seq,
            self.concurrency,
            self.duration_s
        );
        for page in &self.pages {
            let _ = writeln!(
                out,
                "{:<28} {} requests, {:.0}/s, {:.1} messages/page, errors: {}",
                page.query,
                page.requests,
                page.per_second,
                page.messages_per_page,
                map_line(&page.errors)
            );
            if let Some(latency) = &page.latency_ms {
                let _ = writeln!(out, "{:<28} {}", "", latency.line());
            }
        }
        server_lines(&mut out, &self.server, self.generator_cpu_percent);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_in_milliseconds() {
        let mut h = crate::bench::accounting::latency_histogram().unwrap();
        assert!(Latency::of(&h).is_none());
        for us in [1_000, 2_000, 3_000, 100_000] {
            h.record(us).unwrap();
        }
        let l = Latency::of(&h).unwrap();
        assert_eq!(l.samples, 4);
        assert!((l.p50 - 2.0).abs() < 0.05, "{l:?}");
        assert!((l.max - 100.0).abs() < 1.0, "{l:?}");
    }
}
