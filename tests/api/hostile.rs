//! Hostile clients (issue 14): each attack runs while a well-behaved pair of
//! users keeps chatting in a room of their own and `/healthz` keeps being
//! asked. The tests assert that the server stays responsive for them during
//! the attack, not only that the attacker is refused.

use std::future::Future;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{Client, TIMEOUT, TestApp, Ws, spawn_app_with};

/// A pair of ordinary users: one sends, the other receives on a WebSocket.
struct Bystanders {
    sender: Client,
    receiver: Ws,
    room: String,
    probe: Client,
}

impl Bystanders {
    async fn new(app: &TestApp) -> Self {
        let sender = app.user("bystander_a").await;
        let other = app.user("bystander_b").await;
        let room = sender.create_room("Quiet corner", "group", &[&other]).await;
        let mut receiver = other.ws(&format!("/ws/chat/{room}/")).await;
        receiver.next_of("connection_established").await;
        Self {
            sender,
            receiver,
            room,
            probe: app.anonymous(),
        }
    }

    /// One round: `/healthz` answers, and a message sent over HTTP arrives live.
    async fn round(&mut self, n: usize) {
        let (status, _) = self.probe.get("/healthz").await;
        assert_eq!(status, StatusCode::OK, "/healthz during the attack");
        let sent = self.sender.say(&self.room, &format!("round {n}")).await;
        loop {
            let frame = self.receiver.next_json().await;
            if frame["type"] == "chat_message" && frame["message"]["id"] == sent["id"] {
                return;
            }
        }
    }

    /// Runs `attack` to its end while rounds go on beside it, from its first
    /// moment to its last; returns the attack's result.
    async fn during<F: Future>(&mut self, attack: F) -> F::Output {
        let done = std::cell::Cell::new(false);
        let attack = async {
            let output = attack.await;
            done.set(true);
            output
        };
        let rounds = async {
            let mut rounds = 0;
            while !done.get() {
                self.round(rounds).await;
                rounds += 1;
            }
            rounds
        };
        let (output, rounds) = tokio::join!(attack, rounds);
        assert!(rounds >= 1);
        output
    }
}

fn app_config(c: &mut parley::config::Config) {
    // The bystanders send a message per round; the attacker is not limited
    // by the message rate but by what the tests are about.
    c.message_rate = 1000;
    c.message_burst = 1000;
}

/// A client that never reads its socket while its room is busy: it is closed
/// as a slow consumer once its queue fills, and nobody else waits for it.
#[tokio::test]
async fn a_client_that_never_reads() {
    let app = spawn_app_with(|c| {
        app_config(c);
        c.ws_outbound_queue = 16;
    })
    .await;
    let mut bystanders = Bystanders::new(&app).await;
    let loud = app.user("loud").await;
    let deaf = app.user("deaf").await;
    let room = loud.create_room("Firehose", "group", &[&deaf]).await;
    let mut never_reads = deaf.ws(&format!("/ws/chat/{room}/")).await;
    // Welcomed (so it is in the hub), and from here on never read.
    never_reads.next_of("connection_established").await;
    let big = "x".repeat(4000);
    let sent = bystanders
        .during(async {
            let mut sent = 0;
            // Until the server gives up on the deaf client (or clearly never would).
            while sent < 2000 && app.state.bus.hub().connection_count() > 1 {
                loud.say(&room, &big).await;
                sent += 1;
            }
            sent
        })
        .await;
    assert!(sent < 2000, "the deaf client was never dropped");
    let close = never_reads.closed().await;
    let code = close.map(|frame| u16::from(frame.code));
    assert!(code.is_none_or(|c| c == 1013), "{code:?}");
}

