//! WAL upkeep: copying the WAL into the database file beside the writer, and
//! restarting it when it has grown (see `checkpoints`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::sqlite::SqlitePool;

use super::SqliteStore;

impl SqliteStore {
    /// Right after a commit, on the writer's own connection, when the periodic
    /// checkpoints asked for it: a passive checkpoint here copies what the last
    /// one left (the commits of the last moment), and as nothing is written
    /// meanwhile it catches up with the end of the WAL, so the next commit
    /// starts the WAL over from its beginning (cut back to `journal_size_limit`).
    /// Passive, so it never waits: if the other checkpoint or a reader is in
    /// the way it is tried again after the next commit. Never fails the commit.
    pub(super) async fn restart_wal(&self) {
        if !self.restart_wanted.swap(false, Ordering::Relaxed) {
            return;
        }
        let caught_up = match passive_checkpoint(&self.writer).await {
            Ok(done) => !done.busy && done.copied >= done.frames,
            Err(err) => {
                tracing::debug!(error = %err, "WAL checkpoint by the writer failed");
                false
            }
        };
        if !caught_up {
            self.restart_wanted.store(true, Ordering::Relaxed);
        }
    }
}

/// How often committed WAL pages are copied into the database file.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);
/// WAL frames (4 KiB pages: 256 MiB) past which the WAL is restarted, which
/// pauses commits for a moment (see `catch_up`). Under S4's load that is once
/// every 7 s instead of every 2 s with 64 MiB (see docs/benchmarks.md). The WAL
/// file keeps this size (`journal_size_limit`), so sustained load does not cut
/// it back and grow it again.
pub(super) const WAL_RESTART_FRAMES: i64 = 65536;
pub(super) const WAL_LIMIT_BYTES: i64 = WAL_RESTART_FRAMES * 4096;

/// Copies the WAL into the database file four times a second, beside the writer
/// instead of inside one of its commits (SQLite's automatic checkpoint): a
/// passive checkpoint never blocks the writer, and its fsync waits on the disk
/// while messages keep being committed. Under constant writes a passive
/// checkpoint never catches up with the last commit, so the WAL would only grow
/// (1.2 GB in 12 s of S4): past 256 MiB it asks the writer to catch up after
/// its next commit, which lets SQLite start the WAL over (see `restart_wal`).
/// Ends when the store is closed.
pub(super) async fn checkpoints(pool: SqlitePool, restart_wanted: Arc<AtomicBool>) {
    let mut every = tokio::time::interval(CHECKPOINT_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if pool.is_closed() {
            break;
        }
        match passive_checkpoint(&pool).await {
            Ok(done) if done.frames >= WAL_RESTART_FRAMES => {
                catch_up(&pool, done).await;
                restart_wanted.store(true, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(err) if !pool.is_closed() => tracing::warn!(error = %err, "WAL checkpoint failed"),
            Err(_) => break,
        }
    }
}

/// Before the writer is asked to restart the WAL, copies again what was
/// committed while the previous checkpoint ran, as long as that keeps
/// shrinking. The writer's own checkpoint, which holds up commits, is then
/// left the last few milliseconds of commits to copy and sync rather than a
/// quarter second's: its two fsyncs cost S4 60–90 ms a time, 20–35 ms after this.
pub(super) async fn catch_up(pool: &SqlitePool, first: Checkpoint) {
    let mut last = first;
    let mut previous = i64::MAX;
    for _ in 0..CATCH_UP_PASSES {
        let Ok(done) = passive_checkpoint(pool).await else {
            return;
        };
        // The WAL only grows until the writer restarts it: what it grew by
        // was committed while the previous pass ran.
        let committed_meanwhile = done.frames - last.frames;
        if done.busy || committed_meanwhile <= CAUGHT_UP_FRAMES || committed_meanwhile >= previous {
            return;
        }
        previous = committed_meanwhile;
        last = done;
    }
}

/// At most this many extra checkpoints before the writer takes over.
pub(super) const CATCH_UP_PASSES: usize = 4;
/// Few enough frames (1 MiB) for the writer to copy and sync in a moment.
pub(super) const CAUGHT_UP_FRAMES: i64 = 256;

/// What `pragma wal_checkpoint` reports.
pub(super) struct Checkpoint {
    /// Another checkpoint, or a reader or writer, was in the way.
    busy: bool,
    /// Frames in the WAL.
    frames: i64,
    /// Frames now copied into the database file.
    copied: i64,
}

/// Copies what it can of the WAL into the database file, waiting for nobody.
pub(super) async fn passive_checkpoint(pool: &SqlitePool) -> Result<Checkpoint, sqlx::Error> {
    let (busy, frames, copied): (i64, i64, i64) = sqlx::query_as("pragma wal_checkpoint(passive)")
        .fetch_one(pool)
        .await?;
    Ok(Checkpoint {
        busy: busy != 0,
        frames,
        copied,
    })
}
