//! The WebSocket scenarios: set up users and rooms, open every connection,
//! send for a while (open or closed loop), optionally drop everyone at once
//! and let them resume, drain, then settle every delivery and report.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};

use crate::bench::accounting::{self, Sent};
use crate::bench::api::Api;
use crate::bench::client::{self, Clock, Control, Outcome, Pace, Sending, Shared, Spec};
use crate::bench::layout::{self, Layout};
use crate::bench::progress::{self, Progress};
use crate::bench::report::{
    ChatReport, Connections, Latency, Messages, Phases, Reconnect, ServerUsage, Settings,
};
use crate::bench::setup::Setup;
use crate::bench::target::Target;
use crate::bench::{TargetOptions, procfs};

/// How often the run looks at its counters (progress bar, phase ends).
const POLL: Duration = Duration::from_millis(50);

/// `parley bench`: WebSocket chat load (scenarios S1–S4 and S6).
#[derive(Parser, Debug, Clone)]
#[command(name = "bench", next_help_heading = "Load")]
pub struct ChatOptions {
    /// Rooms, each followed by `--members` connections.
    #[arg(long, default_value_t = 2)]
    pub rooms: usize,

    /// Connections per room (each on `/ws/chat/<room>/`).
    #[arg(long, default_value_t = 3)]
    pub members: usize,

    /// Connections sharing one user (and its API token). Fewer users means
    /// fewer slow password hashes at setup; the server's per-user message rate
    /// is shared by a user's senders.
    #[arg(long, default_value_t = 1)]
    pub connections_per_user: usize,

    /// Senders per room (its first connections); 0 holds idle connections.
    #[arg(long, default_value_t = 1)]
    pub senders_per_room: usize,

    /// Open loop: messages per second per sender, acknowledged or not.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,

    /// Closed loop instead: at most this many unacknowledged messages per
    /// sender, each sent as soon as one is acknowledged.
    #[arg(long)]
    pub closed_loop: Option<usize>,

    /// How long to send (or, with no senders, to hold the connections).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Stop sending after this many messages in all (split evenly among senders, rounded up).
    #[arg(long)]
    pub messages: Option<u64>,

    /// Bytes of content per message.
    #[arg(long, default_value_t = 64)]
    pub message_bytes: usize,

    /// After sending stops, how long to wait at most for acknowledgements and deliveries.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain: Duration,

    /// Time allowed for each connection to open (TCP, upgrade, `connection_established`).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,

    /// Connections being opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,

    /// Local addresses to connect from (127.0.0.2, 127.0.0.3, …), each good for
    /// ~28 000 connections; 0 picks one per 20 000 connections, none (the
    /// system chooses) up to 20 000. Loopback IPv4 only.
    #[arg(long, default_value_t = 0)]
    pub source_addrs: usize,

    /// Reconnect storm: this long after sending starts, every connection drops
    /// at once (no close handshake) and reconnects with `?since_seq=`.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub reconnect_at: Option<Duration>,

    /// In the storm, senders keep their connections, so rooms keep talking while everyone else is away.
    #[arg(long)]
    pub keep_senders: bool,

    /// How long a dropped client keeps trying to come back.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub reconnect_timeout: Duration,

    /// WebSocket read buffer per connection, bytes (memory per connection of the generator).
    #[arg(long, default_value_t = 8192)]
    pub read_buffer: usize,

    #[command(flatten)]
    pub target: TargetOptions,
}

impl ChatOptions {
    pub fn layout(&self) -> Layout {
        Layout {
            rooms: self.rooms,
            members: self.members,
            connections_per_user: self.connections_per_user,
            senders_per_room: self.senders_per_room,
        }
    }

    fn pace(&self) -> anyhow::Result<Option<Pace>> {
        if self.senders_per_room == 0 {
            return Ok(None);
        }
        Ok(Some(match self.closed_loop {
            Some(window) => {
                anyhow::ensure!(window >= 1, "--closed-loop is at least 1");
                Pace::Closed { window }
            }
            None => {
                anyhow::ensure!(
                    self.rate > 0.0 && self.rate <= 100_000.0,
                    "--rate is between 0 and 100000 messages per second"
                );
                Pace::Open {
                    interval: Duration::from_secs_f64(1.0 / self.rate),
                }
            }
        }))
    }

