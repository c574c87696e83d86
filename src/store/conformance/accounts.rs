//! Users, profiles, avatars, sessions and API tokens.

use super::*;

pub async fn users_are_unique_case_insensitively(store: &DynStore) {
    let ann = user(store, "Ann").await;
    assert_eq!(ann.username, "Ann");
    assert!(matches!(
        store.insert_user(&new_user("aNN")).await,
        Err(StoreError::Conflict(Conflict::UsernameTaken))
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
                time_zone: Some("Asia/Shanghai".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(changed.time_zone, "", "no zone until one is set");
    assert_eq!(again.display_name, "安", "untouched fields stay");
    assert_eq!(again.language, Language::En);
    assert_eq!(again.time_zone, "Asia/Shanghai");
    assert_eq!(
        store.get_user(ann.id).await.unwrap().unwrap().time_zone,
        "Asia/Shanghai"
    );
    let cleared = store
        .update_profile(
            ann.id,
            &ProfileChanges {
                time_zone: Some(String::new()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(cleared.time_zone, "", "an empty zone forgets it");
    assert_eq!(cleared.language, Language::En);
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

pub async fn avatars_are_removed_and_versions_keep_growing(store: &DynStore) {
    let ann = user(store, "ann").await;
    store.put_avatar(ann.id, b"png-1", NOW).await.unwrap();
    store.put_avatar(ann.id, b"png-2", NOW).await.unwrap();
    let removed = store.delete_avatar(ann.id).await.unwrap();
    // Not positive: the generated avatar shows.
    assert_eq!(removed.avatar_version, -2);
    assert!(store.get_avatar(ann.id).await.unwrap().is_none());
    // Removing twice is fine, and changes nothing.
    assert_eq!(
        store.delete_avatar(ann.id).await.unwrap().avatar_version,
        -2
    );
    // The next upload follows the last one, so no URL ever names two images.
    let again = store.put_avatar(ann.id, b"png-3", NOW).await.unwrap();
    assert_eq!(again.avatar_version, 3);
    assert_eq!(
        store.get_avatar(ann.id).await.unwrap().as_deref(),
        Some(&b"png-3"[..])
    );
    // A user who never had one.
    let bob = user(store, "bob").await;
    assert_eq!(store.delete_avatar(bob.id).await.unwrap().avatar_version, 0);
    assert!(matches!(
        store.delete_avatar(UserId::new()).await,
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
