//! `parley bench`: the bundled load generator. It drives a running server
//! only through its public HTTP API and WebSocket protocol, as real clients
//! would, and measures every delivery at every member.
//!
//! - `parley bench ...`: chat over WebSockets (open or closed loop, idle
//!   connections, a reconnect storm), see [`chat`].
//! - `parley bench history ...`: history pages over HTTP, see [`history`].
//! - `parley bench seed-history ...`: fills a database directly for the
//!   history scenario, see [`seed`].
//!
//! `bench/run-scenarios.sh` runs the scenarios S1–S6 with it.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use crate::config::Config;

pub mod accounting;
pub mod api;
pub mod chat;
pub mod client;
pub mod frame;
pub mod history;
pub mod layout;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod seed;
pub mod setup;
pub mod target;

/// `parley bench [chat options]` or `parley bench history|seed-history ...`.
#[derive(Args, Debug, Clone)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub mode: Option<BenchMode>,
    #[command(flatten)]
    pub chat: chat::ChatOptions,
}

#[derive(Subcommand, Debug, Clone)]
pub enum BenchMode {
    /// Measure history pages over HTTP: the latest page and a deep one (scenario S5).
    History(Box<history::HistoryOptions>),
    /// Fill a database with messages through the store, for `bench history`.
    /// Run it with the server stopped: the server keeps recent messages in memory.
    SeedHistory(seed::SeedOptions),
}

/// Where to point the generator, who to be there, and how to report.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Target and report")]
pub struct TargetOptions {
    /// The server (its HTTP base URL; WebSockets go to the same host and port).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub url: String,

    /// Allow a server outside loopback. Only ever point this at servers you run.
    #[arg(long)]
    pub allow_remote: bool,

    /// Names of the accounts and rooms the run creates or reuses (`<prefix>-u0`, `<prefix>-r0`, …).
    #[arg(long, default_value = "bench")]
    pub prefix: String,

    /// Password of the bench accounts (they are created with it).
    #[arg(long, default_value = "parley-bench-password")]
    pub password: String,

    /// JSON file remembering the accounts' API tokens and the rooms, so a rerun
    /// against the same server skips logging in (holds secrets: mode 0600).
    #[arg(long)]
    pub state_file: Option<PathBuf>,

    /// API requests in flight during setup.
    #[arg(long, default_value_t = 4)]
    pub setup_concurrency: usize,

    /// PID of the server when it runs on this machine: its RSS and CPU are reported.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Also write the report as JSON to this file (`-`: JSON on stdout instead of the table).
    #[arg(long)]
    pub json: Option<PathBuf>,

    /// A label for the report (e.g. the scenario, `S1`).
    #[arg(long)]
    pub name: Option<String>,

    /// Hard limit on the whole run, setup included.
    #[arg(long, default_value = "15m", value_parser = humantime::parse_duration)]
    pub timeout: Duration,

    /// No progress bar (it is drawn only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

impl TargetOptions {
    pub fn validate(&self) -> anyhow::Result<()> {
        let ok = (1..=22).contains(&self.prefix.len())
            && self
                .prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        anyhow::ensure!(
            ok,
            "--prefix is 1 to 22 letters, digits, '_', '-' or '.' (it starts usernames)"
        );
        anyhow::ensure!(
            (8..=1024).contains(&self.password.len()),
            "--password is 8 to 1024 characters"
        );
        Ok(())
    }

    pub fn identity(&self) -> setup::Identity {
        setup::Identity {
            prefix: self.prefix.clone(),
            password: self.password.clone(),
            state_file: self.state_file.clone(),
            concurrency: self.setup_concurrency,
        }
    }
}

/// Raises this process's open-file limit (soft to hard, and the hard limit
/// too when allowed, as root may) so `connections` sockets fit; a warning if
/// they will not.
pub fn raise_open_files(connections: usize) -> Option<String> {
    use rlimit::Resource;
    // Sockets, plus the runtime's own descriptors and the HTTP client's.
    let wanted = connections as u64 + 256;
    if let Ok((_, hard)) = Resource::NOFILE.get()
        && hard < wanted
    {
        let _ = Resource::NOFILE.set(wanted, wanted);
    }
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) if limit >= wanted => None,
        Ok(limit) => Some(format!(
            "the open-file limit is {limit}, fewer than the {wanted} this run needs: raise `ulimit -n`"
        )),
        Err(err) => Some(format!("could not raise the open-file limit: {err}")),
    }
}

/// Runs `parley bench ...` and prints its report.
pub async fn command(args: BenchArgs, config: Config) -> anyhow::Result<()> {
    match args.mode {
        None => {
            let report = chat::run(&args.chat).await?;
            print(&report, report.table(), args.chat.target.json.as_deref())
        }
        Some(BenchMode::History(options)) => {
            let report = history::run(&options).await?;
            print(&report, report.table(), options.target.json.as_deref())
        }
        Some(BenchMode::SeedHistory(options)) => seed::run(&options, &config).await,
    }
}

fn print(
    report: &impl serde::Serialize,
    table: String,
    json: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if json != Some(std::path::Path::new("-")) {
        print!("{table}");
    }
    if let Some(path) = json {
        report::write_json(report, path)?;
    }
    Ok(())
}
