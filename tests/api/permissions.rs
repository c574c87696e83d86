//! The permission matrix: every route the router holds (`http::route_table`)
//! and every client frame type (`protocol::CLIENT_TYPES`), for every role,
//! against the answer written in the tables below. A route or frame type the
//! tables do not list fails the test, so a new endpoint cannot ship without
//! its row; a row whose route is gone fails too.
//!
//! Each (route, role) pair runs on a fresh room with fresh sessions, so what
//! one pair changes (a removal, a logout, a password) never decides another.

use std::collections::HashMap;

use parley::domain::ids::{RoomId, TokenId, UserId};
use parley::domain::room::{Role as RoomRole, RoomKind};
use parley::domain::time::now_ms;
use parley::http::{RouteEntry, route_table};
use parley::realtime::protocol::CLIENT_TYPES;
use parley::services::accounts::{self, ClientInfo};
use parley::store::{Invite, NewRoom};
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Client, TestApp, spawn_app_with};

/// Who makes the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Role {
    Anonymous,
    /// Logged in, not in the room.
    NonMember,
    Member,
    MutedMember,
    /// Banned from the room (and so not in it).
    Banned,
    /// A room admin.
    Admin,
    Owner,
    /// A site administrator who is not in the room.
    SiteAdmin,
    /// The member, with an API token instead of the cookie.
    Token,
}

const ROLES: [Role; 9] = [
    Role::Anonymous,
    Role::NonMember,
    Role::Member,
    Role::MutedMember,
    Role::Banned,
    Role::Admin,
    Role::Owner,
    Role::SiteAdmin,
    Role::Token,
];

/// What a request carries.
#[derive(Clone, Copy)]
enum Body {
    None,
    Json(fn(&Fixture) -> Value),
    /// A web form (with the CSRF field a page would have rendered).
    Form(fn(&Fixture) -> Vec<(&'static str, String)>),
    /// A multipart upload of a small PNG, as the avatar form sends.
    Avatar,
    /// A multipart attachment upload: the file field's name and the file.
    Upload(&'static str, fn() -> (Vec<u8>, &'static str)),
}

/// One route: the room it acts on, what it sends, and the status each role
/// gets, in the order of `ROLES`:
/// anonymous, non-member, member, muted, banned, admin, owner, site admin, token.
struct Row {
    method: &'static str,
    path: &'static str,
    room: RoomKind,
    /// Who `{user_id}` names.
    user: Target,
    body: Body,
    expect: [u16; 9],
}

/// The user a route's `{user_id}` names.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A member of the fixture room (to remove, mute, promote, view).
    Member,
    /// A user made for this pair alone (a direct room with them is new).
    Stranger,
    /// Another user made for this pair, whom the member blocks.
    BlockedByMember,
    /// The banned user.
    Banned,
}

const fn row(method: &'static str, path: &'static str, body: Body, expect: [u16; 9]) -> Row {
    Row {
        method,
        path,
        room: RoomKind::Group,
        user: Target::Member,
        body,
        expect,
    }
}

const fn public(method: &'static str, path: &'static str, body: Body, expect: [u16; 9]) -> Row {
    Row {
        room: RoomKind::Public,
        ..row(method, path, body, expect)
    }
}

const fn stranger(method: &'static str, path: &'static str, body: Body, expect: [u16; 9]) -> Row {
    on(Target::Stranger, method, path, body, expect)
}

const fn on(
    user: Target,
    method: &'static str,
    path: &'static str,
    body: Body,
    expect: [u16; 9],
) -> Row {
    Row {
        user,
        ..row(method, path, body, expect)
    }
}

fn no_json(_: &Fixture) -> Value {
    json!({})
}

