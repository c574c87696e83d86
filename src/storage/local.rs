//! The local back end: one file per object under a directory (by default
//! `--data-dir`/files), the key being its path there.
//!
//! Writes go to a partial file beside the target, then `rename` over it: a
//! crash or a failed write never leaves half an object under a key, and a
//! reader sees the old object or the new one. A partial file's name carries
//! `~`, which no key may, so it can never be taken for an object.

use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{StreamExt as _, TryStreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};

use super::{Blob, BlobStore, Listed, StorageError, prefix_dir, validate_key, validate_prefix};

/// The size of the pieces a read streams.
const READ_CHUNK: usize = 64 * 1024;
/// A partial file this old is a crash's leftover (no write lasts a day):
/// `list` removes it.
const STALE_PARTIAL: Duration = Duration::from_secs(24 * 60 * 60);
const PARTIAL_MARK: char = '~';
const PARTIAL_SUFFIX: &str = ".partial";

/// Objects as files under `root`.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    /// Creates the directory if needed.
    pub async fn open(root: &Path) -> io::Result<Self> {
        tokio::fs::create_dir_all(root)
            .await
            .map_err(|err| context(err, "creating", root))?;
        // Absolute, so that `describe` tells an operator where the files are.
        let root = std::path::absolute(root)?;
        Ok(Self { root })
    }

    /// The key checked and joined to the root: a valid key has no `..`, `.`
    /// or empty segment, so the path stays inside the root.
    fn path_of(&self, key: &str) -> Result<PathBuf, StorageError> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    /// Writes `target` through a partial file (see the module's comment);
    /// blocking, for `spawn_blocking`.
    fn write_atomically(
        target: &Path,
        write: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
    ) -> Result<(), StorageError> {
        let (Some(dir), Some(name)) = (target.parent(), target.file_name()) else {
            return Err(StorageError::InvalidKey);
        };
        let partial = dir.join(format!(
            "{}{PARTIAL_MARK}{}{PARTIAL_SUFFIX}",
            name.to_string_lossy(),
            uuid::Uuid::now_v7().simple()
        ));
        let mut file = create_new_in(dir, &partial)?;
        let written = write(&mut file)
            // The rename below must not publish bytes a power cut could lose.
            .and_then(|()| file.sync_all())
            .map_err(|err| context(err, "writing", &partial))
            .and_then(|()| {
                std::fs::rename(&partial, target).map_err(|err| context(err, "renaming to", target))
            });
        if written.is_err() {
            // Best effort: what is left is a partial file, never an object.
            let _ = std::fs::remove_file(&partial);
        }
        written.map_err(super::unavailable)
    }

    /// Removes `dir` and its parents up to (not including) the root while
    /// they are empty, so deleted attachments leave no directories behind.
    async fn remove_empty_dirs(&self, mut dir: &Path) {
        while dir != self.root && dir.starts_with(&self.root) {
            // Fails on the first directory that is not empty (or is already
            // gone): then the ones above it are not empty either.
            if tokio::fs::remove_dir(dir).await.is_err() {
                return;
            }
            let Some(parent) = dir.parent() else { return };
            dir = parent;
        }
    }
}

/// Creates `partial` in `dir`, creating `dir` first. A `delete` of the last
/// object in `dir` may remove it between the two steps; then try again.
fn create_new_in(dir: &Path, partial: &Path) -> Result<std::fs::File, StorageError> {
    let mut attempts = 0;
    loop {
        attempts += 1;
        std::fs::create_dir_all(dir)
            .map_err(|err| super::unavailable(context(err, "creating", dir)))?;
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(partial)
        {
            Ok(file) => return Ok(file),
            Err(err) if err.kind() == io::ErrorKind::NotFound && attempts < 5 => continue,
            Err(err) => return Err(super::unavailable(context(err, "creating", partial))),
        }
    }
}

/// An io error that names what was done to which path (for the logs).
fn context(err: io::Error, doing: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{doing} {}: {err}", path.display()))
}

/// The object's metadata, None when there is no such file (a directory is
/// not an object: S3 has no such thing).
async fn file_metadata(path: &Path) -> Result<Option<std::fs::Metadata>, StorageError> {
    match tokio::fs::metadata(path).await {
        Ok(meta) if meta.is_file() => Ok(Some(meta)),
        Ok(_) => Ok(None),
        Err(err) if is_missing(&err) => Ok(None),
        Err(err) => Err(super::unavailable(context(err, "reading", path))),
    }
}

