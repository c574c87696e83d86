//! Each endpoint's refusals: 401 without a login, 403 without the CSRF token,
//! and the 400/403/404/409 cases of the individual endpoints.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Client, PASSWORD, spawn_app};

/// A user id that exists nowhere.
const NOBODY: &str = "01a20cc2-abff-7271-80e8-7c4df9ffa693";

/// Every route that needs a login, with a body where it takes one. The ids
/// in the paths exist, so a refusal can only be about who is asking.
fn authenticated_routes(room: &str, user: &str) -> Vec<(Method, String)> {
    let chat = format!("/tools/api/chat/{room}");
    [
        (Method::POST, "/tools/api/auth/logout/".to_string()),
        (Method::GET, "/tools/api/auth/me/".into()),
        (Method::POST, "/tools/api/auth/password/".into()),
        (Method::GET, "/tools/api/auth/sessions/".into()),
        (
            Method::POST,
            "/tools/api/auth/sessions/logout-others/".into(),
        ),
        (Method::GET, "/tools/api/auth/tokens/".into()),
        (Method::POST, "/tools/api/auth/tokens/".into()),
        (Method::DELETE, format!("/tools/api/auth/tokens/{NOBODY}/")),
        (Method::GET, "/tools/api/user/search/?q=a".into()),
        (Method::GET, "/tools/api/user/me/profile/".into()),
        (Method::PATCH, "/tools/api/user/me/profile/".into()),
        (Method::POST, "/tools/api/user/me/avatar/".into()),
        (Method::GET, format!("/tools/api/user/{user}/profile/")),
        (Method::GET, "/tools/api/chat/rooms/".into()),
        (Method::POST, "/tools/api/chat/rooms/".into()),
        (Method::GET, "/tools/api/chat/rooms/public/".into()),
        (Method::POST, format!("/tools/api/chat/direct/{user}/")),
        (
            Method::POST,
            "/tools/api/chat/invites/somecode/join/".into(),
        ),
        (Method::GET, format!("{chat}/")),
        (Method::PATCH, format!("{chat}/")),
        (Method::POST, format!("{chat}/archive/")),
        (Method::POST, format!("{chat}/unarchive/")),
        (Method::POST, format!("{chat}/join/")),
        (Method::POST, format!("{chat}/leave/")),
        (Method::POST, format!("{chat}/members/")),
        (Method::DELETE, format!("{chat}/members/{user}/")),
        (Method::POST, format!("{chat}/members/{user}/mute/")),
        (Method::POST, format!("{chat}/members/{user}/role/")),
        (Method::POST, format!("{chat}/transfer/")),
        (Method::GET, format!("{chat}/invites/")),
        (Method::POST, format!("{chat}/invites/")),
        (Method::DELETE, format!("{chat}/invites/somecode/")),
        (Method::GET, format!("{chat}/participants/")),
        (Method::GET, format!("{chat}/messages/")),
        (Method::POST, format!("{chat}/send/")),
        (Method::POST, format!("{chat}/read/")),
    ]
    .into_iter()
    .collect()
}

fn with_body(request: reqwest::RequestBuilder, method: &Method) -> reqwest::RequestBuilder {
    if matches!(*method, Method::POST | Method::PATCH) {
        request.json(&json!({"content": "x", "name": "x", "user_id": NOBODY}))
    } else {
        request
    }
}

#[tokio::test]
async fn every_endpoint_refuses_anonymous_and_csrf_less_requests() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Locked", "group", &[&bob]).await;
    let anonymous = app.anonymous();
    let routes = authenticated_routes(&room, &bob.id());

    for (method, path) in &routes {
        let request = with_body(anonymous.request(method.clone(), path), method);
        let (status, body) = anonymous.send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_eq!(
            body["error"]["code"], "not_authenticated",
            "{method} {path}"
        );
    }

    // A revoked or made-up bearer token is no better.
    for (method, path) in &routes {
        let request = with_body(
            anonymous
                .http
                .request(method.clone(), app.url(path))
                .bearer_auth("prl_made_up"),
            method,
        );
        let (status, body) = anonymous.send(request).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}: {body}");
        assert_eq!(body["error"]["code"], "invalid_token", "{method} {path}");
    }

    // Logged in by cookie but without X-CSRFToken: every write is refused
    // before it does anything; reads are fine.
    for (method, path) in &routes {
        let request = with_body(ann.http.request(method.clone(), app.url(path)), method);
        let (status, body) = ann.send(request).await;
        if method.is_safe() {
            assert!(status.is_success(), "{method} {path}: {status} {body}");
        } else {
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
            assert_eq!(body["error"]["code"], "csrf_failed", "{method} {path}");
        }
    }
    // Nothing above took effect: ann is still logged in and still owns the room.
    let (status, me) = ann.get("/tools/api/auth/me/").await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let (_, details) = ann.get(&format!("/tools/api/chat/{room}/")).await;
    assert_eq!(details["data"]["my_role"], "owner");
    assert_eq!(details["data"]["name"], "Locked");
}

