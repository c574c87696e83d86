//! The blob store for attachments: a small interface with two back ends, a
//! directory under `--data-dir` (`storage/local.rs`, the default) and
//! S3-compatible object storage (`storage/s3.rs`), so that several nodes can
//! share one store.
//!
//! This layer knows no rules, HTTP or database: it stores bytes under keys
//! that its callers choose (e.g. `attachments/<uuid>/original`). Keys are
//! checked here ([`validate_key`]) so that no key can reach outside the local
//! directory, whatever a caller passes.

mod local;
mod s3;
#[cfg(any(test, feature = "test-support"))]
pub mod test_server;

#[cfg(test)]
mod conformance;

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::TryStreamExt as _;
use futures_util::stream::BoxStream;

pub use local::LocalStore;
pub use s3::S3Store;

/// What a store call can fail with. A missing object is not an error (the
/// calls that read say `None`).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The key breaks [`validate_key`]'s rules: a caller's bug, never retried.
    #[error("invalid key")]
    InvalidKey,
    /// The disk or the object store failed (full, unreachable, refused); the
    /// source says what, for the logs.
    #[error("storage unavailable: {0}")]
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

/// An object being read.
pub struct Blob {
    /// The size of the whole object, even when a range was asked for (for
    /// `Content-Range`).
    pub size: u64,
    /// The asked bytes, in pieces as they arrive (never the object whole in
    /// memory).
    pub body: BoxStream<'static, Result<bytes::Bytes, StorageError>>,
}

impl Blob {
    /// Reads the rest of the body into memory: for the small objects
    /// (thumbnails) and the tests, not for originals.
    pub async fn into_vec(self) -> Result<Vec<u8>, StorageError> {
        self.body
            .try_fold(Vec::new(), |mut all, piece| async move {
                all.extend_from_slice(&piece);
                Ok(all)
            })
            .await
    }
}

/// One object, as `list` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Last written, in Unix milliseconds (lets a check spare objects written
    /// moments ago, whose rows may not be committed yet).
    pub modified_ms: i64,
}

/// Where attachments' bytes live. Every method checks its key first and
/// answers [`StorageError::InvalidKey`] without touching the store.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Streams a local file into the store (multipart on S3 for big files;
    /// never whole in memory). Replaces an object under the same key; readers
    /// see either the old object or the new one whole, never a part.
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError>;
    /// Stores bytes already in memory (thumbnails, placeholders).
    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError>;
    /// None when missing. `range` is a half-open byte range already checked
    /// against the size by the caller (the caller calls `size` first when it
    /// needs to).
    async fn get(&self, key: &str, range: Option<Range<u64>>)
    -> Result<Option<Blob>, StorageError>;
    /// The object's size, None when missing.
    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError>;
    /// Missing is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Every object whose key starts with `prefix` (a plain string prefix:
    /// `attachments/01` matches `attachments/0190…/original`), sorted by key,
    /// for `parley storage check`. An empty prefix lists everything; any other
    /// prefix follows the key rules, except that it may end with `/`.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StorageError>;
    /// "local /path" or "s3://bucket/prefix at endpoint", for logs.
    fn describe(&self) -> String;
}

pub type DynBlobStore = Arc<dyn BlobStore>;

/// How to reach S3 when `--storage-url` is `s3://…`.
#[derive(Clone, Default)]
pub struct S3Options {
    /// e.g. `http://127.0.0.1:9000` for MinIO, Garage or the tests' server;
    /// None for AWS itself (the endpoint follows from the region).
    pub endpoint: Option<String>,
    pub region: String,
    /// None for both keys: the usual AWS sources (the `AWS_*` variables, the
    /// instance's or container's role).
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    /// Allows an `http://` endpoint (a store on the same host or network).
    pub allow_http: bool,
}

// Secrets stay out of `check-config` and logs.
impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "[redacted]"),
            )
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// `url` None → local directory `data_dir/files`; `s3://bucket/prefix` → S3
/// with the options (path-style addressing when an endpoint is given). S3 is
/// asked once here, so that a wrong bucket or key fails at startup rather
/// than on the first upload.
pub async fn open(
    url: Option<&str>,
    data_dir: &Path,
    s3: &S3Options,
) -> anyhow::Result<DynBlobStore> {
    let Some(url) = url else {
        let store = LocalStore::open(&data_dir.join("files")).await?;
        return Ok(Arc::new(store));
    };
    let parsed = url::Url::parse(url).with_context(|| format!("storage URL {url:?}"))?;
    if parsed.scheme() != "s3" {
        anyhow::bail!("storage URL {url:?}: only s3://bucket/prefix is supported");
    }
    let bucket = parsed
        .host_str()
        .filter(|bucket| !bucket.is_empty())
        .with_context(|| format!("storage URL {url:?} names no bucket"))?;
    let store = S3Store::open(bucket, parsed.path(), s3).await?;
    Ok(Arc::new(store))
}

