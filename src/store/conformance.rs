//! The store conformance suite: every `Store` method, written against the trait
//! so each back end runs the same tests and must fail the same way.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;

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
        .insert_room(
            &NewRoom {
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
                created_by: None,
            },
            None,
        )
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
    store
        .update_profile(
            ann.id,
            &ProfileChanges {
                display_name: Some("50% off \\o/".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    for (query, expected) in [
        ("%", vec!["annabel"]),
        ("0% o", vec!["annabel"]),
        ("\\", vec!["annabel"]),
        ("\\o", vec!["annabel"]),
        // As wildcards these would match "annabel" and "bob".
        ("n_a", vec![]),
        ("b%b", vec![]),
        ("\\%", vec![]),
    ] {
        let found: Vec<String> = store
            .search_users(query, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|u| u.username)
            .collect();
        assert_eq!(found, expected, "{query:?} matches literally");
    }
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
    let eve = user(store, "eve").await;
    store
        .insert_session(&SessionRecord {
            user_id: eve.id,
            ..session("e", NOW + 1000)
        })
        .await
        .unwrap();
    let mut revoked = store
        .delete_other_sessions(ann.id, Some("a"))
        .await
        .unwrap();
    revoked.sort();
    assert_eq!(revoked, ["b", "old"], "expired ones go too");
    assert!(store.get_session("b", NOW).await.unwrap().is_none());
    assert!(
        store.get_session("e", NOW).await.unwrap().is_some(),
        "someone else's"
    );
    assert!(
        store
            .delete_other_sessions(ann.id, Some("a"))
            .await
            .unwrap()
            .is_empty()
    );
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
    store.insert_api_token(&token, 10).await.unwrap();
    assert_eq!(
        store.list_api_tokens(ann.id).await.unwrap(),
        vec![token.clone()]
    );
    let (token_id, owner) = store
        .get_api_token_user("hash-1", NOW + 100_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((token_id, owner.id), (token.id, ann.id));
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

pub async fn a_users_tokens_are_deleted_together(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let token = |user_id, hash: &str| ApiTokenRecord {
        id: TokenId::new(),
        user_id,
        name: "bot".into(),
        token_hash: hash.into(),
        created_at: NOW,
        last_used_at: None,
    };
    let (a1, a2, b1) = (
        token(ann.id, "a1"),
        token(ann.id, "a2"),
        token(bob.id, "b1"),
    );
    for t in [&a1, &a2, &b1] {
        store.insert_api_token(t, u32::MAX).await.unwrap();
    }
    let mut deleted = store.delete_api_tokens(ann.id).await.unwrap();
    deleted.sort_by_key(|id| id.to_string());
    let mut expected = vec![a1.id, a2.id];
    expected.sort_by_key(|id| id.to_string());
    assert_eq!(deleted, expected);
    assert!(store.list_api_tokens(ann.id).await.unwrap().is_empty());
    assert!(store.get_api_token_user("a1", NOW).await.unwrap().is_none());
    assert_eq!(store.list_api_tokens(bob.id).await.unwrap(), vec![b1]);
    assert!(store.delete_api_tokens(ann.id).await.unwrap().is_empty());
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

/// The room's owner as the store holds it: `rooms.owner_id` must name the one
/// member whose role is `owner`.
async fn assert_one_owner(store: &DynStore, room: &RoomId, context: &str) -> UserId {
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
            Err(StoreError::Conflict("not_owner")) => {}
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
        Err(StoreError::Conflict("member_is_owner"))
    ));
    let someone = *members.iter().find(|&&m| m != current).unwrap();
    assert!(matches!(
        store
            .update_member_role(&estate.id, someone, Role::Owner)
            .await,
        Err(StoreError::Conflict("member_is_owner"))
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
        Err(StoreError::Conflict("owner_must_transfer"))
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

fn ban(room: &Room, user: &User, by: &User, at: i64) -> Ban {
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
        Err(StoreError::Conflict("banned"))
    ));
    let uses = store.get_invite("door").await.unwrap().unwrap().uses;
    assert!(matches!(
        store.redeem_invite("door", cat.id, NOW).await,
        Err(StoreError::Conflict("banned"))
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
        Err(StoreError::Conflict("member_is_owner"))
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
                    Ok(_) | Err(StoreError::Conflict("banned")) | Err(StoreError::NotFound)
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
        Err(StoreError::Conflict("too_many_blocks"))
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

fn created_room(id: &str, by: &User, at: i64) -> NewRoom {
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
        Err(StoreError::Conflict("too_many_rooms"))
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
            Err(StoreError::Conflict("too_many_rooms")) => {}
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
        Err(StoreError::Conflict("too_many_invites"))
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
        Err(StoreError::Conflict("too_many_invites"))
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
        Err(StoreError::Conflict("too_many_tokens"))
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
fn summary_key(
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
            .map(|o| o.message().seq)
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
            let original = stored[i * 2].message();
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
        matches!(&again[300], InsertOutcome::Duplicate(m) if m.id == again[149].message().id),
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

/// What a test's store leaves behind, to clean up once the store is closed.
trait Leftovers {
    async fn clean_up(self);
}

impl Leftovers for tempfile::TempDir {
    async fn clean_up(self) {
        drop(self);
    }
}

impl Leftovers for super::postgres::TestSchema {
    async fn clean_up(self) {
        self.drop_schema().await.expect("drop the test schema");
    }
}

/// Runs each test of the suite against a fresh store made by `$make`, and
/// cleans up after it even when the test fails.
macro_rules! conformance_suite {
    ($make:path) => {
        conformance_suite!(@tests $make;
            users_are_unique_case_insensitively,
            profiles_update_only_given_fields,
            avatars_bump_their_version,
            search_and_list_users,
            sessions_expire_and_revoke,
            api_tokens_belong_to_their_owner,
            a_users_tokens_are_deleted_together,
            rooms_and_members,
            ownership_races_leave_one_owner_who_is_a_member,
            mutes_and_bans_outlive_the_membership,
            a_join_racing_a_ban_never_outlives_it,
            blocks_are_one_way_and_capped,
            quotas_are_counted_where_the_rows_are,
            direct_rooms_are_unique_per_pair,
            room_lists_show_unread_and_last_message,
            room_pages_add_up_to_the_room_list,
            invites_count_uses_and_expire,
            seqs_are_gapless_per_room_and_client_ids_idempotent,
            active_days_are_counted_per_user,
            large_batches_keep_seqs_and_client_ids,
            paging_matches_a_vec_model,
        );
    };
    (@tests $make:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((store, leftovers)) = $make().await else { return };
                let outcome = AssertUnwindSafe(super::$name(&store)).catch_unwind().await;
                // Closed first, so no connection still holds what cleaning up removes.
                store.close().await;
                Leftovers::clean_up(leftovers).await;
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            }
        )+
    };
}

mod sqlite {
    use super::*;

    /// A fresh SQLite file in a temporary directory.
    pub(super) async fn make() -> Option<(DynStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = super::super::connect(&url, 4).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        Some((store, dir))
    }

    conformance_suite!(make);
}

mod postgres {
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
            let m = o.message();
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
            let first = answers[0].message();
            assert!(
                answers
                    .iter()
                    .all(|o| o.message().id == first.id && o.message().seq == first.seq),
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
}

/// Both back ends' migrations build the same schema, and ship the same versions.
mod parity {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use sqlx::FromRow;

    use super::postgres::test_database_url;
    use crate::store::postgres::test_schema;

    /// Everything the two schemas must agree on, by table.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Shape {
        /// (table, column) -> (type, not null)
        columns: BTreeMap<(String, String), (String, bool)>,
        /// table -> primary key columns, in key order
        primary_keys: BTreeMap<String, Vec<String>>,
        /// (table, index name) -> (unique, columns); indexes created by name only
        indexes: BTreeMap<(String, String), (bool, Vec<String>)>,
        /// (table, column, referenced table, referenced column, on delete)
        foreign_keys: BTreeSet<(String, String, String, String, String)>,
    }

    /// The type families both dialects spell differently.
    fn normalise_type(ty: &str) -> String {
        match ty.to_lowercase().as_str() {
            "bytea" => "blob".to_string(),
            other => other.to_string(),
        }
    }

    fn migration_files(backend: &str) -> Vec<String> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn migration_versions_match() {
        let sqlite = migration_files("sqlite");
        assert!(!sqlite.is_empty());
        assert_eq!(
            sqlite,
            migration_files("postgres"),
            "same files, same names"
        );
        let versions = |m: sqlx::migrate::Migrator| -> Vec<(i64, String)> {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect()
        };
        assert_eq!(
            versions(sqlx::migrate!("migrations/sqlite")),
            versions(sqlx::migrate!("migrations/postgres"))
        );
    }

    async fn sqlite_shape() -> Shape {
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("shape.db").display()
        );
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::migrate!("migrations/sqlite")
            .run(&pool)
            .await
            .unwrap();
        let mut shape = Shape::default();
        let tables: Vec<String> = sqlx::query_scalar(
            "select name from sqlite_master where type = 'table'              and name not like 'sqlite_%' and name <> '_sqlx_migrations'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        for table in &tables {
            #[derive(FromRow)]
            struct Col {
                name: String,
                #[sqlx(rename = "type")]
                ty: String,
                notnull: bool,
                pk: i64,
            }
            let cols: Vec<Col> = sqlx::query_as(
                "select name, type, \"notnull\", pk from pragma_table_info(?) order by pk, cid",
            )
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap();
            for c in cols {
                if c.pk > 0 {
                    shape
                        .primary_keys
                        .entry(table.clone())
                        .or_default()
                        .push(c.name.clone());
                }
                shape
                    .columns
                    .insert((table.clone(), c.name), (normalise_type(&c.ty), c.notnull));
            }
            let fks: Vec<(String, String, String, String)> = sqlx::query_as(
                "select \"from\", \"table\", \"to\", on_delete from pragma_foreign_key_list(?)",
            )
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap();
            for (from, to_table, to, on_delete) in fks {
                shape.foreign_keys.insert((
                    table.clone(),
                    from,
                    to_table,
                    to,
                    on_delete.to_uppercase(),
                ));
            }
            // Indexes written in the migration; not the ones SQLite makes for keys.
            let indexes: Vec<(String, bool)> = sqlx::query_as(
                "select l.name, l.\"unique\" from pragma_index_list(?1) l \
                 join sqlite_master s on s.type = 'index' and s.name = l.name where s.sql is not null",
            )
            .bind(table)
            .fetch_all(&pool)
            .await
            .unwrap();
            for (name, unique) in indexes {
                let columns: Vec<String> =
                    sqlx::query_scalar("select name from pragma_index_info(?) order by seqno")
                        .bind(&name)
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                shape
                    .indexes
                    .insert((table.clone(), name), (unique, columns));
            }
        }
        pool.close().await;
        shape
    }

    async fn postgres_shape(pool: &sqlx::PgPool) -> Shape {
        let mut shape = Shape::default();
        let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
            "select table_name::text, column_name::text, data_type::text, is_nullable = 'NO' \
             from information_schema.columns \
             where table_schema = current_schema() and table_name <> '_sqlx_migrations'",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for (table, column, ty, not_null) in columns {
            shape
                .columns
                .insert((table, column), (normalise_type(&ty), not_null));
        }
        let indexes: Vec<(String, String, bool, bool, Vec<String>)> = sqlx::query_as(
            "select t.relname::text, i.relname::text, x.indisunique, x.indisprimary, \
                    array_agg(a.attname::text order by k.ord) \
             from pg_index x \
             join pg_class i on i.oid = x.indexrelid \
             join pg_class t on t.oid = x.indrelid \
             cross join lateral unnest(x.indkey::int2[]) with ordinality as k(attnum, ord) \
             join pg_attribute a on a.attrelid = t.oid and a.attnum = k.attnum \
             where t.relnamespace = current_schema()::regnamespace and t.relname <> '_sqlx_migrations' \
             group by 1, 2, 3, 4",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        for (table, name, unique, primary, columns) in indexes {
            if primary {
                shape.primary_keys.insert(table, columns);
            } else {
                shape.indexes.insert((table, name), (unique, columns));
            }
        }
        let fks: Vec<(String, String, String, String, String)> = sqlx::query_as(
            "select t.relname::text, a.attname::text, rt.relname::text, ra.attname::text, \
                    case c.confdeltype when 'c' then 'CASCADE' when 'n' then 'SET NULL' \
                      when 'd' then 'SET DEFAULT' when 'r' then 'RESTRICT' else 'NO ACTION' end \
             from pg_constraint c \
             join pg_class t on t.oid = c.conrelid \
             join pg_class rt on rt.oid = c.confrelid \
             cross join lateral unnest(c.conkey, c.confkey) as k(attnum, ref_attnum) \
             join pg_attribute a on a.attrelid = c.conrelid and a.attnum = k.attnum \
             join pg_attribute ra on ra.attrelid = c.confrelid and ra.attnum = k.ref_attnum \
             where c.contype = 'f' and c.connamespace = current_schema()::regnamespace",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        shape.foreign_keys.extend(fks);
        shape
    }

    /// Notes each item found in only one of the two schemas.
    fn differ<'a, T, I>(out: &mut Vec<String>, what: &str, sqlite: I, postgres: I)
    where
        T: std::fmt::Debug + Ord + 'a,
        I: IntoIterator<Item = T>,
    {
        let sqlite: BTreeSet<T> = sqlite.into_iter().collect();
        let postgres: BTreeSet<T> = postgres.into_iter().collect();
        for item in sqlite.difference(&postgres) {
            out.push(format!("  {what} only in SQLite: {item:?}"));
        }
        for item in postgres.difference(&sqlite) {
            out.push(format!("  {what} only in PostgreSQL: {item:?}"));
        }
    }

    #[tokio::test]
    async fn schemas_match() {
        let sqlite = sqlite_shape().await;
        assert!(
            sqlite
                .columns
                .contains_key(&("messages".into(), "seq".into())),
            "introspection sees the SQLite schema"
        );
        let Some(base) = test_database_url("schema parity") else {
            return;
        };
        let schema = test_schema(&base).await.unwrap();
        let pool = sqlx::PgPool::connect(schema.url()).await.unwrap();
        let migrated = sqlx::migrate!("migrations/postgres").run(&pool).await;
        let postgres = postgres_shape(&pool).await;
        pool.close().await;
        schema.drop_schema().await.unwrap();
        migrated.unwrap();
        let mut differences = Vec::new();
        differ(
            &mut differences,
            "column ((table, column), (type, not null))",
            &sqlite.columns,
            &postgres.columns,
        );
        differ(
            &mut differences,
            "primary key (table, columns)",
            &sqlite.primary_keys,
            &postgres.primary_keys,
        );
        differ(
            &mut differences,
            "index ((table, name), (unique, columns))",
            &sqlite.indexes,
            &postgres.indexes,
        );
        differ(
            &mut differences,
            "foreign key (table, column, to table, to column, on delete)",
            &sqlite.foreign_keys,
            &postgres.foreign_keys,
        );
        assert!(
            differences.is_empty(),
            "the schemas differ:\n{}",
            differences.join("\n")
        );
    }
}