/// A client that sends each frame one byte at a time: its frames still work,
/// and everyone else is served meanwhile.
#[tokio::test]
async fn a_client_that_sends_frames_byte_by_byte() {
    let app = spawn_app_with(|c| {
        app_config(c);
        c.http_header_timeout = Duration::from_secs(2);
    })
    .await;
    let mut bystanders = Bystanders::new(&app).await;
    let slow = app.user("dribbler").await;
    let mut ws = slow.ws("/ws/chat/general/").await;
    ws.next_of("connection_established").await;
    let frame = json!({"type": "message", "content": "one byte at a time", "client_id": "drip-1"});
    let wire = masked_text_frame(frame.to_string().as_bytes());
    bystanders
        .during(async {
            let MaybeTlsStream::Plain(tcp) = ws.stream.get_mut() else {
                panic!("a plain TCP stream");
            };
            for byte in &wire {
                tcp.write_all(std::slice::from_ref(byte)).await.unwrap();
                tcp.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await;
    let echo = ws.next_of("chat_message").await;
    assert_eq!(echo["message"]["client_id"], "drip-1");

    // The same over HTTP: 40 connections dribbling a request header are cut
    // off by the header timeout, and do not hold anyone else up meanwhile.
    let addr = app.addr;
    bystanders
        .during(async {
            let dribblers = (0..40).map(|_| async move {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                let request = b"GET /healthz HTTP/1.1\r\nHost: parley\r\nX-Slow: ";
                let mut closed = false;
                for byte in request.iter().chain(std::iter::repeat(&b'a')).take(400) {
                    if tcp.write_all(std::slice::from_ref(byte)).await.is_err() {
                        closed = true;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if !closed {
                    let mut buf = [0u8; 64];
                    closed = matches!(
                        tokio::time::timeout(TIMEOUT, tcp.read(&mut buf)).await,
                        Ok(Ok(0) | Err(_))
                    );
                }
                closed
            });
            let closed = futures_util::future::join_all(dribblers).await;
            assert!(
                closed.iter().all(|c| *c),
                "a dribbling request was kept open"
            );
        })
        .await;
}

/// A client flooding typing, read receipts, resumes and pings: it is rate
/// limited (and told so), the room hears a few typing changes, nobody is
/// closed, and the database is not made to write a receipt per frame.
#[tokio::test]
async fn a_client_that_floods_typing_reads_resumes_and_pings() {
    let app = spawn_app_with(app_config).await;
    let mut bystanders = Bystanders::new(&app).await;
    let flooder = app.user("flooder").await;
    let listener = app.user("listener").await;
    let mut listening = listener.ws("/ws/chat/general/").await;
    listening.next_of("connection_established").await;
    let mut ws = flooder.ws("/ws/chat/general/").await;
    ws.next_of("connection_established").await;
    let frames = [
        json!({"type": "typing", "is_typing": true}),
        json!({"type": "typing", "is_typing": false}),
        json!({"type": "read", "up_to_seq": 1}),
        json!({"type": "resume", "since_seq": 0}),
        json!({"type": "ping"}),
    ];
    let (mut sink, mut stream) = ws.stream.split();
    // Its own replies are read (and counted) so it is not also a slow reader.
    let reader = tokio::spawn(async move {
        let mut limited = 0;
        while let Some(Ok(frame)) = stream.next().await {
            if let Message::Text(text) = frame
                && text.contains("\"rate_limited\"")
            {
                limited += 1;
            }
        }
        limited
    });
    bystanders
        .during(async {
            for round in 0..4 {
                for i in 0..10_000 {
                    let frame = frames[i % frames.len()].to_string();
                    sink.feed(Message::text(frame)).await.unwrap();
                }
                sink.flush().await.unwrap();
                // Spread over about three seconds, so the budget refills between rounds.
                if round < 3 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        })
        .await;
    sink.close().await.unwrap();
    let limited = tokio::time::timeout(TIMEOUT, reader)
        .await
        .unwrap()
        .unwrap();
    assert!(
        (1..=8).contains(&limited),
        "told {limited} times it is over the rate (once a second at most)"
    );
    // The listener was not closed, and heard the flood as a few typing changes.
    let said = bystanders.sender.say("general", "after the flood").await;
    let mut typing_frames = 0;
    loop {
        let frame = listening.next_json().await;
        match frame["type"].as_str() {
            Some("user_typing") => typing_frames += 1,
            Some("chat_message") if frame["message"]["id"] == said["id"] => break,
            _ => {}
        }
    }
    assert!(typing_frames <= 8, "{typing_frames} typing frames");
}

/// A client that connects and closes 1 000 times: each connection is served
/// and given back (no slot or permit leaks), and everyone else is served.
#[tokio::test]
async fn a_client_that_connects_and_closes_a_thousand_times() {
    let app = spawn_app_with(|c| {
        app_config(c);
        c.max_connections_per_user = 32;
    })
    .await;
    let mut bystanders = Bystanders::new(&app).await;
    let churner = app.user("churner").await;
    let user_id = parley::domain::ids::UserId::parse(&churner.id()).unwrap();
    let permits_before = app.state.connections.available_permits();
    let refused = bystanders
        .during(Box::pin(async {
            let mut refused = 0;
            for i in 0..1000 {
                let mut ws = churner.ws("/ws/").await;
                // Half wait to be welcomed (or refused: hanging up at once, it
                // can open connections faster than they end, and meets its
                // own --max-connections-per-user), half hang up at once.
                if i % 2 == 0 {
                    match ws.stream.next().await {
                        Some(Ok(Message::Text(text))) if text.contains("too_many_connections") => {
                            refused += 1
                        }
                        Some(Ok(Message::Text(text))) => {
                            assert!(text.contains("connection_established"), "{text}")
                        }
                        other => panic!("{other:?}"),
                    }
                }
                let _ = ws.stream.close(None).await;
            }
            refused
        }))
        .await;
    assert!(refused < 500, "refused {refused} of 500");
    // Every connection ends and gives its places back.
    let released = tokio::time::timeout(Duration::from_secs(10), async {
        while app.state.user_slots.held_by(user_id) > 0
            || app.state.connections.available_permits() + 1 < permits_before
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "slots or permits leaked");
    let mut again = churner.ws("/ws/").await;
    again.next_of("connection_established").await;
}

/// A client frame as it goes on the wire: FIN + text, masked.
fn masked_text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [0x11u8, 0x22, 0x33, 0x44];
    let mut frame = vec![0x81u8];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
    frame
}
