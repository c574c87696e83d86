//! Several real Parley processes sharing PostgreSQL and Redis. Skipped (with a
//! message) unless PARLEY_TEST_DATABASE_URL and PARLEY_TEST_REDIS_URL are set;
//! `.ci/run` sets both.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use parley::store::postgres::test_schema;

use crate::helpers::Client;

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The shared services, or `None` after saying why the test is skipped.
fn services(test: &str) -> Option<(String, String)> {
    match (
        env("PARLEY_TEST_DATABASE_URL"),
        env("PARLEY_TEST_REDIS_URL"),
    ) {
        (Some(db), Some(redis)) => Some((db, redis)),
        _ => {
            eprintln!(
                "skipping {test}: set PARLEY_TEST_DATABASE_URL and PARLEY_TEST_REDIS_URL to run it"
            );
            None
        }
    }
}

fn unique(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// A `parley serve` process.
struct Node {
    child: Child,
    addr: SocketAddr,
    _data: tempfile::TempDir,
}

impl Node {
    /// A node with a message rate high enough never to get in the way.
    async fn start(database_url: &str, redis_url: &str, namespace: &str) -> Self {
        Self::start_with_rate(database_url, redis_url, namespace, 1000, 1000).await
    }

    async fn start_with_rate(
        database_url: &str,
        redis_url: &str,
        namespace: &str,
        rate: u32,
        burst: u32,
    ) -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args([
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--database-url",
                database_url,
            ])
            .args(["--redis-url", redis_url, "--redis-namespace", namespace])
            .args(["--message-rate", &rate.to_string()])
            .args(["--message-burst", &burst.to_string()])
            // The default (30 s): test sockets answer pings only while a test
            // reads them, and on a loaded machine a test may leave one unread
            // for a few seconds; a short interval closed them mid-test.
            .args(["--heartbeat-interval", "30s"])
            // Departures wait this long before they are announced (the default
            // is 5 s); short, so tests that wait for a departure stay quick.
            .args(["--presence-grace", "1s"])
            .arg("--data-dir")
            .arg(data.path())
            .env(
                "RUST_LOG",
                if env("TEST_LOG").is_some() {
                    "info"
                } else {
                    "warn"
                },
            )
            .stdout(Stdio::piped())
            .stderr(if env("TEST_LOG").is_some() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .expect("the parley binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let addr = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(rest) = line.split("Open http://").nth(1) {
                    let addr = rest.split('/').next().expect("address");
                    return addr.parse::<SocketAddr>().expect("socket address");
                }
            }
            panic!("the node exited before listening");
        })
        .await
        .expect("the node starts listening");
        // Keep draining stdout so the node never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            child,
            addr,
            _data: data,
        }
    }

    /// SIGTERM, as a rolling restart would; the node leaves Redis cleanly.
    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await;
    }

    /// SIGKILL: no goodbye, no cleanup.
    async fn kill(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }
}

/// A private `redis-server`, so the test can stop it without touching the shared one.
struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    async fn start(port: u16) -> Option<Self> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .ok()?;
        let server = Self { child, port };
        for _ in 0..50 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(server);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Keeps a member connected to some live node, reconnecting with `?since_seq=`
/// whenever its node goes away, and records every message seq it receives.
fn watch_room(
    client: Client,
    nodes: Vec<SocketAddr>,
    first: usize,
    room: String,
    done: watch::Receiver<i64>,
) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let mut seen: Vec<i64> = Vec::new();
        let mut node = first;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let target = *done.borrow();
            if target > 0 && seen.last().copied().unwrap_or(0) >= target {
                return seen;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "watcher timed out with {seen:?}"
            );
            let since = seen.last().copied().unwrap_or(0);
            let path = format!("/ws/chat/{room}/?since_seq={since}");
            let member = client.on(nodes[node % nodes.len()]);
            let Ok(mut ws) = member.try_ws(&path, Some(&member.origin())).await else {
                node += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            loop {
                let target = *done.borrow();
                if target > 0 && seen.last().copied().unwrap_or(0) >= target {
                    return seen;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "watcher timed out with {seen:?}"
                );
                let frame = tokio::time::timeout(
                    Duration::from_millis(500),
                    futures_util::StreamExt::next(&mut ws.stream),
                )
                .await;
                match frame {
                    Err(_) => continue,
                    Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Text(text)))) => {
                        let frame: Value = serde_json::from_str(&text).expect("json");
                        if frame["type"] == "chat_message" {
                            seen.push(frame["message"]["seq"].as_i64().expect("seq"));
                        }
                    }
                    Ok(Some(Ok(_))) => {}
                    Ok(Some(Err(_))) | Ok(None) => break,
                }
            }
            node += 1;
        }
    })
}

