//! PostgreSQL only: its connection settings, outages, and the store under
//! several nodes at once.

use std::collections::HashSet;

use tokio::task::JoinSet;

use super::*;
use crate::store::postgres::{TestSchema, test_schema};

/// `PARLEY_TEST_DATABASE_URL`, or `None` after saying why `what` is skipped.
pub(super) fn test_database_url(what: &str) -> Option<String> {
    match std::env::var("PARLEY_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipping PostgreSQL {what}: PARLEY_TEST_DATABASE_URL is not set");
            None
        }
    }
}

/// A migrated store in a schema of its own.
async fn make() -> Option<(DynStore, TestSchema)> {
    let base = test_database_url("conformance")?;
    let schema = test_schema(&base).await.expect("create a test schema");
    let store = super::super::connect(schema.url(), 4)
        .await
        .expect("connect to PostgreSQL");
    store.migrate().await.expect("migrate");
    Some((store, schema))
}

conformance_suite!(make);

#[tokio::test]
async fn test_schema_urls_select_the_schema_and_clean_up() {
    let Some(base) = test_database_url("test schema helper") else {
        return;
    };
    let schema = test_schema(&base).await.unwrap();
    let name = schema.name().to_string();
    assert!(schema.url().starts_with(&base), "{}", schema.url());
    let pool = sqlx::PgPool::connect(schema.url()).await.unwrap();
    let current: String = sqlx::query_scalar("select current_schema()::text")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(current, name, "the URL's options set search_path");
    pool.close().await;
    // A connection left open must not keep the schema alive.
    let straggler = sqlx::PgPool::connect(schema.url()).await.unwrap();
    sqlx::query("create table t (x int)")
        .execute(&straggler)
        .await
        .unwrap();
    schema.drop_schema().await.unwrap();
    let admin = sqlx::PgPool::connect(&base).await.unwrap();
    let left: i64 = sqlx::query_scalar("select count(*) from pg_namespace where nspname = $1")
        .bind(&name)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(left, 0);
    admin.close().await;
}

