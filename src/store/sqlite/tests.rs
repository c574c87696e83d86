use super::*;
use crate::domain::room::RoomKind;

#[test]
fn batches_split_into_power_of_two_statements() {
    let sizes = |n: usize| {
        let items = vec![0u8; n];
        statement_chunks(&items)
            .map(<[u8]>::len)
            .collect::<Vec<_>>()
    };
    assert!(sizes(0).is_empty());
    assert_eq!(sizes(1), [1]);
    assert_eq!(sizes(300), [256, 32, 8, 4]);
    assert_eq!(sizes(513), [256, 256, 1]);
    assert_eq!(sizes(255), [128, 64, 32, 16, 8, 4, 2, 1]);
}

/// With `Full`, a message batch commits without a sync, and nothing of it
/// can be read (so nobody can learn its seq) before the group sync ran;
/// everything else still syncs at its own commit.
#[tokio::test]
async fn a_batch_can_be_read_only_once_it_is_synced() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("g.db").display());
    let store = SqliteStore::connect(&url, 2, SqliteSync::Full)
        .await
        .unwrap();
    store.migrate().await.unwrap();
    let room = RoomId::parse("synced").unwrap();
    let new = NewRoom {
        id: room.clone(),
        kind: RoomKind::Public,
        name: "Synced".into(),
        description: String::new(),
        owner_id: None,
        created_by: None,
        direct_key: None,
        created_at: 1,
        members: Vec::new(),
    };
    store.insert_room(&new, None).await.unwrap();
    let wal = store.wal.as_ref().expect("Full syncs batches together");
    assert!(wal.is_synced(), "nothing but FULL commits so far");
    let message = NewMessage {
        id: MessageId::new(),
        room_id: room.clone(),
        sender: None,
        message_type: MessageType::System,
        content: "hello".into(),
        client_id: None,
        event: None,
        attachments: Vec::new(),
        created_at: 2,
    };
    store.insert_messages(&[message]).await.unwrap();
    assert!(!wal.is_synced(), "the batch waits for the group sync");
    // A read waits for it, and so sees the batch only once it is on disk.
    let page = store
        .list_messages(&room, Page::Latest { limit: 10 })
        .await
        .unwrap();
    assert!(wal.is_synced());
    assert_eq!(page.messages.len(), 1);
    // The batch put FULL back for the commits that follow it.
    let (level,): (i64,) = sqlx::query_as("pragma synchronous")
        .fetch_one(&store.writer)
        .await
        .unwrap();
    assert_eq!(level, 2);
    store.sync_messages().await.unwrap();
    store.close().await;
}

/// An acknowledged message must survive a power cut: FULL syncs every
/// commit (the default, see `config`); NORMAL only at checkpoints.
#[tokio::test]
async fn commits_are_synced_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    for (sync, expected) in [(SqliteSync::Full, 2), (SqliteSync::Normal, 1)] {
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = SqliteStore::connect(&url, 2, sync).await.unwrap();
        for pool in [&store.writer, &store.reader] {
            let (level,): (i64,) = sqlx::query_as("pragma synchronous")
                .fetch_one(pool)
                .await
                .unwrap();
            assert_eq!(level, expected, "{sync:?}");
        }
        store.close().await;
    }
}

#[test]
fn each_statement_binds_its_rows() {
    let sql = BatchSql::new();
    assert_eq!(sql.insert.len(), 9);
    for (power, text) in sql.insert.iter().enumerate() {
        assert_eq!(text.as_str().matches('?').count(), 9 << power);
    }
    // Four keys of (room, sender, client_id, index).
    assert_eq!(
        BatchSql::pick(&sql.stored, 4).as_str().matches('?').count(),
        16
    );
}
