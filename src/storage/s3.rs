//! The S3 back end, through `object_store` (Apache Arrow's object store
//! client, which speaks to AWS and to S3-compatible servers: MinIO, Garage,
//! Ceph, R2, the tests' s3s-fs). Objects live at `<prefix>/<key>` in one
//! bucket, so several nodes, and several Parley installations with their own
//! prefixes, can share it.

use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{StreamExt as _, TryStreamExt as _};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt as _, PutPayload, RetryConfig,
    WriteMultipart,
};
use tokio::io::AsyncReadExt as _;

use super::{
    Blob, BlobStore, Listed, S3Options, StorageError, prefix_dir, unavailable, validate_key,
    validate_prefix,
};

/// S3's smallest part (but the last): a file up to this size goes in one
/// PUT, a bigger one in parts of this size. With at most one part in flight
/// while the next fills, an upload holds about two parts in memory.
const PART_SIZE: usize = 5 * 1024 * 1024;
/// The pieces a file is read in.
const READ_CHUNK: usize = 64 * 1024;

/// A bucket (and a prefix in it) on an S3-compatible store.
#[derive(Debug)]
pub struct S3Store {
    client: AmazonS3,
    bucket: String,
    /// Without leading or trailing `/`; may be empty.
    prefix: String,
    /// For `describe`.
    at: String,
}

impl S3Store {
    /// Builds the client and asks the bucket once (one listing of the
    /// prefix's top level), so that a wrong endpoint, bucket or key fails
    /// here.
    pub async fn open(bucket: &str, prefix: &str, options: &S3Options) -> anyhow::Result<Self> {
        let prefix = prefix.trim_matches('/').to_owned();
        if !prefix.is_empty() {
            ObjectPath::parse(&prefix).with_context(|| format!("S3 prefix {prefix:?}"))?;
        }
        // `from_env` first, so that the usual AWS_* variables (and roles)
        // work for what the options leave unset; the options win.
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(&options.region)
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(options.allow_http)
                    // A download streams to a browser that may read slowly or
                    // pause a video: no deadline on a whole response (the
                    // default is 30 s), but one on each read; `object_store`
                    // resumes a body that broke at the byte it got to.
                    .with_timeout(Duration::from_secs(300))
                    .with_read_timeout(Duration::from_secs(60)),
            )
            // A request path waits for at most a few quick retries, not the
            // default's three minutes, when the store is down.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(15),
                ..RetryConfig::default()
            });
        let at = match &options.endpoint {
            // S3-compatible servers are addressed by path
            // (`endpoint/bucket/key`): no DNS name per bucket needed.
            Some(endpoint) => {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_virtual_hosted_style_request(false);
                endpoint.clone()
            }
            None => {
                builder = builder.with_virtual_hosted_style_request(true);
                format!("AWS {}", options.region)
            }
        };
        match (&options.access_key_id, &options.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
            }
            (None, None) => {}
            _ => anyhow::bail!("S3 storage needs both an access key id and a secret access key"),
        }
        let client = builder.build().context("configuring the S3 client")?;
        let store = Self {
            client,
            bucket: bucket.to_owned(),
            prefix,
            at,
        };
        let top = store.object_path("").context("S3 prefix")?;
        store
            .client
            .list_with_delimiter(top.as_ref())
            .await
            .with_context(|| format!("S3 storage {} is not reachable", store.describe()))?;
        Ok(store)
    }

    /// The object for a key (checked), under the prefix.
    fn location(&self, key: &str) -> Result<ObjectPath, StorageError> {
        validate_key(key)?;
        self.object_path(key)?.ok_or(StorageError::InvalidKey)
    }

    /// `prefix/rest` as an object path; None when both are empty (the
    /// bucket's root).
    fn object_path(&self, rest: &str) -> Result<Option<ObjectPath>, StorageError> {
        let joined = match (self.prefix.is_empty(), rest.is_empty()) {
            (true, true) => return Ok(None),
            (true, false) => rest.to_owned(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rest}", self.prefix),
        };
        ObjectPath::parse(joined)
            .map(Some)
            .map_err(|_| StorageError::InvalidKey)
    }

    /// The key of an object the store listed, None for one outside the
    /// prefix.
    fn key_of<'a>(&self, location: &'a str) -> Option<&'a str> {
        if self.prefix.is_empty() {
            Some(location)
        } else {
            location
                .strip_prefix(self.prefix.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
        }
    }

    /// A file bigger than one part, in parts; aborts the upload on a failure
    /// so that S3 keeps no parts. A put cancelled mid-way (its future
    /// dropped) cannot abort: S3 keeps those parts, invisible to `list`, until
    /// the bucket's lifecycle rule for incomplete multipart uploads removes
    /// them (operators should have one; the README says so).
    async fn put_multipart(&self, location: &ObjectPath, path: &Path) -> Result<(), StorageError> {
        let upload = self
            .client
            .put_multipart(location)
            .await
            .map_err(unavailable)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        match copy_into(&mut writer, path).await {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(unavailable),
            Err(err) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(error = %abort, %location, "could not abort a multipart upload");
                }
                Err(err)
            }
        }
    }
}

/// Feeds the file to the multipart writer, waiting while a part is in
/// flight, so memory stays at about two parts whatever the file's size.
async fn copy_into(writer: &mut WriteMultipart, path: &Path) -> Result<(), StorageError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|err| io_unavailable(err, "opening", path))?;
    let mut buf = vec![0; READ_CHUNK];
    loop {
        writer.wait_for_capacity(1).await.map_err(unavailable)?;
        let read = file
            .read(&mut buf)
            .await
            .map_err(|err| io_unavailable(err, "reading", path))?;
        if read == 0 {
            return Ok(());
        }
        writer.write(&buf[..read]);
    }
}

