//! The store conformance suite: every `Store` method, written against the trait
//! so each back end runs the same tests and must fail the same way.

use std::collections::HashMap;
use std::sync::Arc;

use super::*;
use crate::domain::message::{MessageType, Sender};
use crate::domain::time::{DAY_MS, day_of};

const NOW: i64 = 1_800_000_000_000;

fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        username: name.to_string(),
        password_hash: format!("hash-of-{name}"),
        display_name: String::new(),
        is_admin: false,
        created_at: NOW,
    }
}

async fn user(store: &DynStore, name: &str) -> User {
    store
        .insert_user(&new_user(name))
        .await
        .expect("insert user")
}

fn room_id(name: &str) -> RoomId {
    RoomId::parse(name).expect("room id")
}

async fn room(store: &DynStore, id: &str, kind: RoomKind, members: &[(UserId, Role)]) -> Room {
    store
        .insert_room(&NewRoom {
            id: room_id(id),
            kind,
            name: id.to_string(),
            description: String::new(),
            owner_id: members
                .iter()
                .find(|(_, r)| *r == Role::Owner)
                .map(|(u, _)| *u),
            direct_key: None,
            created_at: NOW,
            members: members.to_vec(),
        })
        .await
        .expect("insert room")
}

fn sender(user: &User) -> Arc<Sender> {
    Arc::new(Sender {
        id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        avatar_version: user.avatar_version,
    })
}

fn text(room: &Room, from: &User, content: &str, client_id: Option<&str>, at: i64) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        room_id: room.id.clone(),
        sender: Some(sender(from)),
        message_type: MessageType::Text,
        content: content.to_string(),
        client_id: client_id.map(str::to_string),
        event: None,
        created_at: at,
    }
}

fn seqs(outcomes: &[InsertOutcome]) -> Vec<i64> {
    outcomes.iter().map(|o| o.message().seq).collect()
}

pub async fn users_are_unique_case_insensitively(store: &DynStore) {
    let ann = user(store, "Ann").await;
    assert_eq!(ann.username, "Ann");
    assert!(matches!(
        store.insert_user(&new_user("aNN")).await,
        Err(StoreError::Conflict("username_taken"))
    ));
    assert_eq!(store.get_user(ann.id).await.unwrap().unwrap(), ann);
    assert_eq!(
        store.get_user_by_username("ANN").await.unwrap().unwrap().id,
        ann.id
    );
    assert!(store.get_user(UserId::new()).await.unwrap().is_none());
    let (id, hash) = store.get_credentials("ann").await.unwrap().unwrap();
    assert_eq!((id, hash.as_str()), (ann.id, "hash-of-Ann"));
    assert!(store.get_credentials("nobody").await.unwrap().is_none());
    assert_eq!(
        store.get_password_hash(ann.id).await.unwrap().as_deref(),
        Some("hash-of-Ann")
    );
    store.update_password(ann.id, "new-hash").await.unwrap();
    assert_eq!(
        store.get_password_hash(ann.id).await.unwrap().as_deref(),
        Some("new-hash")
    );
    assert!(matches!(
        store.update_password(UserId::new(), "x").await,
        Err(StoreError::NotFound)
    ));
}

