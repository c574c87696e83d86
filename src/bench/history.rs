//! Scenario S5: history pages over HTTP. A few closed-loop workers read the
//! latest page and a deep page (`?before=`) of one room in turn and time
//! each request until its whole answer has arrived.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;

use crate::bench::api::Api;
use crate::bench::report::{HistoryReport, Latency, PageStats, ServerUsage};
use crate::bench::setup::Setup;
use crate::bench::target::Target;
use crate::bench::{TargetOptions, accounting, procfs, progress};

#[derive(Parser, Debug, Clone)]
#[command(name = "history", next_help_heading = "History pages")]
pub struct HistoryOptions {
    /// The room to read (for example the one `seed-history` filled).
    #[arg(long)]
    pub room: String,

    /// Messages per page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,

    /// The deep page is `?before=<this seq>`; default: half-way back in the room.
    #[arg(long)]
    pub before: Option<i64>,

    /// Requests in flight (each worker waits for its answer before the next).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,

    /// How long to measure.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// Stop after this many requests of each page kind.
    #[arg(long)]
    pub requests: Option<u64>,

    /// Requests before measuring starts (not counted), to warm connections and caches.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,

    #[command(flatten)]
    pub target: TargetOptions,
}

/// What one worker measured of one page kind.
struct Stats {
    requests: u64,
    messages: u64,
    errors: BTreeMap<String, u64>,
    latency: Histogram<u32>,
}

pub async fn run(options: &HistoryOptions) -> anyhow::Result<HistoryReport> {
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

async fn run_within(options: &HistoryOptions) -> anyhow::Result<HistoryReport> {
    options.target.validate()?;
    anyhow::ensure!((1..=200).contains(&options.limit), "--limit is 1 to 200");
    let target = Target::resolve(&options.target.url, options.target.allow_remote).await?;
    let bar = progress::bar(!options.target.no_progress);
    let api = Api::new(&target.url)?;
    let identity = options.target.identity();
    let mut setup = Setup::new(&api, &identity, target.url.as_str())?;
    bar.set_length(1);
    let reader = setup.users(1, &bar).await?.remove(0);
    let room = api.room(&reader.token, &options.room).await?;
    let before = options.before.unwrap_or(room.last_seq / 2).max(1);
    let queries = [
        format!("limit={}", options.limit),
        format!("before={before}&limit={}", options.limit),
    ];

    // Warm up, unmeasured.
    let warm_until = Instant::now() + options.warmup;
    while Instant::now() < warm_until {
        for query in &queries {
            let _ = api.history(&reader.token, &options.room, query).await;
        }
    }

    let server_before = options
        .target
        .server_pid
        .map(|pid| procfs::sample(Some(pid)))
        .transpose()?;
    let self_before = procfs::sample(None)?;
    let template = accounting::latency_histogram()?;
    bar.set_prefix("history");
    bar.set_length(options.duration.as_millis() as u64);
    let started = Instant::now();
    let deadline = started + options.duration;
    let per_worker = options
        .requests
        .map(|n| n.div_ceil(options.concurrency.max(1) as u64));
    let workers = (0..options.concurrency.max(1)).map(|_| {
        let api = api.clone();
        let token = reader.token.clone();
        let room = options.room.clone();
        let queries = queries.clone();
        let template = template.clone();
        tokio::spawn(async move {
            let mut stats: Vec<Stats> = queries
                .iter()
                .map(|_| Stats {
                    requests: 0,
                    messages: 0,
                    errors: BTreeMap::new(),
                    latency: template.clone(),
                })
                .collect();
            let mut round = 0u64;
            while Instant::now() < deadline && per_worker.is_none_or(|n| round < n) {
                for (query, stats) in queries.iter().zip(&mut stats) {
                    stats.requests += 1;
                    match api.history(&token, &room, query).await {
                        Ok((status, elapsed, count)) if status.is_success() => {
                            stats.messages += count as u64;
                            stats
                                .latency
                                .saturating_record((elapsed.as_micros() as u64).max(1));
                        }
                        Ok((status, _, _)) => {
                            *stats.errors.entry(status.as_u16().to_string()).or_default() += 1
                        }
                        Err(err) => *stats.errors.entry(format!("{err:#}")).or_default() += 1,
                    }
                }
                round += 1;
            }
            stats
        })
    });
    let workers: Vec<_> = workers.collect();
    let mut merged: Vec<Stats> = Vec::new();
    for worker in workers {
        while !worker.is_finished() {
            bar.set_position(started.elapsed().as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let stats = worker.await?;
        if merged.is_empty() {
            merged = stats;
            continue;
        }
        for (into, from) in merged.iter_mut().zip(stats) {
            into.requests += from.requests;
            into.messages += from.messages;
            into.latency.add(&from.latency)?;
            for (k, v) in from.errors {
                *into.errors.entry(k).or_default() += v;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let self_after = procfs::sample(None)?;
    let server_after = options
        .target
        .server_pid
        .map(|pid| procfs::sample(Some(pid)))
        .transpose()?;
    bar.finish_and_clear();
    let server = match (server_before, server_after, options.target.server_pid) {
        (Some(before), Some(after), Some(pid)) => Some(ServerUsage {
            pid,
            rss_before_kib: before.rss_kib,
            rss_connected_kib: before.rss_kib,
            rss_end_kib: after.rss_kib,
            rss_per_connection_kib: None,
            cpu_percent: procfs::cpu_percent(&before, &after),
        }),
        _ => None,
    };
    Ok(HistoryReport {
        name: options.target.name.clone(),
        target: target.url.to_string(),
        room: options.room.clone(),
        last_seq: room.last_seq,
        concurrency: options.concurrency.max(1),
        duration_s: elapsed,
        pages: queries
            .iter()
            .zip(merged)
            .map(|(query, stats)| PageStats {
                query: format!("?{query}"),
                requests: stats.requests,
                per_second: stats.requests as f64 / elapsed.max(1e-9),
                messages_per_page: stats.messages as f64 / stats.requests.max(1) as f64,
                latency_ms: Latency::of(&stats.latency),
                errors: stats.errors,
            })
            .collect(),
        server,
        generator_cpu_percent: procfs::cpu_percent(&self_before, &self_after),
    })
}
