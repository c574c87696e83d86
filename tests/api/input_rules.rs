//! Input that was accepted and should not be (issue 14, "smaller ones"):
//! common, blank and username passwords; text of only invisible characters;
//! user search with control characters and LIKE wildcards.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, spawn_app};

/// Invisible-only texts: zero-width, bidi controls, fillers, tags, blank Braille.
const INVISIBLE: &[&str] = &[
    "\u{200B}\u{200B}\u{200B}",
    "\u{200E}\u{200F}\u{202E}\u{2066}\u{2069}",
    "\u{2060}\u{2061}\u{2064}\u{FEFF}\u{00AD}\u{034F}\u{061C}",
    "\u{115F}\u{1160}\u{3164}\u{FFA0}\u{180E}",
    "\u{FE0F}\u{E0001}\u{E0041}\u{E007F}\u{E0100}",
    "\u{2800}\u{2800}",
    "\u{200B} \u{3000}\u{200D}",
];

#[tokio::test]
async fn common_blank_and_username_passwords_are_refused() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    for (username, password, code) in [
        ("carol", "12345678", "common_password"),
        ("carol", "PASSWORD", "common_password"),
        ("carol", "Qwertyuiop", "common_password"),
        ("carol", "        ", "blank_password"),
        (
            "carol",
            "\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}",
            "blank_password",
        ),
        ("Carol.Smith", "carol.smith", "password_is_username"),
        ("carol", "1234567", "weak_password"),
    ] {
        let (status, body) = anon
            .post(
                "/tools/api/auth/register/",
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{password:?}: {body}");
        assert_eq!(body["error"]["code"], code, "{password:?}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    // Nothing was created; a good password works.
    let (status, body) = anon
        .post(
            "/tools/api/auth/register/",
            json!({"username": "carol", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // The same rules for a new password.
    let carol = app.user("carol.lee").await;
    for (password, code) in [
        ("iloveyou", "common_password"),
        ("         ", "blank_password"),
        ("CAROL.LEE", "password_is_username"),
    ] {
        let (status, body) = carol
            .post(
                "/tools/api/auth/password/",
                json!({"current_password": PASSWORD, "new_password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{password:?}: {body}");
        assert_eq!(body["error"]["code"], code);
    }
}

#[tokio::test]
async fn text_of_only_invisible_characters_is_refused() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let anon = app.anonymous();
    for text in INVISIBLE {
        let (status, body) = ann
            .post("/tools/api/chat/general/send/", json!({"content": text}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert_eq!(body["error"]["code"], "content_empty");

        let (status, body) = ann
            .patch("/tools/api/user/me/profile/", json!({"display_name": text}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field");

        let (status, body) = ann
            .post(
                "/tools/api/chat/rooms/",
                json!({"name": text, "room_type": "group"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_room_name");

        let (status, body) = anon
            .post(
                "/tools/api/auth/register/",
                json!({"username": "zed", "password": PASSWORD, "display_name": text}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{text:?}: {body}");
        assert_eq!(body["error"]["code"], "invalid_field");
    }
    // Over WebSocket too: the same rule, as an error frame.
    let mut ws = ann.ws("/ws/chat/general/").await;
    ws.next_of("connection_established").await;
    ws.send_json(json!({"type": "message", "content": "\u{200B}\u{202E}", "client_id": "c1"}))
        .await;
    let error = ws.next_of("error").await;
    assert_eq!(error["code"], "content_empty", "{error}");

    // Emoji, ZWJ sequences included, are visible; the family arrives intact.
    for fine in [
        "👨\u{200D}👩\u{200D}👧\u{200D}👦",
        "❤\u{FE0F}",
        "a\u{200B}b",
    ] {
        let said = ann.say("general", fine).await;
        assert_eq!(said["content"], fine);
    }
    let (status, body) = ann
        .patch(
            "/tools/api/user/me/profile/",
            json!({"display_name": "👨\u{200D}👩\u{200D}👧\u{200D}👦"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An empty display name still clears it.
    let (status, body) = ann
        .patch("/tools/api/user/me/profile/", json!({"display_name": ""}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn usernames(body: &Value) -> Vec<&str> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn user_search_drops_controls_and_matches_wildcards_literally() {
    let app = spawn_app().await;
    let ann = app.user("annabel").await;
    let bob = app.user("bob_b").await;
    bob.patch(
        "/tools/api/user/me/profile/",
        json!({"display_name": "100% Bob"}),
    )
    .await;
    // q=%00 used to list every user.
    for q in [
        "%00",
        "%00%00",
        "%01%1F",
        "%E2%80%8B",
        "%E2%80%AE%E3%85%A4",
        "%20%00%20",
    ] {
        let (status, body) = ann.get(&format!("/tools/api/user/search/?q={q}")).await;
        assert_eq!(status, StatusCode::OK, "{q}: {body}");
        assert_eq!(body["data"], json!([]), "{q}");
    }
    // Controls are removed, the rest is searched.
    let (_, body) = ann.get("/tools/api/user/search/?q=an%00na").await;
    assert_eq!(usernames(&body), ["annabel"]);
    for (q, expected) in [
        ("%25", vec!["bob_b"]),
        ("0%25%20b", vec!["bob_b"]),
        ("_", vec!["bob_b"]),
        ("b_b", vec!["bob_b"]),
        // As wildcards these would match annabel and bob_b.
        ("n_b", vec![]),
        ("a%25l", vec![]),
        ("%5C", vec![]),
    ] {
        let (_, body) = ann.get(&format!("/tools/api/user/search/?q={q}")).await;
        assert_eq!(usernames(&body), expected, "{q}");
    }
}