/// Longest key accepted: S3 takes 1024 bytes, with room for a prefix.
const MAX_KEY_LEN: usize = 512;
/// Longest segment: what every Linux file system takes as a file name.
const MAX_SEGMENT_LEN: usize = 255;

/// A key is one or more `/`-separated segments of `[a-z0-9._-]`, none empty,
/// `.` or `..` (so no leading or trailing `/`). Such a key names the same
/// object on every back end and, joined to the local directory, can only
/// name a path inside it.
pub fn validate_key(key: &str) -> Result<(), StorageError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(StorageError::InvalidKey);
    }
    if key.split('/').all(valid_segment) {
        Ok(())
    } else {
        Err(StorageError::InvalidKey)
    }
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment.len() <= MAX_SEGMENT_LEN
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// A `list` prefix: empty, or a key, or a key followed by `/`.
fn validate_prefix(prefix: &str) -> Result<(), StorageError> {
    match prefix.strip_suffix('/').unwrap_or(prefix) {
        "" if prefix.is_empty() => Ok(()),
        rest => validate_key(rest),
    }
}

/// The directory part of a list prefix (up to its last `/`): what to walk or
/// list before filtering by the whole prefix.
fn prefix_dir(prefix: &str) -> &str {
    prefix.rfind('/').map_or("", |slash| &prefix[..slash])
}

fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::Unavailable(Box::new(err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_ours_are_valid() {
        for key in [
            "attachments/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/original",
            "attachments/0190a1b2c3d47e5f8a9b0c1d2e3f4a5b/thumb-320",
            "a",
            "a/b.c/d_e-f",
            "...",
        ] {
            assert!(validate_key(key).is_ok(), "{key}");
        }
    }

    #[test]
    fn keys_that_could_escape_or_differ_between_back_ends_are_refused() {
        let too_long = "a".repeat(MAX_KEY_LEN + 1);
        let long_segment = "a".repeat(MAX_SEGMENT_LEN + 1);
        for key in [
            "",
            "/",
            "/a",
            "a/",
            "a//b",
            "..",
            "../a",
            "a/../b",
            "a/..",
            ".",
            "a/./b",
            "A",
            "a b",
            "a\\b",
            "a\0b",
            "é",
            "a:b",
            "a~b",
            too_long.as_str(),
            long_segment.as_str(),
        ] {
            assert!(
                matches!(validate_key(key), Err(StorageError::InvalidKey)),
                "{key:?}"
            );
        }
    }

    #[test]
    fn prefixes_are_keys_with_an_optional_trailing_slash() {
        for prefix in ["", "attachments", "attachments/", "attachments/01"] {
            assert!(validate_prefix(prefix).is_ok(), "{prefix:?}");
        }
        for prefix in ["/", "//", "a//", "../", "/a", "A/"] {
            assert!(validate_prefix(prefix).is_err(), "{prefix:?}");
        }
        assert_eq!(prefix_dir(""), "");
        assert_eq!(prefix_dir("attachments"), "");
        assert_eq!(prefix_dir("attachments/"), "attachments");
        assert_eq!(prefix_dir("attachments/01/x"), "attachments/01");
    }

    #[tokio::test]
    async fn open_refuses_other_schemes_and_a_missing_bucket() {
        let dir = tempfile::tempdir().unwrap();
        let s3 = S3Options::default();
        for url in ["file:///tmp/x", "s3:///prefix", "not a url"] {
            assert!(open(Some(url), dir.path(), &s3).await.is_err(), "{url}");
        }
    }

    #[tokio::test]
    async fn open_without_url_is_the_files_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(None, dir.path(), &S3Options::default()).await.unwrap();
        assert!(dir.path().join("files").is_dir());
        assert!(
            store.describe().starts_with("local /"),
            "{}",
            store.describe()
        );
        assert!(store.describe().ends_with("/files"), "{}", store.describe());
    }

    #[test]
    fn options_debug_hides_the_secret() {
        let options = S3Options {
            secret_access_key: Some("hunter2".into()),
            ..S3Options::default()
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
