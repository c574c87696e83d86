//! Rooms, members, ownership and direct rooms.

use super::*;

pub async fn rooms_and_members(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let team = room(
        store,
        "team",
        RoomKind::Group,
        &[(ann.id, Role::Owner), (bob.id, Role::Member)],
    )
    .await;
    assert_eq!(
        (team.kind, team.owner_id, team.last_seq, team.is_archived),
        (RoomKind::Group, Some(ann.id), 0, false)
    );
    let duplicate = store
        .insert_room(
            &NewRoom {
                id: room_id("team"),
                kind: RoomKind::Public,
                name: "x".into(),
                description: String::new(),
                owner_id: None,
                direct_key: None,
                created_at: NOW,
                members: vec![],
                created_by: None,
            },
            None,
        )
        .await;
    assert!(matches!(
        duplicate,
        Err(StoreError::Conflict(Conflict::RoomExists))
    ));
    assert!(store.get_room(&room_id("nope")).await.unwrap().is_none());

    let members = store.list_members(&team.id).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(matches!(
        store
            .insert_member(&team.id, bob.id, Role::Member, NOW)
            .await,
        Err(StoreError::Conflict(Conflict::AlreadyMember))
    ));
    assert!(matches!(
        store
            .insert_member(&team.id, UserId::new(), Role::Member, NOW)
            .await,
        Err(StoreError::NotFound)
    ));
    let admin = store
        .update_member_role(&team.id, bob.id, Role::Admin)
        .await
        .unwrap();
    assert_eq!(admin.role, Role::Admin);
    let muted = store
        .update_member_muted(&team.id, bob.id, Some(NOW + 60_000))
        .await
        .unwrap();
    assert!(muted.is_muted_at(NOW) && !muted.is_muted_at(NOW + 60_000));
    assert!(matches!(
        store
            .update_member_role(&team.id, UserId::new(), Role::Admin)
            .await,
        Err(StoreError::NotFound)
    ));

    let moved = store
        .transfer_ownership(&team.id, ann.id, bob.id, NOW + 1)
        .await
        .unwrap();
    assert_eq!(moved.owner_id, Some(bob.id));
    assert_eq!(
        store
            .get_member(&team.id, ann.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Admin
    );
    assert_eq!(
        store
            .get_member(&team.id, bob.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Owner
    );
    assert!(matches!(
        store
            .transfer_ownership(&team.id, bob.id, UserId::new(), NOW)
            .await,
        Err(StoreError::NotFound)
    ));

    let renamed = store
        .update_room(
            &team.id,
            &RoomChanges {
                name: Some("Team!".into()),
                ..Default::default()
            },
            NOW + 2,
        )
        .await
        .unwrap();
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.description.as_str(),
            renamed.updated_at
        ),
        ("Team!", "", NOW + 2)
    );
    let archived = store
        .update_room(
            &team.id,
            &RoomChanges {
                is_archived: Some(true),
                ..Default::default()
            },
            NOW + 3,
        )
        .await
        .unwrap();
    assert!(archived.is_archived && archived.name == "Team!");
    assert!(matches!(
        store
            .update_room(&room_id("nope"), &RoomChanges::default(), NOW)
            .await,
        Err(StoreError::NotFound)
    ));

    store.delete_member(&team.id, ann.id).await.unwrap();
    assert!(matches!(
        store.delete_member(&team.id, ann.id).await,
        Err(StoreError::NotFound)
    ));
    assert!(store.get_member(&team.id, ann.id).await.unwrap().is_none());
    assert_eq!(
        store.list_room_ids_for_user(bob.id).await.unwrap(),
        vec![team.id.clone()]
    );
}

