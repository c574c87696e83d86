use std::collections::HashSet;
use std::time::{Duration, Instant};

use std::sync::Arc;

use futures_util::StreamExt;
use parley::domain::ids::{MessageId, RoomId, UserId};
use parley::domain::message::{InsertOutcome, MessageType, NewMessage, Sender};
use parley::domain::time::now_ms;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{refusal, refused_status, spawn_app, spawn_app_with};

#[tokio::test]
async fn connection_established_describes_the_session() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Team", "group", &[&bob]).await;
    let mut bob_ws = bob.ws(&format!("/ws/chat/{room}/")).await;
    let hello = bob_ws.next_json().await;
    assert_eq!(hello["type"], "connection_established");
    assert_eq!(hello["room_id"], room.as_str());
    assert_eq!(hello["user"]["username"], "bob");
    assert_eq!(hello["user_profile"]["username"], "bob");
    assert_eq!(hello["user_profile"]["is_online"], true);
    assert_eq!(hello["heartbeat_interval"], 30.0);
    assert_eq!(hello["last_seq"], 1);
    assert_eq!(hello["online"], json!([bob.id()]));

    let mut ann_all = ann.ws("/ws/").await;
    let hello = ann_all.next_json().await;
    assert_eq!(hello["type"], "connection_established");
    assert!(hello["room_id"].is_null());
    let rooms: Vec<&str> = hello["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert!(rooms.contains(&room.as_str()) && rooms.contains(&"general"));
    let team = hello["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["room_id"] == room.as_str())
        .unwrap();
    let online: HashSet<String> = team["online"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(online, HashSet::from([ann.id(), bob.id()]));
    // Bob sees Ann arrive.
    let joined = bob_ws.next_of("user_joined").await;
    assert_eq!(joined["user_id"], ann.id());
    assert_eq!(joined["username"], "ann");
    assert_eq!(joined["room_id"], room.as_str());
    assert_eq!(joined["user_profile"]["username"], "ann");
    assert!(
        joined["user_profile"].get("email").is_none(),
        "presence frames do not leak e-mail"
    );
}

#[tokio::test]
async fn two_users_chat_and_the_echo_is_the_ack() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Team", "group", &[&bob]).await;
    let mut a = ann.ws(&format!("/ws/chat/{room}/")).await;
    let mut b = bob.ws(&format!("/ws/chat/{room}/")).await;
    a.next_of("connection_established").await;
    b.next_of("connection_established").await;

    a.send_json(json!({"type": "message", "content": "hi bob", "client_id": "a-1"}))
        .await;
    let ack = a.next_of("chat_message").await;
    assert_eq!(ack["room_id"], room.as_str());
    assert_eq!(ack["message"]["client_id"], "a-1");
    assert_eq!(ack["message"]["is_own"], true);
    let got = b.next_of("chat_message").await;
    assert_eq!(got["message"]["content"], "hi bob");
    assert_eq!(got["message"]["is_own"], false);
    assert_eq!(got["message"]["sender"], "ann");
    assert_eq!(got["message"]["id"], ack["message"]["id"]);

    // The original system's field name works too.
    b.send_json(json!({"type": "message", "message": "hi ann"}))
        .await;
    assert_eq!(b.next_of("chat_message").await["message"]["is_own"], true);
    let got = a.next_of("chat_message").await;
    assert_eq!(got["message"]["content"], "hi ann");
    assert_eq!(
        got["message"]["seq"].as_i64().unwrap(),
        ack["message"]["seq"].as_i64().unwrap() + 1
    );

    // REST sends are delivered exactly like WebSocket ones.
    let sent = ann.say(&room, "via rest").await;
    let got = b.next_of("chat_message").await;
    assert_eq!(got["message"]["id"], sent["id"]);
    assert_eq!(got["message"]["content"], "via rest");
    let echo = a.next_of("chat_message").await;
    assert_eq!(echo["message"]["is_own"], true);
}

#[tokio::test]
async fn client_id_is_idempotent_over_websocket() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let mut a = ann.ws("/ws/chat/general/").await;
    a.next_of("connection_established").await;
    a.send_json(json!({"type": "message", "content": "once", "client_id": "dup"}))
        .await;
    let first = a.next_of("chat_message").await;
    a.send_json(json!({"type": "message", "content": "once", "client_id": "dup"}))
        .await;
    let second = a.next_of("chat_message").await;
    assert_eq!(first["message"]["id"], second["message"]["id"]);
    assert_eq!(first["message"]["seq"], second["message"]["seq"]);
    let (_, history) = ann.get("/tools/api/chat/general/messages/").await;
    let count = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["client_id"] == "dup")
        .count();
    assert_eq!(count, 1);
}