pub async fn profiles_update_only_given_fields(store: &DynStore) {
    let ann = user(store, "ann").await;
    let changed = store
        .update_profile(
            ann.id,
            &ProfileChanges {
                display_name: Some("安".into()),
                bio: Some("hello".into()),
                theme_mode: Some(ThemeMode::Emo),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.display_name, "安");
    assert_eq!(changed.bio, "hello");
    assert_eq!(changed.theme_mode, ThemeMode::Emo);
    assert_eq!(changed.theme_style, ThemeStyle::Auto);
    let again = store
        .update_profile(
            ann.id,
            &ProfileChanges {
                language: Some(Language::En),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(again.display_name, "安", "untouched fields stay");
    assert_eq!(again.language, Language::En);
    assert!(matches!(
        store
            .update_profile(UserId::new(), &ProfileChanges::default())
            .await,
        Err(StoreError::NotFound)
    ));

    let vip = store
        .update_membership(ann.id, Membership::Vip, Some(NOW + DAY_MS))
        .await
        .unwrap();
    assert_eq!(
        (vip.membership, vip.membership_until),
        (Membership::Vip, Some(NOW + DAY_MS))
    );
    assert!(store.update_admin(ann.id, true).await.unwrap().is_admin);
    store.update_last_seen(ann.id, NOW + 5).await.unwrap();
    assert_eq!(
        store.get_user(ann.id).await.unwrap().unwrap().last_seen_at,
        Some(NOW + 5)
    );
    assert!(matches!(
        store.update_admin(UserId::new(), true).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn avatars_bump_their_version(store: &DynStore) {
    let ann = user(store, "ann").await;
    assert!(store.get_avatar(ann.id).await.unwrap().is_none());
    let first = store.put_avatar(ann.id, b"png-1", NOW).await.unwrap();
    let second = store.put_avatar(ann.id, b"png-2", NOW).await.unwrap();
    assert_eq!((first.avatar_version, second.avatar_version), (1, 2));
    assert_eq!(
        store.get_avatar(ann.id).await.unwrap().as_deref(),
        Some(&b"png-2"[..])
    );
    assert!(matches!(
        store.put_avatar(UserId::new(), b"x", NOW).await,
        Err(StoreError::NotFound)
    ));
}

pub async fn search_and_list_users(store: &DynStore) {
    let ann = user(store, "annabel").await;
    let bob = user(store, "bob").await;
    let _pct = user(store, "per_cent").await;
    store
        .update_profile(
            bob.id,
            &ProfileChanges {
                display_name: Some("Bob Anna".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let found: Vec<String> = store
        .search_users("ANNA", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    assert_eq!(found, ["annabel", "bob"]);
    let found = store.search_users("_", 10).await.unwrap();
    assert_eq!(found.len(), 1, "wildcards match literally");
    assert_eq!(
        store.search_users("a", 1).await.unwrap().len(),
        1,
        "limit applies"
    );
    let mut listed: Vec<UserId> = store
        .list_users(&[ann.id, bob.id, UserId::new()])
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    listed.sort();
    let mut expected = vec![ann.id, bob.id];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(store.list_users(&[]).await.unwrap().is_empty());
}

pub async fn sessions_expire_and_revoke(store: &DynStore) {
    let ann = user(store, "ann").await;
    let session = |hash: &str, expires_at: i64| SessionRecord {
        token_hash: hash.to_string(),
        user_id: ann.id,
        csrf_token: format!("csrf-{hash}"),
        created_at: NOW,
        expires_at,
        last_used_at: NOW,
        user_agent: "test".into(),
        ip: "127.0.0.1".into(),
    };
    store
        .insert_session(&session("a", NOW + 1000))
        .await
        .unwrap();
    store
        .insert_session(&session("b", NOW + 1000))
        .await
        .unwrap();
    store
        .insert_session(&session("old", NOW - 1))
        .await
        .unwrap();
    let (found, owner) = store.get_session("a", NOW).await.unwrap().unwrap();
    assert_eq!(found, session("a", NOW + 1000));
    assert_eq!(owner.id, ann.id);
    assert!(
        store.get_session("old", NOW).await.unwrap().is_none(),
        "expired"
    );
    assert!(
        store.get_session("a", NOW + 1000).await.unwrap().is_none(),
        "expiry is exclusive"
    );
    store
        .touch_session("a", NOW + 10, NOW + 5000)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_session("a", NOW + 2000)
            .await
            .unwrap()
            .unwrap()
            .0
            .last_used_at,
        NOW + 10
    );
    assert_eq!(store.list_sessions(ann.id, NOW).await.unwrap().len(), 2);
    assert_eq!(
        store
            .delete_other_sessions(ann.id, Some("a"))
            .await
            .unwrap(),
        2
    );
    assert!(store.get_session("b", NOW).await.unwrap().is_none());
    store.delete_session("a").await.unwrap();
    assert!(store.get_session("a", NOW).await.unwrap().is_none());
}

pub async fn api_tokens_belong_to_their_owner(store: &DynStore) {
    let ann = user(store, "ann").await;
    let eve = user(store, "eve").await;
    let token = ApiTokenRecord {
        id: TokenId::new(),
        user_id: ann.id,
        name: "bot".into(),
        token_hash: "hash-1".into(),
        created_at: NOW,
        last_used_at: None,
    };
    store.insert_api_token(&token).await.unwrap();
    assert_eq!(
        store.list_api_tokens(ann.id).await.unwrap(),
        vec![token.clone()]
    );
    assert_eq!(
        store
            .get_api_token_user("hash-1", NOW + 100_000)
            .await
            .unwrap()
            .unwrap()
            .id,
        ann.id
    );
    assert_eq!(
        store.list_api_tokens(ann.id).await.unwrap()[0].last_used_at,
        Some(NOW + 100_000)
    );
    assert!(
        store
            .get_api_token_user("nope", NOW)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.delete_api_token(eve.id, token.id).await,
        Err(StoreError::NotFound)
    ));
    store.delete_api_token(ann.id, token.id).await.unwrap();
    assert!(
        store
            .get_api_token_user("hash-1", NOW)
            .await
            .unwrap()
            .is_none()
    );
}

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
        .insert_room(&NewRoom {
            id: room_id("team"),
            kind: RoomKind::Public,
            name: "x".into(),
            description: String::new(),
            owner_id: None,
            direct_key: None,
            created_at: NOW,
            members: vec![],
        })
        .await;
    assert!(matches!(
        duplicate,
        Err(StoreError::Conflict("room_exists"))
    ));
    assert!(store.get_room(&room_id("nope")).await.unwrap().is_none());

    let members = store.list_members(&team.id).await.unwrap();
    assert_eq!(members.len(), 2);
    assert!(matches!(
        store
            .insert_member(&team.id, bob.id, Role::Member, NOW)
            .await,
        Err(StoreError::Conflict("already_member"))
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
    };
    let dm = store.insert_room(&new("dm1")).await.unwrap();
    assert!(matches!(
        store.insert_room(&new("dm2")).await,
        Err(StoreError::Conflict("room_exists"))
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

    let public: Vec<(String, i64)> = store
        .list_public_rooms("", 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(r, n)| (r.id.to_string(), n))
        .collect();
    assert_eq!(
        public,
        [("busy".to_string(), 2)],
        "group and archived rooms are not listed"
    );
    assert_eq!(store.list_public_rooms("BU", 10).await.unwrap().len(), 1);
    assert!(store.list_public_rooms("zzz", 10).await.unwrap().is_empty());
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
        .insert_invite(&invite("once", None, Some(1)))
        .await
        .unwrap();
    store
        .insert_invite(&invite("gone", Some(NOW - 1), None))
        .await
        .unwrap();
    store
        .insert_invite(&invite("open", None, None))
        .await
        .unwrap();
    assert!(matches!(
        store.insert_invite(&invite("open", None, None)).await,
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
        Err(StoreError::Conflict("invite_invalid"))
    ));
    assert!(matches!(
        store.redeem_invite("gone", cat.id, NOW).await,
        Err(StoreError::Conflict("invite_invalid"))
    ));
    assert!(matches!(
        store.redeem_invite("nope", cat.id, NOW).await,
        Err(StoreError::Conflict("invite_invalid"))
    ));
    assert!(matches!(
        store.redeem_invite("open", bob.id, NOW).await,
        Err(StoreError::Conflict("already_member"))
    ));
    assert_eq!(
        store.get_invite("open").await.unwrap().unwrap().uses,
        0,
        "a failed use is not counted"
    );
    store.revoke_invite(&club.id, "open").await.unwrap();
    assert!(matches!(
        store.redeem_invite("open", cat.id, NOW).await,
        Err(StoreError::Conflict("invite_invalid"))
    ));
    assert!(matches!(
        store.revoke_invite(&club.id, "nope").await,
        Err(StoreError::NotFound)
    ));
}

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
    assert_eq!(first[3].message().id, first[0].message().id);
    assert_eq!(first[3].message().content, "a1");

    let second = store
        .insert_messages(&[
            text(&a, &ann, "retry", Some("k1"), NOW),
            text(&a, &ann, "a4", Some("k2"), NOW),
        ])
        .await
        .unwrap();
    assert!(
        matches!(&second[0], InsertOutcome::Duplicate(m) if m.id == first[0].message().id && m.seq == 1)
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
        ..text(&a, &ann, "archived", None, NOW)
    };
    let outcome = store.insert_messages(&[system]).await.unwrap();
    let stored = store
        .list_messages(&a.id, Page::After { seq: 4, limit: 5 })
        .await
        .unwrap();
    assert_eq!(stored.messages, vec![outcome[0].message().clone()]);
    assert!(stored.messages[0].sender.is_none());

    let ids: Vec<MessageId> = first.iter().take(3).map(|o| o.message().id).collect();
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

/// Runs each test of the suite against a fresh store made by `$make`.
macro_rules! conformance_suite {
    ($make:path) => {
        conformance_suite!(@tests $make;
            users_are_unique_case_insensitively,
            profiles_update_only_given_fields,
            avatars_bump_their_version,
            search_and_list_users,
            sessions_expire_and_revoke,
            api_tokens_belong_to_their_owner,
            rooms_and_members,
            direct_rooms_are_unique_per_pair,
            room_lists_show_unread_and_last_message,
            invites_count_uses_and_expire,
            seqs_are_gapless_per_room_and_client_ids_idempotent,
            active_days_are_counted_per_user,
            paging_matches_a_vec_model,
        );
    };
    (@tests $make:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((store, _guard)) = $make().await else { return };
                super::$name(&store).await;
            }
        )+
    };
}

mod sqlite {
    use super::*;

    /// A fresh SQLite file in a temporary directory.
    async fn make() -> Option<(DynStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = super::super::connect(&url, 4).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        Some((store, dir))
    }

    conformance_suite!(make);
}
