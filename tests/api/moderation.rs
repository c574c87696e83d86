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

async fn send(client: &Client, room: &str, content: &str) -> (StatusCode, Value) {
    client
        .post(
            &format!("/tools/api/chat/{room}/send/"),
            json!({ "content": content }),
        )
        .await
}

/// Finding 6: a muted member of a public room left and joined again, or of a
/// group left and used an invite, and was no longer muted.
#[tokio::test]
async fn mutes_survive_leaving_and_coming_back() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let loud = app.user("loud").await;
    let lobby = owner.create_room("Lobby", "public", &[&loud]).await;
    let club = owner.create_room("Club", "group", &[&loud]).await;
    for room in [&lobby, &club] {
        let (status, body) = owner
            .post(
                &format!("/tools/api/chat/{room}/members/{}/mute/", loud.id()),
                json!({"minutes": 60}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(
            code(&send(&loud, room, "x").await),
            (StatusCode::FORBIDDEN, "muted")
        );
        let (status, _) = loud
            .post(&format!("/tools/api/chat/{room}/leave/"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
    }

    // Back into the public room by joining.
    let (status, body) = loud
        .post(&format!("/tools/api/chat/{lobby}/join/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["muted_until"].is_string(), "{body}");
    assert_eq!(
        code(&send(&loud, &lobby, "back").await),
        (StatusCode::FORBIDDEN, "muted")
    );

    // Back into the group through an invite, and also re-added by the owner.
    let (_, invite) = owner
        .post(&format!("/tools/api/chat/{club}/invites/"), json!({}))
        .await;
    let invite = invite["data"]["code"].as_str().unwrap().to_string();
    let (status, body) = loud
        .post(
            &format!("/tools/api/chat/invites/{invite}/join/"),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        code(&send(&loud, &club, "back").await),
        (StatusCode::FORBIDDEN, "muted")
    );
    let (_, participants) = owner
        .get(&format!("/tools/api/chat/{club}/participants/"))
        .await;
    let entry = participants["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == loud.id().as_str())
        .unwrap()
        .clone();
    assert!(entry["muted_until"].is_string(), "{entry}");
    loud.post(&format!("/tools/api/chat/{club}/leave/"), json!({}))
        .await;
    let (status, body) = owner
        .post(
            &format!("/tools/api/chat/{club}/members/"),
            json!({"user_id": loud.id()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["data"]["muted_until"].is_string(), "{body}");

    // Over the WebSocket too (the cached permission path).
    let mut ws = loud.ws(&format!("/ws/chat/{club}/")).await;
    ws.next_of("connection_established").await;
    ws.send_json(json!({"type": "message", "content": "hush", "client_id": "m1"}))
        .await;
    assert_eq!(ws.next_of("error").await["code"], "muted");

    // Unmuted, it is over for good.
    owner
        .post(
            &format!("/tools/api/chat/{lobby}/members/{}/mute/", loud.id()),
            json!({"muted": false}),
        )
        .await;
    loud.post(&format!("/tools/api/chat/{lobby}/leave/"), json!({}))
        .await;
    loud.post(&format!("/tools/api/chat/{lobby}/join/"), json!({}))
        .await;
    loud.say(&lobby, "free").await;
}

/// Finding 6: a member removed from a public room rejoined at once. A ban
/// keeps them out by every way in, until lifted.
#[tokio::test]
async fn banned_users_stay_out_until_unbanned() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let admin = app.user("admin").await;
    let troll = app.user("troll").await;
    let other = app.user("other").await;
    let lobby = owner
        .create_room("Lobby", "public", &[&admin, &troll, &other])
        .await;
    let base = format!("/tools/api/chat/{lobby}");
    owner
        .post(
            &format!("{base}/members/{}/role/", admin.id()),
            json!({"role": "admin"}),
        )
        .await;
    let (_, invite) = owner.post(&format!("{base}/invites/"), json!({})).await;
    let invite = invite["data"]["code"].as_str().unwrap().to_string();
    let mut troll_ws = troll.ws("/ws/").await;
    troll_ws.next_of("connection_established").await;

    // Members do not ban; admins do not ban their peers or the owner.
    assert_eq!(
        code(
            &other
                .post(&format!("{base}/bans/{}/", troll.id()), json!({}))
                .await
        ),
        (StatusCode::FORBIDDEN, "moderator_only")
    );
    assert_eq!(
        code(
            &admin
                .post(&format!("{base}/bans/{}/", owner.id()), json!({}))
                .await
        ),
        (StatusCode::FORBIDDEN, "insufficient_role")
    );
    assert_eq!(
        code(
            &admin
                .post(&format!("{base}/bans/{}/", admin.id()), json!({}))
                .await
        ),
        (StatusCode::BAD_REQUEST, "invalid_user")
    );
    assert_eq!(
        code(
            &admin
                .post(
                    &format!("{base}/bans/{}/", troll.id()),
                    json!({"reason": "x".repeat(501)})
                )
                .await
        ),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );

    let (status, body) = admin
        .post(
            &format!("{base}/bans/{}/", troll.id()),
            json!({"reason": "spam"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["data"]["user_id"], troll.id().as_str());
    assert_eq!(body["data"]["banned_by_id"], admin.id().as_str());
    assert_eq!(body["data"]["reason"], "spam");
    let left = troll_ws.next_of("room_left").await;
    assert_eq!(
        (left["room_id"].as_str(), left["reason"].as_str()),
        (Some(lobby.as_str()), Some("removed"))
    );

    // Out by every way in, and no longer reading the public room either.
    assert_eq!(
        code(&troll.post(&format!("{base}/join/"), json!({})).await),
        (StatusCode::FORBIDDEN, "banned")
    );
    assert_eq!(
        code(
            &troll
                .post(
                    &format!("/tools/api/chat/invites/{invite}/join/"),
                    json!({})
                )
                .await
        ),
        (StatusCode::FORBIDDEN, "banned")
    );
    assert_eq!(
        code(
            &owner
                .post(&format!("{base}/members/"), json!({"user_id": troll.id()}))
                .await
        ),
        (StatusCode::FORBIDDEN, "banned")
    );
    assert_eq!(
        code(&troll.get(&format!("{base}/messages/")).await),
        (StatusCode::FORBIDDEN, "banned")
    );
    assert_eq!(
        code(&send(&troll, &lobby, "let me in").await),
        (StatusCode::FORBIDDEN, "banned")
    );
    let (_, history) = owner.get(&format!("{base}/messages/")).await;
    assert!(
        history["messages"].as_array().unwrap().iter().any(|m| {
            m["event"]["event"] == "member_removed" && m["event"]["user_id"] == troll.id().as_str()
        }),
        "the ban wrote member_removed"
    );

    // Admins see who was banned, by whom and when; members do not.
    assert_eq!(
        code(&other.get(&format!("{base}/bans/")).await),
        (StatusCode::FORBIDDEN, "moderator_only")
    );
    let (status, bans) = admin.get(&format!("{base}/bans/")).await;
    assert_eq!(status, StatusCode::OK, "{bans}");
    let list = bans["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["username"], "troll");
    assert_eq!(list[0]["banned_by"], "admin");
    assert!(list[0]["banned_at"].is_string());

    // The shortcut on removal, and a ban of someone who is not a member.
    let (status, body) = admin
        .delete(&format!("{base}/members/{}/?ban=true", other.id()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        code(&other.post(&format!("{base}/join/"), json!({})).await),
        (StatusCode::FORBIDDEN, "banned")
    );
    let stranger = app.user("stranger").await;
    let (status, _) = admin
        .post(&format!("{base}/bans/{}/", stranger.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, bans) = admin.get(&format!("{base}/bans/")).await;
    assert_eq!(bans["data"].as_array().unwrap().len(), 3);

    // Lifted: back in by joining.
    let (status, _) = admin.delete(&format!("{base}/bans/{}/", troll.id())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        code(&admin.delete(&format!("{base}/bans/{}/", troll.id())).await),
        (StatusCode::NOT_FOUND, "ban_not_found")
    );
    let (status, body) = troll.post(&format!("{base}/join/"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    troll.say(&lobby, "sorry").await;

    // Direct rooms have no bans.
    let (_, dm) = owner
        .post(
            &format!("/tools/api/chat/direct/{}/", admin.id()),
            json!({}),
        )
        .await;
    let dm = dm["data"]["room_id"].as_str().unwrap().to_string();
    assert_eq!(
        code(
            &owner
                .post(
                    &format!("/tools/api/chat/{dm}/bans/{}/", admin.id()),
                    json!({})
                )
                .await
        ),
        (StatusCode::FORBIDDEN, "direct_room")
    );
}

/// A block: no direct room, no adding to rooms, and no posting in an existing
/// direct room between them, whichever way the block goes.
#[tokio::test]
async fn blocks_keep_a_user_away() {
    let app = crate::helpers::spawn_app_with(|c| c.max_blocks_per_user = 2).await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let cat = app.user("cat").await;
    let dan = app.user("dan").await;
    let (status, dm) = eve
        .post(&format!("/tools/api/chat/direct/{}/", bob.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let dm = dm["data"]["room_id"].as_str().unwrap().to_string();
    eve.say(&dm, "hi bob").await;
    let mut eve_ws = eve.ws(&format!("/ws/chat/{dm}/")).await;
    eve_ws.next_of("connection_established").await;
    let team = eve.create_room("Team", "group", &[]).await;

    let (status, body) = bob
        .post(&format!("/tools/api/user/{}/block/", eve.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["user_id"], eve.id().as_str());
    let (status, _) = bob
        .post(&format!("/tools/api/user/{}/block/", eve.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "blocking again is harmless");

    for who in [&eve, &bob] {
        assert_eq!(
            code(&send(who, &dm, "still there?").await),
            (StatusCode::FORBIDDEN, "blocked")
        );
    }
    eve_ws
        .send_json(json!({"type": "message", "content": "psst", "client_id": "b1"}))
        .await;
    assert_eq!(eve_ws.next_of("error").await["code"], "blocked");
    assert_eq!(
        code(
            &eve.post(&format!("/tools/api/chat/direct/{}/", bob.id()), json!({}))
                .await
        ),
        (StatusCode::FORBIDDEN, "blocked")
    );
    assert_eq!(
        code(
            &eve.post(
                "/tools/api/chat/rooms/",
                json!({"name": "Trap", "room_type": "group", "members": [bob.id(), cat.id()]}),
            )
            .await
        ),
        (StatusCode::FORBIDDEN, "blocked")
    );
    assert_eq!(
        code(
            &eve.post(
                &format!("/tools/api/chat/{team}/members/"),
                json!({"user_id": bob.id()})
            )
            .await
        ),
        (StatusCode::FORBIDDEN, "blocked")
    );
    // The profile page's no-script "message" form says so on a page.
    let form = eve
        .request(
            reqwest::Method::POST,
            &format!("/u/{}/message", bob.profile["username"].as_str().unwrap()),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "csrfmiddlewaretoken={}",
            eve.cookie("csrftoken").unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    assert!(
        form.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // The one blocking may still add the other; others are unaffected.
    let (status, _) = eve
        .post(
            &format!("/tools/api/chat/{team}/members/"),
            json!({"user_id": cat.id()}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);

    let (status, list) = bob.get("/tools/api/user/me/blocks/").await;
    assert_eq!(status, StatusCode::OK);
    let list = list["data"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["username"], "eve");
    assert!(list[0]["blocked_at"].is_string());
    assert!(
        eve.get("/tools/api/user/me/blocks/").await.1["data"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The quota, and refusals.
    bob.post(&format!("/tools/api/user/{}/block/", cat.id()), json!({}))
        .await;
    assert_eq!(
        code(
            &bob.post(&format!("/tools/api/user/{}/block/", dan.id()), json!({}))
                .await
        ),
        (StatusCode::CONFLICT, "too_many_blocks")
    );
    assert_eq!(
        code(&bob.post("/tools/api/user/me/block/", json!({})).await),
        (StatusCode::BAD_REQUEST, "invalid_user")
    );
    assert_eq!(
        code(
            &bob.post(
                &format!("/tools/api/user/{}/block/", UserId::new()),
                json!({})
            )
            .await
        ),
        (StatusCode::NOT_FOUND, "user_not_found")
    );
    assert_eq!(
        code(
            &bob.delete(&format!("/tools/api/user/{}/block/", dan.id()))
                .await
        ),
        (StatusCode::NOT_FOUND, "block_not_found")
    );

    // Lifted: they talk again.
    let (status, _) = bob
        .delete(&format!("/tools/api/user/{}/block/", eve.id()))
        .await;
    assert_eq!(status, StatusCode::OK);
    eve.say(&dm, "friends again?").await;
    bob.say(&dm, "sure").await;
}
