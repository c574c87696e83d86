use reqwest::StatusCode;
use serde_json::{Value, json};

use std::collections::HashMap;

use parley::domain::ids::UserId;

use crate::helpers::{Client, spawn_app};

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn create_rooms_with_slug_ids() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (status, body) = ann
        .post(
            "/tools/api/chat/rooms/",
            json!({"name": "Rust Fans", "room_type": "group", "description": "all things rust", "members": [bob.id()]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let room = &body["data"];
    assert_eq!(room["room_id"], "rust-fans");
    assert_eq!(room["room_type"], "group");
    assert_eq!(room["description"], "all things rust");
    assert_eq!(room["member_count"], 2);
    assert_eq!(room["my_role"], "owner");

    // The same name again gets another id; a name without a usable slug gets a random one.
    let second = ann.create_room("Rust Fans", "public", &[]).await;
    assert!(second.starts_with("rust-fans-"), "{second}");
    let odd = ann.create_room("!!!", "group", &[]).await;
    assert_eq!(odd.len(), 12);
    // Names that would shadow API paths get another id.
    let shadow = ann.create_room("Rooms", "group", &[]).await;
    assert_ne!(shadow, "rooms");
    let (_, mine) = ann.get("/tools/api/chat/rooms/").await;
    assert!(mine["data"].is_array(), "the room list still answers");

    for (body, code) in [
        (
            json!({"name": "x", "room_type": "direct"}),
            "invalid_room_type",
        ),
        (
            json!({"name": "x", "room_type": "secret"}),
            "invalid_room_type",
        ),
        (
            json!({"name": "   ", "room_type": "group"}),
            "invalid_room_name",
        ),
        (
            json!({"name": "x", "room_type": "group", "members": ["01a20caf-4de5-70eb-aacf-66f1d31434f5"]}),
            "unknown_user",
        ),
    ] {
        let (status, reply) = ann.post("/tools/api/chat/rooms/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["error"]["code"], code);
    }
}

#[tokio::test]
async fn my_rooms_have_unread_counts_and_last_messages() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Team", "group", &[&bob]).await;
    ann.say(&room, "one").await;
    ann.say(&room, "two").await;
    let (status, body) = bob.get("/tools/api/chat/rooms/").await;
    assert_eq!(status, StatusCode::OK);
    let team = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room.as_str())
        .unwrap();
    assert_eq!(team["unread"], 2);
    assert_eq!(team["last_message"]["content"], "two");
    assert_eq!(team["my_role"], "member");
    // The most recently active room comes first.
    assert_eq!(body["data"][0]["room_id"], room.as_str());

    let last_seq = team["last_message"]["seq"].as_i64().unwrap();
    let (status, _) = bob
        .post(
            &format!("/tools/api/chat/{room}/read/"),
            json!({"up_to_seq": last_seq}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = bob.get("/tools/api/chat/rooms/").await;
    let team = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room.as_str())
        .unwrap();
    assert_eq!(team["unread"], 0);
}

#[tokio::test]
async fn public_rooms_are_listed_readable_and_joinable() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let lobby = ann.create_room("Lobby", "public", &[]).await;
    let secret = ann.create_room("Secret", "group", &[]).await;
    ann.say(&lobby, "welcome").await;

    let (_, body) = bob.get("/tools/api/chat/rooms/public/").await;
    let listed = ids(&body["data"]);
    assert!(listed.contains(&lobby) && listed.contains(&"general".to_string()));
    assert!(!listed.contains(&secret));
    let (_, body) = bob.get("/tools/api/chat/rooms/public/?q=lob").await;
    assert_eq!(ids(&body["data"]), std::slice::from_ref(&lobby));

    // Any user reads a public room; only members post.
    let (status, body) = bob.get(&format!("/tools/api/chat/{lobby}/messages/")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["content"] == "welcome")
    );
    let (status, body) = bob
        .post(
            &format!("/tools/api/chat/{lobby}/send/"),
            json!({"content": "hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "not_a_member");

    let (status, _) = bob
        .post(&format!("/tools/api/chat/{lobby}/join/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = bob
        .post(&format!("/tools/api/chat/{lobby}/join/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "joining twice is harmless");
    bob.say(&lobby, "hi").await;
    let (_, body) = bob.get(&format!("/tools/api/chat/{lobby}/messages/")).await;
    let system: Vec<&Value> = body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["message_type"] == "system")
        .collect();
    assert!(
        system
            .iter()
            .any(|m| m["event"]["event"] == "member_joined" && m["event"]["username"] == "bob")
    );

    let (status, _) = bob
        .post(&format!("/tools/api/chat/{lobby}/leave/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = bob
        .post(
            &format!("/tools/api/chat/{lobby}/send/"),
            json!({"content": "still here?"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn private_rooms_reveal_nothing_to_outsiders() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let eve = app.user("eve").await;
    let secret = ann.create_room("Secret", "group", &[]).await;
    ann.say(&secret, "classified").await;
    for path in [
        format!("/tools/api/chat/{secret}/"),
        format!("/tools/api/chat/{secret}/messages/"),
        format!("/tools/api/chat/{secret}/participants/"),
    ] {
        let (status, body) = eve.get(&path).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
        assert_eq!(body["error"]["code"], "not_a_member");
        assert!(!body.to_string().contains("classified"));
    }
    let (status, body) = eve
        .post(&format!("/tools/api/chat/{secret}/join/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "invite_required");
    let (status, _) = eve
        .post(
            &format!("/tools/api/chat/{secret}/send/"),
            json!({"content": "let me in"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A missing room is 404, and so is a malformed id.
    for path in [
        "/tools/api/chat/no-such-room/messages/",
        "/tools/api/chat/bad%20id/messages/",
    ] {
        let (status, body) = eve.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body["error"]["code"], "room_not_found");
    }
}

#[tokio::test]
async fn direct_rooms_are_one_per_pair() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let eve = app.user("eve").await;
    let (status, body) = ann
        .post(&format!("/tools/api/chat/direct/{}/", bob.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let room = body["data"]["room_id"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["room_type"], "direct");
    let (status, body) = bob
        .post(&format!("/tools/api/chat/direct/{}/", ann.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["room_id"], room.as_str());

    ann.say(&room, "hi bob").await;
    let (_, list) = bob.get("/tools/api/chat/rooms/").await;
    let dm = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room.as_str())
        .unwrap();
    assert_eq!(dm["peer"]["username"], "ann");
    assert_eq!(dm["unread"], 1);

    assert_eq!(
        eve.get(&format!("/tools/api/chat/{room}/messages/"))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, body) = ann
        .post(
            &format!("/tools/api/chat/{room}/members/"),
            json!({"user_id": eve.id()}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "direct_room");
    assert_eq!(
        ann.post(&format!("/tools/api/chat/{room}/leave/"), json!({}))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = ann
        .post(&format!("/tools/api/chat/direct/{}/", ann.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = ann
        .post(
            "/tools/api/chat/direct/01a20caf-4de5-70eb-aacf-66f1d31434f5/",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn roles_govern_moderation() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let admin = app.user("admin").await;
    let member = app.user("member").await;
    let newbie = app.user("newbie").await;
    let room = owner.create_room("Club", "group", &[&admin, &member]).await;
    let base = format!("/tools/api/chat/{room}");

    // Members may not moderate.
    let (status, body) = member
        .post(&format!("{base}/members/"), json!({"user_id": newbie.id()}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "moderator_only");

    // The owner promotes; admins add and remove members but not their peers or the owner.
    let (status, body) = owner
        .post(
            &format!("{base}/members/{}/role/", admin.id()),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["role"], "admin");
    let (status, _) = admin
        .post(&format!("{base}/members/"), json!({"user_id": newbie.id()}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = admin
        .post(&format!("{base}/members/"), json!({"user_id": newbie.id()}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "already_member");
    let (status, body) = admin
        .delete(&format!("{base}/members/{}/", owner.id()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "insufficient_role");
    let (status, body) = admin
        .post(
            &format!("{base}/members/{}/role/", member.id()),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "owner_only");
    let (status, _) = admin
        .delete(&format!("{base}/members/{}/", newbie.id()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        newbie.get(&format!("{base}/messages/")).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = admin
        .delete(&format!("{base}/members/{}/", newbie.id()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Admins mute members; a muted member cannot post until unmuted.
    let (status, body) = admin
        .post(
            &format!("{base}/members/{}/mute/", member.id()),
            json!({"minutes": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["data"]["muted_until"].is_string());
    let (status, body) = member
        .post(&format!("{base}/send/"), json!({"content": "hello?"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "muted");
    let (status, _) = admin
        .post(
            &format!("{base}/members/{}/mute/", member.id()),
            json!({"muted": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    member.say(&room, "free again").await;
    let (status, body) = admin
        .post(
            &format!("{base}/members/{}/mute/", member.id()),
            json!({"muted": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body["data"]["muted_until"]
            .as_str()
            .unwrap()
            .starts_with("9999-"),
        "{body}"
    );
    admin
        .post(
            &format!("{base}/members/{}/mute/", member.id()),
            json!({"muted": false}),
        )
        .await;
    let (status, _) = admin
        .post(
            &format!("{base}/members/{}/mute/", member.id()),
            json!({"minutes": 0}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Only the owner renames.
    let (status, _) = admin
        .patch(&format!("{base}/"), json!({"name": "Admin Club"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = owner
        .patch(
            &format!("{base}/"),
            json!({"name": "Chess Club", "description": "♟"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["name"], "Chess Club");
    assert_eq!(
        body["data"]["room_id"],
        room.as_str(),
        "renaming keeps the id"
    );
    let (_, history) = member.get(&format!("{base}/messages/")).await;
    let events: Vec<String> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["event"]["event"].as_str().map(str::to_string))
        .collect();
    for expected in [
        "room_created",
        "member_added",
        "member_removed",
        "room_renamed",
        "description_changed",
    ] {
        assert!(
            events.iter().any(|e| e == expected),
            "missing {expected} in {events:?}"
        );
    }
}

#[tokio::test]
async fn ownership_transfer_leave_and_archive() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let heir = app.user("heir").await;
    let room = owner.create_room("Estate", "public", &[&heir]).await;
    let base = format!("/tools/api/chat/{room}");

    let (status, body) = owner.post(&format!("{base}/leave/"), json!({})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "owner_must_transfer");
    let (status, _) = heir
        .post(&format!("{base}/transfer/"), json!({"user_id": heir.id()}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = owner
        .post(&format!("{base}/transfer/"), json!({"user_id": heir.id()}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["owner_id"], heir.id());
    let (_, details) = owner.get(&format!("{base}/")).await;
    assert_eq!(details["data"]["my_role"], "admin");

    // Archived rooms are read-only.
    let (status, _) = owner.post(&format!("{base}/archive/"), json!({})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "only the owner archives");
    let (status, body) = heir.post(&format!("{base}/archive/"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["status"], "archived");
    let (status, body) = heir
        .post(&format!("{base}/send/"), json!({"content": "echo"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "room_archived");
    let (_, history) = owner.get(&format!("{base}/messages/")).await;
    assert!(
        history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["event"]["event"] == "room_archived")
    );
    let (status, _) = heir.post(&format!("{base}/unarchive/"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    heir.say(&room, "back").await;

    let (status, _) = owner.post(&format!("{base}/leave/"), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, details) = heir.get(&format!("{base}/participants/")).await;
    assert_eq!(details["data"]["participants"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invite_links_can_be_used_and_revoked() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let guest = app.user("guest").await;
    let late = app.user("late").await;
    let room = owner.create_room("Party", "group", &[]).await;
    let (status, body) = owner
        .post(
            &format!("/tools/api/chat/{room}/invites/"),
            json!({"max_uses": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let code = body["data"]["code"].as_str().unwrap().to_string();
    assert!(
        body["data"]["url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/invite/{code}"))
    );

    let (status, body) = guest
        .post(&format!("/tools/api/chat/invites/{code}/join/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["room_id"], room.as_str());
    guest.say(&room, "thanks for the invite").await;
    // Used up.
    let (status, body) = late
        .post(&format!("/tools/api/chat/invites/{code}/join/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "invite_invalid");

    let (_, body) = owner
        .post(&format!("/tools/api/chat/{room}/invites/"), json!({}))
        .await;
    let open = body["data"]["code"].as_str().unwrap().to_string();
    let (status, _) = guest.get(&format!("/tools/api/chat/{room}/invites/")).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "members cannot see invite links"
    );
    let (_, list) = owner.get(&format!("/tools/api/chat/{room}/invites/")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let (status, _) = owner
        .delete(&format!("/tools/api/chat/{room}/invites/{open}/"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = late
        .post(&format!("/tools/api/chat/invites/{open}/join/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = late
        .post("/tools/api/chat/invites/bogus/join/", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn participants_lists_profiles_roles_and_presence() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Duo", "group", &[&bob]).await;
    let mut socket = bob.ws(&format!("/ws/chat/{room}/")).await;
    // The upgrade answers before the session registers its presence;
    // connection_established is sent after it.
    socket.next_of("connection_established").await;
    let (status, body) = ann
        .get(&format!("/tools/api/chat/{room}/participants/"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let data = &body["data"];
    assert_eq!(data["room_id"], room.as_str());
    assert_eq!(data["status"], "active");
    assert!(data["created_at"].is_string());
    let people = data["participants"].as_array().unwrap();
    assert_eq!(people.len(), 2);
    assert_eq!(people[0]["username"], "bob", "online members first");
    assert_eq!(people[0]["is_online"], true);
    assert_eq!(people[1]["is_online"], false);
    assert_eq!(people[1]["role"], "owner");
    assert!(people[0]["tags"].is_array());
}

fn code(reply: &(StatusCode, Value)) -> (StatusCode, &str) {
    (
        reply.0,
        reply.1["error"]["code"].as_str().unwrap_or("(none)"),
    )
}

#[tokio::test]
async fn moderation_needs_a_higher_role_than_the_target() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let admin = app.user("admin").await;
    let peer = app.user("peer").await;
    let member = app.user("member").await;
    let other = app.user("other").await;
    let room = owner
        .create_room("Ranks", "group", &[&admin, &peer, &member, &other])
        .await;
    let base = format!("/tools/api/chat/{room}");
    for user in [&admin, &peer] {
        let (status, body) = owner
            .post(
                &format!("{base}/members/{}/role/", user.id()),
                json!({"role": "admin"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let remove = |target: &Client| format!("{base}/members/{}/", target.id());
    let mute = |target: &Client| format!("{base}/members/{}/mute/", target.id());
    let ten = json!({"minutes": 10});

    // A plain member moderates nobody.
    for target in [&other, &admin] {
        assert_eq!(
            code(&member.delete(&remove(target)).await),
            (StatusCode::FORBIDDEN, "moderator_only")
        );
        assert_eq!(
            code(&member.post(&mute(target), ten.clone()).await),
            (StatusCode::FORBIDDEN, "moderator_only")
        );
    }
    // An admin cannot act on another admin, nor on the owner.
    for target in [&peer, &owner] {
        assert_eq!(
            code(&admin.delete(&remove(target)).await),
            (StatusCode::FORBIDDEN, "insufficient_role")
        );
        assert_eq!(
            code(&admin.post(&mute(target), ten.clone()).await),
            (StatusCode::FORBIDDEN, "insufficient_role")
        );
    }
    // Nobody mutes the owner, not even the owner.
    assert_eq!(
        code(&owner.post(&mute(&owner), ten.clone()).await),
        (StatusCode::FORBIDDEN, "insufficient_role")
    );
    // The owner acts on admins; admins on members.
    let (status, body) = owner.post(&mute(&peer), ten.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin.post(&mute(&member), ten.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = admin.delete(&remove(&other)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // None of the refusals changed anything.
    let (_, people) = owner.get(&format!("{base}/participants/")).await;
    let roles: HashMap<String, (String, bool)> = people["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["username"].as_str().unwrap().to_string(),
                (
                    p["role"].as_str().unwrap().to_string(),
                    p["muted_until"].is_string(),
                ),
            )
        })
        .collect();
    assert_eq!(
        roles,
        HashMap::from([
            ("owner".to_string(), ("owner".to_string(), false)),
            ("admin".to_string(), ("admin".to_string(), false)),
            ("peer".to_string(), ("admin".to_string(), true)),
            ("member".to_string(), ("member".to_string(), true)),
        ])
    );
}

#[tokio::test]
async fn direct_rooms_cannot_be_managed() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let site_admin = app.user("root").await;
    app.state
        .store
        .update_admin(UserId::parse(&site_admin.id()).unwrap(), true)
        .await
        .unwrap();
    let (status, body) = ann
        .post(&format!("/tools/api/chat/direct/{}/", bob.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let base = format!(
        "/tools/api/chat/{}",
        body["data"]["room_id"].as_str().unwrap()
    );
    let refused = (StatusCode::FORBIDDEN, "direct_room");
    for (who, other) in [(&ann, &bob), (&bob, &ann)] {
        assert_eq!(
            code(
                &who.patch(&format!("{base}/"), json!({"name": "Ours"}))
                    .await
            ),
            refused
        );
        assert_eq!(
            code(&who.post(&format!("{base}/archive/"), json!({})).await),
            refused
        );
        assert_eq!(
            code(
                &who.post(
                    &format!("{base}/members/{}/mute/", other.id()),
                    json!({"minutes": 5})
                )
                .await
            ),
            refused
        );
        assert_eq!(
            code(
                &who.post(&format!("{base}/transfer/"), json!({"user_id": other.id()}))
                    .await
            ),
            refused
        );
        assert_eq!(
            code(&who.post(&format!("{base}/leave/"), json!({})).await),
            refused
        );
        assert_eq!(
            code(&who.delete(&format!("{base}/members/{}/", other.id())).await),
            refused
        );
    }
    // A site admin is nobody in someone else's direct room.
    assert_eq!(
        code(
            &site_admin
                .patch(&format!("{base}/"), json!({"name": "Mine"}))
                .await
        ),
        (StatusCode::FORBIDDEN, "not_a_member")
    );
}

/// Server-created rooms (`general`) have no owner: site admins act as owner there.
#[tokio::test]
async fn site_admins_own_the_rooms_the_server_created() {
    let app = spawn_app().await;
    let root = app.user("root").await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let general = "/tools/api/chat/general";

    // Before: a plain user of general may not.
    assert_eq!(
        code(
            &root
                .patch(&format!("{general}/"), json!({"name": "Lobby"}))
                .await
        ),
        (StatusCode::FORBIDDEN, "owner_only")
    );
    app.state
        .store
        .update_admin(UserId::parse(&root.id()).unwrap(), true)
        .await
        .unwrap();
    let (status, body) = root
        .patch(&format!("{general}/"), json!({"name": "Lobby"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["name"], "Lobby");
    let (status, body) = root
        .delete(&format!("{general}/members/{}/", bob.id()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = root
        .post(
            &format!("{general}/members/{}/mute/", ann.id()),
            json!({"minutes": 1}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = root.post(&format!("{general}/archive/"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["status"], "archived");
    assert_eq!(
        code(&ann.post(&format!("{general}/unarchive/"), json!({})).await),
        (StatusCode::FORBIDDEN, "owner_only")
    );
    let (status, body) = root.post(&format!("{general}/unarchive/"), json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // In a room with an owner, a site admin has only their member role.
    let room = ann.create_room("Ann's", "group", &[&root]).await;
    assert_eq!(
        code(
            &root
                .patch(
                    &format!("/tools/api/chat/{room}/"),
                    json!({"name": "Taken"})
                )
                .await
        ),
        (StatusCode::FORBIDDEN, "owner_only")
    );
}

#[tokio::test]
async fn archived_rooms_take_no_one_new() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let newbie = app.user("newbie").await;
    let walker = app.user("walker").await;
    let public = owner.create_room("Museum", "public", &[]).await;
    let group = owner.create_room("Vault", "group", &[]).await;
    let (status, body) = owner
        .post(&format!("/tools/api/chat/{group}/invites/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let invite = body["data"]["code"].as_str().unwrap().to_string();
    for room in [&public, &group] {
        let (status, body) = owner
            .post(&format!("/tools/api/chat/{room}/archive/"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let archived = (StatusCode::FORBIDDEN, "room_archived");
    for room in [&public, &group] {
        let base = format!("/tools/api/chat/{room}");
        assert_eq!(
            code(
                &owner
                    .post(&format!("{base}/members/"), json!({"user_id": newbie.id()}))
                    .await
            ),
            archived
        );
        assert_eq!(
            code(&owner.post(&format!("{base}/invites/"), json!({})).await),
            archived
        );
        assert_eq!(
            code(
                &owner
                    .patch(&format!("{base}/"), json!({"name": "Renamed"}))
                    .await
            ),
            archived
        );
    }
    assert_eq!(
        code(
            &walker
                .post(&format!("/tools/api/chat/{public}/join/"), json!({}))
                .await
        ),
        archived
    );
    assert_eq!(
        code(
            &walker
                .post(
                    &format!("/tools/api/chat/invites/{invite}/join/"),
                    json!({})
                )
                .await
        ),
        archived
    );
    // Still readable.
    let (status, _) = walker
        .get(&format!("/tools/api/chat/{public}/messages/"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// A logged-in user may read a public room without joining it, but not run it.
#[tokio::test]
async fn outsiders_read_public_rooms_but_do_not_moderate_them() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let member = app.user("member").await;
    let outsider = app.user("outsider").await;
    let room = owner.create_room("Square", "public", &[&member]).await;
    let base = format!("/tools/api/chat/{room}");

    let (status, body) = outsider.get(&format!("{base}/participants/")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["participants"].as_array().unwrap().len(), 2);
    let (status, _) = outsider.get(&format!("{base}/")).await;
    assert_eq!(status, StatusCode::OK);

    let moderator_only = (StatusCode::FORBIDDEN, "moderator_only");
    assert_eq!(
        code(
            &outsider
                .post(
                    &format!("{base}/members/"),
                    json!({"user_id": outsider.id()})
                )
                .await
        ),
        moderator_only
    );
    assert_eq!(
        code(
            &outsider
                .delete(&format!("{base}/members/{}/", member.id()))
                .await
        ),
        moderator_only
    );
    assert_eq!(
        code(
            &outsider
                .post(
                    &format!("{base}/members/{}/mute/", member.id()),
                    json!({"minutes": 5})
                )
                .await
        ),
        moderator_only
    );
    assert_eq!(
        code(&outsider.post(&format!("{base}/invites/"), json!({})).await),
        moderator_only
    );
    assert_eq!(
        code(
            &outsider
                .patch(&format!("{base}/"), json!({"name": "Mine"}))
                .await
        ),
        (StatusCode::FORBIDDEN, "owner_only")
    );
    assert_eq!(
        code(&outsider.post(&format!("{base}/archive/"), json!({})).await),
        (StatusCode::FORBIDDEN, "owner_only")
    );
    assert_eq!(
        code(
            &outsider
                .post(&format!("{base}/send/"), json!({"content": "hi"}))
                .await
        ),
        (StatusCode::FORBIDDEN, "not_a_member")
    );
    assert_eq!(
        code(&outsider.post(&format!("{base}/leave/"), json!({})).await),
        (StatusCode::FORBIDDEN, "not_a_member")
    );
}
