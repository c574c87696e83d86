//! Group sync of the SQLite WAL: message batches are committed without a
//! sync and made durable together by one `fdatasync` of the WAL file, which
//! runs while the writer goes on committing.
//!
//! With `synchronous=FULL` SQLite syncs the WAL inside every commit, and the
//! single writer waits for the disk each time: nothing else is committed
//! meanwhile, and under load the server's core sits idle during each sync
//! (S4 lost 10 % of its deliveries to it). Here a batch is committed with
//! `synchronous=NORMAL` (its frames are written to the WAL, not synced) and
//! the sync happens beside the writer: one sync covers every batch committed
//! before it started, and the writer commits the next batches meanwhile.
//!
//! The promise stays FULL's: nothing is seen before it is on disk. The
//! message writer delivers and acknowledges a batch only after a sync that
//! started after its commit (`wait_all`), and every read of the store waits
//! for the batches committed before it (`SqliteStore::read`), so no client
//! learns of a seq a power cut could take back. Everything else the writer
//! commits still syncs inside its own commit (FULL); such a sync covers the
//! whole file, batches included.

use std::fs::File;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

pub struct WalSync {
    wal: Arc<WalFile>,
    state: Mutex<Generations>,
    synced: Notify,
}

/// The WAL file, reopened if SQLite ever replaces it (it deletes the WAL
/// only when the last connection closes, but a sync of a deleted file would
/// prove nothing, so each sync checks it still syncs the file at `path`).
struct WalFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl WalFile {
    fn sync(&self) -> std::io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if !same_file(&file, &self.path)? {
            *file = open(&self.path)?;
        }
        file.sync_data()
    }
}

fn open(path: &std::path::Path) -> std::io::Result<File> {
    // Created if SQLite has not yet made it: an empty WAL is a valid one.
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

#[cfg(unix)]
fn same_file(file: &File, path: &std::path::Path) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let (open, named) = (file.metadata()?, std::fs::metadata(path)?);
    Ok(open.dev() == named.dev() && open.ino() == named.ino())
}

#[cfg(not(unix))]
fn same_file(_file: &File, _path: &std::path::Path) -> std::io::Result<bool> {
    Ok(true)
}

#[derive(Default)]
struct Generations {
    /// Batches committed (or about to be) without a sync.
    committed: u64,
    /// All batches up to this one are on disk.
    synced: u64,
    /// A sync is running.
    syncing: bool,
}

impl WalSync {
    /// Syncs the database's `-wal` file at `path` (through a descriptor of
    /// our own: a sync covers the file, whoever wrote it).
    pub fn open(path: PathBuf) -> std::io::Result<Self> {
        let file = Mutex::new(open(&path)?);
        Ok(Self {
            wal: Arc::new(WalFile { path, file }),
            state: Mutex::default(),
            synced: Notify::new(),
        })
    }

    // Nothing panics while holding the lock; the counters are always consistent.
    fn lock(&self) -> MutexGuard<'_, Generations> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A batch is about to be committed unsynced. Counted before the commit,
    /// so a commit whose answer is lost (it may have happened) is synced too.
    pub fn committing(&self) {
        self.lock().committed += 1;
    }

    /// Whether every batch committed so far is on disk (no waiting).
    pub fn is_synced(&self) -> bool {
        let state = self.lock();
        state.synced >= state.committed
    }

    /// Waits until every batch committed before the call is on disk: joins a
    /// sync that started after them, or runs one.
    pub async fn wait_all(&self) -> std::io::Result<()> {
        let target = self.lock().committed;
        loop {
            let mut synced = pin!(self.synced.notified());
            // Registered before looking, so a sync ending in between wakes us.
            synced.as_mut().enable();
            let run = {
                let mut state = self.lock();
                if state.synced >= target {
                    return Ok(());
                }
                if state.syncing {
                    None
                } else {
                    state.syncing = true;
                    Some(state.committed)
                }
            };
            let Some(covers) = run else {
                synced.await;
                continue;
            };
            let wal = self.wal.clone();
            let result = tokio::task::spawn_blocking(move || wal.sync())
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)));
            {
                let mut state = self.lock();
                state.syncing = false;
                if result.is_ok() {
                    state.synced = state.synced.max(covers);
                }
            }
            self.synced.notify_waiters();
            // A failed sync proves nothing: the caller reports it, and the
            // next caller syncs again.
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_sync_covers_every_batch_committed_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x-wal");
        std::fs::write(&path, b"frames").unwrap();
        let sync = Arc::new(WalSync::open(path.clone()).unwrap());
        assert!(sync.is_synced());
        sync.wait_all().await.unwrap();

        for _ in 0..3 {
            sync.committing();
        }
        assert!(!sync.is_synced());
        // Many waiters at once: all return, once the batches are covered.
        let waiters: Vec<_> = (0..8)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.wait_all().await })
            })
            .collect();
        for waiter in waiters {
            waiter.await.unwrap().unwrap();
        }
        assert!(sync.is_synced());
        {
            let state = sync.lock();
            assert_eq!(
                (state.committed, state.synced, state.syncing),
                (3, 3, false)
            );
        }
        // A WAL replaced under it (deleted and made again) is reopened.
        std::fs::remove_file(&path).unwrap();
        std::fs::write(&path, b"new frames").unwrap();
        sync.committing();
        sync.wait_all().await.unwrap();
        let reopened = sync.wal.file.lock().unwrap();
        assert!(same_file(&reopened, &path).unwrap());
    }
}