/// While PostgreSQL does not answer, requests fail within the acquire timeout
/// with `Unavailable` instead of hanging; once it answers again the same pool
/// recovers, and a retried client_id is stored once.
#[tokio::test]
async fn an_outage_fails_fast_with_unavailable_and_the_pool_recovers() {
    let Some(base) = test_database_url("outage test") else {
        return;
    };
    let schema = test_schema(&base).await.unwrap();
    let relay = super::super::postgres::Relay::start(schema.url())
        .await
        .unwrap();
    let store = super::super::connect(relay.url(), 2).await.unwrap();
    store.migrate().await.unwrap();
    let ann = user(&store, "ann").await;
    let r = room(&store, "r", RoomKind::Group, &[(ann.id, Role::Owner)]).await;
    store
        .insert_messages(&[text(&r, &ann, "before", Some("k0"), NOW)])
        .await
        .unwrap();

    relay.stall();
    let started = std::time::Instant::now();
    let failed = store
        .insert_messages(&[text(&r, &ann, "during", Some("k1"), NOW)])
        .await;
    let waited = started.elapsed();
    assert!(
        matches!(failed, Err(StoreError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(
        waited < std::time::Duration::from_secs(5),
        "took {waited:?}"
    );

    relay.resume();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while store.ping().await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool did not recover"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let retried = store
        .insert_messages(&[text(&r, &ann, "during", Some("k1"), NOW)])
        .await
        .unwrap();
    assert!(matches!(&retried[0], InsertOutcome::Inserted(m) if m.seq == 2));
    let again = store
        .insert_messages(&[text(&r, &ann, "during", Some("k1"), NOW)])
        .await
        .unwrap();
    assert!(matches!(&again[0], InsertOutcome::Duplicate(m) if m.seq == 2));
    eprintln!("an unanswered request failed after {waited:?}");

    store.close().await;
    drop(relay);
    schema.drop_schema().await.unwrap();
}

/// Several nodes (each its own pool) write to the same rooms at once, each
/// node sending every keyed message once (as clients retrying through
/// another node would): seqs must come out 1..=N per room with no gap or
/// repeat, each client_id stored once, and every node told the same story.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn nodes_writing_at_once_keep_seqs_gapless_and_client_ids_unique() {
    const NODES: usize = 3;
    const TASKS_PER_NODE: usize = 4;
    const KEYS_PER_USER: usize = 60;
    const UNKEYED_PER_TASK: usize = 5;

    let Some((first, schema)) = make().await else {
        return;
    };
    let started = std::time::Instant::now();
    let mut nodes = vec![first];
    for _ in 1..NODES {
        nodes.push(
            super::super::connect(schema.url(), 4)
                .await
                .expect("connect another node"),
        );
    }
    let store = &nodes[0];
    let people = [
        user(store, "ann").await,
        user(store, "bob").await,
        user(store, "cat").await,
    ];
    let members: Vec<(UserId, Role)> = people.iter().map(|u| (u.id, Role::Member)).collect();
    let hot = room(store, "hot", RoomKind::Group, &members).await;
    let side = room(store, "side", RoomKind::Group, &members).await;

    // Every (sender, client_id), with the room it goes to: a quarter to "side",
    // so batches span two rooms and lock them both.
    let keyed: Vec<(usize, String, &Room)> = (0..people.len())
        .flat_map(|p| (0..KEYS_PER_USER).map(move |k| (p, k)))
        .map(|(p, k)| (p, format!("c{k}"), if k % 4 == 0 { &side } else { &hot }))
        .collect();

    let mut tasks = JoinSet::new();
    for (n, node) in nodes.iter().enumerate() {
        // Each node walks the messages in its own order.
        let stride = [7, 11, 13][n % 3];
        let order: Vec<usize> = (0..keyed.len())
            .map(|i| (i * stride + n) % keyed.len())
            .collect();
        for t in 0..TASKS_PER_NODE {
            let mut mine: Vec<NewMessage> = order
                .iter()
                .skip(t)
                .step_by(TASKS_PER_NODE)
                .map(|&i| {
                    let (p, key, room) = &keyed[i];
                    text(room, &people[*p], &format!("{key} via {n}"), Some(key), NOW)
                })
                .collect();
            for u in 0..UNKEYED_PER_TASK {
                mine.insert(u * 3, text(&hot, &people[t % 3], "no key", None, NOW));
            }
            let node = Arc::clone(node);
            tasks.spawn(async move {
                let mut outcomes = Vec::new();
                for batch in mine.chunks(3) {
                    outcomes.extend(node.insert_messages(batch).await.expect("insert batch"));
                }
                outcomes
            });
        }
    }
    let mut outcomes = Vec::new();
    while let Some(done) = tasks.join_next().await {
        outcomes.extend(done.expect("writer task"));
    }
    let elapsed = started.elapsed();

    let keyed_in = |r: &Room| keyed.iter().filter(|(_, _, room)| room.id == r.id).count();
    let unkeyed = NODES * TASKS_PER_NODE * UNKEYED_PER_TASK;
    for (r, expected) in [(&hot, keyed_in(&hot) + unkeyed), (&side, keyed_in(&side))] {
        let page = store
            .list_messages(&r.id, Page::Latest { limit: 10_000 })
            .await
            .unwrap();
        let seqs: Vec<i64> = page.messages.iter().map(|m| m.seq).collect();
        let expected_seqs: Vec<i64> = (1..=expected as i64).collect();
        assert_eq!(seqs, expected_seqs, "room {}: gapless seqs", r.id);
        assert_eq!(
            store.get_room(&r.id).await.unwrap().unwrap().last_seq,
            expected as i64
        );
        let mut keys = HashSet::new();
        for m in &page.messages {
            if let Some(client_id) = &m.client_id {
                let sender = m.sender.as_ref().unwrap().id;
                assert!(
                    keys.insert((sender, client_id.clone())),
                    "{client_id} stored twice"
                );
            }
        }
        assert_eq!(keys.len(), keyed_in(r));
    }

    // Every node's answer for a key names the one stored message.
    let mut by_key: HashMap<(RoomId, UserId, String), Vec<&InsertOutcome>> = HashMap::new();
    for o in &outcomes {
        let m = o.message().unwrap();
        if let (Some(sender), Some(key)) = (&m.sender, &m.client_id) {
            by_key
                .entry((m.room_id.clone(), sender.id, key.clone()))
                .or_default()
                .push(o);
        }
    }
    assert_eq!(by_key.len(), keyed.len());
    for (key, answers) in &by_key {
        assert_eq!(answers.len(), NODES, "{key:?}");
        let inserted = answers
            .iter()
            .filter(|o| matches!(o, InsertOutcome::Inserted(_)))
            .count();
        assert_eq!(inserted, 1, "{key:?} inserted once");
        let first = answers[0].message().unwrap();
        assert!(
            answers
                .iter()
                .all(|o| o.message().unwrap().id == first.id
                    && o.message().unwrap().seq == first.seq),
            "{key:?}: nodes disagree"
        );
    }
    eprintln!(
        "{} inserts from {} nodes x {} tasks in {elapsed:?}",
        outcomes.len(),
        NODES,
        TASKS_PER_NODE
    );

    for node in &nodes {
        node.close().await;
    }
    schema.drop_schema().await.expect("drop the test schema");
}
