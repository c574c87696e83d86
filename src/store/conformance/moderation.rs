//! Mutes, bans and blocks.

use super::*;

pub(super) fn ban(room: &Room, user: &User, by: &User, at: i64) -> Ban {
    Ban {
        room_id: room.id.clone(),
        user_id: user.id,
        banned_by: Some(by.id),
        banned_at: at,
        reason: format!("{} was rude", user.username),
    }
}

/// A mute and a ban belong to the user in the room, not to the membership:
/// leaving and coming back, by joining, being added or an invite, keeps them.
pub async fn mutes_and_bans_outlive_the_membership(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let cat = user(store, "cat").await;
    let lobby = room(
        store,
        "lobby",
        RoomKind::Public,
        &[
            (ann.id, Role::Owner),
            (bob.id, Role::Member),
            (cat.id, Role::Member),
        ],
    )
    .await;
    let until = NOW + 60_000;
    store
        .update_member_muted(&lobby.id, bob.id, Some(until))
        .await
        .unwrap();
    store.delete_member(&lobby.id, bob.id).await.unwrap();
    assert!(store.get_member(&lobby.id, bob.id).await.unwrap().is_none());
    let back = store
        .insert_member(&lobby.id, bob.id, Role::Member, NOW + 1)
        .await
        .unwrap();
    assert_eq!(
        back.muted_until,
        Some(until),
        "the mute survives leave and join"
    );
    let listed = store.list_members(&lobby.id).await.unwrap();
    let bob_listed = listed.iter().find(|(m, _)| m.user_id == bob.id).unwrap();
    assert_eq!(bob_listed.0.muted_until, Some(until));
    assert!(matches!(
        store
            .update_member_muted(&lobby.id, UserId::new(), Some(until))
            .await,
        Err(StoreError::NotFound)
    ));

    // Through an invite.
    store
        .insert_invite(
            &Invite {
                code: "door".into(),
                room_id: lobby.id.clone(),
                created_by: ann.id,
                created_at: NOW,
                expires_at: None,
                max_uses: None,
                uses: 0,
                revoked: false,
            },
            100,
        )
        .await
        .unwrap();
    store.delete_member(&lobby.id, bob.id).await.unwrap();
    let invited = store.redeem_invite("door", bob.id, NOW + 2).await.unwrap();
    assert_eq!(
        invited.muted_until,
        Some(until),
        "the mute survives an invite"
    );
    let unmuted = store
        .update_member_muted(&lobby.id, bob.id, None)
        .await
        .unwrap();
    assert_eq!(unmuted.muted_until, None);
    store.delete_member(&lobby.id, bob.id).await.unwrap();
    let clean = store
        .insert_member(&lobby.id, bob.id, Role::Member, NOW + 3)
        .await
        .unwrap();
    assert_eq!(clean.muted_until, None, "unmuted stays unmuted");

    // A ban ends the membership and keeps the user out every way, until lifted.
    store
        .update_member_muted(&lobby.id, cat.id, Some(until))
        .await
        .unwrap();
    assert!(
        store
            .insert_ban(&ban(&lobby, &cat, &ann, NOW + 4))
            .await
            .unwrap(),
        "was a member"
    );
    assert!(store.get_member(&lobby.id, cat.id).await.unwrap().is_none());
    assert!(matches!(
        store
            .insert_member(&lobby.id, cat.id, Role::Member, NOW)
            .await,
        Err(StoreError::Conflict(Conflict::Banned))
    ));
    let uses = store.get_invite("door").await.unwrap().unwrap().uses;
    assert!(matches!(
        store.redeem_invite("door", cat.id, NOW).await,
        Err(StoreError::Conflict(Conflict::Banned))
    ));
    assert_eq!(
        store.get_invite("door").await.unwrap().unwrap().uses,
        uses,
        "a refused use is not counted"
    );
    assert!(store.get_member(&lobby.id, cat.id).await.unwrap().is_none());
    // Banning someone who is not a member (bob, pre-emptively, after cat).
    store.delete_member(&lobby.id, bob.id).await.unwrap();
    assert!(
        !store
            .insert_ban(&ban(&lobby, &bob, &ann, NOW + 5))
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_bans(&lobby.id).await.unwrap(),
        vec![
            ban(&lobby, &bob, &ann, NOW + 5),
            ban(&lobby, &cat, &ann, NOW + 4)
        ],
        "most recent first, with who, when and why"
    );
    // Banning again updates the ban.
    let mut again = ban(&lobby, &bob, &ann, NOW + 6);
    again.reason = String::new();
    again.banned_by = None;
    assert!(!store.insert_ban(&again).await.unwrap());
    assert_eq!(store.list_bans(&lobby.id).await.unwrap()[0], again);
    assert!(matches!(
        store.insert_ban(&ban(&lobby, &ann, &ann, NOW)).await,
        Err(StoreError::Conflict(Conflict::MemberIsOwner))
    ));
    assert!(store.get_member(&lobby.id, ann.id).await.unwrap().is_some());
    let ghost = User {
        id: UserId::new(),
        ..ann.clone()
    };
    assert!(matches!(
        store.insert_ban(&ban(&lobby, &ghost, &ann, NOW)).await,
        Err(StoreError::NotFound)
    ));
    let nowhere = Room {
        id: room_id("nowhere"),
        ..lobby.clone()
    };
    assert!(matches!(
        store.insert_ban(&ban(&nowhere, &cat, &ann, NOW)).await,
        Err(StoreError::NotFound)
    ));

    store.delete_ban(&lobby.id, cat.id).await.unwrap();
    assert!(matches!(
        store.delete_ban(&lobby.id, cat.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.delete_ban(&lobby.id, ann.id).await,
        Err(StoreError::NotFound)
    ));
    let returned = store.redeem_invite("door", cat.id, NOW + 7).await.unwrap();
    assert_eq!(returned.muted_until, Some(until), "unbanned, still muted");
    assert_eq!(store.list_bans(&lobby.id).await.unwrap(), vec![again]);
}

/// Joins and bans racing for the same users: whatever the order, nobody is
/// both banned and a member afterwards.
pub async fn a_join_racing_a_ban_never_outlives_it(store: &DynStore) {
    const USERS: usize = 16;
    let ann = user(store, "ann").await;
    let hall = room(store, "hall", RoomKind::Public, &[(ann.id, Role::Owner)]).await;
    let mut people = Vec::new();
    for i in 0..USERS {
        people.push(user(store, &format!("u{i}")).await);
    }
    let mut tasks = tokio::task::JoinSet::new();
    for person in &people {
        let (s1, s2) = (Arc::clone(store), Arc::clone(store));
        let (id1, uid) = (hall.id.clone(), person.id);
        let b = ban(&hall, person, &ann, NOW);
        tasks.spawn(async move {
            let joined = s1.insert_member(&id1, uid, Role::Member, NOW).await;
            // NotFound: joined, then banned before the member could be read back.
            assert!(
                matches!(
                    joined,
                    Ok(_) | Err(StoreError::Conflict(Conflict::Banned)) | Err(StoreError::NotFound)
                ),
                "{joined:?}"
            );
        });
        tasks.spawn(async move {
            s2.insert_ban(&b).await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(store.list_bans(&hall.id).await.unwrap().len(), USERS);
    let members = store.list_members(&hall.id).await.unwrap();
    assert_eq!(members.len(), 1, "only the owner is left: {members:?}");
}

pub async fn blocks_are_one_way_and_capped(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let cat = user(store, "cat").await;
    let dan = user(store, "dan").await;
    store.insert_block(ann.id, bob.id, NOW, 2).await.unwrap();
    store
        .insert_block(ann.id, bob.id, NOW + 5, 2)
        .await
        .unwrap();
    let blocks = store.list_blocks(ann.id).await.unwrap();
    assert_eq!(
        blocks.iter().map(|(u, at)| (u.id, *at)).collect::<Vec<_>>(),
        vec![(bob.id, NOW)],
        "blocking again changes nothing"
    );
    assert!(store.list_blocks(bob.id).await.unwrap().is_empty());
    assert_eq!(
        store
            .list_blockers(bob.id, &[ann.id, cat.id])
            .await
            .unwrap(),
        vec![ann.id]
    );
    assert!(
        store
            .list_blockers(ann.id, &[bob.id])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.list_blockers(bob.id, &[]).await.unwrap().is_empty());
    assert!(store.is_blocked_between(ann.id, bob.id).await.unwrap());
    assert!(store.is_blocked_between(bob.id, ann.id).await.unwrap());
    assert!(!store.is_blocked_between(ann.id, cat.id).await.unwrap());

    store
        .insert_block(ann.id, cat.id, NOW + 1, 2)
        .await
        .unwrap();
    assert!(matches!(
        store.insert_block(ann.id, dan.id, NOW + 2, 2).await,
        Err(StoreError::Conflict(Conflict::TooManyBlocks))
    ));
    store
        .insert_block(ann.id, bob.id, NOW + 2, 2)
        .await
        .unwrap();
    store
        .insert_block(bob.id, dan.id, NOW + 2, 2)
        .await
        .unwrap();
    assert_eq!(
        store
            .list_blocks(ann.id)
            .await
            .unwrap()
            .iter()
            .map(|(u, _)| u.id)
            .collect::<Vec<_>>(),
        vec![cat.id, bob.id],
        "most recent first"
    );
    assert!(matches!(
        store.insert_block(ann.id, UserId::new(), NOW, 10).await,
        Err(StoreError::NotFound)
    ));

    store.delete_block(ann.id, bob.id).await.unwrap();
    assert!(matches!(
        store.delete_block(ann.id, bob.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(!store.is_blocked_between(ann.id, bob.id).await.unwrap());
    store
        .insert_block(ann.id, dan.id, NOW + 3, 2)
        .await
        .unwrap();
}
