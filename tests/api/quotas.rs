//! Per-user and per-room quotas (finding 9): what one account may create,
//! each refused past its limit with a clear error. Small limits keep most of
//! these fast; the cheap ones also run at the defaults.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use parley::domain::ids::UserId;

use crate::helpers::{Client, PASSWORD, TestApp, spawn_app, spawn_app_with};

fn code(reply: &(StatusCode, Value)) -> (StatusCode, &str) {
    (reply.0, reply.1["error"]["code"].as_str().unwrap_or(""))
}

async fn new_room(client: &Client, name: &str) -> (StatusCode, Value) {
    client
        .post(
            "/tools/api/chat/rooms/",
            json!({"name": name, "room_type": "group"}),
        )
        .await
}

/// The 300 rooms of the finding: past `--max-rooms-per-hour`, `429
/// too_many_rooms` with a Retry-After until the oldest room of the hour ages out.
/// Group, public and newly created direct rooms all count.
#[tokio::test]
async fn rooms_per_hour_are_capped() {
    let app = spawn_app_with(|c| c.max_rooms_per_hour = 5).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let cat = app.user("cat").await;
    ann.create_room("One", "group", &[]).await;
    ann.create_room("Two", "public", &[]).await;
    ann.create_room("Three", "group", &[&bob]).await;
    let (status, _) = ann
        .post(&format!("/tools/api/chat/direct/{}/", bob.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    ann.create_room("Five", "group", &[]).await;

    let response = ann
        .request(Method::POST, "/tools/api/chat/rooms/")
        .json(&json!({"name": "Six", "room_type": "public"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry), "retry after {retry}s");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_rooms");
    assert_eq!(
        code(
            &ann.post(&format!("/tools/api/chat/direct/{}/", cat.id()), json!({}))
                .await
        ),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_rooms")
    );
    // Opening a direct room that exists creates nothing, so it is not refused,
    // and other users have quotas of their own.
    let (status, _) = ann
        .post(&format!("/tools/api/chat/direct/{}/", bob.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = bob
        .post(&format!("/tools/api/chat/direct/{}/", cat.id()), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, mine) = ann.get("/tools/api/chat/rooms/").await;
    // general + the five created.
    assert_eq!(mine["data"].as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn rooms_per_hour_default_to_thirty() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    for i in 0..30 {
        let (status, body) = new_room(&ann, &format!("room {i}")).await;
        assert_eq!(status, StatusCode::CREATED, "room {i}: {body}");
    }
    assert_eq!(
        code(&new_room(&ann, "one too many").await),
        (StatusCode::TOO_MANY_REQUESTS, "too_many_rooms")
    );
}

/// The 500 invites of the finding: past `--max-invites-per-room` usable links,
/// `409 too_many_invites`; revoking one makes room for another.
#[tokio::test]
async fn usable_invites_per_room_are_capped() {
    let app = spawn_app_with(|c| c.max_invites_per_room = 3).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Party", "group", &[]).await;
    let other = ann.create_room("Other", "group", &[]).await;
    let path = format!("/tools/api/chat/{room}/invites/");
    let mut codes = Vec::new();
    for max_uses in [None, Some(1), None] {
        let body = max_uses.map_or(json!({}), |n| json!({"max_uses": n}));
        let (status, invite) = ann.post(&path, body).await;
        assert_eq!(status, StatusCode::CREATED, "{invite}");
        codes.push(invite["data"]["code"].as_str().unwrap().to_string());
    }
    assert_eq!(
        code(&ann.post(&path, json!({})).await),
        (StatusCode::CONFLICT, "too_many_invites")
    );
    // Each room has its own allowance.
    let (status, _) = ann
        .post(&format!("/tools/api/chat/{other}/invites/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // A used-up link and a revoked one no longer count.
    let (status, _) = bob
        .post(
            &format!("/tools/api/chat/invites/{}/join/", codes[1]),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = ann.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        code(&ann.post(&path, json!({})).await),
        (StatusCode::CONFLICT, "too_many_invites")
    );
    ann.delete(&format!("{path}{}/", codes[0])).await;
    let (status, _) = ann.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::CREATED);
}

async fn login(app: &TestApp, username: &str) -> Client {
    let mut client = app.anonymous();
    let (status, body) = client
        .post(
            "/tools/api/auth/login/",
            json!({"username": username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "login {username}: {body}");
    client.profile = body["data"].clone();
    client
}

/// The 300 sessions of the finding: past `--max-sessions-per-user`, a login
/// ends the least recently used session (and closes its WebSockets) instead
/// of locking the user out.
#[tokio::test]
async fn a_login_past_the_session_quota_ends_the_oldest_session() {
    let app = spawn_app_with(|c| c.max_sessions_per_user = 3).await;
    let first = app.user("ann").await;
    let mut first_ws = first.ws("/ws/").await;
    first_ws.next_of("connection_established").await;
    let mut logins = Vec::new();
    for _ in 0..2 {
        logins.push(login(&app, "ann").await);
    }
    assert_eq!(first.get("/tools/api/auth/me/").await.0, StatusCode::OK);
    let (_, sessions) = first.get("/tools/api/auth/sessions/").await;
    assert_eq!(sessions["data"].as_array().unwrap().len(), 3);

    // The fourth login ends the first session, the least recently used.
    logins.push(login(&app, "ann").await);
    assert_eq!(
        first.get("/tools/api/auth/me/").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert!(first_ws.closed().await.is_some(), "its WebSocket is closed");
    for client in &logins {
        assert_eq!(client.get("/tools/api/auth/me/").await.0, StatusCode::OK);
    }
    let (_, sessions) = logins[2].get("/tools/api/auth/sessions/").await;
    assert_eq!(sessions["data"].as_array().unwrap().len(), 3);
    // However many logins follow, three sessions are left: the newest.
    for _ in 0..5 {
        logins.push(login(&app, "ann").await);
    }
    let (_, sessions) = logins[7].get("/tools/api/auth/sessions/").await;
    assert_eq!(sessions["data"].as_array().unwrap().len(), 3);
    assert_eq!(
        logins[4].get("/tools/api/auth/me/").await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// The 200 tokens of the finding, at the default `--max-tokens-per-user` (50).
#[tokio::test]
async fn api_tokens_per_user_default_to_fifty() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let mut ids = Vec::new();
    for i in 0..50 {
        let (status, body) = ann
            .post("/tools/api/auth/tokens/", json!({"name": format!("t{i}")}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "token {i}: {body}");
        ids.push(body["data"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!(
        code(
            &ann.post("/tools/api/auth/tokens/", json!({"name": "one more"}))
                .await
        ),
        (StatusCode::CONFLICT, "too_many_tokens")
    );
    bob.api_token().await;
    let (status, _) = ann
        .delete(&format!("/tools/api/auth/tokens/{}/", ids[0]))
        .await;
    assert_eq!(status, StatusCode::OK);
    ann.api_token().await;
}

/// The 1 000 members of one request in the finding: past
/// `--max-members-per-request` (default 100), `400 too_many_members`.
#[tokio::test]
async fn members_added_per_request_default_to_a_hundred() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    for n in [101, 1000] {
        let members: Vec<String> = (0..n).map(|_| UserId::new().to_string()).collect();
        assert_eq!(
            code(
                &ann.post(
                    "/tools/api/chat/rooms/",
                    json!({"name": "Crowd", "room_type": "group", "members": members}),
                )
                .await
            ),
            (StatusCode::BAD_REQUEST, "too_many_members"),
            "{n} members"
        );
    }
    // 100 is allowed (these do not exist, which is the next check).
    let members: Vec<String> = (0..100).map(|_| UserId::new().to_string()).collect();
    assert_eq!(
        code(
            &ann.post(
                "/tools/api/chat/rooms/",
                json!({"name": "Crowd", "room_type": "group", "members": members}),
            )
            .await
        ),
        (StatusCode::BAD_REQUEST, "unknown_user")
    );
}

#[tokio::test]
async fn members_added_per_request_follow_the_flag() {
    let app = spawn_app_with(|c| c.max_members_per_request = 2).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let cat = app.user("cat").await;
    let dan = app.user("dan").await;
    ann.create_room("Pair", "group", &[&bob, &cat]).await;
    let ids = [bob.id(), cat.id(), dan.id()];
    assert_eq!(
        code(
            &ann.post(
                "/tools/api/chat/rooms/",
                json!({"name": "Trio", "room_type": "group", "members": ids}),
            )
            .await
        ),
        (StatusCode::BAD_REQUEST, "too_many_members")
    );
}
