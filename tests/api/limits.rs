//! Connection and frame limits (issue 14, findings 2–5): each test reproduces
//! what an attacker or a careless client did, and checks the well-behaved
//! clients around it are unaffected.

use std::time::Duration;

use futures_util::SinkExt;
use parley::domain::ids::{RoomId, UserId};
use parley::domain::room::{Role, RoomKind};
use parley::domain::time::now_ms;
use parley::store::NewRoom;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Client, PASSWORD, TIMEOUT, Ws, spawn_app, spawn_app_with};

/// Finding 2: a user in 2 000 rooms (someone put them there, or they are
/// just busy) connects to `/ws/`, hears about every room, and stays
/// connected: what a connection is sent when it opens is not slowness.
#[tokio::test]
async fn a_user_in_two_thousand_rooms_connects_and_stays_connected() {
    let app = spawn_app_with(|c| {
        // Two thousand room inserts; durability is not what this is about.
        c.sqlite_synchronous = parley::config::SqliteSynchronousArg::Normal;
    })
    .await;
    let victim = app.user("victim").await;
    let bob = app.user("bob").await;
    let victim_id = UserId::parse(&victim.id()).unwrap();
    let bob_id = UserId::parse(&bob.id()).unwrap();
    let mut last = None;
    for i in 0..2000 {
        let id = RoomId::parse(&format!("crowd-{i}")).unwrap();
        let mut members = vec![(victim_id, Role::Member)];
        if i == 1999 {
            members.push((bob_id, Role::Owner));
        }
        let room = NewRoom {
            id: id.clone(),
            kind: RoomKind::Group,
            name: format!("Crowd {i}"),
            description: String::new(),
            owner_id: None,
            created_by: None,
            direct_key: None,
            created_at: now_ms(),
            members,
        };
        app.state.store.insert_room(&room, None).await.unwrap();
        last = Some(id);
    }
    let last = last.unwrap();

    let mut ws = victim.ws("/ws/").await;
    let hello = ws.next_of("connection_established").await;
    assert_eq!(
        hello["rooms"].as_array().unwrap().len(),
        2001,
        "every room, and general"
    );
    // Still connected, and live: a message in the last room arrives.
    let sent = bob.say(last.as_str(), "you are not slow").await;
    let got = ws.next_of("chat_message").await;
    assert_eq!(got["message"]["id"], sent["id"]);
    ws.send_json(json!({ "type": "ping" })).await;
    ws.next_of("pong").await;

    // The room list pages through all of them (see rooms.rs for the paging itself).
    let (status, _) = victim.get("/tools/api/chat/rooms/").await;
    assert_eq!(status, StatusCode::OK);
}

/// Finding 3: one member toggling typing 20 000 times on the room everyone is
/// in got every other member's connection closed (1013). Now nobody is
/// closed, the room hears a handful of typing changes, and messages arrive.
#[tokio::test]
async fn a_typing_flood_closes_nobody_and_reaches_the_room_as_a_few_changes() {
    let app = spawn_app().await;
    let attacker = app.user("attacker").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let mut bob_ws = bob.ws("/ws/chat/general/").await;
    bob_ws.next_of("connection_established").await;
    let mut carol_ws = carol.ws("/ws/chat/general/").await;
    carol_ws.next_of("connection_established").await;
    let mut flood = attacker.ws("/ws/chat/general/").await;
    flood.next_of("connection_established").await;

    // 20 000 toggles as fast as the socket takes them; bob reads nothing meanwhile.
    for i in 0..20_000 {
        let frame = json!({ "type": "typing", "is_typing": i % 2 == 0 }).to_string();
        tokio::time::timeout(TIMEOUT, flood.stream.feed(Message::text(frame)))
            .await
            .unwrap()
            .unwrap();
    }
    tokio::time::timeout(TIMEOUT, flood.stream.flush())
        .await
        .unwrap()
        .unwrap();
    // The attacker is told it is over the limit, and stays connected itself.
    let warned = flood.next_of("error").await;
    assert_eq!(warned["code"], "rate_limited");

    let sent = carol.say("general", "still here?").await;
    for ws in [&mut bob_ws, &mut carol_ws] {
        let mut typing_frames = 0;
        loop {
            let frame = ws.next_json().await;
            match frame["type"].as_str() {
                Some("user_typing") => typing_frames += 1,
                Some("chat_message") if frame["message"]["id"] == sent["id"] => break,
                _ => {}
            }
        }
        assert!(
            typing_frames <= 3,
            "the flood reached the room as {typing_frames} typing frames"
        );
    }
}

