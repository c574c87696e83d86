//! Moderation that holds under concurrency and over time: one owner per room,
//! mutes and bans that outlive a membership, blocks between users.

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use parley::domain::ids::UserId;

use crate::helpers::{Client, TestApp, spawn_app};

fn code(reply: &(StatusCode, Value)) -> (StatusCode, &str) {
    (reply.0, reply.1["error"]["code"].as_str().unwrap_or(""))
}

/// The room's owners as participants shows them, and its `owner_id`.
async fn owners(viewer: &Client, room: &str) -> (Vec<String>, Value) {
    let (_, body) = viewer
        .get(&format!("/tools/api/chat/{room}/participants/"))
        .await;
    let owners = body["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["role"] == "owner")
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    let (_, details) = viewer.get(&format!("/tools/api/chat/{room}/")).await;
    (owners, details["data"]["owner_id"].clone())
}

async fn users(app: &TestApp, prefix: &str, n: usize) -> Vec<Client> {
    let mut list = Vec::new();
    for i in 0..n {
        list.push(app.user(&format!("{prefix}{i}")).await);
    }
    list
}

/// Finding 7: two transfers at once to different members both succeeded and
/// left the room with two owners.
#[tokio::test]
async fn concurrent_transfers_leave_exactly_one_owner() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let heirs = users(&app, "heir", 8).await;
    let refs: Vec<&Client> = heirs.iter().collect();
    let room = owner.create_room("Estate", "group", &refs).await;
    let path = format!("/tools/api/chat/{room}/transfer/");
    let replies = join_all(
        heirs
            .iter()
            .map(|h| owner.post(&path, json!({"user_id": h.id()}))),
    )
    .await;
    let won: Vec<usize> = (0..replies.len())
        .filter(|&i| replies[i].0 == StatusCode::OK)
        .collect();
    assert_eq!(won.len(), 1, "{replies:?}");
    for (i, reply) in replies.iter().enumerate() {
        if i != won[0] {
            assert_eq!(
                code(reply),
                (StatusCode::FORBIDDEN, "owner_only"),
                "{reply:?}"
            );
        }
    }
    let (list, owner_id) = owners(&owner, &room).await;
    assert_eq!(list, vec![heirs[won[0]].id()]);
    assert_eq!(owner_id, heirs[won[0]].id().as_str());
}

/// Finding 7: a transfer racing the removal of its target left `owner_id`
/// naming a non-member, and every owner action refused for everyone.
#[tokio::test]
async fn a_transfer_racing_the_removal_of_its_target_keeps_the_owner_a_member() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let admin = app.user("admin").await;
    let targets = users(&app, "target", 6).await;
    let mut members: Vec<&Client> = vec![&admin];
    members.extend(targets.iter());
    let room = owner.create_room("Estate", "group", &members).await;
    let base = format!("/tools/api/chat/{room}");
    owner
        .post(
            &format!("{base}/members/{}/role/", admin.id()),
            json!({"role": "admin"}),
        )
        .await;
    let mut current = &owner;
    for target in &targets {
        let (transfer_path, removal_path) = (
            format!("{base}/transfer/"),
            format!("{base}/members/{}/", target.id()),
        );
        let (transfer, removal) = tokio::join!(
            current.post(&transfer_path, json!({"user_id": target.id()})),
            admin.delete(&removal_path),
        );
        let context = format!("transfer {transfer:?}, removal {removal:?}");
        assert!(
            !(transfer.0 == StatusCode::OK && removal.0 == StatusCode::OK),
            "{context}"
        );
        if transfer.0 == StatusCode::OK {
            current = target;
        }
        let (list, owner_id) = owners(&admin, &room).await;
        assert_eq!(list, vec![current.id()], "{context}");
        assert_eq!(owner_id, current.id().as_str(), "{context}");
        // Owner actions still work for whoever owns it now.
        let (status, body) = current
            .patch(&format!("{base}/"), json!({"description": target.id()}))
            .await;
        assert_eq!(status, StatusCode::OK, "{context}: {body}");
        if current.id() == target.id() {
            // Give it back so the admin outranks the next target.
            let (status, body) = current
                .post(&format!("{base}/transfer/"), json!({"user_id": owner.id()}))
                .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            current = &owner;
        }
    }
}

#[tokio::test]
async fn site_admins_repair_ownership() {
    let app = spawn_app().await;
    let root = app.user("root").await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let room = ann.create_room("Ann's", "group", &[&bob]).await;
    let path = format!("/tools/api/chat/{room}/owner/");

    for who in [&ann, &bob, &root] {
        assert_eq!(
            code(&who.post(&path, json!({"user_id": bob.id()})).await),
            (StatusCode::FORBIDDEN, "site_admin_only")
        );
    }
    app.state
        .store
        .update_admin(UserId::parse(&root.id()).unwrap(), true)
        .await
        .unwrap();
    assert_eq!(
        code(&root.post(&path, json!({"user_id": eve.id()})).await),
        (StatusCode::NOT_FOUND, "member_not_found")
    );
    assert_eq!(
        code(
            &root
                .post("/tools/api/chat/nope/owner/", json!({"user_id": bob.id()}))
                .await
        ),
        (StatusCode::NOT_FOUND, "room_not_found")
    );
    let (status, dm) = ann
        .post(&format!("/tools/api/chat/direct/{}/", bob.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let dm = dm["data"]["room_id"].as_str().unwrap().to_string();
    assert_eq!(
        code(
            &root
                .post(
                    &format!("/tools/api/chat/{dm}/owner/"),
                    json!({"user_id": bob.id()})
                )
                .await
        ),
        (StatusCode::FORBIDDEN, "direct_room")
    );

    let (status, body) = root.post(&path, json!({"user_id": bob.id()})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["owner_id"], bob.id().as_str());
    let (list, owner_id) = owners(&ann, &room).await;
    assert_eq!(list, vec![bob.id()]);
    assert_eq!(owner_id, bob.id().as_str());
    let (_, me) = ann.get(&format!("/tools/api/chat/{room}/")).await;
    assert_eq!(me["data"]["my_role"], "admin");
    let (status, body) = bob
        .patch(
            &format!("/tools/api/chat/{room}/"),
            json!({"name": "Bob's"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
