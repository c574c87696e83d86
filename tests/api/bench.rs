//! The load generator (`parley bench`) against the real server, at tiny
//! scale: its accounting must be exact, so these assert counts, never timings.

use std::sync::Arc;

use clap::Parser;
use parley::bench::chat::{self, ChatOptions};
use parley::bench::history::{self, HistoryOptions};
use parley::bench::report::ChatReport;
use parley::bench::seed::{self, SeedOptions};
use parley::config::Config;

use crate::helpers::{TestApp, spawn_app_in, spawn_app_with};

async fn generous_app() -> TestApp {
    spawn_app_with(|config| {
        config.message_rate = 1000;
        config.message_burst = 1000;
    })
    .await
}

fn options(app: &TestApp, args: &[&str]) -> ChatOptions {
    let url = app.url("");
    let mut all = vec!["bench", "--url", &url, "--no-progress"];
    all.extend_from_slice(args);
    ChatOptions::try_parse_from(all).unwrap()
}

/// Every acknowledged message reached every member once, in order.
fn assert_exact(report: &ChatReport, members: u64) {
    let m = &report.messages;
    assert!(m.sent > 0, "nothing was sent: {}", report.table());
    assert_eq!(m.acknowledged, m.sent, "{}", report.table());
    assert_eq!(m.lost, 0, "{}", report.table());
    assert_eq!(m.duplicated, 0, "{}", report.table());
    assert_eq!(m.out_of_order, 0, "{}", report.table());
    assert_eq!(m.delivered, m.acknowledged * members, "{}", report.table());
    assert_eq!(m.expected_deliveries, m.delivered);
    assert!(m.errors.is_empty(), "{:?}", m.errors);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_delivers_every_message_to_every_member() {
    let app = generous_app().await;
    let opts = options(
        &app,
        &[
            "--rooms",
            "2",
            "--members",
            "3",
            "--rate",
            "10",
            "--duration",
            "2s",
        ],
    );
    let report = chat::run(&opts).await.unwrap();
    assert_eq!(report.connections.ok, 6);
    assert_eq!(report.connections.failed, 0);
    assert_eq!(report.settings.senders, 2);
    assert_exact(&report, 3);
    let latency = report.latency_ms.as_ref().expect("latencies measured");
    assert_eq!(latency.samples, report.messages.delivered);
    // The JSON report carries the same numbers.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["messages"]["lost"], 0);
    assert_eq!(json["messages"]["delivered"], report.messages.delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_keeps_a_window_and_shares_users() {
    let app = generous_app().await;
    let opts = options(
        &app,
        &[
            "--rooms",
            "2",
            "--members",
            "4",
            "--connections-per-user",
            "2",
            "--senders-per-room",
            "2",
            "--closed-loop",
            "3",
            "--messages",
            "200",
            "--duration",
            "20s",
        ],
    );
    let report = chat::run(&opts).await.unwrap();
    assert_eq!(report.settings.users, 4);
    // Four senders share the 200 messages.
    assert_eq!(report.messages.sent, 200);
    assert_exact(&report, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_storm_loses_and_repeats_nothing() {
    let app = generous_app().await;
    let opts = options(
        &app,
        &[
            "--rooms",
            "2",
            "--members",
            "3",
            "--rate",
            "20",
            "--duration",
            "3s",
            "--reconnect-at",
            "1s",
        ],
    );
    let report = chat::run(&opts).await.unwrap();
    let storm = report.reconnect.as_ref().expect("a storm report");
    assert_eq!(storm.clients, 6, "{}", report.table());
    assert_eq!(storm.back, 6, "{}", report.table());
    assert!(storm.all_back_ms.is_some());
    assert!(storm.gave_up.is_empty());
    assert!(report.connections.reconnects >= 6);
    assert_exact(&report, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_messages_are_reported_not_lost() {
    // The server's default limit: 10 messages per second per user, bursts of 20.
    let app = spawn_app_with(|_| {}).await;
    let opts = options(
        &app,
        &[
            "--rooms",
            "1",
            "--members",
            "2",
            "--closed-loop",
            "10",
            "--duration",
            "1s",
        ],
    );
    let report = chat::run(&opts).await.unwrap();
    let m = &report.messages;
    assert!(m.rate_limited > 0, "{}", report.table());
    assert_eq!(m.errors.get("rate_limited"), Some(&m.rate_limited));
    assert_eq!(m.acknowledged + m.rate_limited, m.sent);
    assert_eq!(m.lost, 0);
    assert_eq!(m.delivered, m.acknowledged * 2);
    assert!(
        report.warnings.iter().any(|w| w.contains("rate_limited")),
        "{:?}",
        report.warnings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_reuses_users_and_rooms() {
    let app = generous_app().await;
    let state = app.data_dir.path().join("bench-state.json");
    let state_arg = state.to_str().unwrap();
    let args = [
        "--prefix",
        "again",
        "--state-file",
        state_arg,
        "--rooms",
        "2",
        "--members",
        "2",
        "--duration",
        "1s",
    ];
    let first = chat::run(&options(&app, &args)).await.unwrap();
    assert_exact(&first, 2);
    assert!(state.exists());
    // Without the state file the names alone are enough: log in instead of registering.
    std::fs::remove_file(&state).unwrap();
    let second = chat::run(&options(&app, &args)).await.unwrap();
    assert_exact(&second, 2);
    let third = chat::run(&options(&app, &args)).await.unwrap();
    assert_exact(&third, 2);
    let users = app.state.store.search_users("again-u", 100).await.unwrap();
    assert_eq!(users.len(), 4);
    let rooms = app
        .state
        .store
        .list_room_ids_for_user(users[0].id)
        .await
        .unwrap();
    assert_eq!(rooms.len(), 2, "general and one bench room: {rooms:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_targets_are_refused() {
    let opts = ChatOptions::try_parse_from(["bench", "--url", "http://192.0.2.1:8000"]).unwrap();
    let err = chat::run(&opts).await.unwrap_err();
    assert!(err.to_string().contains("--allow-remote"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_history_is_read_page_by_page() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut config = Config::for_tests(dir.path().to_path_buf());
    config.default_room = String::new();
    let seeding = SeedOptions {
        room_messages: 700,
        total_messages: 1000,
        filler_rooms: 2,
        batch: 128,
        prefix: "s5".into(),
        no_progress: true,
    };
    seed::run(&seeding, &config).await.unwrap();
    let app = spawn_app_in(dir, |_| {}).await;
    let url = app.url("");
    let opts = HistoryOptions::try_parse_from([
        "history",
        "--url",
        &url,
        "--no-progress",
        "--room",
        "s5-history",
        "--requests",
        "20",
        "--warmup",
        "0s",
    ])
    .unwrap();
    let report = history::run(&opts).await.unwrap();
    assert_eq!(report.last_seq, 700);
    assert_eq!(report.pages.len(), 2);
    for page in &report.pages {
        assert_eq!(page.requests, 20, "{}", report.table());
        assert!(page.errors.is_empty(), "{:?}", page.errors);
        assert_eq!(page.messages_per_page, 50.0);
    }
    assert_eq!(report.pages[1].query, "?before=350&limit=50");
    let filler = app
        .state
        .store
        .get_room(&parley::domain::ids::RoomId::parse("s5-filler-1").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(filler.last_seq, 150);
}