/// NotFound, or a path through a file where a directory should be (asking
/// for `a/b/c` when `a/b` is an object): either way there is no object.
fn is_missing(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn modified_ms(meta: &std::fs::Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
        .and_then(|since| i64::try_from(since.as_millis()).ok())
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl BlobStore for LocalStore {
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let target = self.path_of(key)?;
        let source = path.to_owned();
        tokio::task::spawn_blocking(move || {
            Self::write_atomically(&target, |file| {
                let mut from =
                    std::fs::File::open(&source).map_err(|err| context(err, "opening", &source))?;
                // `io::copy` between files may use copy_file_range; at
                // worst it copies through a small buffer.
                io::copy(&mut from, file).map(|_| ())
            })
        })
        .await
        .map_err(super::unavailable)?
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let target = self.path_of(key)?;
        tokio::task::spawn_blocking(move || {
            Self::write_atomically(&target, |file| io::Write::write_all(file, &bytes))
        })
        .await
        .map_err(super::unavailable)?
    }

    async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<Blob>, StorageError> {
        let path = self.path_of(key)?;
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(err) if is_missing(&err) => return Ok(None),
            Err(err) => return Err(super::unavailable(context(err, "opening", &path))),
        };
        let meta = file
            .metadata()
            .await
            .map_err(|err| super::unavailable(context(err, "reading", &path)))?;
        if !meta.is_file() {
            return Ok(None);
        }
        let size = meta.len();
        let range = range.unwrap_or(0..size);
        if range.start > 0 {
            file.seek(io::SeekFrom::Start(range.start))
                .await
                .map_err(|err| super::unavailable(context(err, "seeking", &path)))?;
        }
        let body = tokio_util::io::ReaderStream::with_capacity(
            file.take(range.end.saturating_sub(range.start)),
            READ_CHUNK,
        )
        .map_err(super::unavailable)
        .boxed();
        Ok(Some(Blob { size, body }))
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = self.path_of(key)?;
        Ok(file_metadata(&path).await?.map(|meta| meta.len()))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            // A directory under the key is not an object either.
            Err(err) if is_missing(&err) || err.kind() == io::ErrorKind::IsADirectory => {
                return Ok(());
            }
            Err(err) => return Err(super::unavailable(context(err, "removing", &path))),
        }
        if let Some(dir) = path.parent() {
            self.remove_empty_dirs(dir).await;
        }
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StorageError> {
        validate_prefix(prefix)?;
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        // One blocking walk rather than a thread hop per directory entry.
        tokio::task::spawn_blocking(move || walk(&root, &prefix))
            .await
            .map_err(super::unavailable)?
    }

    fn describe(&self) -> String {
        format!("local {}", self.root.display())
    }
}

/// Every object under `root` whose key starts with `prefix`, sorted; removes
/// stale partial files on the way. Files whose names are no keys are not ours
/// (nor could `delete` reach them): skipped.
fn walk(root: &Path, prefix: &str) -> Result<Vec<Listed>, StorageError> {
    let mut found = Vec::new();
    let start = prefix_dir(prefix);
    let mut pending = vec![(root.join(start), start.to_owned())];
    while let Some((dir, dir_key)) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if is_missing(&err) => continue,
            Err(err) => return Err(super::unavailable(context(err, "listing", &dir))),
        };
        for entry in entries {
            let entry = entry.map_err(|err| super::unavailable(context(err, "listing", &dir)))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let key = if dir_key.is_empty() {
                name.clone()
            } else {
                format!("{dir_key}/{name}")
            };
            let path = entry.path();
            // `symlink_metadata`: a link is not ours to follow.
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(meta) => meta,
                // Deleted while we walked.
                Err(err) if is_missing(&err) => continue,
                Err(err) => return Err(super::unavailable(context(err, "reading", &path))),
            };
            if meta.is_dir() {
                // Only directories that can hold matching keys (the walk
                // starts at the prefix's directory, so every key here extends
                // it).
                if key.starts_with(prefix) {
                    pending.push((path, key));
                }
            } else if meta.is_file() {
                if name.contains(PARTIAL_MARK) && name.ends_with(PARTIAL_SUFFIX) {
                    remove_if_stale(&path, &meta);
                } else if key.starts_with(prefix) && validate_key(&key).is_ok() {
                    found.push(Listed {
                        key,
                        size: meta.len(),
                        modified_ms: modified_ms(&meta),
                    });
                }
            }
        }
    }
    found.sort_by(|a, b| a.key.cmp(&b.key));
    Ok(found)
}

