use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::helpers::{spawn_app, spawn_app_in};

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let response = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let ready: serde_json::Value = reqwest::get(app.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"], "ok");
}

#[tokio::test]
async fn responses_carry_security_headers_and_json_errors() {
    let app = spawn_app().await;
    let response = reqwest::get(app.url("/tools/api/nope/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let headers = response.headers().clone();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(headers.contains_key("x-request-id"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["success"], false);
    assert_eq!(body["error"]["code"], "not_found");
}

#[tokio::test]
async fn wrong_methods_and_huge_bodies_get_json_errors() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let (status, body) = ann.patch("/tools/api/chat/general/send/", json!({})).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"]["code"], "method_not_allowed");
    let huge = json!({"content": "x".repeat(3 * 1024 * 1024)});
    let (status, body) = ann.post("/tools/api/chat/general/send/", huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn the_test_console_is_served_from_the_binary() {
    let app = spawn_app().await;
    let response = reqwest::get(app.url("/static/websocket_test.html"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'") && !csp.contains("unsafe-inline"));
    let html = response.text().await.unwrap();
    assert!(html.contains("websocket_test.js"));
    let js = reqwest::get(app.url("/static/websocket_test.js"))
        .await
        .unwrap();
    assert_eq!(js.status(), StatusCode::OK);
    assert!(js.text().await.unwrap().contains("/ws/chat/"));
    assert_eq!(
        reqwest::get(app.url("/static/nope.js"))
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn shutdown_closes_sockets_with_1012() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let mut ws = ann.ws("/ws/chat/general/").await;
    ws.next_of("connection_established").await;
    let stopping = tokio::spawn(app.stop());
    let close = ws.closed().await.expect("close frame");
    assert_eq!(close.code, CloseCode::Restart);
    stopping.await.unwrap();
}

#[tokio::test]
async fn a_restart_keeps_every_acknowledged_message() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let mut ws = ann.ws("/ws/chat/general/").await;
    ws.next_of("connection_established").await;
    let mut acked = Vec::new();
    for i in 0..15 {
        ws.send_json(json!({"type": "message", "content": format!("keep {i}"), "client_id": format!("k{i}")})).await;
    }
    while acked.len() < 15 {
        let frame = ws.next_of("chat_message").await;
        acked.push(frame["message"]["id"].as_str().unwrap().to_string());
    }
    let rest = ann.say("general", "via rest").await;
    acked.push(rest["id"].as_str().unwrap().to_string());
    let dir = app.stop().await;

    let app = spawn_app_in(dir, |_| {}).await;
    let again = app.anonymous();
    let (status, _) = again
        .post(
            "/tools/api/auth/login/",
            json!({"username": "ann", "password": crate::helpers::PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, history) = again
        .get("/tools/api/chat/general/messages/?limit=200")
        .await;
    let stored: Vec<String> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect();
    for id in &acked {
        assert!(stored.contains(id), "message {id} survived the restart");
    }
    // Seqs carry on without a gap.
    let next = again.say("general", "after restart").await;
    let last_before = history["messages"].as_array().unwrap().last().unwrap()["seq"]
        .as_i64()
        .unwrap();
    assert_eq!(next["seq"].as_i64().unwrap(), last_before + 1);
}

fn parley(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .env_remove("PARLEY_DATABASE_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the parley binary runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn the_cli_manages_users() {
    let dir = tempfile::tempdir().unwrap();
    let out = parley(
        dir.path(),
        &["user", "create", "root_admin", "--admin"],
        "super-secret-1\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("created user root_admin"));
    let out = parley(
        dir.path(),
        &["user", "create", "root_admin"],
        "super-secret-1\n",
    );
    assert!(!out.status.success(), "duplicate user refused");
    let out = parley(dir.path(), &["user", "create", "weak"], "short\n");
    assert!(!out.status.success(), "weak password refused");
    let out = parley(
        dir.path(),
        &[
            "user",
            "set-membership",
            "root_admin",
            "vip",
            "--until",
            "2999-12-31",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = parley(
        dir.path(),
        &["user", "set-admin", "root_admin", "false"],
        "",
    );
    assert!(out.status.success());
    let out = parley(dir.path(), &["user", "set-admin", "ghost", "true"], "");
    assert!(!out.status.success());

    let dir = std::sync::Arc::new(dir);
    let app = spawn_app_in(dir, |_| {}).await;
    let client = app.anonymous();
    let (status, body) = client
        .post(
            "/tools/api/auth/login/",
            json!({"username": "root_admin", "password": "super-secret-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["membership"], "vip");
    assert_eq!(
        body["data"]["membership_expires_at"],
        "3000-01-01T00:00:00.000Z"
    );
    assert_eq!(body["data"]["is_staff"], false);
    assert_eq!(body["data"]["tags"][0], "💎 VIP会员");
    let (_, rooms) = client.get("/tools/api/chat/rooms/").await;
    assert_eq!(
        rooms["data"][0]["room_id"], "general",
        "created from the command line, yet in general"
    );
}

#[tokio::test]
async fn parley_migrate_prepares_the_database_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let out = parley(dir.path(), &["migrate"], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
    let db = dir.path().join("parley.db");
    assert!(db.exists(), "the SQLite file is created in the data dir");
    // The schema is there: queries work on a store that did not migrate itself.
    let store = parley::store::connect(&format!("sqlite://{}", db.display()), 1)
        .await
        .unwrap();
    assert!(
        store
            .get_user_by_username("nobody")
            .await
            .unwrap()
            .is_none()
    );
    store.close().await;
}

/// `parley` with no subcommand is `parley serve`.
#[tokio::test]
async fn plain_parley_serves() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_parley"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env_remove("PARLEY_DATABASE_URL")
        .env_remove("PARLEY_REDIS_URL")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the parley binary runs");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(rest) = line.split("Open ").nth(1) {
                return rest.split(' ').next().unwrap().to_string();
            }
        }
        panic!("parley exited without serving");
    })
    .await
    .expect("parley starts listening");
    let health = reqwest::get(format!("{url}healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let ready: serde_json::Value = reqwest::get(format!("{url}readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert!(dir.path().join("parley.db").exists());

    let pid = child.id().unwrap().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(std::time::Duration::from_secs(20), child.wait())
        .await
        .expect("parley stops on SIGTERM")
        .unwrap();
    assert!(exit.success(), "a clean shutdown: {exit:?}");
}
