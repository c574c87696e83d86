//! Micro-benchmarks of the per-message path: `cargo bench`. Numbers are
//! recorded in docs/benchmarks.md; nothing here asserts on time.

use std::hint::black_box;
use std::sync::Arc;

use axum::extract::ws::Utf8Bytes;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use parley::bus::hub::{ConnControl, Hub, Scope};
use parley::bus::outbox::Outbox;
use parley::bus::outbox::{ChatFrame, Outbound};
use parley::domain::ids::Credential;
use parley::domain::ids::{MessageId, RoomId, TokenId, UserId};
use parley::domain::message::{Message, MessageType, NewMessage, Sender};
use parley::domain::room::{Role, RoomKind};
use parley::domain::tags;
use parley::domain::time::now_ms;
use parley::domain::user::{Language, Membership, ThemeMode, ThemeStyle, User};
use parley::events::ServerEvent;
use parley::realtime::protocol::ClientMsg;
use parley::store::{NewRoom, NewUser};
use parley::views::MessageView;

fn sender() -> Arc<Sender> {
    Arc::new(Sender {
        id: UserId::new(),
        username: "alice".into(),
        display_name: "Alice 李".into(),
        avatar_version: 0,
    })
}

fn message(room: &RoomId, seq: i64) -> Message {
    Message {
        id: MessageId::new(),
        room_id: room.clone(),
        seq,
        sender: Some(sender()),
        message_type: MessageType::Text,
        content: "Hello everyone, the build is green again 🎉".into(),
        client_id: Some("c-1732450000-42".into()),
        event: None,
        attachments: Vec::new(),
        created_at: now_ms(),
    }
}

fn protocol(c: &mut Criterion) {
    let frame = r#"{"type":"message","content":"Hello everyone, the build is green again","client_id":"c-1732450000-42"}"#;
    c.bench_function("decode message frame", |b| {
        b.iter(|| ClientMsg::decode(black_box(frame)))
    });
    let room = RoomId::parse("general").expect("room id");
    let msg = message(&room, 42);
    c.bench_function("encode chat_message", |b| {
        b.iter(|| {
            ServerEvent::ChatMessage {
                room_id: &room,
                message: MessageView::new(black_box(&msg), false, false),
            }
            .encode()
        })
    });
}