fn io_unavailable(err: std::io::Error, doing: &str, path: &Path) -> StorageError {
    unavailable(std::io::Error::new(
        err.kind(),
        format!("{doing} {}: {err}", path.display()),
    ))
}

#[async_trait::async_trait]
impl BlobStore for S3Store {
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let location = self.location(key)?;
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|err| io_unavailable(err, "reading", path))?
            .len();
        if size > PART_SIZE as u64 {
            return self.put_multipart(&location, path).await;
        }
        // One part's worth: one request.
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|err| io_unavailable(err, "reading", path))?;
        self.client
            .put(&location, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let location = self.location(key)?;
        self.client
            .put(&location, PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(unavailable)
    }

    async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<Blob>, StorageError> {
        let location = self.location(key)?;
        let options = GetOptions {
            range: range.map(GetRange::Bounded),
            ..GetOptions::default()
        };
        match self.client.get_opts(&location, options).await {
            Ok(result) => Ok(Some(Blob {
                size: result.meta.size,
                body: result.into_stream().map_err(unavailable).boxed(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn size(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let location = self.location(key)?;
        match self.client.head(&location).await {
            Ok(meta) => Ok(Some(meta.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let location = self.location(key)?;
        // S3 answers a delete of a missing object with success; some
        // compatible servers say 404.
        match self.client.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(unavailable(err)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StorageError> {
        validate_prefix(prefix)?;
        // `object_store` lists by whole segments: ask for the prefix's
        // directory, then keep the keys that start with the whole prefix.
        let dir = self.object_path(prefix_dir(prefix))?;
        let mut found: Vec<Listed> = self
            .client
            .list(dir.as_ref())
            .map_err(unavailable)
            .try_filter_map(|meta| async move {
                let listed = self
                    .key_of(meta.location.as_ref())
                    // Objects whose names are no keys are not ours.
                    .filter(|key| key.starts_with(prefix) && validate_key(key).is_ok())
                    .map(|key| Listed {
                        key: key.to_owned(),
                        size: meta.size,
                        modified_ms: meta.last_modified.timestamp_millis(),
                    });
                Ok(listed)
            })
            .try_collect()
            .await?;
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }

    fn describe(&self) -> String {
        format!("s3://{}/{} at {}", self.bucket, self.prefix, self.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::storage::test_server::{TestS3, start_s3};

    struct Fixture {
        store: S3Store,
        _server: TestS3,
        _dir: tempfile::TempDir,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let server = start_s3(dir.path()).await.unwrap();
        let store = S3Store::open(&server.bucket, "parley/test", &server.options())
            .await
            .unwrap();
        Fixture {
            store,
            _server: server,
            _dir: dir,
        }
    }

    crate::storage::conformance::suite!(fixture);

    #[tokio::test]
    async fn open_through_the_url_and_describe() {
        let dir = tempfile::tempdir().unwrap();
        let server = start_s3(dir.path()).await.unwrap();
        let store = crate::storage::open(
            Some(&server.url("install-1")),
            dir.path(),
            &server.options(),
        )
        .await
        .unwrap();
        assert_eq!(
            store.describe(),
            format!("s3://{}/install-1 at {}", server.bucket, server.endpoint)
        );
    }

    #[tokio::test]
    async fn two_prefixes_in_one_bucket_do_not_see_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let server = start_s3(dir.path()).await.unwrap();
        let one = S3Store::open(&server.bucket, "one", &server.options())
            .await
            .unwrap();
        let two = S3Store::open(&server.bucket, "/two/", &server.options())
            .await
            .unwrap();
        one.put_bytes("attachments/a/original", b"1".to_vec())
            .await
            .unwrap();
        assert_eq!(two.size("attachments/a/original").await.unwrap(), None);
        assert!(two.list("").await.unwrap().is_empty());
        assert_eq!(one.list("").await.unwrap().len(), 1);
        assert_eq!(
            two.describe(),
            format!("s3://{}/two at {}", server.bucket, server.endpoint)
        );
    }

    #[tokio::test]
    async fn open_fails_fast_on_wrong_credentials_a_missing_bucket_or_no_server() {
        let dir = tempfile::tempdir().unwrap();
        let server = start_s3(dir.path()).await.unwrap();
        let wrong_secret = S3Options {
            secret_access_key: Some("not-the-secret".into()),
            ..server.options()
        };
        assert!(
            S3Store::open(&server.bucket, "", &wrong_secret)
                .await
                .is_err()
        );
        assert!(
            S3Store::open("no-such-bucket", "", &server.options())
                .await
                .is_err()
        );
        let half = S3Options {
            secret_access_key: None,
            ..server.options()
        };
        assert!(S3Store::open(&server.bucket, "", &half).await.is_err());

        let endpoint = server.endpoint.clone();
        let options = server.options();
        drop(server);
        let gone = S3Store::open("parley", "", &options).await;
        let err = gone.unwrap_err();
        assert!(
            format!("{err:#}").contains(&endpoint),
            "names the endpoint: {err:#}"
        );
    }

    #[tokio::test]
    async fn a_stopped_server_is_unavailable_not_missing() {
        let fx = fixture().await;
        fx.store
            .put_bytes("attachments/a/original", b"1".to_vec())
            .await
            .unwrap();
        let Fixture { store, _server, .. } = fx;
        drop(_server);
        assert!(matches!(
            store.get("attachments/a/original", None).await,
            Err(StorageError::Unavailable(_))
        ));
        assert!(matches!(
            store.size("attachments/a/original").await,
            Err(StorageError::Unavailable(_))
        ));
        assert!(matches!(
            store.put_bytes("attachments/b/original", vec![1]).await,
            Err(StorageError::Unavailable(_))
        ));
    }
}
