use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with};

fn seqs(body: &Value) -> Vec<i64> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn history_pages_by_seq() {
    let app = spawn_app_with(|c| c.message_burst = 100).await;
    let ann = app.user("ann").await;
    let room = ann.create_room("Log", "group", &[]).await;
    // seq 1 is "room created"; 2..=31 are ours.
    for i in 0..30 {
        ann.say(&room, &format!("m{i}")).await;
    }
    let base = format!("/tools/api/chat/{room}/messages/");
    let (status, body) = ann.get(&format!("{base}?limit=10")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["success"], true);
    assert_eq!(body["room_id"], room.as_str());
    assert_eq!(seqs(&body), (22..=31).collect::<Vec<_>>());
    assert_eq!(body["has_more"], true);

    let (_, body) = ann.get(&format!("{base}?before=22&limit=10")).await;
    assert_eq!(seqs(&body), (12..=21).collect::<Vec<_>>());
    let (_, body) = ann.get(&format!("{base}?before=5&limit=10")).await;
    assert_eq!(seqs(&body), [1, 2, 3, 4]);
    assert_eq!(body["has_more"], false);
    let (_, body) = ann.get(&format!("{base}?after=25")).await;
    assert_eq!(seqs(&body), (26..=31).collect::<Vec<_>>());
    assert_eq!(body["has_more"], false);
    let (_, body) = ann.get(&format!("{base}?after=0&limit=5")).await;
    assert_eq!(seqs(&body), [1, 2, 3, 4, 5]);
    assert_eq!(body["has_more"], true);
    let (_, body) = ann.get(&base).await;
    assert_eq!(
        body["messages"].as_array().unwrap().len(),
        31,
        "default limit is 50"
    );

    for query in [
        "?limit=0",
        "?limit=201",
        "?before=3&after=1",
        "?before=abc",
        "?limit=-1",
    ] {
        let (status, body) = ann.get(&format!("{base}{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
}

#[tokio::test]
async fn messages_carry_every_field() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Pair", "group", &[&bob]).await;
    let (status, body) = ann
        .post(
            &format!("/tools/api/chat/{room}/send/"),
            json!({"content": "  <img src=x onerror=alert(1)>\r\n\u{7}ok  ", "client_id": "c-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let m = &body["data"];
    for field in [
        "id",
        "seq",
        "room_id",
        "sender",
        "sender_id",
        "sender_display_name",
        "sender_avatar",
        "content",
        "message_type",
        "created_at",
        "client_id",
        "is_own",
        "is_read",
    ] {
        assert!(m.get(field).is_some(), "missing {field}");
    }
    assert_eq!(m["content"], "<img src=x onerror=alert(1)>\nok");
    assert_eq!(m["message_type"], "text");
    assert_eq!(m["sender"], "ann");
    assert_eq!(m["client_id"], "c-1");
    assert_eq!(m["is_own"], true);
    assert!(m["created_at"].as_str().unwrap().ends_with('Z'));

    let (_, history) = bob.get(&format!("/tools/api/chat/{room}/messages/")).await;
    let last = history["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["is_own"], false);
    assert_eq!(last["is_read"], false);
    bob.post(
        &format!("/tools/api/chat/{room}/read/"),
        json!({"up_to_seq": last["seq"]}),
    )
    .await;
    let (_, history) = bob.get(&format!("/tools/api/chat/{room}/messages/")).await;
    assert_eq!(
        history["messages"].as_array().unwrap().last().unwrap()["is_read"],
        true
    );
    let (_, history) = ann.get(&format!("/tools/api/chat/{room}/messages/")).await;
    assert_eq!(
        history["messages"].as_array().unwrap().last().unwrap()["is_read"],
        true,
        "bob read ann's message"
    );
}

#[tokio::test]
async fn content_is_validated() {
    let app = spawn_app_with(|c| c.max_message_chars = 10).await;
    let ann = app.user("ann").await;
    let path = "/tools/api/chat/general/send/";
    for (body, code) in [
        (json!({"content": "   \n "}), "content_empty"),
        (json!({"content": "\u{0}\u{1b}"}), "content_empty"),
        (json!({"content": "12345678901"}), "content_too_long"),
        (
            json!({"content": "ok", "client_id": ""}),
            "invalid_client_id",
        ),
        (
            json!({"content": "ok", "client_id": "x".repeat(129)}),
            "invalid_client_id",
        ),
    ] {
        let (status, reply) = ann.post(path, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["error"]["code"], code);
    }
    let (status, _) = ann.post(path, json!({"content": "  1234567890  "})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = ann.post(path, json!({"text": "wrong field"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (_, history) = ann.get("/tools/api/chat/general/messages/").await;
    let texts = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["message_type"] == "text")
        .count();
    assert_eq!(texts, 1, "nothing invalid was stored");
}

#[tokio::test]
async fn a_repeated_client_id_returns_the_original() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let path = "/tools/api/chat/general/send/";
    let (status, first) = ann
        .post(path, json!({"content": "once", "client_id": "k1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, again) = ann
        .post(path, json!({"content": "once (retry)", "client_id": "k1"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["data"]["id"], first["data"]["id"]);
    assert_eq!(again["data"]["content"], "once");
    // Another user may use the same client_id.
    bob.post("/tools/api/chat/general/join/", json!({})).await;
    let (status, theirs) = bob
        .post(path, json!({"content": "mine", "client_id": "k1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_ne!(theirs["data"]["id"], first["data"]["id"]);
    let (_, history) = ann.get("/tools/api/chat/general/messages/").await;
    let with_k1 = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["client_id"] == "k1")
        .count();
    assert_eq!(with_k1, 2);
}

#[tokio::test]
async fn sending_is_rate_limited() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let mut created = 0;
    let mut limited = None;
    for i in 0..40 {
        let response = ann
            .request(reqwest::Method::POST, "/tools/api/chat/general/send/")
            .json(&json!({"content": format!("spam {i}")}))
            .send()
            .await
            .unwrap();
        match response.status() {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(response.headers().contains_key("retry-after"));
                limited = Some(response.json::<Value>().await.unwrap());
                break;
            }
            other => panic!("unexpected {other}"),
        }
    }
    let limited = limited.expect("the burst runs out");
    assert_eq!(limited["error"]["code"], "rate_limited");
    assert!(
        (20..=25).contains(&created),
        "burst of 20 (plus what refilled): {created}"
    );
    let (_, history) = ann.get("/tools/api/chat/general/messages/?limit=200").await;
    let texts = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["message_type"] == "text")
        .count();
    assert_eq!(texts, created, "the refused message was not stored");
}

/// What a history page shows, without ids and times (which differ between servers).
fn shown(body: &Value) -> Vec<Value> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            json!([
                m["seq"],
                m["sender"],
                m["sender_display_name"],
                // The avatar URL holds the user id; its version is what changes.
                m["sender_avatar"]
                    .as_str()
                    .and_then(|a| a.split_once('?'))
                    .map(|(_, v)| v),
                m["content"],
                m["message_type"],
                m["client_id"],
                m["is_own"],
                m["is_read"],
            ])
        })
        .collect()
}

/// The latest page and recent pages may come from the messages kept in memory:
/// they must read exactly as from the database, with senders' current names
/// (even for a message sent over a socket opened before the rename) and each
/// viewer's own `is_own`/`is_read`. The same story runs on a server with the
/// cache and one without, and every page is compared.
#[tokio::test]
async fn history_from_memory_reads_as_from_the_database() {
    let cached = spawn_app_with(|c| c.message_burst = 100).await;
    let uncached = spawn_app_with(|c| {
        c.message_burst = 100;
        c.tail_cache_mib = 0;
    })
    .await;
    let mut pages: Vec<Vec<(Vec<Value>, Value)>> = Vec::new();
    let mut room_of_cached = String::new();
    for app in [&cached, &uncached] {
        let ann = app.user("ann").await;
        let bob = app.user("bob").await;
        let room = ann.create_room("Cache", "group", &[&bob]).await;
        let mut socket = ann.ws(&format!("/ws/chat/{room}/")).await;
        socket.next_of("connection_established").await;
        for i in 0..3 {
            ann.say(&room, &format!("a{i}")).await;
        }
        let base = format!("/tools/api/chat/{room}/messages/");
        let mut seen = Vec::new();
        let (_, body) = ann.get(&format!("{base}?limit=10")).await;
        seen.push((shown(&body), body["has_more"].clone()));
        // Renamed after the socket opened: the socket's sends carry the old name.
        let (status, _) = ann
            .patch(
                "/tools/api/user/me/profile/",
                json!({"display_name": "Ann Renamed"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        socket
            .send_json(json!({"type": "message", "content": "over the socket", "client_id": "s-1"}))
            .await;
        // a0..a2 arrive first; then the echo that acknowledges ours.
        loop {
            let echo = socket.next_of("chat_message").await;
            if echo["message"]["client_id"] == "s-1" {
                assert_eq!(
                    echo["message"]["sender_display_name"], "ann",
                    "the socket's old name"
                );
                break;
            }
        }
        bob.say(&room, "b0").await;
        let (status, _) = bob
            .post(
                &format!("/tools/api/chat/{room}/read/"),
                json!({"up_to_seq": 4}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        for (viewer, query) in [
            (&ann, "?limit=10"),
            (&bob, "?limit=10"),
            (&ann, "?limit=2"),
            (&bob, "?after=2"),
            (&ann, "?after=0&limit=3"),
            (&bob, "?before=4&limit=2"),
            (&ann, "?after=6"),
        ] {
            let (status, body) = viewer.get(&format!("{base}{query}")).await;
            assert_eq!(status, StatusCode::OK, "{query}: {body}");
            seen.push((shown(&body), body["has_more"].clone()));
        }
        pages.push(seen);
        if room_of_cached.is_empty() {
            room_of_cached = room;
        }
    }
    assert_eq!(pages[0], pages[1]);
    let latest = &pages[0][1].0;
    assert_eq!(latest.len(), 6);
    assert!(
        latest
            .iter()
            .filter(|m| m[1] == "ann")
            .all(|m| m[2] == "Ann Renamed"),
        "current names: {latest:?}"
    );
    // And the cached server did serve from memory.
    let room = parley::domain::ids::RoomId::parse(&room_of_cached).unwrap();
    assert!(matches!(
        cached
            .state
            .tail
            .lookup(&room, parley::store::Page::Latest { limit: 10 }),
        parley::services::tail_cache::Lookup::Hit(_)
    ));
    assert!(matches!(
        uncached
            .state
            .tail
            .lookup(&room, parley::store::Page::Latest { limit: 10 }),
        parley::services::tail_cache::Lookup::Miss(_)
    ));
}