/// The routes, each with its answers. Read as: "a <role> doing <route> gets <status>".
#[rustfmt::skip]
fn table() -> Vec<Row> {
    use Body::{Avatar, Form, Json, None, Upload};
    vec![
        // ---- auth
        row("POST", "/tools/api/auth/register", Json(|f| json!({"username": f.fresh_name, "password": "a-new-password-7"})),
            [201, 201, 201, 201, 201, 201, 201, 201, 201]),
        row("POST", "/tools/api/auth/login", Json(|f| json!({"username": f.login_name, "password": crate::helpers::PASSWORD})),
            [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("POST", "/tools/api/auth/logout", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("GET", "/tools/api/auth/me", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        // To the same password, so the next pair of the same user knows it.
        // (A token may change it too: it needs the current password like anyone.)
        row("POST", "/tools/api/auth/password", Json(|_| json!({"current_password": crate::helpers::PASSWORD, "new_password": crate::helpers::PASSWORD})),
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("GET", "/tools/api/auth/sessions", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("POST", "/tools/api/auth/sessions/logout-others", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("GET", "/tools/api/auth/tokens", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("POST", "/tools/api/auth/tokens", Json(|_| json!({"name": "matrix"})),
            [401, 201, 201, 201, 201, 201, 201, 201, 201]),
        // The token is the member's: only the member (cookie or token) may delete it.
        row("DELETE", "/tools/api/auth/tokens/{id}", None,
            [401, 404, 200, 404, 404, 404, 404, 404, 200]),
        // ---- users
        row("GET", "/tools/api/user/search", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("GET", "/tools/api/user/me/profile", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("PATCH", "/tools/api/user/me/profile", Json(|_| json!({"bio": "matrix"})),
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("POST", "/tools/api/user/me/avatar", Avatar,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("DELETE", "/tools/api/user/me/avatar", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("GET", "/tools/api/user/{user_id}/profile", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        stranger("POST", "/tools/api/user/{user_id}/block", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        // Only the member blocks this user: unblocking is theirs alone.
        on(Target::BlockedByMember, "DELETE", "/tools/api/user/{user_id}/block", None,
            [401, 404, 200, 404, 404, 404, 404, 404, 200]),
        row("GET", "/tools/api/user/me/blocks", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        // ---- rooms
        row("GET", "/tools/api/chat/rooms", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("POST", "/tools/api/chat/rooms", Json(|_| json!({"name": "Matrix room", "room_type": "group"})),
            [401, 201, 201, 201, 201, 201, 201, 201, 201]),
        row("GET", "/tools/api/chat/rooms/public", None,
            [401, 200, 200, 200, 200, 200, 200, 200, 200]),
        stranger("POST", "/tools/api/chat/direct/{user_id}", None,
            [401, 201, 201, 201, 201, 201, 201, 201, 201]),
        // Members are already in: using the invite changes nothing for them.
        row("POST", "/tools/api/chat/invites/{code}/join", None,
            [401, 200, 200, 200, 403, 200, 200, 200, 200]),
        row("GET", "/tools/api/chat/{room_id}", None,
            [401, 403, 200, 200, 403, 200, 200, 403, 200]),
        row("PATCH", "/tools/api/chat/{room_id}", Json(|_| json!({"description": "by the matrix"})),
            [401, 403, 403, 403, 403, 403, 200, 403, 403]),
        row("POST", "/tools/api/chat/{room_id}/archive", None,
            [401, 403, 403, 403, 403, 403, 200, 403, 403]),
        row("POST", "/tools/api/chat/{room_id}/unarchive", None,
            [401, 403, 403, 403, 403, 403, 200, 403, 403]),
        public("POST", "/tools/api/chat/{room_id}/join", None,
            [401, 200, 200, 200, 403, 200, 200, 200, 200]),
        // The owner must hand the room over first (409).
        row("POST", "/tools/api/chat/{room_id}/leave", None,
            [401, 403, 200, 200, 403, 200, 409, 403, 200]),
        row("POST", "/tools/api/chat/{room_id}/members", Json(|f| json!({"user_id": f.outsider})),
            [401, 403, 403, 403, 403, 201, 201, 403, 403]),
        row("DELETE", "/tools/api/chat/{room_id}/members/{user_id}", None,
            [401, 403, 403, 403, 403, 200, 200, 403, 403]),
        row("POST", "/tools/api/chat/{room_id}/members/{user_id}/mute", Json(|_| json!({"minutes": 10})),
            [401, 403, 403, 403, 403, 200, 200, 403, 403]),
        row("POST", "/tools/api/chat/{room_id}/members/{user_id}/role", Json(|_| json!({"role": "admin"})),
            [401, 403, 403, 403, 403, 403, 200, 403, 403]),
        row("POST", "/tools/api/chat/{room_id}/transfer", Json(|f| json!({"user_id": f.target})),
            [401, 403, 403, 403, 403, 403, 200, 403, 403]),
        // Repairing ownership is for site admins, whether or not they are in the room.
        row("POST", "/tools/api/chat/{room_id}/owner", Json(|f| json!({"user_id": f.target})),
            [401, 403, 403, 403, 403, 403, 403, 200, 403]),
        row("GET", "/tools/api/chat/{room_id}/bans", None,
            [401, 403, 403, 403, 403, 200, 200, 403, 403]),
        row("POST", "/tools/api/chat/{room_id}/bans/{user_id}", Json(|_| json!({"reason": "matrix"})),
            [401, 403, 403, 403, 403, 201, 201, 403, 403]),
        on(Target::Banned, "DELETE", "/tools/api/chat/{room_id}/bans/{user_id}", None,
            [401, 403, 403, 403, 403, 200, 200, 403, 403]),
        row("GET", "/tools/api/chat/{room_id}/invites", None,
            [401, 403, 403, 403, 403, 200, 200, 403, 403]),
        row("POST", "/tools/api/chat/{room_id}/invites", Json(no_json),
            [401, 403, 403, 403, 403, 201, 201, 403, 403]),
        row("DELETE", "/tools/api/chat/{room_id}/invites/{code}", None,
            [401, 403, 403, 403, 403, 200, 200, 403, 403]),
        row("GET", "/tools/api/chat/{room_id}/participants", None,
            [401, 403, 200, 200, 403, 200, 200, 403, 200]),
        row("GET", "/tools/api/chat/{room_id}/messages", None,
            [401, 403, 200, 200, 403, 200, 200, 403, 200]),
        row("POST", "/tools/api/chat/{room_id}/send", Json(|_| json!({"content": "hello matrix"})),
            [401, 403, 201, 403, 403, 201, 201, 403, 201]),
        row("POST", "/tools/api/chat/{room_id}/read", Json(|_| json!({"up_to_seq": 1})),
            [401, 403, 200, 200, 403, 200, 200, 403, 200]),
        // ---- attachments: uploading is posting; fetching is reading the room
        // (a posted attachment of the fixture room; everyone else gets 404)
        row("POST", "/tools/api/chat/{room_id}/uploads", Upload("file", || (tiny_png(), "a.png")),
            [401, 403, 201, 403, 403, 201, 201, 403, 201]),
        row("POST", "/tools/api/chat/{room_id}/send-image", Upload("image", || (tiny_png(), "a.png")),
            [401, 403, 201, 403, 403, 201, 201, 403, 201]),
        row("POST", "/tools/api/chat/{room_id}/send-file", Upload("file", || (b"matrix notes".to_vec(), "notes.txt")),
            [401, 403, 201, 403, 403, 201, 201, 403, 201]),
        row("POST", "/tools/api/chat/{room_id}/send-audio", Upload("audio", || (tiny_ogg(), "memo.ogg")),
            [401, 403, 201, 403, 403, 201, 201, 403, 201]),
        row("POST", "/tools/api/chat/{room_id}/send-video", Upload("video", || (b"not a video, so a file".to_vec(), "clip.mp4")),
            [401, 403, 201, 403, 403, 201, 201, 403, 201]),
        row("GET", "/tools/api/chat/attachments/{attachment_id}", None,
            [401, 404, 200, 200, 404, 200, 200, 404, 200]),
        row("GET", "/tools/api/chat/attachments/{attachment_id}/thumbnail", None,
            [401, 404, 200, 200, 404, 200, 200, 404, 200]),
        row("GET", "/tools/api/chat/attachments/{attachment_id}/preview", None,
            [401, 404, 200, 200, 404, 200, 200, 404, 200]),
        row("GET", "/tools/api/chat/{room_id}/download/{message_id}", None,
            [401, 403, 200, 200, 403, 200, 200, 403, 200]),
        // ---- pages: anonymous visitors are sent to log in (303); the token
        // role is a bearer client, which pages do not know (it is anonymous there).
        row("GET", "/", None,
            [303, 200, 200, 200, 200, 200, 200, 200, 303]),
        row("GET", "/login", None,
            [200, 303, 303, 303, 303, 303, 303, 303, 200]),
        // A bearer client has no CSRF cookie, so its form posts fail the CSRF check.
        row("POST", "/login", Form(|f| { vec![ ("username", f.login_name.clone()), ("password", crate::helpers::PASSWORD.to_string()), ] }),
            [303, 303, 303, 303, 303, 303, 303, 303, 403]),
        row("GET", "/register", None,
            [200, 303, 303, 303, 303, 303, 303, 303, 200]),
        row("POST", "/register", Form(|f| { vec![ ("username", f.fresh_name.clone()), ("password", "a-new-password-7".to_string()), ("password2", "a-new-password-7".to_string()), ] }),
            [303, 303, 303, 303, 303, 303, 303, 303, 403]),
        row("GET", "/logout", None,
            [303, 200, 200, 200, 200, 200, 200, 200, 303]),
        row("POST", "/logout", Form(|_| Vec::new()),
            [303, 303, 303, 303, 303, 303, 303, 303, 303]),
        row("GET", "/settings", None,
            [303, 200, 200, 200, 200, 200, 200, 200, 303]),
        row("GET", "/u/{username}", None,
            [303, 200, 200, 200, 200, 200, 200, 200, 303]),
        row("POST", "/u/{username}/message", Form(|_| Vec::new()),
            [303, 303, 303, 303, 303, 303, 303, 303, 303]),
        // Visitors log in first; members go straight to the room; the others see the invitation.
        row("GET", "/invite/{code}", None,
            [303, 200, 303, 303, 200, 303, 303, 200, 303]),
        row("POST", "/invite/{code}", Form(|_| Vec::new()),
            [303, 303, 303, 303, 403, 303, 303, 303, 303]),
        row("GET", "/tools/chat/enhanced/{room_id}", None,
            [303, 403, 200, 200, 403, 200, 200, 403, 303]),
        row("GET", "/assets/{version}/{*path}", None,
            [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("GET", "/static/{*path}", None,
            [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        // ---- WebSocket upgrades, made for real (101: upgraded)
        row("GET", "/ws", None,
            [401, 101, 101, 101, 101, 101, 101, 101, 101]),
        row("GET", "/ws/chat/{room_id}", None,
            [401, 403, 101, 101, 403, 101, 101, 403, 101]),
        // ---- no login needed
        row("GET", "/avatars/{user_id}", None,
            [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("GET", "/healthz", None,
            [200, 200, 200, 200, 200, 200, 200, 200, 200]),
        row("GET", "/readyz", None,
            [200, 200, 200, 200, 200, 200, 200, 200, 200]),
    ]
}

/// What a client frame gets, per role (same order): `ok` (no error before
/// the answer to a following ping), an error code, or the HTTP status that
/// refused the upgrade. Every frame names the fixture room (a private group).
#[rustfmt::skip]
fn frame_table() -> Vec<(&'static str, [&'static str; 9])> {
    const NOT: &str = "not_a_member";
    const BANNED: &str = "banned";
    vec![
        ("message",       ["401", NOT, "ok", "muted", BANNED, "ok", "ok", NOT, "ok"]),
        ("typing",        ["401", NOT, "ok", "muted", BANNED, "ok", "ok", NOT, "ok"]),
        ("read_status",   ["401", NOT, "ok", "ok",    BANNED, "ok", "ok", NOT, "ok"]),
        ("read",          ["401", NOT, "ok", "ok",    BANNED, "ok", "ok", NOT, "ok"]),
        ("resume",        ["401", NOT, "ok", "ok",    BANNED, "ok", "ok", NOT, "ok"]),
        ("ping",          ["401", "ok", "ok", "ok",   "ok",   "ok", "ok", "ok", "ok"]),
        ("heartbeat_ack", ["401", "ok", "ok", "ok",   "ok",   "ok", "ok", "ok", "ok"]),
    ]
}

/// The users every pair draws on.
struct People {
    owner: UserId,
    admin: UserId,
    member: UserId,
    muted: UserId,
    banned: UserId,
    non_member: UserId,
    site_admin: UserId,
    /// A member of every fixture room, acted upon (removed, muted, promoted).
    target: UserId,
    target_name: String,
    /// In no room: added by the add-member row.
    outsider: UserId,
    /// Logs in through the login rows; nobody changes its password.
    login_name: String,
}

/// What one (route, role) pair works on.
struct Fixture {
    room: RoomId,
    target: UserId,
    stranger: UserId,
    blocked: UserId,
    banned: UserId,
    target_name: String,
    outsider: UserId,
    invite: String,
    member_token: TokenId,
    login_name: String,
    fresh_name: String,
    asset_version: String,
    message_id: String,
    /// An image the owner posted in the room, and its message.
    attachment_id: String,
    attachment_message_id: String,
}

async fn user(app: &TestApp, name: &str) -> UserId {
    let client = app.user(name).await;
    UserId::parse(&client.id()).unwrap()
}

async fn people(app: &TestApp) -> People {
    let site_admin = user(app, "site_admin").await;
    app.state
        .store
        .update_admin(site_admin, true)
        .await
        .unwrap();
    let target_client = app.user("target").await;
    People {
        owner: user(app, "owner").await,
        admin: user(app, "room_admin").await,
        member: user(app, "member").await,
        muted: user(app, "muted").await,
        banned: user(app, "banned").await,
        non_member: user(app, "non_member").await,
        site_admin,
        target: UserId::parse(&target_client.id()).unwrap(),
        target_name: target_client.profile["username"]
            .as_str()
            .unwrap()
            .to_string(),
        outsider: user(app, "outsider").await,
        login_name: app.user("login_only").await.profile["username"]
            .as_str()
            .unwrap()
            .to_string(),
    }
}

/// A fresh room of `kind` with its owner, an admin, the member, the muted
/// member, the target, and a ban of the banned user; an invite; a token of
/// the member's; and (for frames) one message.
async fn fixture(app: &TestApp, people: &People, kind: RoomKind, n: usize) -> Fixture {
    let store = &app.state.store;
    let room = RoomId::parse(&format!("matrix-{n}")).unwrap();
    let members = vec![
        (people.owner, RoomRole::Owner),
        (people.admin, RoomRole::Admin),
        (people.member, RoomRole::Member),
        (people.muted, RoomRole::Member),
        (people.target, RoomRole::Member),
        (people.banned, RoomRole::Member),
    ];
    store
        .insert_room(
            &NewRoom {
                id: room.clone(),
                kind,
                name: format!("Matrix {n}"),
                description: String::new(),
                owner_id: Some(people.owner),
                created_by: Some(people.owner),
                direct_key: None,
                created_at: now_ms(),
                members,
            },
            None,
        )
        .await
        .unwrap();
    store
        .update_member_muted(&room, people.muted, Some(now_ms() + 3_600_000))
        .await
        .unwrap();
    ban(app, &room, people.owner, people.banned).await;
    let invite = format!("matrixinvite{n:010}");
    store
        .insert_invite(
            &Invite {
                code: invite.clone(),
                room_id: room.clone(),
                created_by: people.owner,
                created_at: now_ms(),
                expires_at: None,
                max_uses: None,
                uses: 0,
                revoked: false,
            },
            u32::MAX,
        )
        .await
        .unwrap();
    let member = store.get_user(people.member).await.unwrap().unwrap();
    let (token, _) = accounts::create_api_token(&app.state, &member, "matrix")
        .await
        .unwrap();
    let owner = store.get_user(people.owner).await.unwrap().unwrap();
    let sender = parley::services::rooms::sender_of(&owner);
    let message = parley::services::messages::post(&app.state, &sender, &room, "first", None, &[])
        .await
        .unwrap();
    let (attachment_id, attachment_message_id) = post_image(app, &owner, &room).await;
    let stranger = quick_user(app, &format!("stranger_{n}")).await;
    let blocked = quick_user(app, &format!("blocked_{n}")).await;
    store
        .insert_block(people.member, blocked, now_ms(), u32::MAX)
        .await
        .unwrap();
    Fixture {
        room,
        target: people.target,
        stranger,
        blocked,
        banned: people.banned,
        target_name: people.target_name.clone(),
        outsider: people.outsider,
        invite,
        member_token: token.id,
        login_name: people.login_name.clone(),
        fresh_name: format!("fresh_{n}"),
        asset_version: app.state.assets.base(),
        message_id: message.message().unwrap().id.to_string(),
        attachment_id,
        attachment_message_id,
    }
}

/// Uploads and posts a small image as `owner`, through the same services the
/// routes use; returns the attachment's id and its message's.
async fn post_image(
    app: &TestApp,
    owner: &parley::domain::user::User,
    room: &RoomId,
) -> (String, String) {
    use parley::services::attachments;
    let admission = attachments::admit(&app.state, owner.id, room)
        .await
        .unwrap();
    let chunks =
        futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(tiny_png()))]);
    let spooled = attachments::spool(&app.state, &admission, chunks)
        .await
        .unwrap();
    let info = attachments::UploadInfo {
        name: "matrix.png".into(),
        ..attachments::UploadInfo::default()
    };
    let attachment = attachments::store_upload(&app.state, &admission, spooled, info)
        .await
        .unwrap();
    let sender = parley::services::rooms::sender_of(owner);
    let posted = parley::services::messages::post(
        &app.state,
        &sender,
        room,
        "",
        None,
        &[attachment.id.to_string()],
    )
    .await
    .unwrap();
    (
        attachment.id.to_string(),
        posted.message().unwrap().id.to_string(),
    )
}

/// A user straight in the store (no password to hash: nobody logs in as them).
async fn quick_user(app: &TestApp, name: &str) -> UserId {
    let id = UserId::new();
    app.state
        .store
        .insert_user(&parley::store::NewUser {
            id,
            username: name.to_string(),
            password_hash: "not a password hash".into(),
            display_name: String::new(),
            is_admin: false,
            created_at: now_ms(),
        })
        .await
        .unwrap();
    id
}

/// The banned user is removed from the room and may not come back.
async fn ban(app: &TestApp, room: &RoomId, by: UserId, user: UserId) {
    let ban = parley::store::Ban {
        room_id: room.clone(),
        user_id: user,
        banned_by: Some(by),
        banned_at: now_ms(),
        reason: "matrix".into(),
    };
    assert!(
        app.state.store.insert_ban(&ban).await.unwrap(),
        "was a member"
    );
}

/// A client acting as `role`: a fresh session (or token), so nothing an
/// earlier pair did to a session decides this one.
async fn actor(app: &TestApp, people: &People, role: Role) -> Client {
    let user = match role {
        Role::Anonymous => {
            let client = app.anonymous();
            // As a browser that was shown a form: the CSRF cookie pages set.
            let url = reqwest::Url::parse(&client.base).unwrap();
            client
                .jar
                .add_cookie_str("csrftoken=anonymousmatrixtoken0000000000000000000", &url);
            return client;
        }
        Role::NonMember => people.non_member,
        Role::Member | Role::Token => people.member,
        Role::MutedMember => people.muted,
        Role::Banned => people.banned,
        Role::Admin => people.admin,
        Role::Owner => people.owner,
        Role::SiteAdmin => people.site_admin,
    };
    let mut client = app.anonymous();
    let found = app.state.store.get_user(user).await.unwrap().unwrap();
    client.profile = json!({"id": user.to_string(), "username": found.username});
    if role == Role::Token {
        let (_, token) = accounts::create_api_token(&app.state, &found, "matrix actor")
            .await
            .unwrap();
        client.bearer = Some(token);
        return client;
    }
    let info = ClientInfo {
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: "matrix".into(),
    };
    let session = accounts::start_session(&app.state, user, &info)
        .await
        .unwrap();
    let url = reqwest::Url::parse(&client.base).unwrap();
    client
        .jar
        .add_cookie_str(&format!("sessionid={}", session.token), &url);
    client
        .jar
        .add_cookie_str(&format!("csrftoken={}", session.csrf_token), &url);
    client
}

/// The route's path with the fixture's values in its parameters.
fn concrete(row: &Row, f: &Fixture) -> String {
    let user = match row.user {
        Target::Member => f.target,
        Target::Stranger => f.stranger,
        Target::BlockedByMember => f.blocked,
        Target::Banned => f.banned,
    };
    row.path
        .replace("{room_id}", f.room.as_str())
        .replace("{attachment_id}", &f.attachment_id)
        .replace("{message_id}", &f.attachment_message_id)
        .replace("{user_id}", &user.to_string())
        .replace("{code}", &f.invite)
        .replace("{id}", &f.member_token.to_string())
        .replace("{username}", &f.target_name)
        .replace(
            "/assets/{version}/{*path}",
            &format!("{}js/app.js", f.asset_version),
        )
        .replace("{*path}", "websocket_test.html")
}

async fn answer(client: &Client, row: &Row, f: &Fixture) -> u16 {
    let path = concrete(row, f);
    if row.path.starts_with("/ws") {
        // As a browser would: with the page's Origin.
        return match client.try_ws(&path, Some(&client.origin())).await {
            Ok(_) => 101,
            Err(err) => crate::helpers::refusal(Err(err)).0,
        };
    }
    let method = Method::from_bytes(row.method.as_bytes()).unwrap();
    let mut request = client.request(method, &path);
    request = match row.body {
        Body::None => request,
        Body::Json(make) => request.json(&make(f)),
        Body::Form(make) => {
            let mut fields = make(f);
            fields.push((
                "csrfmiddlewaretoken",
                client.cookie("csrftoken").unwrap_or_default(),
            ));
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields)
                .finish();
            request
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
        }
        Body::Avatar => {
            let part = reqwest::multipart::Part::bytes(tiny_png())
                .file_name("a.png")
                .mime_str("image/png")
                .unwrap();
            request.multipart(reqwest::multipart::Form::new().part("avatar", part))
        }
        Body::Upload(field, make) => {
            let (bytes, name) = make();
            let part = reqwest::multipart::Part::bytes(bytes).file_name(name);
            request.multipart(reqwest::multipart::Form::new().part(field, part))
        }
    };
    request
        .send()
        .await
        .expect("request sent")
        .status()
        .as_u16()
}

/// The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, not reflected).
fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in page {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A one-second Ogg/Opus stream: an OpusHead page and a last page whose
/// granule says 1 s (after the 312-sample pre-skip).
fn tiny_ogg() -> Vec<u8> {
    fn page(kind: u8, granule: u64, seq: u32, packet: &[u8]) -> Vec<u8> {
        let mut page = b"OggS\0".to_vec();
        page.push(kind);
        page.extend_from_slice(&granule.to_le_bytes());
        page.extend_from_slice(&1u32.to_le_bytes());
        page.extend_from_slice(&seq.to_le_bytes());
        page.extend_from_slice(&0u32.to_le_bytes());
        page.push(1);
        page.push(packet.len() as u8);
        page.extend_from_slice(packet);
        let crc = ogg_crc(&page);
        page[22..26].copy_from_slice(&crc.to_le_bytes());
        page
    }
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, 1]);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    let mut out = page(2, 0, 0, &head);
    out.extend(page(4, 312 + 48_000, 1, &[0xFC; 20]));
    out
}

fn tiny_png() -> Vec<u8> {
    let image = image::RgbaImage::from_pixel(8, 8, image::Rgba([10, 200, 30, 255]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgba8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

async fn matrix_app() -> TestApp {
    spawn_app_with(|c| {
        // Hundreds of fixture writes; durability is not what this is about.
        c.sqlite_synchronous = parley::config::SqliteSynchronousArg::Normal;
        c.message_rate = 100_000;
        c.message_burst = 100_000;
        c.login_max_failures_per_ip = 100_000;
        // Each pair makes rooms, tokens and sessions for the same few users.
        c.max_rooms_per_hour = 100_000;
        c.max_tokens_per_user = 100_000;
        c.max_sessions_per_user = 100_000;
    })
    .await
}

#[tokio::test]
async fn every_route_answers_every_role_as_the_table_says() {
    let app = matrix_app().await;
    let people = people(&app).await;
    let rows = table();
    let routes = route_table();
    let key = |method: &str, path: &str| format!("{method} {path}");
    let listed: HashMap<String, &Row> = rows.iter().map(|r| (key(r.method, r.path), r)).collect();
    let missing: Vec<String> = routes
        .iter()
        .map(|RouteEntry { method, path }| key(method.as_str(), path))
        .filter(|k| !listed.contains_key(k))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a row in the permission matrix: {missing:#?}"
    );
    let stale: Vec<&String> = listed
        .keys()
        .filter(|k| {
            !routes
                .iter()
                .any(|r| &key(r.method.as_str(), &r.path) == *k)
        })
        .collect();
    assert!(
        stale.is_empty(),
        "rows for routes that do not exist: {stale:#?}"
    );

    let mut wrong = Vec::new();
    let mut n = 0;
    for row in &rows {
        for (role, expected) in ROLES.iter().zip(row.expect) {
            n += 1;
            let f = fixture(&app, &people, row.room, n).await;
            let client = actor(&app, &people, *role).await;
            let got = answer(&client, row, &f).await;
            if got != expected {
                wrong.push(format!(
                    "{} {} as {role:?}: got {got}, the table says {expected}",
                    row.method, row.path
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {n} answers differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

#[tokio::test]
async fn every_client_frame_type_answers_every_role_as_the_table_says() {
    let app = matrix_app().await;
    let people = people(&app).await;
    let rows = frame_table();
    let missing: Vec<&&str> = CLIENT_TYPES
        .iter()
        .filter(|t| !rows.iter().any(|(kind, _)| kind == *t))
        .collect();
    assert!(missing.is_empty(), "frame types without a row: {missing:?}");
    assert_eq!(
        rows.len(),
        CLIENT_TYPES.len(),
        "rows for frame types that do not exist"
    );

    let mut wrong = Vec::new();
    let mut n = 10_000;
    for (kind, expect) in &rows {
        for (role, expected) in ROLES.iter().zip(expect) {
            n += 1;
            let f = fixture(&app, &people, RoomKind::Group, n).await;
            let client = actor(&app, &people, *role).await;
            let got = frame_outcome(&client, kind, &f).await;
            if got != *expected {
                wrong.push(format!(
                    "{kind} as {role:?}: got {got}, the table says {expected}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} answers differ:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Sends one frame of `kind` about the fixture room, then a ping; the first
/// `error` before the pong is the outcome, else `ok`.
async fn frame_outcome(client: &Client, kind: &str, f: &Fixture) -> String {
    let mut ws = match client.try_ws("/ws/", Some(&client.origin())).await {
        Ok(ws) => ws,
        Err(err) => return crate::helpers::refusal(Err(err)).0.to_string(),
    };
    ws.next_of("connection_established").await;
    let room = f.room.as_str();
    let frame = match kind {
        "message" => {
            json!({"type": "message", "room_id": room, "content": "hi", "client_id": "matrix-1"})
        }
        "typing" => json!({"type": "typing", "room_id": room, "is_typing": true}),
        "read_status" => {
            json!({"type": "read_status", "room_id": room, "message_ids": [f.message_id]})
        }
        "read" => json!({"type": "read", "room_id": room, "up_to_seq": 1}),
        "resume" => json!({"type": "resume", "room_id": room, "since_seq": 0}),
        "ping" => json!({"type": "ping"}),
        "heartbeat_ack" => json!({"type": "heartbeat_ack"}),
        other => panic!("no sample frame for {other:?}: add one"),
    };
    ws.send_json(frame).await;
    // The answer to a ping comes after the frame's outcome (a ping is its own).
    if kind != "ping" {
        ws.send_json(json!({"type": "ping"})).await;
    }
    loop {
        let frame = ws.next_json().await;
        match frame["type"].as_str() {
            Some("error") => return frame["code"].as_str().unwrap_or("?").to_string(),
            Some("pong") => return "ok".into(),
            _ => {}
        }
    }
}

#[tokio::test]
async fn every_api_route_is_documented() {
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let undocumented: Vec<String> = route_table()
        .into_iter()
        .filter(|r| r.path.starts_with("/tools/api/"))
        .map(|r| {
            let path = r.path.replace('{', "<").replace('}', ">");
            format!("`{} {}/", r.method, path)
        })
        .filter(|needle| !docs.contains(needle.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from docs/api.md: {undocumented:#?}"
    );
}
