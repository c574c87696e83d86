//! An open WebSocket ends with the session or token it was opened with:
//! logout, logout-others, a password change, expiry, a deleted token.

use std::time::Duration;

use parley::services::accounts;
use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{Client, PASSWORD, TestApp, Ws, refused_status, spawn_app, spawn_app_with};

/// Another login session of `username` (another browser or device).
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

/// A client of the same user that authenticates with a new API token.
async fn bearer(owner: &Client) -> (Client, String) {
    let (status, body) = owner
        .post("/tools/api/auth/tokens/", json!({"name": "bot"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "token: {body}");
    let mut client = Client::at(owner.addr);
    client.bearer = Some(body["data"]["token"].as_str().unwrap().to_string());
    client.profile = owner.profile.clone();
    (client, body["data"]["id"].as_str().unwrap().to_string())
}

/// A connection that the hub knows (its first frame is queued only after registering).
async fn open(client: &Client, path: &str) -> Ws {
    let mut ws = client.ws(path).await;
    ws.next_of("connection_established").await;
    ws
}

async fn assert_session_ended(ws: &mut Ws) {
    let close = ws.closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "session ended");
}

/// Open and still receiving the user's rooms: a message said after the
/// revocation arrives (a closed socket would show its close frame first).
async fn assert_still_receiving(sockets: &mut [&mut Ws], speaker: &Client) {
    let said = speaker.say("general", "still here?").await;
    for ws in sockets {
        let frame = ws.next_of("chat_message").await;
        assert_eq!(frame["message"]["id"], said["id"]);
    }
}

#[tokio::test]
async fn logging_out_closes_that_sessions_sockets_only() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let elsewhere = login(&app, "ann").await;
    let (bot, _) = bearer(&ann).await;
    let bob = app.user("bob").await;
    let mut all_rooms = open(&ann, "/ws/").await;
    let mut one_room = open(&ann, "/ws/chat/general/").await;
    let mut other_session = open(&elsewhere, "/ws/").await;
    let mut token = open(&bot, "/ws/chat/general/").await;
    let replay = ann.on(app.addr);

    let (status, body) = ann.post("/tools/api/auth/logout/", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_session_ended(&mut all_rooms).await;
    assert_session_ended(&mut one_room).await;
    assert_still_receiving(&mut [&mut other_session, &mut token], &bob).await;

    // The old cookie no longer opens one.
    let refused = replay.try_ws("/ws/", Some(&replay.origin())).await;
    assert_eq!(refused_status(refused), 401);
}

#[tokio::test]
async fn logging_out_other_sessions_closes_their_sockets_not_this_ones() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let laptop = login(&app, "ann").await;
    let phone = login(&app, "ann").await;
    let (bot, _) = bearer(&ann).await;
    let mut here = open(&ann, "/ws/").await;
    let mut here_room = open(&ann, "/ws/chat/general/").await;
    let mut on_laptop = open(&laptop, "/ws/").await;
    let mut on_phone = open(&phone, "/ws/chat/general/").await;
    let mut token = open(&bot, "/ws/").await;

    let (status, body) = ann
        .post("/tools/api/auth/sessions/logout-others/", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["sessions_revoked"], 2);
    assert_session_ended(&mut on_laptop).await;
    assert_session_ended(&mut on_phone).await;
    assert_still_receiving(&mut [&mut here, &mut here_room, &mut token], &ann).await;
}

