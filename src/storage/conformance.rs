//! The behaviour every back end must have, run against each of them
//! (`suite!(fixture)` in `local.rs` and `s3.rs`): what one does, the other
//! does too, so the callers never ask which one they have.

use sha2::Digest as _;

use super::{BlobStore, StorageError};

/// One test per case below, for a back end whose `$fixture().await` has a
/// `store` field (and keeps whatever the store needs alive).
macro_rules! suite {
    ($fixture:ident) => {
        $crate::storage::conformance::suite!(@cases $fixture;
            put_bytes_then_get_whole,
            put_file_then_get_whole,
            a_put_replaces_the_object,
            get_ranges,
            an_empty_object,
            missing_objects_are_none_and_delete_is_quiet,
            delete_removes_only_that_object,
            list_by_prefix,
            invalid_keys_are_refused_everywhere,
            a_30_mib_file_streams_both_ways,
        );
    };
    (@cases $fixture:ident; $($case:ident),* $(,)?) => {
        mod conformance_suite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let fixture = $fixture().await;
                    $crate::storage::conformance::$case(&fixture.store).await;
                }
            )*
        }
    };
}
pub(crate) use suite;

/// Bytes that differ from one offset to the next (a misplaced range shows).
fn pattern(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ len as u64;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        // xorshift64
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn read(
    store: &dyn BlobStore,
    key: &str,
    range: Option<std::ops::Range<u64>>,
) -> (u64, Vec<u8>) {
    let blob = store
        .get(key, range.clone())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} {range:?} is missing"));
    let size = blob.size;
    (size, blob.into_vec().await.unwrap())
}

fn temp_file(bytes: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    file
}

pub(crate) async fn put_bytes_then_get_whole(store: &dyn BlobStore) {
    let key = "attachments/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/thumb-320";
    let bytes = pattern(1000);
    store.put_bytes(key, bytes.clone()).await.unwrap();
    assert_eq!(read(store, key, None).await, (1000, bytes));
    assert_eq!(store.size(key).await.unwrap(), Some(1000));
}

pub(crate) async fn put_file_then_get_whole(store: &dyn BlobStore) {
    let key = "attachments/0190a1b2/original";
    let bytes = pattern(100_000);
    let file = temp_file(&bytes);
    store.put_file(key, file.path()).await.unwrap();
    assert_eq!(read(store, key, None).await, (100_000, bytes.clone()));
    assert_eq!(store.size(key).await.unwrap(), Some(100_000));
    // The caller's file is copied, not taken.
    assert_eq!(std::fs::read(file.path()).unwrap(), bytes);
}

pub(crate) async fn a_put_replaces_the_object(store: &dyn BlobStore) {
    let key = "attachments/a/original";
    store.put_bytes(key, pattern(5000)).await.unwrap();
    let newer = b"shorter".to_vec();
    let file = temp_file(&newer);
    store.put_file(key, file.path()).await.unwrap();
    assert_eq!(read(store, key, None).await, (7, newer));
    store.put_bytes(key, b"again".to_vec()).await.unwrap();
    assert_eq!(read(store, key, None).await, (5, b"again".to_vec()));
    assert_eq!(store.list("").await.unwrap().len(), 1);
}

pub(crate) async fn get_ranges(store: &dyn BlobStore) {
    let key = "attachments/a/original";
    let bytes = pattern(10_000);
    store.put_bytes(key, bytes.clone()).await.unwrap();
    for range in [0..1, 10..20, 9_999..10_000, 0..10_000, 5_000..9_000] {
        let (size, got) = read(store, key, Some(range.clone())).await;
        // The whole object's size, for Content-Range.
        assert_eq!(size, 10_000, "{range:?}");
        let (start, end) = (range.start as usize, range.end as usize);
        assert_eq!(got, bytes[start..end], "{range:?}");
    }
}

pub(crate) async fn an_empty_object(store: &dyn BlobStore) {
    let key = "attachments/a/empty";
    store.put_bytes(key, Vec::new()).await.unwrap();
    assert_eq!(store.size(key).await.unwrap(), Some(0));
    assert_eq!(read(store, key, None).await, (0, Vec::new()));
    let file = temp_file(b"");
    store
        .put_file("attachments/b/empty", file.path())
        .await
        .unwrap();
    assert_eq!(store.size("attachments/b/empty").await.unwrap(), Some(0));
    let sizes: Vec<_> = store
        .list("")
        .await
        .unwrap()
        .iter()
        .map(|l| l.size)
        .collect();
    assert_eq!(sizes, [0, 0]);
}

pub(crate) async fn missing_objects_are_none_and_delete_is_quiet(store: &dyn BlobStore) {
    let key = "attachments/nothing/original";
    assert!(store.get(key, None).await.unwrap().is_none());
    assert!(store.get(key, Some(0..1)).await.unwrap().is_none());
    assert_eq!(store.size(key).await.unwrap(), None);
    store.delete(key).await.unwrap();
    assert!(store.list("").await.unwrap().is_empty());
    assert!(store.list("attachments/").await.unwrap().is_empty());
}

pub(crate) async fn delete_removes_only_that_object(store: &dyn BlobStore) {
    store
        .put_bytes("attachments/a/original", vec![1])
        .await
        .unwrap();
    store
        .put_bytes("attachments/a/thumb-320", vec![2])
        .await
        .unwrap();
    store.delete("attachments/a/original").await.unwrap();
    assert!(
        store
            .get("attachments/a/original", None)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.size("attachments/a/original").await.unwrap(), None);
    assert_eq!(
        read(store, "attachments/a/thumb-320", None).await,
        (1, vec![2])
    );
    store.delete("attachments/a/original").await.unwrap();
    let keys: Vec<_> = store
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys, ["attachments/a/thumb-320"]);
    // A key can be written again after its delete (and its directory's).
    store.delete("attachments/a/thumb-320").await.unwrap();
    store
        .put_bytes("attachments/a/original", vec![3])
        .await
        .unwrap();
    assert_eq!(
        read(store, "attachments/a/original", None).await,
        (1, vec![3])
    );
}