/// A message committed whose acknowledgement was lost (the database connection
/// broke after COMMIT: the sender got `unavailable`, nobody got the message)
/// reaches the room when the sender retries its client_id, not only when a
/// later message reveals the gap.
#[tokio::test]
async fn a_retry_of_a_committed_but_unacknowledged_message_reaches_everyone() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Lossy", "group", &[&bob]).await;
    let mut a = ann.ws(&format!("/ws/chat/{room}/")).await;
    a.next_of("connection_established").await;
    let mut b = bob.ws(&format!("/ws/chat/{room}/")).await;
    b.next_of("connection_established").await;
    let mut b_all = bob.ws("/ws/").await;
    b_all.next_of("connection_established").await;

    // Stored behind the writer's back: committed, never fanned out.
    let sender = Arc::new(Sender {
        id: UserId::parse(&ann.id()).unwrap(),
        username: "ann".into(),
        display_name: String::new(),
        avatar_version: 0,
    });
    let stored = app
        .state
        .store
        .insert_messages(&[NewMessage {
            id: MessageId::new(),
            room_id: RoomId::parse(&room).unwrap(),
            sender: Some(sender),
            message_type: MessageType::Text,
            content: "lost ack".into(),
            client_id: Some("lost-1".into()),
            event: None,
            attachments: Vec::new(),
            created_at: now_ms(),
        }])
        .await
        .unwrap();
    let InsertOutcome::Inserted(stored) = &stored[0] else {
        panic!("stored once");
    };
    b.expect_none_of("chat_message", Duration::from_millis(300))
        .await;

    a.send_json(json!({"type": "message", "content": "lost ack", "client_id": "lost-1"}))
        .await;
    let ack = a.next_of("chat_message").await;
    assert_eq!(ack["message"]["id"], stored.id.to_string());
    assert_eq!(ack["message"]["client_id"], "lost-1");
    for ws in [&mut b, &mut b_all] {
        let got = ws.next_of("chat_message").await;
        assert_eq!(got["message"]["id"], stored.id.to_string());
        assert_eq!(got["message"]["seq"], stored.seq);
        assert_eq!(got["message"]["is_own"], false);
        ws.expect_none_of("chat_message", Duration::from_millis(300))
            .await;
    }

    // Retrying once more sends bob nothing new: his connections have that seq.
    a.send_json(json!({"type": "message", "content": "lost ack", "client_id": "lost-1"}))
        .await;
    assert_eq!(
        a.next_of("chat_message").await["message"]["id"],
        stored.id.to_string()
    );
    ann.say(&room, "next").await;
    for ws in [&mut b, &mut b_all] {
        let got = ws.next_of("chat_message").await;
        assert_eq!(got["message"]["content"], "next", "{got}");
    }
}