#[tokio::test]
async fn changing_the_password_closes_the_other_sessions_sockets() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let laptop = login(&app, "ann").await;
    let (bot, _) = bearer(&ann).await;
    let bob = app.user("bob").await;
    let mut here = open(&ann, "/ws/chat/general/").await;
    let mut on_laptop = open(&laptop, "/ws/").await;
    let mut token = open(&bot, "/ws/").await;

    let (status, body) = ann
        .post(
            "/tools/api/auth/password/",
            json!({"current_password": PASSWORD, "new_password": "brand-new-pass"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["sessions_revoked"], 1);
    assert_eq!(body["data"]["tokens_revoked"], 0);
    assert_session_ended(&mut on_laptop).await;
    // API tokens survive a password change unless asked.
    assert_still_receiving(&mut [&mut here, &mut token], &bob).await;
    assert_eq!(bot.get("/tools/api/auth/me/").await.0, StatusCode::OK);
    let refused = laptop.try_ws("/ws/", Some(&laptop.origin())).await;
    assert_eq!(refused_status(refused), 401);
}

#[tokio::test]
async fn changing_the_password_can_revoke_the_api_tokens_too() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (bot, _) = bearer(&ann).await;
    let (script, _) = bearer(&ann).await;
    let (bobs_bot, _) = bearer(&bob).await;
    let mut here = open(&ann, "/ws/chat/general/").await;
    let mut bot_all = open(&bot, "/ws/").await;
    let mut bot_room = open(&bot, "/ws/chat/general/").await;
    let mut bobs = open(&bobs_bot, "/ws/").await;

    let (status, body) = ann
        .post(
            "/tools/api/auth/password/",
            json!({"current_password": PASSWORD, "new_password": "brand-new-pass", "revoke_tokens": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["tokens_revoked"], 2);
    assert_session_ended(&mut bot_all).await;
    assert_session_ended(&mut bot_room).await;
    for client in [&bot, &script] {
        let (status, body) = client.get("/tools/api/auth/me/").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(refused_status(client.try_ws("/ws/", None).await), 401);
    }
    let (_, tokens) = ann.get("/tools/api/auth/tokens/").await;
    assert_eq!(tokens["data"], json!([]));
    // This session and other users' tokens are untouched.
    assert_still_receiving(&mut [&mut here, &mut bobs], &bob).await;
    assert_eq!(bobs_bot.get("/tools/api/auth/me/").await.0, StatusCode::OK);
}

#[tokio::test]
async fn deleting_a_token_closes_its_sockets_only() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let (doomed, doomed_id) = bearer(&ann).await;
    let (spared, _) = bearer(&ann).await;
    let mut doomed_all = open(&doomed, "/ws/").await;
    let mut doomed_room = open(&doomed, "/ws/chat/general/").await;
    let mut spared_ws = open(&spared, "/ws/").await;
    let mut cookie_ws = open(&ann, "/ws/").await;

    let (status, body) = ann
        .delete(&format!("/tools/api/auth/tokens/{doomed_id}/"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_session_ended(&mut doomed_all).await;
    assert_session_ended(&mut doomed_room).await;
    assert_still_receiving(&mut [&mut spared_ws, &mut cookie_ws], &ann).await;
    let refused = doomed.try_ws("/ws/", None).await;
    assert_eq!(refused_status(refused), 401);
}

#[tokio::test]
async fn a_socket_is_closed_when_its_session_expires() {
    // Shorter than the hour between extensions: nothing slides it.
    let app = spawn_app_with(|c| {
        c.session_ttl = Duration::from_secs(1);
        c.heartbeat_interval = Duration::from_millis(200);
    })
    .await;
    let ann = app.user("ann").await;
    let mut ws = open(&ann, "/ws/").await;
    assert_session_ended(&mut ws).await;
    let refused = ann.try_ws("/ws/", Some(&ann.origin())).await;
    assert_eq!(refused_status(refused), 401);
}

#[tokio::test]
async fn a_connected_session_is_extended_like_one_in_use() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let mut ws = open(&ann, "/ws/").await;
    let token = ann.cookie("sessionid").unwrap();
    let hash = accounts::hash_token(&token);
    let before = app
        .state
        .store
        .list_sessions(ann_id(&ann), 0)
        .await
        .unwrap();
    assert_eq!(before.len(), 1);

    // What the heartbeat does for a session last extended over an hour ago.
    tokio::time::sleep(Duration::from_millis(5)).await;
    accounts::refresh_connected_sessions(&app.state, vec![accounts::session_key(&token)]).await;
    let after = app
        .state
        .store
        .list_sessions(ann_id(&ann), 0)
        .await
        .unwrap();
    assert_eq!(after[0].token_hash, hash);
    assert!(after[0].expires_at > before[0].expires_at, "{after:?}");
    assert!(after[0].last_used_at > before[0].last_used_at, "{after:?}");
    assert_still_receiving(&mut [&mut ws], &ann).await;
}

#[tokio::test]
async fn a_session_revoked_unheard_is_closed_at_the_next_refresh() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let other = login(&app, "ann").await;
    let mut ws = open(&ann, "/ws/").await;
    let mut kept = open(&other, "/ws/").await;
    let token = ann.cookie("sessionid").unwrap();
    // Gone from the database without this node hearing of it (as when the
    // bus was down while another node revoked it).
    app.state
        .store
        .delete_session(&accounts::hash_token(&token))
        .await
        .unwrap();

    let keys = vec![
        accounts::session_key(&token),
        accounts::session_key(&other.cookie("sessionid").unwrap()),
    ];
    accounts::refresh_connected_sessions(&app.state, keys).await;
    assert_session_ended(&mut ws).await;
    assert_still_receiving(&mut [&mut kept], &other).await;
}

fn ann_id(client: &Client) -> parley::domain::ids::UserId {
    parley::domain::ids::UserId::parse(&client.id()).unwrap()
}
