//! Room lists and their pages, unread counts, invites.

use super::*;

pub async fn room_lists_show_unread_and_last_message(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    room(
        store,
        "quiet",
        RoomKind::Group,
        &[(ann.id, Role::Owner), (bob.id, Role::Member)],
    )
    .await;
    let busy = room(
        store,
        "busy",
        RoomKind::Public,
        &[(ann.id, Role::Owner), (bob.id, Role::Member)],
    )
    .await;
    let old = room(store, "old", RoomKind::Public, &[(ann.id, Role::Owner)]).await;
    store
        .update_room(
            &old.id,
            &RoomChanges {
                is_archived: Some(true),
                ..Default::default()
            },
            NOW,
        )
        .await
        .unwrap();
    store
        .insert_messages(&[
            text(&busy, &ann, "one", None, NOW + 1),
            text(&busy, &ann, "two", None, NOW + 2),
            text(&busy, &bob, "mine", None, NOW + 3),
        ])
        .await
        .unwrap();
    let rooms = store.list_rooms_for_user(bob.id).await.unwrap();
    assert_eq!(
        rooms.iter().map(|r| r.room.id.as_str()).collect::<Vec<_>>(),
        ["busy", "quiet"]
    );
    assert_eq!(
        (rooms[0].unread, rooms[0].member_count, rooms[0].role),
        (2, 2, Role::Member)
    );
    assert_eq!(rooms[0].last_message.as_ref().unwrap().content, "mine");
    assert_eq!(rooms[0].room.last_seq, 3);
    assert!(rooms[1].last_message.is_none());
    assert!(rooms[0].peer.is_none());

    assert_eq!(
        store.update_last_read(&busy.id, bob.id, 1).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store.update_last_read(&busy.id, bob.id, 1).await.unwrap(),
        None,
        "unchanged"
    );
    assert_eq!(
        store.update_last_read(&busy.id, bob.id, 0).await.unwrap(),
        None,
        "never lowered"
    );
    assert_eq!(
        store.update_last_read(&busy.id, bob.id, 99).await.unwrap(),
        Some(3),
        "capped at the last seq"
    );
    assert_eq!(
        store.list_rooms_for_user(bob.id).await.unwrap()[0].unread,
        0
    );
    assert_eq!(
        store.read_positions(&busy.id, bob.id).await.unwrap(),
        (3, 0)
    );
    assert_eq!(
        store.read_positions(&busy.id, ann.id).await.unwrap(),
        (0, 3)
    );
    assert_eq!(
        store
            .update_last_read(&busy.id, UserId::new(), 1)
            .await
            .unwrap(),
        None
    );

    // History from before someone joined is not unread for them: their read
    // position starts at the room's last seq, whether added or invited.
    let cat = user(store, "cat").await;
    let member = store
        .insert_member(&busy.id, cat.id, Role::Member, NOW + 4)
        .await
        .unwrap();
    assert_eq!(member.last_read_seq, 3);
    store
        .insert_messages(&[text(&busy, &ann, "after cat came", None, NOW + 5)])
        .await
        .unwrap();
    let cats = store.list_rooms_for_user(cat.id).await.unwrap();
    assert_eq!((cats[0].room.id.as_str(), cats[0].unread), ("busy", 1));
    store
        .insert_invite(
            &Invite {
                code: "late".into(),
                room_id: busy.id.clone(),
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
    let dan = user(store, "dan").await;
    assert_eq!(
        store
            .redeem_invite("late", dan.id, NOW + 6)
            .await
            .unwrap()
            .last_read_seq,
        4
    );

    let public: Vec<(String, i64)> = store
        .list_public_rooms("", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(r, n)| (r.id.to_string(), n))
        .collect();
    assert_eq!(
        public,
        [("busy".to_string(), 4)],
        "group and archived rooms are not listed"
    );
    assert_eq!(store.list_public_rooms("BU", 10).await.unwrap().len(), 1);
    assert!(store.list_public_rooms("zzz", 10).await.unwrap().is_empty());
}

/// What a room list entry says, to compare pages with the whole list.
pub(super) fn summary_key(
    s: &RoomSummary,
) -> (
    String,
    Role,
    i64,
    i64,
    i64,
    Option<MessageId>,
    Option<UserId>,
) {
    (
        s.room.id.to_string(),
        s.role,
        s.member_count,
        s.unread,
        s.last_read_seq,
        s.last_message.as_ref().map(|m| m.id),
        s.peer.as_ref().map(|p| p.id),
    )
}

/// Keyset pages of the room list, at any page size, add up to the whole list
/// in its order: no gap, no repeat, ties of activity broken by id.
pub async fn room_pages_add_up_to_the_room_list(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let mut rooms = Vec::new();
    for i in 0..23 {
        // Many share a creation time (a tie the cursor must break by id).
        let created = NOW + (i % 4);
        let r = store
            .insert_room(
                &NewRoom {
                    id: room_id(&format!("room-{i:02}")),
                    kind: RoomKind::Group,
                    name: format!("room {i}"),
                    description: String::new(),
                    owner_id: Some(ann.id),
                    direct_key: None,
                    created_at: created,
                    members: vec![(ann.id, Role::Owner), (bob.id, Role::Member)],
                    created_by: Some(ann.id),
                },
                None,
            )
            .await
            .unwrap();
        rooms.push(r);
    }
    let dm = store
        .insert_room(
            &NewRoom {
                id: room_id("dm"),
                kind: RoomKind::Direct,
                name: String::new(),
                description: String::new(),
                owner_id: None,
                direct_key: Some(crate::domain::room::direct_key(ann.id, bob.id)),
                created_at: NOW,
                members: vec![(ann.id, Role::Member), (bob.id, Role::Member)],
                created_by: Some(ann.id),
            },
            None,
        )
        .await
        .unwrap();
    // Activity moves some rooms up, some to the same instant.
    store
        .insert_messages(&[
            text(&rooms[3], &bob, "three", None, NOW + 50),
            text(&rooms[17], &bob, "seventeen", None, NOW + 50),
            text(&dm, &bob, "psst", None, NOW + 60),
            text(&rooms[9], &ann, "nine", None, NOW + 40),
        ])
        .await
        .unwrap();
    let _outsider = room(
        store,
        "elsewhere",
        RoomKind::Group,
        &[(bob.id, Role::Owner)],
    )
    .await;

    let whole: Vec<_> = store
        .list_rooms_for_user(ann.id)
        .await
        .unwrap()
        .iter()
        .map(summary_key)
        .collect();
    assert_eq!(whole.len(), 24);
    assert_eq!(whole[0].0, "dm");
    assert_eq!(whole[0].6, Some(bob.id), "the peer of a direct room");
    for limit in [1, 2, 5, 7, 23, 24, 200] {
        let mut paged = Vec::new();
        let mut cursor: Option<RoomCursor> = None;
        let mut pages = 0;
        loop {
            let page = store
                .list_room_page_for_user(ann.id, cursor.as_ref(), limit)
                .await
                .unwrap();
            pages += 1;
            assert!(page.rooms.len() <= limit as usize);
            paged.extend(page.rooms.iter().map(summary_key));
            match page.next {
                Some(next) => {
                    assert_eq!(
                        Some(next.room_id.as_str()),
                        page.rooms.last().map(|r| r.room.id.as_str()),
                        "the cursor names the page's last room"
                    );
                    cursor = Some(next);
                }
                None => break,
            }
            assert!(pages <= 30, "paging does not end");
        }
        assert_eq!(paged, whole, "limit {limit}");
        assert_eq!(
            pages,
            24usize.div_ceil(limit as usize).max(1),
            "limit {limit}"
        );
    }
    let empty = store
        .list_room_page_for_user(UserId::new(), None, 10)
        .await
        .unwrap();
    assert!(empty.rooms.is_empty() && empty.next.is_none());
}

pub async fn invites_count_uses_and_expire(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let cat = user(store, "cat").await;
    let club = room(store, "club", RoomKind::Group, &[(ann.id, Role::Owner)]).await;
    let invite = |code: &str, expires_at, max_uses| Invite {
        code: code.to_string(),
        room_id: club.id.clone(),
        created_by: ann.id,
        created_at: NOW,
        expires_at,
        max_uses,
        uses: 0,
        revoked: false,
    };
    store
        .insert_invite(&invite("once", None, Some(1)), 100)
        .await
        .unwrap();
    store
        .insert_invite(&invite("gone", Some(NOW - 1), None), 100)
        .await
        .unwrap();
    store
        .insert_invite(&invite("open", None, None), 100)
        .await
        .unwrap();
    assert!(matches!(
        store.insert_invite(&invite("open", None, None), 100).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.get_invite("once").await.unwrap().unwrap(),
        invite("once", None, Some(1))
    );
    assert_eq!(store.list_invites(&club.id).await.unwrap().len(), 3);

    assert_eq!(
        store.redeem_invite("once", bob.id, NOW).await.unwrap().role,
        Role::Member
    );
    assert!(matches!(
        store.redeem_invite("once", cat.id, NOW).await,
        Err(StoreError::Conflict(Conflict::InviteInvalid))
    ));
    assert!(matches!(
        store.redeem_invite("gone", cat.id, NOW).await,
        Err(StoreError::Conflict(Conflict::InviteInvalid))
    ));
    assert!(matches!(
        store.redeem_invite("nope", cat.id, NOW).await,
        Err(StoreError::Conflict(Conflict::InviteInvalid))
    ));
    assert!(matches!(
        store.redeem_invite("open", bob.id, NOW).await,
        Err(StoreError::Conflict(Conflict::AlreadyMember))
    ));
    assert_eq!(
        store.get_invite("open").await.unwrap().unwrap().uses,
        0,
        "a failed use is not counted"
    );
    store.revoke_invite(&club.id, "open").await.unwrap();
    assert!(matches!(
        store.redeem_invite("open", cat.id, NOW).await,
        Err(StoreError::Conflict(Conflict::InviteInvalid))
    ));
    assert!(matches!(
        store.revoke_invite(&club.id, "nope").await,
        Err(StoreError::NotFound)
    ));
}