pub(crate) async fn list_by_prefix(store: &dyn BlobStore) {
    let before = chrono::Utc::now().timestamp_millis();
    for (key, len) in [
        ("attachments/0190aa/thumb-320", 2),
        ("attachments/0190aa/original", 3),
        ("attachments/0191bb/original", 1),
        ("other/x", 4),
        ("top", 5),
    ] {
        store.put_bytes(key, pattern(len)).await.unwrap();
    }
    let after = chrono::Utc::now().timestamp_millis();
    let keys = |listed: Vec<super::Listed>| listed.into_iter().map(|l| l.key).collect::<Vec<_>>();

    let all = store.list("").await.unwrap();
    for listed in &all {
        // Second precision on some servers, and clocks: a little slack.
        assert!(
            (before - 5_000..=after + 5_000).contains(&listed.modified_ms),
            "{listed:?} not in {before}..={after}"
        );
    }
    let sizes: Vec<_> = all.iter().map(|l| (l.key.as_str(), l.size)).collect();
    assert_eq!(
        sizes,
        [
            ("attachments/0190aa/original", 3),
            ("attachments/0190aa/thumb-320", 2),
            ("attachments/0191bb/original", 1),
            ("other/x", 4),
            ("top", 5),
        ]
    );
    assert_eq!(
        keys(store.list("attachments/").await.unwrap()),
        [
            "attachments/0190aa/original",
            "attachments/0190aa/thumb-320",
            "attachments/0191bb/original"
        ]
    );
    assert_eq!(
        keys(store.list("attachments").await.unwrap()),
        keys(store.list("attachments/").await.unwrap())
    );
    // A plain string prefix, not only whole segments.
    assert_eq!(
        keys(store.list("attachments/0190").await.unwrap()),
        [
            "attachments/0190aa/original",
            "attachments/0190aa/thumb-320"
        ]
    );
    assert_eq!(
        keys(store.list("attachments/0190aa/orig").await.unwrap()),
        ["attachments/0190aa/original"]
    );
    assert_eq!(keys(store.list("t").await.unwrap()), ["top"]);
    assert!(store.list("nothing/").await.unwrap().is_empty());
    assert!(store.list("attachments/0192").await.unwrap().is_empty());
}

pub(crate) async fn invalid_keys_are_refused_everywhere(store: &dyn BlobStore) {
    let file = temp_file(b"x");
    for key in [
        "",
        "/etc/passwd",
        "../escape",
        "attachments/../../escape",
        "attachments//x",
        "attachments/",
        "attachments/./x",
        "Attachments/x",
        "attachments/x y",
        "attachments\\x",
    ] {
        let invalid = |result: Result<(), StorageError>| {
            assert!(
                matches!(result, Err(StorageError::InvalidKey)),
                "{key:?}: {result:?}"
            );
        };
        invalid(store.put_bytes(key, b"x".to_vec()).await);
        invalid(store.put_file(key, file.path()).await);
        invalid(store.get(key, None).await.map(|_| ()));
        invalid(store.size(key).await.map(|_| ()));
        invalid(store.delete(key).await);
    }
    for prefix in ["/", "../", "/attachments", "attachments//"] {
        assert!(
            matches!(store.list(prefix).await, Err(StorageError::InvalidKey)),
            "{prefix:?}"
        );
    }
    assert!(
        store.list("").await.unwrap().is_empty(),
        "nothing was written"
    );
}

pub(crate) async fn a_30_mib_file_streams_both_ways(store: &dyn BlobStore) {
    const LEN: usize = 30 * 1024 * 1024;
    const MIB: u64 = 1024 * 1024;
    let key = "attachments/0190ff/original";
    let bytes = pattern(LEN);
    let file = temp_file(&bytes);
    store.put_file(key, file.path()).await.unwrap();
    assert_eq!(store.size(key).await.unwrap(), Some(LEN as u64));

    let blob = store.get(key, None).await.unwrap().unwrap();
    assert_eq!(blob.size, LEN as u64);
    let mut body = blob.body;
    let (mut pieces, mut biggest, mut total) = (0, 0, 0);
    let mut hasher = sha2::Sha256::new();
    while let Some(piece) = futures_util::StreamExt::next(&mut body).await {
        let piece = piece.unwrap();
        pieces += 1;
        biggest = biggest.max(piece.len());
        total += piece.len();
        hasher.update(&piece);
    }
    assert_eq!(total, LEN);
    assert_eq!(hasher.finalize(), sha2::Sha256::digest(&bytes));
    // Streamed: many pieces, none of them near the whole.
    assert!(pieces > 10, "{pieces} pieces");
    assert!(biggest <= 4 * 1024 * 1024, "a piece of {biggest} bytes");

    // Across S3's 5 MiB part boundaries, and the tail.
    for range in [
        5 * MIB - 100..5 * MIB + 100,
        10 * MIB - 1..20 * MIB + 1,
        LEN as u64 - 10..LEN as u64,
    ] {
        let (size, got) = read(store, key, Some(range.clone())).await;
        assert_eq!(size, LEN as u64);
        assert!(
            got == bytes[range.start as usize..range.end as usize],
            "{range:?}"
        );
    }
}