/// The room's owner as the store holds it: `rooms.owner_id` must name the one
/// member whose role is `owner`.
pub(super) async fn assert_one_owner(store: &DynStore, room: &RoomId, context: &str) -> UserId {
    let owner_id = store.get_room(room).await.unwrap().unwrap().owner_id;
    let owners: Vec<UserId> = store
        .list_members(room)
        .await
        .unwrap()
        .into_iter()
        .filter(|(m, _)| m.role == Role::Owner)
        .map(|(m, _)| m.user_id)
        .collect();
    assert_eq!(
        owners.len(),
        1,
        "{context}: exactly one owner row, got {owners:?}"
    );
    assert_eq!(
        owner_id,
        Some(owners[0]),
        "{context}: owner_id is the owner member"
    );
    owners[0]
}

/// Many transfers at once to different members, then transfers racing the
/// removal of their target: however they interleave, the room keeps exactly
/// one owner, that owner is a member, and `owner_id` names them.
pub async fn ownership_races_leave_one_owner_who_is_a_member(store: &DynStore) {
    const HEIRS: usize = 12;
    const ROUNDS: usize = 10;
    let owner = user(store, "owner").await;
    let mut roster = vec![(owner.id, Role::Owner)];
    let mut heirs = Vec::new();
    for i in 0..HEIRS {
        let heir = user(store, &format!("heir{i}")).await;
        roster.push((heir.id, Role::Member));
        heirs.push(heir.id);
    }
    let estate = room(store, "estate", RoomKind::Group, &roster).await;

    // Every heir is offered the room by the same owner at once: one transfer wins,
    // the others find that `owner` no longer owns it.
    let mut tasks = tokio::task::JoinSet::new();
    for &heir in &heirs {
        let (store, id) = (Arc::clone(store), estate.id.clone());
        tasks.spawn(async move { store.transfer_ownership(&id, owner.id, heir, NOW).await });
    }
    let mut won = 0;
    while let Some(done) = tasks.join_next().await {
        match done.unwrap() {
            Ok(_) => won += 1,
            Err(StoreError::Conflict(Conflict::NotOwner)) => {}
            Err(other) => panic!("a losing transfer failed with {other:?}"),
        }
    }
    assert_eq!(won, 1, "exactly one of the concurrent transfers succeeds");
    let mut current = assert_one_owner(store, &estate.id, "after concurrent transfers").await;

    // A transfer races the removal of its target (and a second transfer to
    // another member): either the removal wins (the transfer finds no such
    // member) or the transfer does (the new owner cannot be removed).
    let mut members: Vec<UserId> = heirs.iter().copied().chain([owner.id]).collect();
    for round in 0..ROUNDS {
        let others: Vec<UserId> = members.iter().copied().filter(|&m| m != current).collect();
        assert!(others.len() >= 2, "enough members left for round {round}");
        let (target, rival) = (others[0], others[1]);
        let (s1, s2, s3) = (Arc::clone(store), Arc::clone(store), Arc::clone(store));
        let (id1, id2, id3) = (estate.id.clone(), estate.id.clone(), estate.id.clone());
        let transfer =
            tokio::spawn(async move { s1.transfer_ownership(&id1, current, target, NOW).await });
        let removal = tokio::spawn(async move { s2.delete_member(&id2, target).await });
        let other =
            tokio::spawn(async move { s3.transfer_ownership(&id3, current, rival, NOW).await });
        let (transfer, removal, other) = (
            transfer.await.unwrap(),
            removal.await.unwrap(),
            other.await.unwrap(),
        );
        let context =
            format!("round {round}: transfer {transfer:?}, removal {removal:?}, other {other:?}");
        assert!(
            !(transfer.is_ok() && other.is_ok()),
            "{context}: two transfers from the same owner both succeeded"
        );
        if removal.is_ok() {
            assert!(
                transfer.is_err(),
                "{context}: the removed target became owner"
            );
            members.retain(|&m| m != target);
        }
        current = assert_one_owner(store, &estate.id, &context).await;
        assert!(
            members.contains(&current),
            "{context}: the owner is a member"
        );
        assert!(
            store
                .get_member(&estate.id, current)
                .await
                .unwrap()
                .is_some(),
            "{context}: the owner has a membership row"
        );
    }

    // Roles change around the owner, never onto or off them.
    assert!(matches!(
        store
            .update_member_role(&estate.id, current, Role::Admin)
            .await,
        Err(StoreError::Conflict(Conflict::MemberIsOwner))
    ));
    let someone = *members.iter().find(|&&m| m != current).unwrap();
    assert!(matches!(
        store
            .update_member_role(&estate.id, someone, Role::Owner)
            .await,
        Err(StoreError::Conflict(Conflict::MemberIsOwner))
    ));
    assert!(matches!(
        store
            .update_member_role(&estate.id, UserId::new(), Role::Admin)
            .await,
        Err(StoreError::NotFound)
    ));

    // The repair: any member becomes the one owner, in a room whose rows were
    // left inconsistent (two owner rows) as well as in a sound one.
    let (a, b) = (user(store, "a").await, user(store, "b").await);
    let broken = room(
        store,
        "broken",
        RoomKind::Group,
        &[(a.id, Role::Owner), (b.id, Role::Owner)],
    )
    .await;
    assert!(matches!(
        store.set_owner(&broken.id, owner.id, NOW).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.set_owner(&room_id("nope"), a.id, NOW).await,
        Err(StoreError::NotFound)
    ));
    let repaired = store.set_owner(&broken.id, b.id, NOW + 9).await.unwrap();
    assert_eq!(
        (repaired.owner_id, repaired.updated_at),
        (Some(b.id), NOW + 9)
    );
    assert_eq!(assert_one_owner(store, &broken.id, "repaired").await, b.id);
    assert_eq!(
        store
            .get_member(&broken.id, a.id)
            .await
            .unwrap()
            .unwrap()
            .role,
        Role::Admin
    );
    store.set_owner(&estate.id, someone, NOW).await.unwrap();
    assert_eq!(
        assert_one_owner(store, &estate.id, "moved by repair").await,
        someone
    );
    current = someone;

    // The owner cannot be removed while others remain; once alone they leave
    // the room without an owner (nothing left pointing at a non-member).
    assert!(matches!(
        store.delete_member(&estate.id, current).await,
        Err(StoreError::Conflict(Conflict::OwnerMustTransfer))
    ));
    for &m in members.iter().filter(|&&m| m != current) {
        store.delete_member(&estate.id, m).await.unwrap();
    }
    store.delete_member(&estate.id, current).await.unwrap();
    let left = store.get_room(&estate.id).await.unwrap().unwrap();
    assert_eq!(
        left.owner_id, None,
        "the last owner leaving leaves no owner behind"
    );
    assert!(store.list_members(&estate.id).await.unwrap().is_empty());
}

pub async fn direct_rooms_are_unique_per_pair(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let key = crate::domain::room::direct_key(ann.id, bob.id);
    let new = |id: &str| NewRoom {
        id: room_id(id),
        kind: RoomKind::Direct,
        name: String::new(),
        description: String::new(),
        owner_id: None,
        direct_key: Some(key.clone()),
        created_at: NOW,
        members: vec![(ann.id, Role::Member), (bob.id, Role::Member)],
        created_by: Some(ann.id),
    };
    let dm = store.insert_room(&new("dm1"), None).await.unwrap();
    assert!(matches!(
        store.insert_room(&new("dm2"), None).await,
        Err(StoreError::Conflict(Conflict::RoomExists))
    ));
    assert!(
        store.get_room(&room_id("dm2")).await.unwrap().is_none(),
        "nothing half-created"
    );
    assert_eq!(
        store.get_direct_room(&key).await.unwrap().unwrap().id,
        dm.id
    );
    let listed = store.list_rooms_for_user(ann.id).await.unwrap();
    assert_eq!(listed[0].peer.as_ref().unwrap().id, bob.id);
}