/// Renames, archiving, mutes and role changes reach every connection
/// following the room, on `/ws/` and on `/ws/chat/<room>/` alike; a muted
/// member's typing and messages are refused over the socket.
#[tokio::test]
async fn room_and_member_updates_reach_both_kinds_of_connection() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Studio", "group", &[&bob]).await;
    let base = format!("/tools/api/chat/{room}");
    let mut single = bob.ws(&format!("/ws/chat/{room}/")).await;
    single.next_of("connection_established").await;
    let mut all = bob.ws("/ws/").await;
    all.next_of("connection_established").await;

    let (status, body) = ann
        .patch(
            &format!("{base}/"),
            json!({"name": "Big Studio", "description": "louder"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    for ws in [&mut single, &mut all] {
        let update = ws.next_of("room_updated").await;
        assert_eq!(update["room_id"], room.as_str());
        assert_eq!(update["room"]["name"], "Big Studio");
        assert_eq!(update["room"]["description"], "louder");
        assert_eq!(update["room"]["is_archived"], false);
    }

    let (status, body) = ann
        .post(
            &format!("{base}/members/{}/mute/", bob.id()),
            json!({"minutes": 10}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    for ws in [&mut single, &mut all] {
        let update = ws.next_of("member_updated").await;
        assert_eq!(update["room_id"], room.as_str());
        assert_eq!(update["user_id"], bob.id());
        assert_eq!(update["role"], "member");
        assert_eq!(update["muted_until"], body["data"]["muted_until"]);
    }
    single
        .send_json(json!({"type": "typing", "is_typing": true}))
        .await;
    let error = single.next_of("error").await;
    assert_eq!(error["code"], "muted", "{error}");
    all.send_json(json!({"type": "typing", "is_typing": true, "room_id": room}))
        .await;
    assert_eq!(all.next_of("error").await["code"], "muted");
    single
        .send_json(json!({"type": "message", "content": "hush", "client_id": "m1"}))
        .await;
    let error = single.next_of("error").await;
    assert_eq!(error["code"], "muted", "{error}");
    assert_eq!(error["client_id"], "m1");

    let (status, body) = ann
        .post(
            &format!("{base}/members/{}/role/", bob.id()),
            json!({"role": "admin"}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{body}");
    for ws in [&mut single, &mut all] {
        let update = ws.next_of("member_updated").await;
        assert_eq!(update["user_id"], bob.id());
        assert_eq!(update["role"], "admin");
    }
    let (status, _) = ann
        .post(
            &format!("{base}/members/{}/mute/", bob.id()),
            json!({"muted": false}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    for ws in [&mut single, &mut all] {
        let update = ws.next_of("member_updated").await;
        assert_eq!(update["muted_until"], Value::Null);
    }

    let (status, _) = ann.post(&format!("{base}/archive/"), json!({})).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    for ws in [&mut single, &mut all] {
        let update = ws.next_of("room_updated").await;
        assert_eq!(update["room"]["is_archived"], true);
        assert_eq!(update["room"]["status"], "archived");
    }
}

/// `heartbeat_ack` is accepted without a reply and without an error.
#[tokio::test]
async fn heartbeat_ack_is_accepted_silently() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let mut ws = ann.ws("/ws/chat/general/").await;
    ws.next_of("connection_established").await;
    ws.send_json(json!({"type": "heartbeat_ack"})).await;
    ws.send_json(json!({"type": "heartbeat_ack", "timestamp": 1_764_000_000_000_i64}))
        .await;
    ws.send_json(json!({"type": "heartbeat_ack", "room_id": "general"}))
        .await;
    ws.send_json(json!({"type": "ping"})).await;
    // Frames are answered in order: the pong comes next, nothing before it.
    let next = ws.next_json().await;
    assert_eq!(next["type"], "pong", "{next}");
    ws.expect_none_of("error", Duration::from_millis(300)).await;
    ws.send_json(json!({"type": "message", "content": "still here"}))
        .await;
    assert_eq!(
        ws.next_of("chat_message").await["message"]["content"],
        "still here"
    );
}

#[tokio::test]
async fn three_tabs_are_one_presence() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Team", "group", &[&bob]).await;
    let mut watcher = ann.ws(&format!("/ws/chat/{room}/")).await;
    watcher.next_of("connection_established").await;

    let mut tabs = Vec::new();
    for path in [
        format!("/ws/chat/{room}/"),
        "/ws/".to_string(),
        format!("/ws/chat/{room}/"),
    ] {
        let mut tab = bob.ws(&path).await;
        tab.next_of("connection_established").await;
        tabs.push(tab);
    }
    let joined = watcher.next_of("user_joined").await;
    assert_eq!(joined["user_id"], bob.id());
    watcher
        .expect_none_of("user_joined", Duration::from_millis(300))
        .await;
    let (_, profile) = ann
        .get(&format!("/tools/api/user/{}/profile/", bob.id()))
        .await;
    assert_eq!(profile["data"]["is_online"], true);

    // Closing two tabs changes nothing; closing the last one is a leave.
    for mut tab in tabs.drain(..2) {
        tab.stream.close(None).await.unwrap();
    }
    watcher
        .expect_none_of("user_left", Duration::from_millis(300))
        .await;
    let mut last = tabs.pop().unwrap();
    last.stream.close(None).await.unwrap();
    let left = watcher.next_of("user_left").await;
    assert_eq!(left["user_id"], bob.id());
    let (_, profile) = ann
        .get(&format!("/tools/api/user/{}/profile/", bob.id()))
        .await;
    assert_eq!(profile["data"]["is_online"], false);
    assert!(profile["data"]["last_seen"].is_string());
}

#[tokio::test]
async fn a_reconnect_within_the_presence_grace_is_neither_a_leave_nor_a_join() {
    let app = spawn_app_with(|c| c.presence_grace = Duration::from_secs(3)).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Team", "group", &[&bob]).await;
    let mut watcher = ann.ws(&format!("/ws/chat/{room}/")).await;
    watcher.next_of("connection_established").await;
    let mut tab = bob.ws(&format!("/ws/chat/{room}/")).await;
    tab.next_of("connection_established").await;
    assert_eq!(watcher.next_of("user_joined").await["user_id"], bob.id());

    // A reload: the socket closes and a new one opens a moment later.
    tab.stream.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut reloaded = bob.ws(&format!("/ws/chat/{room}/")).await;
    let hello = reloaded.next_of("connection_established").await;
    assert!(
        hello["online"]
            .as_array()
            .unwrap()
            .iter()
            .any(|u| u == &json!(bob.id())),
        "still listed online: {hello}"
    );
    let (_, profile) = ann
        .get(&format!("/tools/api/user/{}/profile/", bob.id()))
        .await;
    assert_eq!(profile["data"]["is_online"], true);
    // Past the grace period, still nothing: the presence went on.
    watcher
        .expect_none_of("user_left", Duration::from_secs(4))
        .await;
    watcher
        .expect_none_of("user_joined", Duration::from_millis(100))
        .await;
    reloaded.stream.close(None).await.unwrap();
}

#[tokio::test]
async fn a_user_who_stays_away_leaves_once_the_presence_grace_is_over() {
    let app = spawn_app_with(|c| c.presence_grace = Duration::from_millis(1500)).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Team", "group", &[&bob]).await;
    let mut watcher = ann.ws(&format!("/ws/chat/{room}/")).await;
    watcher.next_of("connection_established").await;
    let mut tab = bob.ws(&format!("/ws/chat/{room}/")).await;
    tab.next_of("connection_established").await;
    watcher.next_of("user_joined").await;

    tab.stream.close(None).await.unwrap();
    // Within the grace period they still count as present...
    watcher
        .expect_none_of("user_left", Duration::from_millis(700))
        .await;
    let (_, profile) = ann
        .get(&format!("/tools/api/user/{}/profile/", bob.id()))
        .await;
    assert_eq!(profile["data"]["is_online"], true);
    // ...then they leave, once (the shared timer ticks every second).
    let left = watcher.next_of("user_left").await;
    assert_eq!(left["user_id"], bob.id());
    let (_, profile) = ann
        .get(&format!("/tools/api/user/{}/profile/", bob.id()))
        .await;
    assert_eq!(profile["data"]["is_online"], false);
    assert!(profile["data"]["last_seen"].is_string());
    watcher
        .expect_none_of("user_left", Duration::from_millis(1500))
        .await;

    // Coming back after that is an arrival again.
    let mut back = bob.ws(&format!("/ws/chat/{room}/")).await;
    back.next_of("connection_established").await;
    assert_eq!(watcher.next_of("user_joined").await["user_id"], bob.id());
}

#[tokio::test]
async fn users_in_their_presence_grace_leave_when_the_server_stops() {
    let app = spawn_app_with(|c| c.presence_grace = Duration::from_secs(60)).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Team", "group", &[&bob]).await;
    let mut tab = bob.ws(&format!("/ws/chat/{room}/")).await;
    tab.next_of("connection_established").await;
    tab.stream.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let state = app.state.clone();
    let bob_id = UserId::parse(&bob.id()).unwrap();
    assert!(state.bus.hub().is_online(bob_id), "departing, not gone");
    app.stop().await;
    assert!(
        !state.bus.hub().is_online(bob_id),
        "gone once the server stopped"
    );
}

#[tokio::test]
async fn typing_is_shown_to_others_and_expires() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Team", "group", &[&bob]).await;
    let mut a = ann.ws(&format!("/ws/chat/{room}/")).await;
    let mut b = bob.ws(&format!("/ws/chat/{room}/")).await;
    a.next_of("connection_established").await;
    b.next_of("connection_established").await;

    a.send_json(json!({"type": "typing", "is_typing": true}))
        .await;
    let typing = b.next_of("user_typing").await;
    assert_eq!(typing["user_id"], ann.id());
    assert_eq!(typing["username"], "ann");
    assert_eq!(typing["is_typing"], true);
    a.expect_none_of("user_typing", Duration::from_millis(200))
        .await;

    // Stopping explicitly is announced (within a second: changes are coalesced).
    a.send_json(json!({"type": "typing", "is_typing": false}))
        .await;
    assert_eq!(b.next_of("user_typing").await["is_typing"], false);

    // Left alone, it expires 6 s after the last refresh. (The start may reach
    // the room up to a second late: changes are coalesced to one a second.)
    let started = Instant::now();
    a.send_json(json!({"type": "typing", "is_typing": true}))
        .await;
    assert_eq!(b.next_of("user_typing").await["is_typing"], true);
    let stop = loop {
        let frame = b
            .try_next_json(Duration::from_secs(9))
            .await
            .expect("typing expires");
        if frame["type"] == "user_typing" {
            break frame;
        }
    };
    assert_eq!(stop["is_typing"], false);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(6) && waited <= Duration::from_secs(9),
        "{waited:?}"
    );

    // Sending a message ends typing too.
    a.send_json(json!({"type": "typing", "is_typing": true}))
        .await;
    b.next_of("user_typing").await;
    a.send_json(json!({"type": "message", "content": "done typing"}))
        .await;
    let frame = b.next_json().await;
    assert_eq!(frame["type"], "user_typing");
    assert_eq!(frame["is_typing"], false);
}

#[tokio::test]
async fn read_receipts_reach_the_room() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (_, dm) = ann
        .post(&format!("/tools/api/chat/direct/{}/", bob.id()), json!({}))
        .await;
    let room = dm["data"]["room_id"].as_str().unwrap().to_string();
    let mut a = ann.ws(&format!("/ws/chat/{room}/")).await;
    let mut b = bob.ws(&format!("/ws/chat/{room}/")).await;
    a.next_of("connection_established").await;
    b.next_of("connection_established").await;
    let first = ann.say(&room, "one").await;
    let second = ann.say(&room, "two").await;
    b.next_of("chat_message").await;
    b.next_of("chat_message").await;

    b.send_json(json!({"type": "read_status", "message_ids": [first["id"]]}))
        .await;
    let update = a.next_of("read_status_update").await;
    assert_eq!(update["user_id"], bob.id());
    assert_eq!(update["up_to_seq"], first["seq"]);
    assert_eq!(update["message_ids"], json!([first["id"]]));

    b.send_json(json!({"type": "read", "up_to_seq": second["seq"]}))
        .await;
    let update = a.next_of("read_status_update").await;
    assert_eq!(update["up_to_seq"], second["seq"]);
    // Reading the same again changes nothing and announces nothing.
    b.send_json(json!({"type": "read", "up_to_seq": second["seq"]}))
        .await;
    a.expect_none_of("read_status_update", Duration::from_millis(300))
        .await;

    let (_, history) = ann.get(&format!("/tools/api/chat/{room}/messages/")).await;
    assert!(
        history["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["is_read"] == true)
    );

    b.send_json(json!({"type": "read_status", "message_ids": ["not-an-id"]}))
        .await;
    assert_eq!(b.next_of("error").await["code"], "invalid_message_id");
}

#[tokio::test]
async fn resume_after_a_drop_loses_nothing_and_repeats_nothing() {
    let app = spawn_app_with(|c| {
        c.message_rate = 1000;
        c.message_burst = 1000;
    })
    .await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Busy", "group", &[&bob]).await;

    // Bob keeps sending the whole time.
    let sender = {
        let room = room.clone();
        let token = bob.api_token().await;
        let url = app.url(&format!("/tools/api/chat/{room}/send/"));
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut sent = Vec::new();
            for i in 0..150 {
                let reply: Value = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&json!({"content": format!("n{i}")}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                sent.push(reply["data"]["seq"].as_i64().unwrap());
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            sent
        })
    };

    let mut seen: Vec<i64> = Vec::new();
    let take = |frame: &Value, seen: &mut Vec<i64>| {
        if frame["type"] == "chat_message" {
            seen.push(frame["message"]["seq"].as_i64().unwrap());
        }
    };
    let mut ws = ann.ws(&format!("/ws/chat/{room}/?since_seq=0")).await;
    for drop_round in 0..3 {
        // Read a while, then drop the connection abruptly.
        let until = Instant::now() + Duration::from_millis(120);
        while Instant::now() < until {
            if let Some(frame) = ws.try_next_json(Duration::from_millis(20)).await {
                take(&frame, &mut seen);
            }
        }
        drop(ws);
        tokio::time::sleep(Duration::from_millis(80 + drop_round * 40)).await;
        let last = seen.iter().copied().max().unwrap_or(0);
        ws = ann.ws(&format!("/ws/chat/{room}/?since_seq={last}")).await;
        let hello = ws.next_json().await;
        assert_eq!(hello["type"], "connection_established");
        // Replayed messages come before resume_complete, then live ones follow.
        loop {
            let frame = ws.next_json().await;
            if frame["type"] == "resume_complete" {
                assert_eq!(frame["room_id"], room.as_str());
                break;
            }
            take(&frame, &mut seen);
        }
    }
    let sent = sender.await.unwrap();
    let last_sent = *sent.iter().max().unwrap();
    while seen.iter().copied().max().unwrap_or(0) < last_sent {
        let frame = ws.next_json().await;
        take(&frame, &mut seen);
    }
    // Every seq from 1 (room created) exactly once, in order.
    assert_eq!(seen, (1..=last_sent).collect::<Vec<_>>());
}

#[tokio::test]
async fn resume_frame_replays_on_the_all_rooms_socket() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Later", "group", &[&bob]).await;
    for i in 0..5 {
        ann.say(&room, &format!("m{i}")).await;
    }
    let mut b = bob.ws("/ws/").await;
    b.next_of("connection_established").await;
    b.send_json(json!({"type": "resume", "room_id": room, "since_seq": 3}))
        .await;
    let mut replayed = Vec::new();
    loop {
        let frame = b.next_json().await;
        match frame["type"].as_str().unwrap() {
            "chat_message" => replayed.push(frame["message"]["seq"].as_i64().unwrap()),
            "resume_complete" => {
                assert_eq!(frame["last_seq"], 6);
                assert_eq!(frame["replayed"], 3);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(replayed, [4, 5, 6]);
    b.send_json(json!({"type": "resume", "since_seq": 3})).await;
    assert_eq!(b.next_of("error").await["code"], "room_required");
}

#[tokio::test]
async fn the_all_rooms_socket_follows_joins_and_leaves() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let mut b = bob.ws("/ws/").await;
    b.next_of("connection_established").await;
    let room = ann.create_room("Fresh", "group", &[&bob]).await;
    let joined = b.next_of("room_joined").await;
    assert_eq!(joined["room_id"], room.as_str());
    assert_eq!(joined["room"]["name"], "Fresh");
    ann.say(&room, "welcome").await;
    loop {
        let frame = b.next_of("chat_message").await;
        if frame["message"]["content"] == "welcome" {
            break;
        }
    }
    b.send_json(json!({"type": "message", "room_id": room, "content": "thanks", "client_id": "t"}))
        .await;
    assert_eq!(b.next_of("chat_message").await["message"]["client_id"], "t");

    let (status, _) = bob
        .post(&format!("/tools/api/chat/{room}/leave/"), json!({}))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let left = b.next_of("room_left").await;
    assert_eq!(left["reason"], "left");
    ann.say(&room, "after bob left").await;
    b.expect_none_of("chat_message", Duration::from_millis(400))
        .await;
}

#[tokio::test]
async fn a_removed_member_is_cut_off_at_once() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Club", "group", &[&bob]).await;
    let mut single = bob.ws(&format!("/ws/chat/{room}/")).await;
    let mut all = bob.ws("/ws/").await;
    single.next_of("connection_established").await;
    all.next_of("connection_established").await;

    let (status, _) = ann
        .delete(&format!("/tools/api/chat/{room}/members/{}/", bob.id()))
        .await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let close = single.closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(all.next_of("room_left").await["reason"], "removed");
    ann.say(&room, "bob cannot see this").await;
    all.expect_none_of("chat_message", Duration::from_millis(400))
        .await;
    let refused = bob
        .try_ws(&format!("/ws/chat/{room}/"), Some(&bob.origin()))
        .await;
    assert_eq!(refused_status(refused), 403);
}

#[tokio::test]
async fn upgrades_are_authenticated_and_origin_checked() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let eve = app.user("eve").await;
    let room = ann.create_room("Private", "group", &[]).await;
    let own = Some(ann.origin());
    let own = own.as_deref();

    assert_eq!(
        refusal(app.anonymous().try_ws("/ws/chat/general/", own).await),
        (401, "not_authenticated".into())
    );
    // A cookie from a foreign page, or from something that is not a browser page at all.
    for origin in [Some("http://evil.example"), Some("null"), None] {
        for path in ["/ws/chat/general/", "/ws/"] {
            assert_eq!(
                refusal(ann.try_ws(path, origin).await),
                (403, "origin_not_allowed".into()),
                "{path} from {origin:?}"
            );
        }
    }
    assert_eq!(
        refusal(eve.try_ws(&format!("/ws/chat/{room}/"), own).await),
        (403, "not_a_member".into())
    );
    assert_eq!(
        refusal(ann.try_ws("/ws/chat/nope/", own).await),
        (404, "room_not_found".into())
    );
    assert_eq!(
        refusal(ann.try_ws("/ws/chat/general/?since_seq=x", own).await),
        (400, "invalid_query".into())
    );

    // A browser on the server's own origin, and a bot with a token and no Origin.
    let mut own = ann.ws("/ws/chat/general/").await;
    assert_eq!(own.next_json().await["type"], "connection_established");
    let mut bot = app.anonymous();
    bot.bearer = Some(ann.api_token().await);
    let mut ws = bot
        .try_ws("/ws/", Some("http://anywhere.example"))
        .await
        .expect("bearer ignores Origin");
    assert_eq!(ws.next_json().await["type"], "connection_established");
    let mut ws = bot
        .try_ws("/ws/chat/general/", None)
        .await
        .expect("bearer needs no Origin");
    assert_eq!(ws.next_json().await["type"], "connection_established");

    // A plain GET is not an upgrade.
    let (status, body) = ann
        .send(
            ann.request(reqwest::Method::GET, "/ws/chat/general/")
                .header("origin", ann.origin()),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "websocket_required");
}

#[tokio::test]
async fn bad_frames_get_errors_and_the_connection_stays() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let mut ws = ann.ws("/ws/chat/general/").await;
    ws.next_of("connection_established").await;

    for (frame, code) in [
        ("not json", "invalid_json"),
        (r#"{"type":"launch_rockets"}"#, "unknown_type"),
        (r#"{"content":"no type"}"#, "invalid_frame"),
        (r#"{"type":"message"}"#, "invalid_frame"),
        (r#"{"type":"typing","is_typing":"maybe"}"#, "invalid_frame"),
        (r#"{"type":"message","content":"   "}"#, "content_empty"),
        (
            r#"{"type":"message","content":"x","message_type":"system"}"#,
            "invalid_message_type",
        ),
        (
            r#"{"type":"message","content":"x","room_id":"elsewhere"}"#,
            "wrong_room",
        ),
    ] {
        ws.send_raw(Message::text(frame)).await;
        let error = ws.next_of("error").await;
        assert_eq!(error["code"], code, "{frame}");
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    ws.send_json(json!({"type": "message", "client_id": "c7"}))
        .await;
    assert_eq!(ws.next_of("error").await["client_id"], "c7");
    ws.send_raw(Message::binary(vec![1, 2, 3])).await;
    assert_eq!(ws.next_of("error").await["code"], "binary_not_supported");

    ws.send_json(json!({"type": "ping"})).await;
    assert!(ws.next_of("pong").await["timestamp"].is_i64());
    ws.send_json(json!({"type": "heartbeat_ack"})).await;
    ws.send_json(json!({"type": "message", "content": "still connected"}))
        .await;
    assert_eq!(
        ws.next_of("chat_message").await["message"]["content"],
        "still connected"
    );

    // Over 64 KiB: closed with 1009.
    ws.send_raw(Message::text(format!(
        r#"{{"type":"message","content":"{}"}}"#,
        "x".repeat(70 * 1024)
    )))
    .await;
    let close = ws.closed().await.expect("close frame");
    assert_eq!(close.code, CloseCode::Size);
    let (_, history) = ann.get("/tools/api/chat/general/messages/").await;
    let texts = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["message_type"] == "text")
        .count();
    assert_eq!(texts, 1);
}

#[tokio::test]
async fn flooding_is_rate_limited_and_not_stored() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let mut ws = ann.ws("/ws/chat/general/").await;
    ws.next_of("connection_established").await;
    for i in 0..40 {
        ws.send_json(json!({"type": "message", "content": format!("flood {i}"), "client_id": format!("f{i}")})).await;
    }
    let (mut acked, mut limited) = (0, 0);
    while acked + limited < 40 {
        let frame = ws.next_json().await;
        match frame["type"].as_str().unwrap() {
            "chat_message" => acked += 1,
            "error" => {
                assert_eq!(frame["code"], "rate_limited");
                assert!(frame["client_id"].as_str().unwrap().starts_with('f'));
                limited += 1;
            }
            _ => {}
        }
    }
    assert!((20..=25).contains(&acked), "burst 20: {acked}");
    let (_, history) = ann.get("/tools/api/chat/general/messages/?limit=200").await;
    let stored = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["message_type"] == "text")
        .count();
    assert_eq!(stored, acked);
}

#[tokio::test]
async fn a_client_that_does_not_read_is_disconnected_not_buffered() {
    let app = spawn_app_with(|c| {
        c.ws_outbound_queue = 16;
        c.message_rate = 100_000;
        c.message_burst = 100_000;
    })
    .await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Firehose", "group", &[&bob]).await;
    let mut slow = bob.ws(&format!("/ws/chat/{room}/")).await;
    let mut fast = ann.ws(&format!("/ws/chat/{room}/")).await;
    fast.next_of("connection_established").await;

    let token = ann.api_token().await;
    let url = app.url(&format!("/tools/api/chat/{room}/send/"));
    let big = "x".repeat(4000);
    let http = reqwest::Client::new();
    let mut sent = 0;
    let fast_reader = tokio::spawn(async move {
        let mut count = 0;
        while let Some(Ok(frame)) = fast.stream.next().await {
            if let Message::Text(text) = frame
                && text.contains("\"chat_message\"")
            {
                count += 1;
                if count == 3000 {
                    break;
                }
            }
        }
        count
    });
    // Keep sending until the server gives up on the slow reader.
    while app.state.bus.hub().connection_count() == 2 && sent < 3000 {
        let batch = (0..20).map(|_| {
            http.post(&url)
                .bearer_auth(&token)
                .json(&json!({"content": big}))
                .send()
        });
        for reply in futures_util::future::join_all(batch).await {
            assert_eq!(reply.unwrap().status(), reqwest::StatusCode::CREATED);
            sent += 1;
        }
    }
    assert_eq!(
        app.state.bus.hub().connection_count(),
        1,
        "the slow client was dropped after {sent} messages"
    );
    let mut received = 0;
    let close = loop {
        match slow.stream.next().await {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(received < sent + 2, "it did not get everything");
    assert_eq!(close.expect("close frame").code, CloseCode::Again);
    // Meanwhile the reading client got every message.
    for _ in sent..3000 {
        ann.say(&room, "tail").await;
    }
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(30), fast_reader)
            .await
            .unwrap()
            .unwrap(),
        3000
    );
}

#[tokio::test]
async fn silent_peers_are_closed_within_two_heartbeats() {
    let app = spawn_app_with(|c| c.heartbeat_interval = Duration::from_millis(400)).await;
    let ann = app.user("ann").await;
    let mut live = ann.ws("/ws/").await;
    let mut dead = ann.ws("/ws/chat/general/").await;
    live.next_of("connection_established").await;
    dead.next_of("connection_established").await;
    assert_eq!(app.state.bus.hub().connection_count(), 2);
    // `live` keeps reading, and so answers pings; `dead` never reads again.
    let started = Instant::now();
    let mut beats = 0;
    while started.elapsed() < Duration::from_millis(1000) {
        if let Some(frame) = live.try_next_json(Duration::from_millis(50)).await
            && frame["type"] == "heartbeat"
        {
            assert!(frame["timestamp"].is_i64());
            beats += 1;
        }
    }
    assert!(beats >= 2, "heartbeat frames every interval: {beats}");
    assert_eq!(
        app.state.bus.hub().connection_count(),
        1,
        "the silent peer was closed within two intervals"
    );
    live.next_of("heartbeat").await;
    assert_eq!(
        app.state.bus.hub().connection_count(),
        1,
        "the reading peer is still served"
    );
    let _ = dead.closed().await;
}

#[tokio::test]
async fn a_resume_past_the_end_skips_nothing_to_come() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let room = ann.create_room("Short", "group", &[]).await;
    let mut ws = ann.ws(&format!("/ws/chat/{room}/?since_seq=100")).await;
    ws.next_of("connection_established").await;
    let done = ws.next_of("resume_complete").await;
    assert_eq!(done["last_seq"], 1, "clamped to the room's end");
    ann.say(&room, "next").await;
    assert_eq!(ws.next_of("chat_message").await["message"]["seq"], 2);
}