fn fan_out(c: &mut Criterion) {
    let hub = Hub::new();
    let room = RoomId::parse("big").expect("room id");
    let mut receivers = Vec::new();
    for _ in 0..1000 {
        let outbox = Outbox::new(1024);
        hub.register(
            UserId::new(),
            Scope::Room(room.clone()),
            vec![room.clone()],
            outbox.clone(),
            ConnControl::new(),
            Credential::Token(TokenId::new()),
        );
        receivers.push(outbox);
    }
    let frame = Utf8Bytes::from(r#"{"type":"chat_message","message":{}}"#.repeat(8));
    let frames: Arc<[ChatFrame]> = Arc::from(vec![ChatFrame {
        seq: 1,
        sender: None,
        own: frame.clone(),
        others: frame,
    }]);
    c.bench_function("fan-out one message to 1000 local sessions", |b| {
        b.iter(|| {
            hub.broadcast_chat(&room, &frames);
            for outbox in &receivers {
                for item in outbox.try_take() {
                    black_box(matches!(item, Outbound::Chat { .. }));
                }
            }
        })
    });
}

/// The load generator's work per delivery: parse the frame, account for its seq
/// and latency. It must stay far below the server's cost per delivery, or the
/// generator (one core in the scenarios) becomes the limit.
fn generator_delivery(c: &mut Criterion) {
    use parley::bench::accounting::{Tally, latency_histogram};
    use parley::bench::frame::{self, Frame};
    let room = RoomId::parse("general").expect("room id");
    let mut msg = message(&room, 1);
    msg.content = frame::content(123_456, 64);
    msg.client_id = Some(frame::client_id(7, 3, 42));
    let frames: Vec<String> = (1..=1000)
        .map(|seq| {
            msg.seq = seq;
            ServerEvent::ChatMessage {
                room_id: &room,
                message: MessageView::new(&msg, false, false),
            }
            .encode()
            .to_string()
        })
        .collect();
    let template = latency_histogram().expect("histogram");
    c.bench_function(
        "generator: parse and account 1000 chat_message frames",
        |b| {
            b.iter_batched(
                || Tally::new(0),
                |mut tally| {
                    for text in &frames {
                        let parsed = Frame::parse(black_box(text)).expect("frame");
                        let chat = parsed.chat.expect("chat message");
                        let sent = frame::sent_us(&chat.content).expect("generated");
                        tally.receive(chat.seq, Some(200_000 - sent), false, &template);
                    }
                    tally
                },
                BatchSize::SmallInput,
            )
        },
    );
}

fn tag_rules(c: &mut Criterion) {
    let user = User {
        id: UserId::new(),
        username: "ann".into(),
        display_name: String::new(),
        first_name: String::new(),
        last_name: String::new(),
        bio: String::new(),
        email: String::new(),
        membership: Membership::Vip,
        membership_until: Some(now_ms() + 1_000_000),
        theme_mode: ThemeMode::Emo,
        theme_style: ThemeStyle::Auto,
        language: Language::ZhCn,
        is_admin: true,
        avatar_version: 0,
        created_at: now_ms() - 40 * 86_400_000,
        last_seen_at: None,
        time_zone: String::new(),
    };
    c.bench_function("compute tags", |b| {
        b.iter(|| tags::compute(black_box(&user), now_ms(), 2))
    });
}

fn batch_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let (store, rooms, author) = runtime.block_on(async {
        let store = parley::store::connect(&url, 4).await.expect("open");
        store.migrate().await.expect("migrate");
        let user = store
            .insert_user(&NewUser {
                id: UserId::new(),
                username: "bench".into(),
                password_hash: "x".into(),
                display_name: String::new(),
                is_admin: false,
                created_at: now_ms(),
            })
            .await
            .expect("user");
        let mut rooms = Vec::new();
        for i in 0..10 {
            let id = RoomId::parse(&format!("room{i}")).expect("room id");
            store
                .insert_room(
                    &NewRoom {
                        id: id.clone(),
                        kind: RoomKind::Group,
                        name: id.to_string(),
                        description: String::new(),
                        owner_id: Some(user.id),
                        direct_key: None,
                        created_at: now_ms(),
                        members: vec![(user.id, Role::Owner)],
                        created_by: Some(user.id),
                    },
                    None,
                )
                .await
                .expect("room");
            rooms.push(id);
        }
        let author = Arc::new(Sender {
            id: user.id,
            username: user.username,
            display_name: String::new(),
            avatar_version: 0,
        });
        (store, rooms, author)
    });
    let batch = |n: usize| -> Vec<NewMessage> {
        (0..n)
            .map(|i| NewMessage {
                id: MessageId::new(),
                room_id: rooms[i % rooms.len()].clone(),
                sender: Some(author.clone()),
                message_type: MessageType::Text,
                content: "a message of a typical length for a chat, forty-odd chars".into(),
                client_id: Some(format!("c{}", MessageId::new())),
                event: None,
                attachments: Vec::new(),
                created_at: now_ms(),
            })
            .collect()
    };
    let mut group = c.benchmark_group("sqlite batch commit");
    for size in [1usize, 100] {
        group.throughput(criterion::Throughput::Elements(size as u64));
        group.bench_function(format!("{size} messages over 10 rooms"), |b| {
            b.to_async(&runtime).iter_batched(
                || batch(size),
                |messages| {
                    let store = store.clone();
                    async move { store.insert_messages(&messages).await.expect("insert") }
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    protocol,
    fan_out,
    generator_delivery,
    tag_rules,
    batch_commit
);
criterion_main!(benches);
