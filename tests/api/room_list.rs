//! The room list is paginated (finding 2): a user in thousands of rooms pages
//! through every one of them, most recently active first, without a gap or a
//! repeat.

use std::collections::HashSet;
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use parley::domain::ids::{MessageId, RoomId, UserId};
use parley::domain::message::{MessageType, NewMessage, Sender};
use parley::domain::room::{Role, RoomKind};
use parley::domain::time::now_ms;
use parley::store::NewRoom;

use crate::helpers::{Client, spawn_app};

fn code(reply: &(StatusCode, Value)) -> (StatusCode, &str) {
    (reply.0, reply.1["error"]["code"].as_str().unwrap_or(""))
}

/// Every page from the first, following `next_cursor`: the room ids in order.
async fn page_through(client: &Client, limit: Option<u32>) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut path = String::from("/tools/api/chat/rooms/?");
        if let Some(limit) = limit {
            path.push_str(&format!("limit={limit}&"));
        }
        if let Some(cursor) = &cursor {
            path.push_str(&format!("cursor={}", urlencoding(cursor)));
        }
        let (status, body) = client.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let page = body["data"].as_array().unwrap();
        assert!(page.len() <= limit.unwrap_or(100) as usize);
        ids.extend(
            page.iter()
                .map(|r| r["room_id"].as_str().unwrap().to_string()),
        );
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => {
                assert!(body["next_cursor"].is_null(), "{body}");
                break;
            }
        }
        assert!(pages < 1000, "paging does not end");
    }
    (ids, pages)
}

fn urlencoding(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_user_in_two_thousand_rooms_pages_through_all_of_them() {
    const ROOMS: usize = 2000;
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let ann_id = UserId::parse(&ann.id()).unwrap();
    let store = &app.state.store;
    // Straight into the store: creating them over HTTP is not what is tested,
    // and the room quota would (rightly) refuse it. Many share a creation
    // instant, which the cursor must break by id.
    let base = now_ms() - 10_000;
    for i in 0..ROOMS {
        store
            .insert_room(
                &NewRoom {
                    id: RoomId::parse(&format!("r{i:04}")).unwrap(),
                    kind: RoomKind::Group,
                    name: format!("room {i}"),
                    description: String::new(),
                    owner_id: Some(ann_id),
                    direct_key: None,
                    created_at: base + (i as i64 % 7),
                    members: vec![(ann_id, Role::Owner)],
                    created_by: Some(ann_id),
                },
                None,
            )
            .await
            .unwrap();
    }
    // Some activity, so the order is not just creation order.
    let sender = Arc::new(Sender {
        id: ann_id,
        username: "ann".into(),
        display_name: String::new(),
        avatar_version: 0,
    });
    let active = [17usize, 1999, 640, 3];
    let batch: Vec<NewMessage> = active
        .iter()
        .enumerate()
        .map(|(n, &i)| NewMessage {
            id: MessageId::new(),
            room_id: RoomId::parse(&format!("r{i:04}")).unwrap(),
            sender: Some(sender.clone()),
            message_type: MessageType::Text,
            content: format!("hello {i}"),
            client_id: None,
            event: None,
            attachments: Vec::new(),
            created_at: now_ms() + 1_000 + n as i64,
        })
        .collect();
    store.insert_messages(&batch).await.unwrap();

    let (status, first) = ann.get("/tools/api/chat/rooms/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        first["data"].as_array().unwrap().len(),
        100,
        "default limit"
    );
    assert!(first["next_cursor"].is_string());
    // Most recently active first: the rooms with messages, newest first.
    let top: Vec<&str> = first["data"].as_array().unwrap()[..4]
        .iter()
        .map(|r| r["room_id"].as_str().unwrap())
        .collect();
    assert_eq!(top, ["r0003", "r0640", "r1999", "r0017"]);
    assert_eq!(first["data"][0]["last_message"]["content"], "hello 3");

    for limit in [None, Some(200), Some(7)] {
        let (ids, pages) = page_through(&ann, limit).await;
        let unique: HashSet<&String> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len(), "no room twice (limit {limit:?})");
        // Every inserted room, and general (the default room ann joined).
        assert_eq!(ids.len(), ROOMS + 1, "no room missing (limit {limit:?})");
        for i in 0..ROOMS {
            assert!(unique.contains(&format!("r{i:04}")), "r{i:04} missing");
        }
        let per_page = limit.unwrap_or(100) as usize;
        assert_eq!(pages, (ROOMS + 1).div_ceil(per_page));
        assert_eq!(&ids[..4], ["r0003", "r0640", "r1999", "r0017"]);
    }
}

#[tokio::test]
async fn room_list_limits_and_cursors_are_checked() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    ann.create_room("One", "group", &[]).await;
    ann.create_room("Two", "group", &[]).await;
    for bad in ["limit=0", "limit=201", "limit=-1"] {
        let reply = ann.get(&format!("/tools/api/chat/rooms/?{bad}")).await;
        assert_eq!(reply.0, StatusCode::BAD_REQUEST, "{bad}: {}", reply.1);
    }
    assert_eq!(
        code(&ann.get("/tools/api/chat/rooms/?limit=0").await),
        (StatusCode::BAD_REQUEST, "invalid_limit")
    );
    for bad in ["nonsense", "12", ".general", "x.general", "1.no%20such"] {
        assert_eq!(
            code(
                &ann.get(&format!("/tools/api/chat/rooms/?cursor={bad}"))
                    .await
            ),
            (StatusCode::BAD_REQUEST, "invalid_cursor"),
            "{bad}"
        );
    }
    let (status, body) = ann.get("/tools/api/chat/rooms/?limit=200").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"].as_array().unwrap().len(), 3);
    assert!(body["next_cursor"].is_null());
    let (_, body) = ann.get("/tools/api/chat/rooms/?limit=2").await;
    let next = body["next_cursor"].as_str().unwrap().to_string();
    let (_, rest) = ann
        .get(&format!(
            "/tools/api/chat/rooms/?limit=2&cursor={}",
            urlencoding(&next)
        ))
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert!(rest["next_cursor"].is_null());
}