/// Finding 4: a client that sends half a request header is cut off after the
/// header timeout, and so is a kept-alive connection that sends nothing more.
#[tokio::test]
async fn half_sent_headers_and_idle_connections_are_closed() {
    let app = spawn_app_with(|c| c.http_header_timeout = Duration::from_secs(1)).await;

    let mut half = TcpStream::connect(app.addr).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n")
        .await
        .unwrap();
    assert_closed(&mut half).await;

    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: parley\r\n\r\n")
        .await
        .unwrap();
    let mut answer = vec![0u8; 1024];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    assert_closed(&mut idle).await;

    // Meanwhile, and afterwards, requests are served.
    let (status, _) = app.anonymous().get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
}

/// Reads until the server closes the connection (within a few seconds).
async fn assert_closed(tcp: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
}

/// Finding 4: one token opened 600 WebSockets. Now a user holds at most
/// `--max-connections-per-user` on a node; the next is told why and closed
/// with 4029, and others are not affected.
#[tokio::test]
async fn a_user_holds_at_most_max_connections_per_user() {
    let app = spawn_app_with(|c| c.max_connections_per_user = 3).await;
    let mut alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut ws = alice.ws("/ws/").await;
        ws.next_of("connection_established").await;
        held.push(ws);
    }
    // A token counts as the same user.
    let token = alice.api_token().await;
    let cookie_client = alice.bearer.replace(token);
    let mut ws = alice.ws("/ws/").await;
    ws.next_of("connection_established").await;
    held.push(ws);

    let mut refused = alice.ws("/ws/").await;
    let error = refused.next_json().await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["code"], "too_many_connections");
    let close = refused.closed().await.expect("a close frame");
    assert_eq!(u16::from(close.code), 4029);
    assert!(close.reason.contains('3'), "{}", close.reason);
    alice.bearer = cookie_client;

    let mut other = bob.ws("/ws/").await;
    other.next_of("connection_established").await;

    // Closing one frees its place.
    let mut gone = held.pop().unwrap();
    gone.stream.close(None).await.unwrap();
    let _ = gone.closed().await;
    let reopened = tokio::time::timeout(TIMEOUT, async {
        loop {
            let mut ws = alice.ws("/ws/").await;
            if ws.next_json().await["type"] == "connection_established" {
                return ws;
            }
            // The server had not yet ended the closed one: its slot comes back
            // when its session finishes.
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(reopened.is_ok(), "the freed place was not given back");
}

/// Finding 4: with the WebSocket limit reached, upgrades are refused with
/// 503 and `/healthz` still answers. The limit on a real process is clamped
/// to what its open-file limit allows, so it is reached before the process
/// runs out of descriptors (where the listener used to stall).
#[tokio::test]
async fn the_connection_limit_fits_the_open_file_limit_and_health_still_answers() {
    let data = tempfile::tempdir().unwrap();
    let command = format!(
        "ulimit -n 200 && exec \"{}\" serve --bind 127.0.0.1:0 --data-dir \"{}\" \
         --log-format json --max-connections-per-user 1000",
        env!("CARGO_BIN_EXE_parley"),
        data.path().display()
    );
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", &command])
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (addr, logs) = crate::helpers::listening_addr(&mut child).await;

    let mut user = Client::register(addr, "crowd").await;
    user.bearer = Some(user.api_token().await);
    let mut open: Vec<Ws> = Vec::new();
    let refusal = loop {
        assert!(open.len() < 200, "more WebSockets than open files");
        match user.try_ws("/ws/", None).await {
            Ok(mut ws) => {
                ws.next_of("connection_established").await;
                open.push(ws);
            }
            Err(err) => break crate::helpers::refusal(Err(err)),
        }
    };
    assert_eq!(refusal, (503, "too_many_connections".to_string()));
    // 200 files, less 64 kept back and 30 for the database, less the HTTP
    // connections' (at least 16).
    assert_eq!(open.len(), 200 - 64 - 30 - 16);
    let (status, _) = Client::at(addr).get("/healthz").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = user.get("/tools/api/auth/me/").await;
    assert_eq!(status, StatusCode::OK);

    let said = logs.lock().unwrap().join("\n");
    assert!(
        said.contains("--max-connections lowered to fit the open-file limit"),
        "{said}"
    );
    child.kill().await.unwrap();
}

/// Finding 5: behind a proxy the leftmost `X-Forwarded-For` entry is the
/// client's own words. Rotating it no longer escapes the per-IP login
/// throttle, and sessions record the address the proxy saw.
#[tokio::test]
async fn the_client_cannot_choose_its_ip_behind_a_proxy() {
    let app = spawn_app_with(|c| {
        c.trust_proxy_headers = true;
        c.login_max_failures_per_ip = 3;
    })
    .await;
    let anon = app.anonymous();
    let attempt = |forwarded: String, username: String| {
        let request = anon
            .request(reqwest::Method::POST, "/tools/api/auth/login/")
            .header("x-forwarded-for", forwarded)
            .json(&json!({ "username": username, "password": "wrong-password-1" }));
        anon.send(request)
    };
    for i in 0..3 {
        let (status, _) = attempt(format!("10.9.9.{i}, 203.0.113.7"), format!("u{i}")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = attempt("10.9.9.99, 203.0.113.7".into(), "u9".into()).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Another client behind the same proxy is not throttled.
    let (status, _) = attempt("203.0.113.8".into(), "u10".into()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The session remembers the address nginx appended.
    let client = Client::at(app.addr);
    let request = client
        .request(reqwest::Method::POST, "/tools/api/auth/register/")
        .header("x-forwarded-for", "6.6.6.6, 198.51.100.9")
        .json(&json!({ "username": "dora", "password": PASSWORD }));
    let (status, _) = client.send(request).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, sessions) = client.get("/tools/api/auth/sessions/").await;
    assert_eq!(sessions["data"][0]["ip"], "198.51.100.9", "{sessions}");
}

/// Without trusted proxies, `X-Forwarded-For` is ignored.
#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    let app = spawn_app().await;
    let client = Client::at(app.addr);
    let request = client
        .request(reqwest::Method::POST, "/tools/api/auth/register/")
        .header("x-forwarded-for", "198.51.100.9")
        .json(&json!({ "username": "erin", "password": PASSWORD }));
    let (status, _) = client.send(request).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, sessions) = client.get("/tools/api/auth/sessions/").await;
    assert_eq!(sessions["data"][0]["ip"], "127.0.0.1", "{sessions}");
}

/// Smaller finding: WebSocket protocol errors closed with 1001 (going away);
/// they are the client's fault, and say so: 1007 for text that is not UTF-8,
/// 1002 for reserved bits and unknown opcodes.
#[tokio::test]
async fn protocol_errors_close_with_their_own_codes() {
    let app = spawn_app().await;
    let alice = app.user("alice").await;
    // FIN + text, payload not UTF-8; FIN + RSV1 + text; FIN + opcode 3 (reserved).
    for (first_byte, payload, code) in [
        (0x81u8, &[0xff_u8, 0xfe][..], 1007u16),
        (0xc1, b"hi".as_slice(), 1002),
        (0x83, b"hi".as_slice(), 1002),
    ] {
        let mut ws = alice.ws("/ws/").await;
        ws.next_of("connection_established").await;
        let MaybeTlsStream::Plain(tcp) = ws.stream.get_mut() else {
            panic!("a plain TCP stream");
        };
        tcp.write_all(&masked_frame(first_byte, payload))
            .await
            .unwrap();
        let close = ws.closed().await.expect("a close frame");
        assert_eq!(u16::from(close.code), code, "first byte {first_byte:#x}");
    }
}

/// A client frame as it goes on the wire: masked, payload under 126 bytes.
fn masked_frame(first_byte: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first_byte, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}
