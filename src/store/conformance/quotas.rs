//! Quotas: rooms per hour, invites, tokens, blocks, counted where the rows are.

use super::*;

pub(super) fn created_room(id: &str, by: &User, at: i64) -> NewRoom {
    NewRoom {
        id: room_id(id),
        kind: RoomKind::Group,
        name: id.to_string(),
        description: String::new(),
        owner_id: Some(by.id),
        direct_key: None,
        created_at: at,
        members: vec![(by.id, Role::Owner)],
        created_by: Some(by.id),
    }
}

/// Rooms per user and window, invites per room, tokens per user and sessions
/// per user are counted by the store, in the transaction that adds one: the
/// limits hold for concurrent requests (and, on PostgreSQL, across nodes).
pub async fn quotas_are_counted_where_the_rows_are(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let quota = RoomQuota {
        max: 3,
        since: NOW - 1_000,
    };
    // Created before the window: does not count.
    store
        .insert_room(&created_room("old", &ann, NOW - 5_000), Some(quota))
        .await
        .unwrap();
    for i in 0..3 {
        store
            .insert_room(&created_room(&format!("r{i}"), &ann, NOW + i), Some(quota))
            .await
            .unwrap();
    }
    assert!(matches!(
        store
            .insert_room(&created_room("r3", &ann, NOW + 5), Some(quota))
            .await,
        Err(StoreError::Conflict(Conflict::TooManyRooms))
    ));
    assert!(store.get_room(&room_id("r3")).await.unwrap().is_none());
    assert_eq!(
        store
            .rooms_created_since(ann.id, quota.since)
            .await
            .unwrap(),
        (3, Some(NOW))
    );
    assert_eq!(
        store
            .rooms_created_since(bob.id, quota.since)
            .await
            .unwrap(),
        (0, None)
    );
    store
        .insert_room(&created_room("free", &ann, NOW + 6), None)
        .await
        .unwrap();

    // Many at once: exactly `max` get in.
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..12 {
        let (store, bob) = (Arc::clone(store), bob.clone());
        tasks.spawn(async move {
            store
                .insert_room(&created_room(&format!("b{i}"), &bob, NOW), Some(quota))
                .await
        });
    }
    let mut created = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::Conflict(Conflict::TooManyRooms)) => {}
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(created, 3);

    // Usable invites per room: revoked, expired and used-up ones do not count.
    let club = room(store, "club", RoomKind::Group, &[(ann.id, Role::Owner)]).await;
    let invite = |code: &str, expires_at: Option<i64>, max_uses: Option<i64>, at: i64| Invite {
        code: code.to_string(),
        room_id: club.id.clone(),
        created_by: ann.id,
        created_at: at,
        expires_at,
        max_uses,
        uses: 0,
        revoked: false,
    };
    store
        .insert_invite(&invite("a", None, None, NOW), 2)
        .await
        .unwrap();
    store
        .insert_invite(&invite("b", None, Some(1), NOW), 2)
        .await
        .unwrap();
    assert!(matches!(
        store.insert_invite(&invite("c", None, None, NOW), 2).await,
        Err(StoreError::Conflict(Conflict::TooManyInvites))
    ));
    assert!(store.get_invite("c").await.unwrap().is_none());
    store.redeem_invite("b", bob.id, NOW).await.unwrap();
    store
        .insert_invite(&invite("c", Some(NOW + 10), None, NOW), 2)
        .await
        .unwrap();
    store.revoke_invite(&club.id, "a").await.unwrap();
    // "c" expires at NOW + 10: from then on it no longer counts.
    store
        .insert_invite(&invite("d", None, None, NOW + 20), 2)
        .await
        .unwrap();
    store
        .insert_invite(&invite("e", None, None, NOW + 20), 2)
        .await
        .unwrap();
    assert!(matches!(
        store
            .insert_invite(&invite("f", None, None, NOW + 20), 2)
            .await,
        Err(StoreError::Conflict(Conflict::TooManyInvites))
    ));

    // Tokens per user.
    let token = |hash: &str, owner: &User| ApiTokenRecord {
        id: TokenId::new(),
        user_id: owner.id,
        name: hash.to_string(),
        token_hash: hash.to_string(),
        created_at: NOW,
        last_used_at: None,
    };
    store.insert_api_token(&token("t1", &ann), 2).await.unwrap();
    store.insert_api_token(&token("t2", &ann), 2).await.unwrap();
    assert!(matches!(
        store.insert_api_token(&token("t3", &ann), 2).await,
        Err(StoreError::Conflict(Conflict::TooManyTokens))
    ));
    store.insert_api_token(&token("t4", &bob), 2).await.unwrap();
    assert_eq!(store.list_api_tokens(ann.id).await.unwrap().len(), 2);

    // Sessions per user: the least recently used go, and expired ones.
    let session = |hash: &str, owner: &User, last_used_at: i64, expires_at: i64| SessionRecord {
        token_hash: hash.to_string(),
        user_id: owner.id,
        csrf_token: String::new(),
        created_at: NOW - 100,
        expires_at,
        last_used_at,
        user_agent: String::new(),
        ip: String::new(),
    };
    for (hash, used, expires) in [
        ("s1", NOW - 50, NOW + 1000),
        ("s2", NOW - 10, NOW + 1000),
        ("s3", NOW - 30, NOW + 1000),
        ("s4", NOW - 20, NOW + 1000),
        ("gone", NOW, NOW - 1),
    ] {
        store
            .insert_session(&session(hash, &ann, used, expires))
            .await
            .unwrap();
    }
    store
        .insert_session(&session("other", &bob, NOW - 99, NOW + 1000))
        .await
        .unwrap();
    let mut ended = store.delete_excess_sessions(ann.id, 2, NOW).await.unwrap();
    ended.sort();
    assert_eq!(ended, ["gone", "s1", "s3"]);
    let mut left: Vec<String> = store
        .list_sessions(ann.id, NOW)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.token_hash)
        .collect();
    left.sort();
    assert_eq!(left, ["s2", "s4"]);
    assert!(
        store
            .delete_excess_sessions(ann.id, 2, NOW)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.list_sessions(bob.id, NOW).await.unwrap().len(), 1);
}