/// Sends `count` messages through the REST API, retrying each with the same
/// `client_id` on the next node until one acknowledges it; returns the acks.
fn send_messages(
    client: Client,
    nodes: Vec<SocketAddr>,
    first: usize,
    room: String,
    count: usize,
    tag: &'static str,
    pause: Duration,
) -> tokio::task::JoinHandle<Vec<Value>> {
    tokio::spawn(async move {
        let mut acks = Vec::new();
        let mut node = first;
        for i in 0..count {
            let client_id = format!("{tag}-{i}");
            let mut attempts = 0;
            loop {
                attempts += 1;
                assert!(attempts < 200, "could not deliver {client_id}");
                let sender = client.on(nodes[node % nodes.len()]);
                let response = sender
                    .request(
                        reqwest::Method::POST,
                        &format!("/tools/api/chat/{room}/send/"),
                    )
                    .json(&json!({"content": format!("{tag} {i}"), "client_id": client_id}))
                    .timeout(Duration::from_secs(3))
                    .send()
                    .await;
                match response {
                    Ok(r) if r.status() == StatusCode::CREATED || r.status() == StatusCode::OK => {
                        let body: Value = r.json().await.expect("json");
                        acks.push(body["data"].clone());
                        break;
                    }
                    _ => {
                        node += 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            tokio::time::sleep(pause).await;
        }
        acks
    })
}

/// The room's whole stored history, ascending, read page by page.
async fn stored_history(reader: &Client, room: &str) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::new();
    loop {
        let after = messages
            .last()
            .map_or(0, |m| m["seq"].as_i64().expect("seq"));
        let (status, page) = reader
            .get(&format!(
                "/tools/api/chat/{room}/messages/?after={after}&limit=200"
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        messages.extend(page["messages"].as_array().expect("messages").clone());
        if page["has_more"] != true {
            return messages;
        }
    }
}

/// Every acknowledged message was stored exactly once and reached every member
/// exactly once, in seq order, and the room's seqs have no gaps. The senders
/// retry each client_id until it is acknowledged, so every client_id they used
/// was acknowledged: a stored text message beyond those would be a duplicate
/// (a retry stored twice, seen by nobody because its ack was lost).
async fn assert_exactly_once(reader: &Client, room: &str, seen: &[Vec<i64>], acks: &[Value]) {
    let acked: HashMap<&str, &Value> = acks
        .iter()
        .map(|m| (m["client_id"].as_str().expect("client_id"), m))
        .collect();
    assert_eq!(acked.len(), acks.len(), "each client_id acknowledged once");
    let acked_seqs: BTreeSet<i64> = acks
        .iter()
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(acked_seqs.len(), acks.len(), "every ack is its own message");

    let stored = stored_history(reader, room).await;
    let seqs: Vec<i64> = stored.iter().map(|m| m["seq"].as_i64().unwrap()).collect();
    let expected: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, expected, "stored seqs are 1..=N without gaps");
    let texts: Vec<&Value> = stored
        .iter()
        .filter(|m| m["message_type"] == "text")
        .collect();
    let mut by_client_id: HashMap<&str, Vec<&Value>> = HashMap::new();
    for message in &texts {
        let client_id = message["client_id"]
            .as_str()
            .unwrap_or_else(|| panic!("a text message nobody sent: {message}"));
        by_client_id.entry(client_id).or_default().push(message);
    }
    for (client_id, ack) in &acked {
        let copies = by_client_id.get(client_id).map_or(&[][..], Vec::as_slice);
        assert_eq!(copies.len(), 1, "{client_id} is stored exactly once");
        assert_eq!(
            copies[0]["id"], ack["id"],
            "{client_id} is the acknowledged message"
        );
        assert_eq!(copies[0]["seq"], ack["seq"], "{client_id}");
    }
    assert_eq!(
        texts.len(),
        acked.len(),
        "no text message stored beyond the acknowledged ones"
    );

    let last = *acked_seqs.iter().max().expect("some messages");
    for (i, member) in seen.iter().enumerate() {
        let expected: Vec<i64> = (1..=last).collect();
        let received: Vec<i64> = member.iter().copied().filter(|s| *s <= last).collect();
        assert_eq!(
            received, expected,
            "member {i} received every message once, in order"
        );
    }
}

#[tokio::test]
async fn three_nodes_share_chat_presence_typing_and_receipts() {
    let Some((db, redis)) = services("three_nodes_share_chat_presence_typing_and_receipts") else {
        return;
    };
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let nodes = [
        Node::start(schema.url(), &redis, &ns).await,
        Node::start(schema.url(), &redis, &ns).await,
        Node::start(schema.url(), &redis, &ns).await,
    ];
    let (a, b, c) = (nodes[0].addr, nodes[1].addr, nodes[2].addr);
    let ann = Client::register(a, "ann").await;
    let bob = Client::register(b, "bob").await;
    let cat = Client::register(c, "cat").await;
    let room = ann.create_room("Across", "group", &[&bob, &cat]).await;

    let mut ann_ws = ann.ws(&format!("/ws/chat/{room}/")).await;
    ann_ws.next_of("connection_established").await;
    let mut bob_ws = bob.ws(&format!("/ws/chat/{room}/")).await;
    let hello = bob_ws.next_of("connection_established").await;
    assert!(
        hello["online"]
            .as_array()
            .unwrap()
            .contains(&json!(ann.id())),
        "ann (node A) is online for node B"
    );
    assert_eq!(ann_ws.next_of("user_joined").await["user_id"], bob.id());
    let mut cat_ws = cat.ws(&format!("/ws/chat/{room}/")).await;
    cat_ws.next_of("connection_established").await;

    // Chat both ways across nodes.
    ann_ws
        .send_json(json!({"type": "message", "content": "hello from A", "client_id": "a1"}))
        .await;
    assert_eq!(
        bob_ws.next_of("chat_message").await["message"]["content"],
        "hello from A"
    );
    assert_eq!(
        cat_ws.next_of("chat_message").await["message"]["content"],
        "hello from A"
    );
    bob_ws
        .send_json(json!({"type": "message", "content": "hi from B"}))
        .await;
    let got = ann_ws.next_of("chat_message").await;
    let got = if got["message"]["content"] == "hello from A" {
        ann_ws.next_of("chat_message").await
    } else {
        got
    };
    assert_eq!(got["message"]["content"], "hi from B");

    // Presence from node C's point of view.
    let (_, people) = cat
        .get(&format!("/tools/api/chat/{room}/participants/"))
        .await;
    let online: HashMap<String, bool> = people["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["username"].as_str().unwrap().to_string(),
                p["is_online"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        online,
        HashMap::from([
            ("ann".into(), true),
            ("bob".into(), true),
            ("cat".into(), true)
        ])
    );

    // Typing and read receipts cross nodes.
    cat_ws
        .send_json(json!({"type": "typing", "is_typing": true}))
        .await;
    let typing = ann_ws.next_of("user_typing").await;
    assert_eq!(
        (
            typing["user_id"].as_str().unwrap(),
            typing["is_typing"].as_bool().unwrap()
        ),
        (cat.id().as_str(), true)
    );
    bob_ws
        .send_json(json!({"type": "read", "up_to_seq": 3}))
        .await;
    let receipt = ann_ws.next_of("read_status_update").await;
    assert_eq!(receipt["user_id"], bob.id());

    // A membership change on node A cuts off the member connected to node C.
    let (status, _) = ann
        .delete(&format!("/tools/api/chat/{room}/members/{}/", cat.id()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let close = cat_ws.closed().await.expect("close frame");
    assert_eq!(close.code, CloseCode::Policy);
    let (status, _) = cat
        .post(
            &format!("/tools/api/chat/{room}/send/"),
            json!({"content": "still here?"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "node C knows at once");

    // Cat was removed while online, so the room saw her go; now bob leaves node B.
    // (Bob has read nothing for a while: on a loaded machine his node may
    // already have closed him for not answering its pings, so either may come
    // first. A departure takes several database and Redis round trips on
    // another node, hence the longer wait.)
    drop(bob_ws);
    let mut left = BTreeSet::new();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while left.len() < 2 {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(frame) = ann_ws.try_next_json(wait).await else {
            panic!("user_left for cat and bob within 20 s; got {left:?}, frames {seen:?}");
        };
        if frame["type"] == "user_left" {
            left.insert(frame["user_id"].as_str().unwrap().to_string());
        }
        seen.push(frame);
    }
    assert_eq!(left, BTreeSet::from([cat.id(), bob.id()]));
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}

#[tokio::test]
async fn a_killed_node_loses_nothing() {
    let Some((db, redis)) = services("a_killed_node_loses_nothing") else {
        return;
    };
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let mut nodes = vec![
        Node::start(schema.url(), &redis, &ns).await,
        Node::start(schema.url(), &redis, &ns).await,
        Node::start(schema.url(), &redis, &ns).await,
    ];
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let users = [
        Client::register(addrs[0], "ann").await,
        Client::register(addrs[1], "bob").await,
        Client::register(addrs[2], "cat").await,
    ];
    let room = users[0]
        .create_room("Survivors", "group", &[&users[1], &users[2]])
        .await;

    let (done_tx, done_rx) = watch::channel(0i64);
    let watchers: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            watch_room(
                u.on(addrs[i]),
                addrs.clone(),
                i,
                room.clone(),
                done_rx.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tags = ["a", "b", "c"];
    let senders: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            send_messages(
                u.on(addrs[i]),
                addrs.clone(),
                i,
                room.clone(),
                150,
                tags[i],
                Duration::from_millis(12),
            )
        })
        .collect();
    // Kill a node mid-traffic: its clients and senders move to the others.
    tokio::time::sleep(Duration::from_millis(700)).await;
    nodes[1].kill().await;

    let mut acks = Vec::new();
    for sender in senders {
        acks.extend(sender.await.expect("sender"));
    }
    let last = acks
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .max()
        .unwrap();
    done_tx.send(last).unwrap();
    let mut seen = Vec::new();
    for watcher in watchers {
        seen.push(watcher.await.expect("watcher"));
    }
    assert_eq!(acks.len(), 450);
    assert_exactly_once(&users[0].on(addrs[0]), &room, &seen, &acks).await;
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}

#[tokio::test]
async fn a_redis_restart_loses_nothing() {
    let Some((db, _)) = services("a_redis_restart_loses_nothing") else {
        return;
    };
    let port = RedisServer::free_port();
    let Some(mut redis) = RedisServer::start(port).await else {
        eprintln!("skipping a_redis_restart_loses_nothing: redis-server is not installed");
        return;
    };
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let nodes = [
        Node::start(schema.url(), &redis.url(), &ns).await,
        Node::start(schema.url(), &redis.url(), &ns).await,
    ];
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let users = [
        Client::register(addrs[0], "ann").await,
        Client::register(addrs[1], "bob").await,
    ];
    let room = users[0].create_room("Weather", "group", &[&users[1]]).await;

    let (done_tx, done_rx) = watch::channel(0i64);
    let watchers: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            watch_room(
                u.on(addrs[i]),
                vec![addrs[i]],
                0,
                room.clone(),
                done_rx.clone(),
            )
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let senders: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, u)| {
            send_messages(
                u.on(addrs[i]),
                vec![addrs[i]],
                0,
                room.clone(),
                200,
                ["a", "b"][i],
                Duration::from_millis(8),
            )
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.stop().await;
    // While Redis is away each node keeps serving its own clients.
    let (status, body) = users[0].on(addrs[0]).get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "degraded", "{body}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut redis = RedisServer::start(port).await.expect("redis restarts");

    let mut acks = Vec::new();
    for sender in senders {
        acks.extend(sender.await.expect("sender"));
    }
    let last = acks
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .max()
        .unwrap();
    done_tx.send(last).unwrap();
    let mut seen = Vec::new();
    for watcher in watchers {
        seen.push(watcher.await.expect("watcher"));
    }
    assert_exactly_once(&users[0].on(addrs[0]), &room, &seen, &acks).await;
    // The bus came back.
    let client = users[0].on(addrs[0]);
    let mut ready = Value::Null;
    for _ in 0..50 {
        ready = client.get("/readyz").await.1;
        if ready["status"] == "ready" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready["status"], "ready", "{ready}");
    redis.stop().await;
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}

/// One user's message budget is counted in Redis: bursts sent through two
/// nodes together run out at the configured burst, not at twice it.
#[tokio::test]
async fn the_message_rate_limit_is_shared_across_nodes() {
    let Some((db, redis)) = services("the_message_rate_limit_is_shared_across_nodes") else {
        return;
    };
    const BURST: usize = 10;
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let nodes = [
        Node::start_with_rate(schema.url(), &redis, &ns, 1, BURST as u32).await,
        Node::start_with_rate(schema.url(), &redis, &ns, 1, BURST as u32).await,
    ];
    let ann = Client::register(nodes[0].addr, "ann").await;
    let room = ann.create_room("Budget", "group", &[]).await;
    let via = [ann.on(nodes[0].addr), ann.on(nodes[1].addr)];
    // Until its bus is up a node counts alone.
    for client in &via {
        wait_for_redis(client, "ok").await;
    }

    // Alternate nodes, as fast as possible: each node alone would allow BURST.
    let started = tokio::time::Instant::now();
    let mut accepted = 0;
    let mut refused_on = [0, 0];
    for i in 0..2 * BURST {
        let node = i % 2;
        let (status, body) = via[node]
            .post(
                &format!("/tools/api/chat/{room}/send/"),
                json!({"content": format!("m{i}")}),
            )
            .await;
        match status {
            StatusCode::CREATED => accepted += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(body["error"]["code"], "rate_limited");
                refused_on[node] += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    let elapsed = started.elapsed();
    // The sustained rate is 1/s, so the time taken may have earned a few more.
    let earned = elapsed.as_secs() as usize + 1;
    assert!(
        accepted >= BURST && accepted <= BURST + earned,
        "{accepted} accepted in {elapsed:?}; a per-node count would accept {}",
        2 * BURST
    );
    assert!(
        refused_on[0] > 0 && refused_on[1] > 0,
        "both nodes refuse once the shared budget is spent: {refused_on:?}"
    );
    // The limit holds over WebSocket too (the budget refills at 1/s, so of a
    // quick few at most one or two get through).
    let mut ws = via[1].ws(&format!("/ws/chat/{room}/")).await;
    ws.next_of("connection_established").await;
    for i in 0..3 {
        ws.send_json(json!({"type": "message", "content": "more", "client_id": format!("ws{i}")}))
            .await;
    }
    let error = ws.next_of("error").await;
    assert_eq!(error["code"], "rate_limited", "{error}");
    assert!(error["client_id"].as_str().unwrap().starts_with("ws"));
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}

/// Waits for `/readyz` on `client`'s node to report Redis as `want`.
async fn wait_for_redis(client: &Client, want: &str) {
    let mut ready = Value::Null;
    for _ in 0..100 {
        ready = client.get("/readyz").await.1;
        if ready["checks"]["redis"] == want {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("redis never became {want}: {ready}");
}

/// A membership change made while Redis is down never reaches the other
/// nodes as an event; when the bus returns they drop their cached permissions
/// and every session re-checks its rooms, so a removed member is cut off then.
#[tokio::test]
async fn a_removal_missed_during_a_redis_outage_applies_when_it_returns() {
    let Some((db, _)) = services("a_removal_missed_during_a_redis_outage_applies_when_it_returns")
    else {
        return;
    };
    let port = RedisServer::free_port();
    let Some(mut redis) = RedisServer::start(port).await else {
        eprintln!("skipping a_removal_missed_during_a_redis_outage: redis-server is not installed");
        return;
    };
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let nodes = [
        Node::start(schema.url(), &redis.url(), &ns).await,
        Node::start(schema.url(), &redis.url(), &ns).await,
    ];
    let (a, b) = (nodes[0].addr, nodes[1].addr);
    let ann = Client::register(a, "ann").await;
    let bob = Client::register(b, "bob").await;
    let cat = Client::register(b, "cat").await;
    let room = ann.create_room("Outage", "group", &[&bob, &cat]).await;
    let watched = ann.create_room("Kept", "group", &[&bob]).await;

    // Bob follows the room on node B, on both kinds of connection; node B has
    // his permissions cached (he has just posted there).
    let mut bob_room = bob.ws(&format!("/ws/chat/{room}/")).await;
    bob_room.next_of("connection_established").await;
    let mut bob_all = bob.ws("/ws/").await;
    bob_all.next_of("connection_established").await;
    bob.say(&room, "before the outage").await;

    redis.stop().await;
    wait_for_redis(&ann, "unreachable").await;
    wait_for_redis(&bob, "unreachable").await;
    let (status, body) = ann
        .delete(&format!("/tools/api/chat/{room}/members/{}/", bob.id()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Long enough for node A to give up publishing the removal.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut redis = RedisServer::start(port).await.expect("redis restarts");

    // The room connection is closed as if the removal had been heard live...
    let close = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match futures_util::StreamExt::next(&mut bob_room.stream).await {
                Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("the connection ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("node B cuts bob off once Redis is back")
    .expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    // ...the all-rooms connection leaves the room, keeps the other one...
    let left = bob_all.next_of("room_left").await;
    assert_eq!(left["room_id"], room.as_str());
    cat.say(&room, "bob must not see this").await;
    ann.say(&watched, "bob still sees this").await;
    let next = bob_all.next_of("chat_message").await;
    assert_eq!(next["room_id"], watched.as_str(), "{next}");
    // ...and node B refuses his sends (its cached permissions were dropped).
    let (status, body) = bob
        .post(
            &format!("/tools/api/chat/{room}/send/"),
            json!({"content": "still here?"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    redis.stop().await;
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}

/// Another login session of `username`, on the node at `addr`.
/// A user whose connection moves from one node to another within the
/// presence grace period (a load balancer sent the reconnect elsewhere) never
/// appears to leave; once gone from both for longer, they leave once.
#[tokio::test]
async fn a_reconnect_to_another_node_within_the_grace_is_not_a_departure() {
    let Some((db, redis)) =
        services("a_reconnect_to_another_node_within_the_grace_is_not_a_departure")
    else {
        return;
    };
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let nodes = [
        Node::start(schema.url(), &redis, &ns).await,
        Node::start(schema.url(), &redis, &ns).await,
    ];
    let (a, b) = (nodes[0].addr, nodes[1].addr);
    let ann = Client::register(a, "ann").await;
    let bob = Client::register(a, "bob").await;
    let room = ann.create_room("Moving", "group", &[&bob]).await;
    wait_for_redis(&ann, "ok").await;
    wait_for_redis(&bob.on(b), "ok").await;

    let mut watcher = ann.ws(&format!("/ws/chat/{room}/")).await;
    watcher.next_of("connection_established").await;
    let mut on_a = bob.ws(&format!("/ws/chat/{room}/")).await;
    on_a.next_of("connection_established").await;
    assert_eq!(watcher.next_of("user_joined").await["user_id"], bob.id());

    on_a.stream.close(None).await.unwrap();
    let mut on_b = bob.on(b).ws(&format!("/ws/chat/{room}/")).await;
    on_b.next_of("connection_established").await;
    // Node A's grace (1 s) runs out with bob online on node B: nothing said.
    watcher
        .expect_none_of("user_left", Duration::from_secs(3))
        .await;
    watcher
        .expect_none_of("user_joined", Duration::from_millis(100))
        .await;

    on_b.stream.close(None).await.unwrap();
    let left = watcher.next_of("user_left").await;
    assert_eq!(left["user_id"], bob.id());
    watcher
        .expect_none_of("user_left", Duration::from_secs(2))
        .await;
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}

async fn login_on(addr: SocketAddr, username: &str) -> Client {
    let mut client = Client::at(addr);
    let (status, body) = client
        .post(
            "/tools/api/auth/login/",
            json!({"username": username, "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "login {username}: {body}");
    client.profile = body["data"].clone();
    client
}

async fn assert_session_ended(ws: &mut crate::helpers::Ws) {
    let close = ws.closed().await.expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "session ended");
}

/// A logout or a token deleted on one node closes the sockets that session or
/// token opened on the others; the user's other sockets stay.
#[tokio::test]
async fn revoking_a_session_or_token_closes_its_sockets_on_every_node() {
    let Some((db, redis)) =
        services("revoking_a_session_or_token_closes_its_sockets_on_every_node")
    else {
        return;
    };
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let nodes = [
        Node::start(schema.url(), &redis, &ns).await,
        Node::start(schema.url(), &redis, &ns).await,
    ];
    let (a, b) = (nodes[0].addr, nodes[1].addr);
    let ann = Client::register(a, "ann").await;
    let laptop = login_on(b, "ann").await;
    let (status, body) = ann
        .post("/tools/api/auth/tokens/", json!({"name": "bot"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token_id = body["data"]["id"].as_str().unwrap().to_string();
    let mut bot = Client::at(b);
    bot.bearer = Some(body["data"]["token"].as_str().unwrap().to_string());
    bot.profile = ann.profile.clone();
    wait_for_redis(&ann, "ok").await;
    wait_for_redis(&laptop, "ok").await;

    // All on node B: ann's first session, her second one, her token.
    let ann_on_b = ann.on(b);
    let mut first = ann_on_b.ws("/ws/").await;
    first.next_of("connection_established").await;
    let mut second = laptop.ws("/ws/chat/general/").await;
    second.next_of("connection_established").await;
    let mut token = bot.ws("/ws/").await;
    token.next_of("connection_established").await;

    let (status, body) = ann.post("/tools/api/auth/logout/", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_session_ended(&mut first).await;
    let said = laptop.say("general", "after the logout").await;
    for ws in [&mut second, &mut token] {
        assert_eq!(
            ws.next_of("chat_message").await["message"]["id"],
            said["id"]
        );
    }

    let (status, body) = laptop
        .on(a)
        .delete(&format!("/tools/api/auth/tokens/{token_id}/"))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_session_ended(&mut token).await;
    let said = laptop.say("general", "after the token").await;
    assert_eq!(
        second.next_of("chat_message").await["message"]["id"],
        said["id"]
    );
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}

/// A logout made while Redis is down never reaches the other nodes as an
/// event; when the bus returns every connection re-checks its credential.
#[tokio::test]
async fn a_logout_missed_during_a_redis_outage_applies_when_it_returns() {
    let Some((db, _)) = services("a_logout_missed_during_a_redis_outage_applies_when_it_returns")
    else {
        return;
    };
    let port = RedisServer::free_port();
    let Some(mut redis) = RedisServer::start(port).await else {
        eprintln!("skipping a_logout_missed_during_a_redis_outage: redis-server is not installed");
        return;
    };
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let nodes = [
        Node::start(schema.url(), &redis.url(), &ns).await,
        Node::start(schema.url(), &redis.url(), &ns).await,
    ];
    let (a, b) = (nodes[0].addr, nodes[1].addr);
    let ann = Client::register(a, "ann").await;
    let laptop = login_on(b, "ann").await;
    wait_for_redis(&ann, "ok").await;
    wait_for_redis(&laptop, "ok").await;
    let mut revoked = ann.on(b).ws("/ws/").await;
    revoked.next_of("connection_established").await;
    let mut kept = laptop.ws("/ws/").await;
    kept.next_of("connection_established").await;

    redis.stop().await;
    wait_for_redis(&ann, "unreachable").await;
    wait_for_redis(&laptop, "unreachable").await;
    let (status, body) = ann.post("/tools/api/auth/logout/", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Long enough for node A to give up publishing the logout; both sockets
    // are read meanwhile, so they keep answering pings (and stay open).
    let quiet = Duration::from_secs(2);
    tokio::join!(
        revoked.expect_none_of("chat_message", quiet),
        kept.expect_none_of("chat_message", quiet)
    );
    let mut redis = RedisServer::start(port).await.expect("redis restarts");

    let close = tokio::time::timeout(Duration::from_secs(20), async {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            tokio::select! {
                frame = revoked.stream.next() => match frame {
                    Some(Ok(Message::Close(frame))) => return frame,
                    Some(Ok(_)) => {}
                    other => panic!("the connection ended without a close frame: {other:?}"),
                },
                frame = kept.stream.next() => match frame {
                    Some(Ok(Message::Close(frame))) => panic!("the other session's socket closed: {frame:?}"),
                    Some(Ok(_)) => {}
                    other => panic!("the other session's socket failed: {other:?}"),
                },
            }
        }
    })
    .await
    .expect("node B closes the socket once Redis is back")
    .expect("a close frame");
    assert_eq!(close.code, CloseCode::Policy);
    assert_eq!(close.reason.as_str(), "session ended");
    let said = laptop.say("general", "still here").await;
    assert_eq!(
        kept.next_of("chat_message").await["message"]["id"],
        said["id"]
    );
    redis.stop().await;
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}

#[tokio::test]
async fn a_dead_nodes_users_go_offline_and_limits_are_shared() {
    let Some((db, redis)) = services("a_dead_nodes_users_go_offline_and_limits_are_shared") else {
        return;
    };
    let schema = test_schema(&db).await.expect("a fresh PostgreSQL schema");
    let ns = unique("ns");
    let mut nodes = vec![
        Node::start(schema.url(), &redis, &ns).await,
        Node::start(schema.url(), &redis, &ns).await,
        Node::start(schema.url(), &redis, &ns).await,
    ];
    let (a, b, c) = (nodes[0].addr, nodes[1].addr, nodes[2].addr);

    // Failed logins count across nodes: 5 per username by default.
    Client::register(a, "victim").await;
    for node in [a, b, c, a, b] {
        let (status, _) = Client::at(node)
            .post(
                "/tools/api/auth/login/",
                json!({"username": "victim", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = Client::at(c)
        .post(
            "/tools/api/auth/login/",
            json!({"username": "victim", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");

    // Bob is connected only to node B, which then dies without a word.
    let ann = Client::register(a, "ann").await;
    let bob = Client::register(b, "bob").await;
    let room = ann.create_room("Vigil", "group", &[&bob]).await;
    let mut ann_ws = ann.ws(&format!("/ws/chat/{room}/")).await;
    ann_ws.next_of("connection_established").await;
    let mut bob_ws = bob.ws(&format!("/ws/chat/{room}/")).await;
    bob_ws.next_of("connection_established").await;
    assert_eq!(ann_ws.next_of("user_joined").await["user_id"], bob.id());
    nodes[1].kill().await;

    let started = tokio::time::Instant::now();
    let left = loop {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "bob is shown offline within 60 s"
        );
        if let Some(frame) = ann_ws.try_next_json(Duration::from_secs(1)).await
            && frame["type"] == "user_left"
        {
            break frame;
        }
    };
    assert_eq!(left["user_id"], bob.id());
    let (_, people) = ann
        .on(c)
        .get(&format!("/tools/api/chat/{room}/participants/"))
        .await;
    let bob_row = people["data"]["participants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["username"] == "bob")
        .cloned();
    assert_eq!(bob_row.unwrap()["is_online"], false);
    eprintln!(
        "dead node's user shown offline after {:?}",
        started.elapsed()
    );
    for node in nodes {
        node.stop().await;
    }
    schema.drop_schema().await.expect("drop the schema");
}