    fn pace_text(&self, pace: Option<Pace>) -> String {
        match pace {
            None => "idle".into(),
            Some(Pace::Open { .. }) => format!("open loop {}/s per sender", self.rate),
            Some(Pace::Closed { window }) => format!("closed loop, {window} in flight per sender"),
        }
    }
}

/// Runs a chat scenario to the end and reports; never longer than `--timeout`.
pub async fn run(options: &ChatOptions) -> anyhow::Result<ChatReport> {
    let limit = options.target.timeout;
    tokio::time::timeout(limit, run_within(options))
        .await
        .map_err(|_| {
            anyhow::anyhow!(
                "the run did not finish within --timeout {}",
                humantime::format_duration(limit)
            )
        })?
}

async fn run_within(options: &ChatOptions) -> anyhow::Result<ChatReport> {
    let layout = options.layout();
    layout.validate()?;
    options.target.validate()?;
    let pace = options.pace()?;
    let target = Target::resolve(&options.target.url, options.target.allow_remote).await?;
    let mut warnings = Vec::new();
    warnings.extend(crate::bench::raise_open_files(layout.connections()));
    let bar = progress::bar(!options.target.no_progress);

    // Setup through the public API.
    let setup_started = Instant::now();
    let api = Api::new(&target.url)?;
    let identity = options.target.identity();
    let mut setup = Setup::new(&api, &identity, target.url.as_str())?;
    bar.set_length(layout.users() as u64);
    let users = setup.users(layout.users(), &bar).await?;
    bar.set_length(layout.rooms as u64);
    let room_ids = setup.rooms(&layout, &users, &bar).await?;
    let setup_time = setup_started.elapsed();

    // A storm reopens every connection while the old sockets sit in TIME_WAIT.
    let sockets = layout.connections() * if options.reconnect_at.is_some() { 2 } else { 1 };
    let sources = layout::source_addresses(target.addr.ip(), sockets, options.source_addrs);
    let server_before = options
        .target
        .server_pid
        .map(|pid| procfs::sample(Some(pid)))
        .transpose()?;
    if options.target.server_pid.is_some() && setup.password_checks() > 0 {
        warnings.push(format!(
            "setup registered or logged in {} accounts just now: the server's RSS baseline includes \
             what hashing their passwords (Argon2, 19 MiB each) left behind, so RSS per connection is \
             not reliable. For memory figures, rerun with --state-file against a freshly started server.",
            setup.password_checks()
        ));
    }
    let template = accounting::latency_histogram()?;
    let shared = Arc::new(Shared {
        clock: Clock::start(),
        run_id: crate::domain::time::now_ms().unsigned_abs(),
        server: target.addr,
        ws_base: target.ws_base.clone(),
        read_buffer: options.read_buffer.max(256),
        connect_timeout: options.connect_timeout,
        reconnect_timeout: options.reconnect_timeout,
        message_size: options.message_bytes.max(24),
        progress: Progress::new(layout.rooms),
        latency_template: template.clone(),
    });
    let progress = &shared.progress;
    let quota = match options.messages {
        Some(total) => total.div_ceil(layout.senders().max(1) as u64),
        None => u64::MAX,
    };

    // Connect everyone, a bounded number at a time.
    let connect_started = Instant::now();
    bar.set_prefix("connect");
    bar.set_length(layout.connections() as u64);
    let permits = Arc::new(Semaphore::new(options.connect_concurrency.max(1)));
    let tokens: Vec<Arc<str>> = users.iter().map(|u| Arc::from(u.token.as_str())).collect();
    let rooms: Vec<Arc<str>> = room_ids.iter().map(|r| Arc::from(r.as_str())).collect();
    let mut controls = Vec::with_capacity(layout.connections());
    let mut tasks = Vec::with_capacity(layout.connections());
    for index in 0..layout.connections() {
        let permit = permits.clone().acquire_owned().await?;
        let room = layout.room_of(index);
        let sender = layout.is_sender(index);
        let spec = Spec {
            index,
            room,
            room_id: rooms[room].clone(),
            token: tokens[layout.user_of(index)].clone(),
            source: (!sources.is_empty()).then(|| sources[index % sources.len()]),
            sending: pace.filter(|_| sender).map(|pace| Sending { pace, quota }),
            joins_storm: !(sender && options.keep_senders),
        };
        let (tx, rx) = mpsc::channel(8);
        controls.push(tx);
        tasks.push(tokio::spawn(client::run(spec, shared.clone(), rx, permit)));
        if index % 64 == 0 {
            bar.set_position(progress.connected.get() + progress.connect_failed.get());
        }
    }
    let connect_deadline = Instant::now() + options.connect_timeout + Duration::from_secs(1);
    let everyone = layout.connections() as u64;
    while progress.connected.get() + progress.connect_failed.get() < everyone
        && Instant::now() < connect_deadline
    {
        bar.set_position(progress.connected.get() + progress.connect_failed.get());
        bar.set_message(format!(
            "{} ok, {} failed",
            progress.connected.get(),
            progress.connect_failed.get()
        ));
        tokio::time::sleep(POLL).await;
    }
    let connect_time = connect_started.elapsed();
    let server_connected = options
        .target
        .server_pid
        .map(|pid| procfs::sample(Some(pid)))
        .transpose()?;
    let self_before = procfs::sample(None)?;

    // Send (or hold) for the duration, with the storm in the middle if asked.
    let run_started = Instant::now();
    broadcast(&controls, Control::StartSending);
    bar.set_prefix("run");
    bar.set_length(options.duration.as_millis() as u64);
    let total_quota = quota.saturating_mul(layout.senders() as u64);
    let mut storm: Option<Instant> = None;
    let mut storm_over = options.reconnect_at.is_none();
    loop {
        let elapsed = run_started.elapsed();
        if let Some(at) = options.reconnect_at
            && storm.is_none()
            && elapsed >= at
        {
            broadcast(&controls, Control::Drop);
            storm = Some(Instant::now());
        }
        if let Some(started) = storm
            && !storm_over
        {
            let all_back = progress.back.get() >= progress.connected.get();
            storm_over = all_back || started.elapsed() > options.reconnect_timeout;
        }
        let quota_done = pace.is_some() && progress.sent.get() >= total_quota;
        if (elapsed >= options.duration || quota_done) && storm_over {
            break;
        }
        bar.set_position(elapsed.as_millis() as u64);
        bar.set_message(progress::describe(progress));
        tokio::time::sleep(POLL).await;
    }
    let told = broadcast(&controls, Control::StopSending);
    let run_time = run_started.elapsed();

    // Drain: every message acknowledged (or refused) and delivered everywhere.
    // `sent` is final only once every connection told to stop has: one may
    // have been sending when the command was queued.
    let drain_started = Instant::now();
    bar.set_prefix("drain");
    let mut drained = false;
    while drain_started.elapsed() < options.drain {
        let stopped = progress.stopped.get() >= told;
        let resolved =
            stopped && progress.acked.get() + progress.errors.get() >= progress.sent.get();
        let delivered = progress.delivered.get() >= progress.expected_deliveries();
        if resolved && delivered {
            drained = true;
            break;
        }
        bar.set_message(progress::describe(progress));
        tokio::time::sleep(POLL).await;
    }
    let drain_time = drain_started.elapsed();
    let self_after = procfs::sample(None)?;
    let server_after = options
        .target
        .server_pid
        .map(|pid| procfs::sample(Some(pid)))
        .transpose()?;
    if !drained && pace.is_some() {
        warnings.push(format!(
            "not everything was acknowledged and delivered within --drain {}",
            humantime::format_duration(options.drain)
        ));
    }

    // Close and collect.
    bar.set_prefix("close");
    broadcast(&controls, Control::Finish);
    let collect_deadline = tokio::time::Instant::now()
        + options.reconnect_timeout
        + options.connect_timeout
        + Duration::from_secs(5);
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        match tokio::time::timeout_at(collect_deadline, task).await {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            Ok(Err(err)) => warnings.push(format!("a client task failed: {err}")),
            Err(_) => {
                warnings.push("some clients did not finish in time".into());
                break;
            }
        }
    }
    bar.finish_and_clear();

    let server = match (
        server_before,
        server_connected,
        server_after,
        options.target.server_pid,
    ) {
        (Some(before), Some(connected), Some(after), Some(pid)) => {
            let open = progress.connected.get();
            Some(ServerUsage {
                pid,
                rss_before_kib: before.rss_kib,
                rss_connected_kib: connected.rss_kib,
                rss_end_kib: after.rss_kib,
                // Meaningless when setup's password hashing moved the baseline (warned above).
                rss_per_connection_kib: (open > 0 && setup.password_checks() == 0)
                    .then(|| (after.rss_kib as f64 - before.rss_kib as f64) / open as f64),
                cpu_percent: procfs::cpu_percent(&connected, &after),
            })
        }
        _ => None,
    };
    let generator_cpu = procfs::cpu_percent(&self_before, &self_after);
    if generator_cpu > 90.0 {
        warnings.push(format!(
            "the generator used {generator_cpu:.0} % of a core: it may have been the bottleneck"
        ));
    }

    let summary = Summary::of(&outcomes, layout.rooms, &template)?;
    let active = (run_time + drain_time).as_secs_f64();
    if summary.messages.rate_limited > 0 {
        warnings.push(format!(
            "{} messages were refused as rate_limited: the server's per-user --message-rate/--message-burst \
             is below this load; raise them on the server for this scenario",
            summary.messages.rate_limited
        ));
    }
    if summary.connections.failed > 0 {
        warnings.push(format!(
            "{} connections failed to open: {:?}",
            summary.connections.failed, summary.connections.failures
        ));
    }
    if summary.unparsed > 0 {
        warnings.push(format!("{} frames could not be parsed", summary.unparsed));
    }
    let mut messages = summary.messages;
    messages.sent_per_second = messages.sent as f64 / run_time.as_secs_f64().max(1e-9);
    messages.deliveries_per_second = messages.delivered as f64 / active.max(1e-9);

    Ok(ChatReport {
        name: options.target.name.clone(),
        target: target.url.to_string(),
        settings: Settings {
            rooms: layout.rooms,
            members_per_room: layout.members,
            connections: layout.connections(),
            users: layout.users(),
            senders: if pace.is_some() { layout.senders() } else { 0 },
            pace: options.pace_text(pace),
            duration_s: options.duration.as_secs_f64(),
            message_bytes: shared.message_size,
            reconnect_at_s: options.reconnect_at.map(|d| d.as_secs_f64()),
            source_addresses: sources.len(),
        },
        connections: summary.connections,
        messages,
        latency_ms: summary.latency.as_ref().and_then(Latency::of),
        ack_latency_ms: summary.ack_latency.as_ref().and_then(Latency::of),
        reconnect: options.reconnect_at.map(|_| summary.reconnect),
        server,
        generator_cpu_percent: generator_cpu,
        phases: Phases {
            setup_s: setup_time.as_secs_f64(),
            connect_s: connect_time.as_secs_f64(),
            run_s: run_time.as_secs_f64(),
            drain_s: drain_time.as_secs_f64(),
        },
        warnings,
    })
}