#[tokio::test]
async fn auth_endpoints_validate_their_input() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let client = app.anonymous();

    // Login with a malformed body.
    for body in [
        json!({"username": "ann"}),
        json!({"password": PASSWORD}),
        json!([]),
    ] {
        let (status, reply) = client.post("/tools/api/auth/login/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["error"]["code"], "invalid_json");
    }
    let (status, reply) = client
        .send(
            client
                .request(Method::POST, "/tools/api/auth/login/")
                .body("username=ann&password=x"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["code"], "invalid_content_type");

    // A weak new password is refused before the current one is even checked.
    for current in [PASSWORD, "not-the-password"] {
        let (status, reply) = ann
            .post(
                "/tools/api/auth/password/",
                json!({"current_password": current, "new_password": "short"}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["error"]["code"], "weak_password");
    }
    let (status, reply) = ann
        .post(
            "/tools/api/auth/password/",
            json!({"new_password": "long-enough"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply["error"]["code"], "invalid_json");
    // The password did not change.
    let (status, _) = app
        .anonymous()
        .post(
            "/tools/api/auth/login/",
            json!({"username": "ann", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn logging_out_other_sessions_keeps_this_one() {
    let app = spawn_app().await;
    let laptop = app.user("dan").await;
    let log_in = || async {
        let phone = app.anonymous();
        let (status, _) = phone
            .post(
                "/tools/api/auth/login/",
                json!({"username": "dan", "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        phone
    };
    let phone = log_in().await;
    let tablet = log_in().await;
    let mut bot = app.anonymous();
    bot.bearer = Some(laptop.api_token().await);

    let (status, body) = laptop
        .post("/tools/api/auth/sessions/logout-others/", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["sessions_revoked"], 2);
    assert_eq!(laptop.get("/tools/api/auth/me/").await.0, StatusCode::OK);
    for other in [&phone, &tablet] {
        let (status, body) = other.get("/tools/api/auth/me/").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    assert_eq!(
        bot.get("/tools/api/auth/me/").await.0,
        StatusCode::OK,
        "API tokens are not sessions"
    );
    let (_, sessions) = laptop.get("/tools/api/auth/sessions/").await;
    let sessions = sessions["data"].as_array().unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["current"], true);

    // From a token, there is no current session to keep: all of them go.
    let phone = log_in().await;
    let (status, body) = bot
        .post("/tools/api/auth/sessions/logout-others/", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["sessions_revoked"], 2);
    for other in [&phone, &laptop] {
        assert_eq!(
            other.get("/tools/api/auth/me/").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}

fn expect(reply: (StatusCode, Value), status: StatusCode, code: &str) {
    let (got, body) = reply;
    assert_eq!(got, status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

#[tokio::test]
async fn room_endpoints_refuse_bad_input_and_unknown_things() {
    let app = spawn_app().await;
    let owner = app.user("owner").await;
    let member = app.user("member").await;
    let outsider = app.user("outsider").await;
    let room = owner.create_room("Refusals", "group", &[&member]).await;
    let base = format!("/tools/api/chat/{room}");
    let ghost = "/tools/api/chat/no-such-room";
    let member_id = member.id();
    let outsider_id = outsider.id();

    // Update: bad fields, and a room that does not exist.
    expect(
        owner
            .patch(&format!("{base}/"), json!({"name": "  "}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_room_name",
    );
    expect(
        owner
            .patch(&format!("{base}/"), json!({"name": "x".repeat(81)}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_room_name",
    );
    expect(
        owner
            .patch(
                &format!("{base}/"),
                json!({"description": "d".repeat(1001)}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_description",
    );
    expect(
        owner
            .patch(&format!("{base}/"), json!({"topic": "x"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    expect(
        owner
            .patch(&format!("{ghost}/"), json!({"name": "x"}))
            .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );

    // Unknown rooms: 404 everywhere.
    for action in ["archive", "unarchive", "join", "leave"] {
        expect(
            owner.post(&format!("{ghost}/{action}/"), json!({})).await,
            StatusCode::NOT_FOUND,
            "room_not_found",
        );
    }
    expect(
        owner
            .post(
                &format!("{ghost}/members/{member_id}/mute/"),
                json!({"minutes": 5}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    expect(
        owner.delete(&format!("{ghost}/invites/abc/")).await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
    // Known room, unknown member or invite.
    expect(
        owner
            .post(
                &format!("{base}/members/{outsider_id}/mute/"),
                json!({"minutes": 5}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "member_not_found",
    );
    expect(
        owner
            .post(
                &format!("{base}/members/{NOBODY}/mute/"),
                json!({"minutes": 5}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "member_not_found",
    );
    expect(
        owner.delete(&format!("{base}/invites/no-such-code/")).await,
        StatusCode::NOT_FOUND,
        "invite_not_found",
    );

    // Adding a member: a malformed id, an unknown user, someone already in.
    expect(
        owner
            .post(
                &format!("{base}/members/"),
                json!({"user_id": "not-a-uuid"}),
            )
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    expect(
        owner.post(&format!("{base}/members/"), json!({})).await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    expect(
        owner
            .post(&format!("{base}/members/"), json!({"user_id": NOBODY}))
            .await,
        StatusCode::NOT_FOUND,
        "user_not_found",
    );
    expect(
        owner
            .post(&format!("{base}/members/"), json!({"user_id": member_id}))
            .await,
        StatusCode::CONFLICT,
        "already_member",
    );

    // Roles: only admin and member can be given.
    for role in ["owner", "king", ""] {
        expect(
            owner
                .post(
                    &format!("{base}/members/{member_id}/role/"),
                    json!({"role": role}),
                )
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_role",
        );
    }

    // Transfer: not to yourself, only to a member, and a well-formed id.
    expect(
        owner
            .post(&format!("{base}/transfer/"), json!({"user_id": owner.id()}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_user",
    );
    expect(
        owner
            .post(
                &format!("{base}/transfer/"),
                json!({"user_id": outsider_id}),
            )
            .await,
        StatusCode::NOT_FOUND,
        "member_not_found",
    );
    expect(
        owner
            .post(&format!("{base}/transfer/"), json!({"user_id": 7}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );

    // Invites: limits are checked, and plain members may not create them.
    for body in [
        json!({"max_uses": 0}),
        json!({"max_uses": 100_001}),
        json!({"max_uses": -3}),
        json!({"expires_in": 0}),
    ] {
        expect(
            owner.post(&format!("{base}/invites/"), body).await,
            StatusCode::BAD_REQUEST,
            "invalid_field",
        );
    }
    expect(
        owner
            .post(&format!("{base}/invites/"), json!({"uses": 1}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_json",
    );
    expect(
        member
            .post(&format!("{base}/invites/"), json!({"max_uses": 5}))
            .await,
        StatusCode::FORBIDDEN,
        "moderator_only",
    );
    expect(
        member.delete(&format!("{base}/invites/whatever/")).await,
        StatusCode::FORBIDDEN,
        "moderator_only",
    );

    // Marking read: a body that says nothing, and a room you are not in.
    for body in [json!({}), json!({"up_to_seq": 1, "message_ids": []})] {
        expect(
            member.post(&format!("{base}/read/"), body).await,
            StatusCode::BAD_REQUEST,
            "invalid_field",
        );
    }
    expect(
        outsider
            .post(&format!("{base}/read/"), json!({"up_to_seq": 1}))
            .await,
        StatusCode::FORBIDDEN,
        "not_a_member",
    );
    expect(
        outsider
            .post(&format!("{ghost}/read/"), json!({"up_to_seq": 1}))
            .await,
        StatusCode::NOT_FOUND,
        "room_not_found",
    );
}

/// Reads that ask for too much or for nothing: paging past 200 is refused,
/// searches with long or odd queries are simply empty.
#[tokio::test]
async fn searches_and_pages_beyond_the_limits() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    for limit in [201, 1000] {
        expect(
            ann.get(&format!("/tools/api/chat/general/messages/?limit={limit}"))
                .await,
            StatusCode::BAD_REQUEST,
            "invalid_limit",
        );
    }
    let (status, page) = ann.get("/tools/api/chat/general/messages/?limit=200").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let (status, page) = ann
        .get("/tools/api/chat/general/messages/?after=100000")
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["messages"], json!([]));
    assert_eq!(page["has_more"], false);

    let long = "a".repeat(500);
    for path in [
        format!("/tools/api/user/search/?q={long}"),
        format!("/tools/api/chat/rooms/public/?q={long}"),
        "/tools/api/user/search/?q=%25%5F%5C".to_string(),
    ] {
        let (status, body) = ann.get(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["data"], json!([]), "{path}");
    }
    // Search results are capped at 20.
    for i in 0..25 {
        Client::register(app.addr, &format!("searchable{i:02}")).await;
    }
    let (_, body) = ann.get("/tools/api/user/search/?q=searchable").await;
    assert_eq!(body["data"].as_array().unwrap().len(), 20);
}
