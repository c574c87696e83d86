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
