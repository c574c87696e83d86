//! Messages: seqs, idempotent client ids, batches, paging, active days.

use super::*;

pub async fn seqs_are_gapless_per_room_and_client_ids_idempotent(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let a = room(
        store,
        "a",
        RoomKind::Group,
        &[(ann.id, Role::Owner), (bob.id, Role::Member)],
    )
    .await;
    let b = room(store, "b", RoomKind::Group, &[(ann.id, Role::Owner)]).await;
    let first = store
        .insert_messages(&[
            text(&a, &ann, "a1", Some("k1"), NOW),
            text(&b, &ann, "b1", None, NOW),
            text(&a, &ann, "a2", None, NOW),
            text(&a, &ann, "a1 again", Some("k1"), NOW),
            text(&a, &bob, "bob's k1", Some("k1"), NOW),
        ])
        .await
        .unwrap();
    assert_eq!(seqs(&first), [1, 1, 2, 1, 3]);
    assert!(matches!(first[3], InsertOutcome::Duplicate(_)));
    assert_eq!(
        first[3].message().unwrap().id,
        first[0].message().unwrap().id
    );
    assert_eq!(first[3].message().unwrap().content, "a1");

    let second = store
        .insert_messages(&[
            text(&a, &ann, "retry", Some("k1"), NOW),
            text(&a, &ann, "a4", Some("k2"), NOW),
        ])
        .await
        .unwrap();
    assert!(
        matches!(&second[0], InsertOutcome::Duplicate(m) if m.id == first[0].message().unwrap().id && m.seq == 1)
    );
    assert!(matches!(&second[1], InsertOutcome::Inserted(m) if m.seq == 4));
    assert_eq!(store.get_room(&a.id).await.unwrap().unwrap().last_seq, 4);

    let stored = store
        .list_messages(&a.id, Page::Latest { limit: 10 })
        .await
        .unwrap();
    assert_eq!(
        stored.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let m = &stored.messages[0];
    assert_eq!(
        (m.content.as_str(), m.client_id.as_deref(), m.message_type),
        ("a1", Some("k1"), MessageType::Text)
    );
    assert_eq!(m.sender.as_ref().unwrap().username, "ann");
    assert_eq!(m.room_id, a.id);

    let system = NewMessage {
        sender: None,
        message_type: MessageType::System,
        event: Some(r#"{"event":"room_archived"}"#.into()),
        attachments: Vec::new(),
        ..text(&a, &ann, "archived", None, NOW)
    };
    let outcome = store.insert_messages(&[system]).await.unwrap();
    let stored = store
        .list_messages(&a.id, Page::After { seq: 4, limit: 5 })
        .await
        .unwrap();
    assert_eq!(stored.messages, vec![outcome[0].message().unwrap().clone()]);
    assert!(stored.messages[0].sender.is_none());

    let ids: Vec<MessageId> = first
        .iter()
        .take(3)
        .map(|o| o.message().unwrap().id)
        .collect();
    assert_eq!(
        store.max_seq_of(&a.id, &ids).await.unwrap(),
        Some(2),
        "the b1 id is ignored"
    );
    assert_eq!(
        store.max_seq_of(&a.id, &[MessageId::new()]).await.unwrap(),
        None
    );
    assert!(matches!(
        store
            .insert_messages(&[NewMessage {
                room_id: room_id("ghost"),
                ..text(&a, &ann, "x", None, NOW)
            }])
            .await,
        Err(StoreError::NotFound)
    ));
}

pub async fn active_days_are_counted_per_user(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let r = room(
        store,
        "r",
        RoomKind::Group,
        &[(ann.id, Role::Owner), (bob.id, Role::Member)],
    )
    .await;
    let today = day_of(NOW);
    store
        .insert_messages(&[
            text(&r, &ann, "d0", None, NOW),
            text(&r, &ann, "d0 again", None, NOW + 1),
            text(&r, &ann, "d-2", None, NOW - 2 * DAY_MS),
            text(&r, &ann, "d-9", None, NOW - 9 * DAY_MS),
            text(&r, &bob, "d-1", None, NOW - DAY_MS),
        ])
        .await
        .unwrap();
    let counts = store
        .count_active_days(&[ann.id, bob.id, UserId::new()], today - 6)
        .await
        .unwrap();
    assert_eq!(counts, HashMap::from([(ann.id, 2), (bob.id, 1)]));
    assert!(
        store
            .count_active_days(&[], today)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Batches far larger than one statement (the SQLite store writes them in
/// chunks of up to 256 rows): seqs stay gapless per room, repeated client ids
/// anywhere in a batch or in an earlier one return the original.
pub async fn large_batches_keep_seqs_and_client_ids(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let members = [(ann.id, Role::Owner), (bob.id, Role::Member)];
    let a = room(store, "big-a", RoomKind::Group, &members).await;
    let b = room(store, "big-b", RoomKind::Group, &members).await;
    let first: Vec<NewMessage> = (0..700)
        .map(|i| {
            let (to, from) = if i % 3 == 0 { (&b, &bob) } else { (&a, &ann) };
            text(to, from, &format!("m{i}"), Some(&format!("k{i}")), NOW + i)
        })
        .collect();
    let stored = store.insert_messages(&first).await.unwrap();
    assert!(
        stored
            .iter()
            .all(|o| matches!(o, InsertOutcome::Inserted(_)))
    );
    let in_room = |outcomes: &[InsertOutcome], room: &Room| -> Vec<i64> {
        outcomes
            .iter()
            .filter(|o| matches!(o, InsertOutcome::Inserted(m) if m.room_id == room.id))
            .map(|o| o.message().unwrap().seq)
            .collect()
    };
    let (in_a, in_b) = (in_room(&stored, &a), in_room(&stored, &b));
    assert_eq!(in_a, (1..=466).collect::<Vec<_>>());
    assert_eq!(in_b, (1..=234).collect::<Vec<_>>());

    // Every other message repeats a client id of the first batch (its own
    // sender and room); the rest are new, and one new id appears twice.
    let second: Vec<NewMessage> = (0..301)
        .map(|i| {
            // The last one repeats message 149's new id, from the same sender and room.
            let n = if i == 300 { 298 } else { i * 2 };
            let (to, from) = if n % 3 == 0 { (&b, &bob) } else { (&a, &ann) };
            let key = if i == 300 {
                "new-149".to_string()
            } else if i % 2 == 0 {
                format!("k{n}")
            } else {
                format!("new-{i}")
            };
            text(
                to,
                from,
                &format!("again {i}"),
                Some(&key),
                NOW + 1000 + i as i64,
            )
        })
        .collect();
    let again = store.insert_messages(&second).await.unwrap();
    for (i, outcome) in again.iter().enumerate().take(300) {
        if i % 2 == 0 {
            let original = stored[i * 2].message().unwrap();
            assert!(
                matches!(outcome, InsertOutcome::Duplicate(m) if m.id == original.id && m.seq == original.seq),
                "message {i} repeats k{}",
                i * 2
            );
        } else {
            assert!(
                matches!(outcome, InsertOutcome::Inserted(_)),
                "message {i} is new"
            );
        }
    }
    assert!(
        matches!(&again[300], InsertOutcome::Duplicate(m) if m.id == again[149].message().unwrap().id),
        "a client id repeated inside one batch returns its first message"
    );
    let (new_a, new_b) = (in_room(&again, &a), in_room(&again, &b));
    assert_eq!(new_a, (467..467 + new_a.len() as i64).collect::<Vec<_>>());
    assert_eq!(new_b, (235..235 + new_b.len() as i64).collect::<Vec<_>>());
    assert_eq!(new_a.len() + new_b.len(), 150);
    let last_a = store.get_room(&a.id).await.unwrap().unwrap().last_seq;
    assert_eq!(last_a, 466 + new_a.len() as i64);
    let page = store
        .list_messages(&a.id, Page::Latest { limit: 200 })
        .await
        .unwrap();
    assert_eq!(page.messages.last().unwrap().seq, last_a);
}

/// Paging must agree with a plain `Vec` model for any page request.
pub async fn paging_matches_a_vec_model(store: &DynStore) {
    let ann = user(store, "ann").await;
    let r = room(store, "log", RoomKind::Group, &[(ann.id, Role::Owner)]).await;
    let batch: Vec<NewMessage> = (0..57)
        .map(|i| text(&r, &ann, &format!("m{i}"), None, NOW + i))
        .collect();
    store.insert_messages(&batch).await.unwrap();
    let all: Vec<i64> = (1..=57).collect();
    for limit in [1u32, 2, 7, 50, 57, 200] {
        let latest = store
            .list_messages(&r.id, Page::Latest { limit })
            .await
            .unwrap();
        let n = (limit as usize).min(all.len());
        assert_eq!(
            latest.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            all[all.len() - n..]
        );
        assert_eq!(latest.has_more, n < all.len());
        for seq in [0i64, 1, 2, 10, 30, 56, 57, 58, 100] {
            let before = store
                .list_messages(&r.id, Page::Before { seq, limit })
                .await
                .unwrap();
            let older: Vec<i64> = all.iter().copied().filter(|s| *s < seq).collect();
            let expected = &older[older.len().saturating_sub(limit as usize)..];
            assert_eq!(
                before.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
                expected,
                "before {seq} limit {limit}"
            );
            assert_eq!(before.has_more, older.len() > limit as usize);
            let after = store
                .list_messages(&r.id, Page::After { seq, limit })
                .await
                .unwrap();
            let newer: Vec<i64> = all.iter().copied().filter(|s| *s > seq).collect();
            let expected = &newer[..newer.len().min(limit as usize)];
            assert_eq!(
                after.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
                expected,
                "after {seq} limit {limit}"
            );
            assert_eq!(after.has_more, newer.len() > limit as usize);
        }
    }
}