/// A partial file no write has touched for a day was left by a crash.
fn remove_if_stale(path: &Path, meta: &std::fs::Metadata) {
    let age = meta
        .modified()
        .ok()
        .and_then(|modified| SystemTime::now().duration_since(modified).ok());
    if age.is_some_and(|age| age > STALE_PARTIAL) {
        match std::fs::remove_file(path) {
            Ok(()) => tracing::info!(path = %path.display(), "removed a stale partial file"),
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "could not remove a stale partial file");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        store: LocalStore,
        dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::open(&dir.path().join("files")).await.unwrap();
        Fixture { store, dir }
    }

    crate::storage::conformance::suite!(fixture);

    fn files_under(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                names.push(path.display().to_string());
                if path.is_dir() {
                    pending.push(path);
                }
            }
        }
        names.sort();
        names
    }

    #[tokio::test]
    async fn delete_removes_the_emptied_directories_but_not_the_root_or_busy_ones() {
        let fx = fixture().await;
        let store = &fx.store;
        store
            .put_bytes("attachments/a/original", b"1".to_vec())
            .await
            .unwrap();
        store
            .put_bytes("attachments/a/thumb-320", b"2".to_vec())
            .await
            .unwrap();
        store
            .put_bytes("attachments/b/original", b"3".to_vec())
            .await
            .unwrap();

        store.delete("attachments/a/original").await.unwrap();
        assert!(store.root.join("attachments/a").is_dir());
        store.delete("attachments/a/thumb-320").await.unwrap();
        assert!(!store.root.join("attachments/a").exists());
        assert!(store.root.join("attachments/b").is_dir());
        store.delete("attachments/b/original").await.unwrap();
        assert!(store.root.is_dir());
        assert!(
            files_under(&store.root).is_empty(),
            "{:?}",
            files_under(&store.root)
        );
    }

    #[tokio::test]
    async fn a_failed_write_leaves_neither_an_object_nor_a_partial_file() {
        let fx = fixture().await;
        let store = &fx.store;
        store
            .put_bytes("attachments/a/original", b"old".to_vec())
            .await
            .unwrap();
        let missing = fx.dir.path().join("no-such-upload");
        let err = store.put_file("attachments/a/original", &missing).await;
        assert!(matches!(err, Err(StorageError::Unavailable(_))), "{err:?}");
        assert!(err.unwrap_err().to_string().contains("no-such-upload"));
        // The old object is untouched, and nothing else is there.
        let blob = store
            .get("attachments/a/original", None)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(blob.into_vec().await.unwrap(), b"old");
        assert_eq!(
            files_under(&store.root.join("attachments/a")),
            vec![
                store
                    .root
                    .join("attachments/a/original")
                    .display()
                    .to_string()
            ]
        );
    }

    #[tokio::test]
    async fn partial_files_are_never_listed_and_a_stale_one_is_swept() {
        let fx = fixture().await;
        let store = &fx.store;
        store
            .put_bytes("attachments/a/original", b"1".to_vec())
            .await
            .unwrap();
        let dir = store.root.join("attachments/a");
        let fresh = dir.join("thumb-320~0190aa.partial");
        let stale = dir.join("original~0190bb.partial");
        std::fs::write(&fresh, b"half").unwrap();
        std::fs::write(&stale, b"half").unwrap();
        let long_ago = SystemTime::now() - STALE_PARTIAL - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(long_ago)
            .unwrap();

        let listed = store.list("").await.unwrap();
        let keys: Vec<_> = listed.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(keys, ["attachments/a/original"]);
        assert!(fresh.exists(), "a write may still be under way");
        assert!(
            !stale.exists(),
            "a day-old partial file is a crash's leftover"
        );
    }

    #[tokio::test]
    async fn files_that_are_not_keys_are_not_listed() {
        let fx = fixture().await;
        let store = &fx.store;
        store
            .put_bytes("attachments/a/original", b"1".to_vec())
            .await
            .unwrap();
        std::fs::write(store.root.join("attachments/README.TXT"), b"x").unwrap();
        let keys: Vec<_> = store
            .list("attachments/")
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.key)
            .collect();
        assert_eq!(keys, ["attachments/a/original"]);
    }

    #[tokio::test]
    async fn a_directory_is_no_object() {
        let fx = fixture().await;
        let store = &fx.store;
        store
            .put_bytes("attachments/a/original", b"1".to_vec())
            .await
            .unwrap();
        assert!(store.get("attachments/a", None).await.unwrap().is_none());
        assert_eq!(store.size("attachments/a").await.unwrap(), None);
        store.delete("attachments/a").await.unwrap();
        // Asking below an object (a file where a directory would be).
        assert_eq!(store.size("attachments/a/original/x").await.unwrap(), None);
        assert!(
            store
                .get("attachments/a/original/x", None)
                .await
                .unwrap()
                .is_none()
        );
        store.delete("attachments/a/original/x").await.unwrap();
        assert_eq!(store.size("attachments/a/original").await.unwrap(), Some(1));
    }
}
