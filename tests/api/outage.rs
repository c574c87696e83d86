//! One node whose PostgreSQL is unreachable for a while: a TCP relay between
//! the server and the database, which the test stalls and resumes. Skipped
//! (with a message) unless PARLEY_TEST_DATABASE_URL is set; `.ci/run` sets it.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use parley::store::postgres::{Relay, test_schema};

use crate::helpers::spawn_app_with;

async fn readyz(url: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .expect("readyz answers");
    let status = response.status();
    (status, response.json().await.expect("json"))
}

/// Sends while the database does not answer fail with an `error` frame
/// (`unavailable`, with the client_id) and are not acknowledged; `/readyz`
/// says 503; once the database is back, the same client_id sent again is
/// stored once and acknowledged.
#[tokio::test]
async fn a_database_outage_fails_sends_cleanly_and_a_retry_is_stored_once() {
    let Some(base) = std::env::var("PARLEY_TEST_DATABASE_URL")
        .ok()
        .filter(|v| !v.is_empty())
    else {
        eprintln!("skipping a_database_outage: set PARLEY_TEST_DATABASE_URL to run it");
        return;
    };
    let schema = test_schema(&base).await.expect("a fresh PostgreSQL schema");
    let relay = Relay::start(schema.url()).await.expect("relay");
    let through = relay.url().to_string();
    let app = spawn_app_with(move |c| c.database_url = Some(through)).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let room = ann.create_room("Flaky", "group", &[&bob]).await;
    let mut a = ann.ws(&format!("/ws/chat/{room}/")).await;
    a.next_of("connection_established").await;
    let mut b = bob.ws(&format!("/ws/chat/{room}/")).await;
    b.next_of("connection_established").await;
    a.send_json(json!({"type": "message", "content": "before", "client_id": "c0"}))
        .await;
    assert_eq!(
        a.next_of("chat_message").await["message"]["client_id"],
        "c0"
    );
    assert_eq!(
        b.next_of("chat_message").await["message"]["content"],
        "before"
    );

    relay.stall();
    a.send_json(json!({"type": "message", "content": "during", "client_id": "c1"}))
        .await;
    let error = a.next_of_within("error", Duration::from_secs(20)).await;
    assert_eq!(error["code"], "unavailable", "{error}");
    assert_eq!(error["client_id"], "c1");
    a.expect_none_of("chat_message", Duration::from_millis(300))
        .await;
    b.expect_none_of("chat_message", Duration::from_millis(300))
        .await;
    let (status, body) = readyz(&app.url("/readyz")).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["checks"]["database"], "unreachable");

    relay.resume();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = readyz(&app.url("/readyz")).await;
        if status == StatusCode::OK {
            assert_eq!(body["checks"]["database"], "ok");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the database did not come back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.send_json(json!({"type": "message", "content": "during", "client_id": "c1"}))
        .await;
    let ack = a.next_of("chat_message").await;
    assert_eq!(ack["message"]["client_id"], "c1");
    assert_eq!(
        ack["message"]["seq"], 3,
        "right after the first two: nothing stored meanwhile"
    );
    let got = b.next_of("chat_message").await;
    assert_eq!(got["message"]["id"], ack["message"]["id"]);

    let (_, history) = ann
        .get(&format!("/tools/api/chat/{room}/messages/?limit=200"))
        .await;
    let during: Vec<&Value> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["client_id"] == "c1")
        .collect();
    assert_eq!(during.len(), 1, "{history}");
    assert_eq!(during[0]["id"], ack["message"]["id"]);

    drop((a, b));
    app.stop().await;
    drop(relay);
    schema.drop_schema().await.expect("drop the schema");
}
