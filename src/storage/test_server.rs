//! For tests only (`cfg(test)` or the `test-support` feature): a real S3
//! server (s3s-fs, which keeps buckets as directories) in this process, on
//! 127.0.0.1 and a free port, with fixed credentials. The S3 back end's tests
//! and the integration tests (two nodes sharing one bucket) talk to it over
//! HTTP like to any S3 service, signatures checked.

use std::path::Path;

use anyhow::Context as _;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use super::{DynBlobStore, S3Options};

pub const TEST_ACCESS_KEY_ID: &str = "parley-test-key";
pub const TEST_SECRET_ACCESS_KEY: &str = "parley-test-secret";
pub const TEST_REGION: &str = "us-east-1";
pub const TEST_BUCKET: &str = "parley";

/// A running server; dropping it stops it (and every connection).
pub struct TestS3 {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// Exists when `start_s3` returns.
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    _task: AbortOnDrop,
}

impl TestS3 {
    /// What `storage::open` needs to reach this server.
    pub fn options(&self) -> S3Options {
        S3Options {
            endpoint: Some(self.endpoint.clone()),
            region: TEST_REGION.to_owned(),
            access_key_id: Some(self.access_key_id.clone()),
            secret_access_key: Some(self.secret_access_key.clone()),
            allow_http: true,
        }
    }

    /// The `--storage-url` for a prefix in the bucket: `s3://parley/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{}", self.bucket, prefix.trim_start_matches('/'))
    }

    /// The store a node would open with `url(prefix)` and `options()`.
    pub async fn open(&self, prefix: &str) -> anyhow::Result<DynBlobStore> {
        // The data dir is unused for S3.
        super::open(Some(&self.url(prefix)), Path::new("."), &self.options()).await
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts a server that keeps its buckets under `dir` (which must outlive
/// it), with the bucket `parley` created. Call from within a Tokio runtime;
/// the server runs on it.
pub async fn start_s3(dir: &Path) -> anyhow::Result<TestS3> {
    tokio::fs::create_dir_all(dir.join(TEST_BUCKET))
        .await
        .with_context(|| format!("creating the test bucket under {}", dir.display()))?;
    // Its error is Debug only.
    let fs = s3s_fs::FileSystem::new(dir)
        .map_err(|err| anyhow::anyhow!("starting s3s-fs on {}: {err:?}", dir.display()))?;
    let mut service = s3s::service::S3ServiceBuilder::new(fs);
    service.set_auth(s3s::auth::SimpleAuth::from_single(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
    ));
    let service = service.build();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let task = tokio::spawn(async move {
        // The connections belong to this task: aborting it drops the set,
        // which aborts them.
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        // Out of file descriptors, say: let some close.
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        continue;
                    };
                    let service = service.clone();
                    connections.spawn(async move {
                        // A client that hangs up mid-request is no failure
                        // of the server.
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    Ok(TestS3 {
        endpoint,
        bucket: TEST_BUCKET.to_owned(),
        access_key_id: TEST_ACCESS_KEY_ID.to_owned(),
        secret_access_key: TEST_SECRET_ACCESS_KEY.to_owned(),
        _task: AbortOnDrop(task),
    })
}
