//! The command line: `parley [serve|migrate|check-config|user …|bench …]`.
//! The flags are the server's [`Config`] and are global, so
//! `parley --data-dir x user create bob` and `parley user create bob --data-dir x`
//! both work, and `parley` with no subcommand serves. `commands` runs them.

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

use crate::bench::BenchArgs;
use crate::config::Config;

#[derive(Parser, Debug, Clone)]
#[command(
    name = "parley",
    version,
    about = "Parley: a self-hosted real-time chat server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Serve the HTTP API, WebSocket and web UI (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the effective configuration (secrets redacted) and exit.
    CheckConfig,
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Check attachment storage against the database.
    #[command(subcommand)]
    Storage(StorageCommand),
    /// Load-test a running server through its public API and WebSockets
    /// (`parley bench --help`; `bench/run-scenarios.sh` runs the standard scenarios).
    Bench(Box<BenchArgs>),
}

#[derive(Subcommand, Debug, Clone)]
pub enum StorageCommand {
    /// Report files no attachment refers to, and attachments whose file is
    /// missing; delete the leftovers older than an hour (unless --dry-run).
    Check {
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Subcommand, Debug, Clone)]
pub enum UserCommand {
    /// Create a user. The password is asked for, or read from stdin when it is not a terminal.
    Create {
        name: String,
        /// Make the user a site administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Set a user's membership level, optionally until a day (inclusive, UTC).
    SetMembership {
        name: String,
        level: MembershipArg,
        /// Last day of the membership, YYYY-MM-DD (it ends at the following midnight UTC).
        #[arg(long)]
        until: Option<chrono::NaiveDate>,
    },
    /// Grant or revoke site administration.
    SetAdmin {
        name: String,
        #[arg(action = ArgAction::Set)]
        admin: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembershipArg {
    Free,
    Basic,
    Premium,
    Vip,
}