/// Tells every client; returns how many were told (one that already ended
/// has nothing to be told).
fn broadcast(controls: &[mpsc::Sender<Control>], command: Control) -> u64 {
    let mut told = 0;
    for control in controls {
        if control.try_send(command).is_ok() {
            told += 1;
        }
    }
    told
}

/// Every client's outcome, merged.
struct Summary {
    connections: Connections,
    messages: Messages,
    latency: Option<Histogram<u32>>,
    ack_latency: Option<Histogram<u32>>,
    reconnect: Reconnect,
    unparsed: u64,
}

fn add(into: &mut Option<Histogram<u32>>, from: &Option<Histogram<u32>>) -> anyhow::Result<()> {
    if let Some(from) = from {
        match into {
            Some(into) => into.add(from).context("merging latency histograms")?,
            None => *into = Some(from.clone()),
        }
    }
    Ok(())
}

fn count_into(into: &mut BTreeMap<String, u64>, from: &BTreeMap<String, u64>) {
    for (key, n) in from {
        *into.entry(key.clone()).or_default() += n;
    }
}

impl Summary {
    fn of(outcomes: &[Outcome], rooms: usize, template: &Histogram<u32>) -> anyhow::Result<Self> {
        let mut connect = template.clone();
        let mut failures = BTreeMap::new();
        let mut disconnects = BTreeMap::new();
        let mut gave_up = BTreeMap::new();
        let mut other_errors = BTreeMap::new();
        let mut back = template.clone();
        let (mut ok, mut failed, mut reconnects, mut unparsed, mut storm_clients) = (0, 0, 0, 0, 0);
        let mut total = Sent::default();
        let mut latency = None;
        let mut acked_by_room: Vec<Vec<i64>> = vec![Vec::new(); rooms];
        for outcome in outcomes {
            match (&outcome.connect_time, &outcome.connect_error) {
                (Some(time), _) => {
                    ok += 1;
                    connect.saturating_record((time.as_micros() as u64).max(1));
                }
                (None, Some(reason)) => {
                    failed += 1;
                    *failures.entry(reason.clone()).or_default() += 1;
                }
                (None, None) => failed += 1,
            }
            for (reason, n) in &outcome.disconnects {
                if reason == "storm" {
                    storm_clients += n;
                } else {
                    *disconnects.entry(reason.clone()).or_default() += n;
                }
            }
            if let Some(reason) = &outcome.gave_up {
                *gave_up.entry(reason.clone()).or_default() += 1;
            }
            if let Some(after) = outcome.back_after {
                back.saturating_record((after.as_micros() as u64).max(1));
            }
            reconnects += outcome.reconnects;
            unparsed += outcome.unparsed;
            count_into(&mut other_errors, &outcome.other_errors);
            if let Some(tally) = &outcome.tally {
                add(&mut latency, &tally.latency)?;
            }
            if let Some(sent) = &outcome.sent {
                total.sent += sent.sent;
                total.acked += sent.acked;
                total.resent += sent.resent;
                count_into(&mut total.errors, &sent.errors);
                add(&mut total.ack_latency, &sent.ack_latency)?;
                acked_by_room[outcome.room].extend_from_slice(&sent.acked_seqs);
            }
        }
        for seqs in &mut acked_by_room {
            seqs.sort_unstable();
        }
        let totals = accounting::settle(
            &acked_by_room,
            outcomes
                .iter()
                .filter_map(|o| o.tally.as_ref().map(|t| (o.room, t))),
        );
        let refused: u64 = total.errors.values().sum();
        let rate_limited = total.errors.get("rate_limited").copied().unwrap_or(0);
        let back_count = back.len();
        Ok(Self {
            connections: Connections {
                attempted: outcomes.len() as u64,
                ok,
                failed,
                failures,
                connect_ms: Latency::of(&connect),
                disconnects,
                reconnects,
            },
            messages: Messages {
                sent: total.sent,
                acknowledged: total.acked,
                unacknowledged: total.sent.saturating_sub(total.acked + refused),
                resent: total.resent,
                errors: total.errors,
                rate_limited,
                other_errors,
                expected_deliveries: totals.expected,
                delivered: totals.delivered,
                lost: totals.lost,
                duplicated: totals.duplicated,
                out_of_order: totals.out_of_order,
                foreign: totals.foreign,
                sent_per_second: 0.0,
                deliveries_per_second: 0.0,
            },
            latency,
            ack_latency: total.ack_latency,
            reconnect: Reconnect {
                clients: storm_clients,
                back: back_count,
                all_back_ms: (back_count == storm_clients && back_count > 0)
                    .then(|| back.max() as f64 / 1000.0),
                back_ms: Latency::of(&back),
                gave_up,
            },
            unparsed,
        })
    }
}
