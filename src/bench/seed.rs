//! `parley bench seed-history`: a big history for scenario S5 without sending
//! ten million messages through the API. It writes through the same `Store`
//! the server uses (`insert_messages`, in large batches), so the result is a
//! real database with gap-free seqs that the server then reads.
//!
//! Run it while the server is stopped: a running server keeps the recent
//! tail of active rooms in memory and would not see rows written behind its back.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::app::open_store;
use crate::config::Config;
use crate::domain::ids::{MessageId, RoomId, UserId};
use crate::domain::message::{MessageType, NewMessage, Sender};
use crate::domain::room::{Role, RoomKind};
use crate::domain::time::now_ms;
use crate::services::accounts;
use crate::store::{DynStore, NewRoom, NewUser};

#[derive(Args, Debug, Clone)]
pub struct SeedOptions {
    /// Messages to add to the measured room (`<prefix>-history`).
    #[arg(long, default_value_t = 1_000_000)]
    pub room_messages: u64,

    /// Messages to add in all, the room's included; the rest go to filler rooms.
    #[arg(long, default_value_t = 10_000_000)]
    pub total_messages: u64,

    /// Filler rooms sharing the other messages (`<prefix>-filler-<k>`).
    #[arg(long, default_value_t = 9)]
    pub filler_rooms: usize,

    /// Messages per transaction.
    #[arg(long, default_value_t = 5000)]
    pub batch: usize,

    /// Prefix of the seeding user and the rooms.
    #[arg(long, default_value = "bench")]
    pub prefix: String,

    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
}

/// Seeds the database named by the global `--database-url` (or `--data-dir`).
pub async fn run(options: &SeedOptions, config: &Config) -> anyhow::Result<()> {
    anyhow::ensure!(
        options.total_messages >= options.room_messages,
        "--total-messages includes --room-messages, so it cannot be smaller"
    );
    anyhow::ensure!(
        (1..=50_000).contains(&options.batch),
        "--batch is 1 to 50000"
    );
    config.validate()?;
    let store = open_store(config).await?;
    let result = seed(&store, options).await;
    store.close().await;
    result
}

async fn seed(store: &DynStore, options: &SeedOptions) -> anyhow::Result<()> {
    let prefix = &options.prefix;
    let sender = seed_user(store, &format!("{prefix}-seed")).await?;
    let room = ensure_room(store, &format!("{prefix}-history"), sender.id).await?;
    let fillers = if options.total_messages > options.room_messages {
        let mut rooms = Vec::with_capacity(options.filler_rooms.max(1));
        for k in 0..options.filler_rooms.max(1) {
            rooms.push(ensure_room(store, &format!("{prefix}-filler-{k}"), sender.id).await?);
        }
        rooms
    } else {
        Vec::new()
    };

    // (room, messages still to write): the measured room first, then the fillers' shares.
    let mut plan: Vec<(RoomId, u64)> = vec![(room.clone(), options.room_messages)];
    let rest = options.total_messages - options.room_messages;
    for (k, filler) in fillers.iter().enumerate() {
        let share =
            rest / fillers.len() as u64 + u64::from((k as u64) < rest % fillers.len() as u64);
        plan.push((filler.clone(), share));
    }

    let bar = crate::bench::progress::bar(!options.no_progress);
    bar.set_prefix("seed");
    bar.set_length(options.total_messages);
    let started = Instant::now();
    // Spread timestamps over the past, one millisecond apart, oldest first.
    let mut at = now_ms() - options.total_messages as i64;
    let mut written = 0u64;
    // Round-robin over the rooms, a batch at a time, as a busy server would interleave them.
    while plan.iter().any(|(_, left)| *left > 0) {
        for (room, left) in plan.iter_mut().filter(|(_, left)| *left > 0) {
            let n = (*left).min(options.batch as u64);
            let batch: Vec<NewMessage> = (0..n)
                .map(|i| {
                    at += 1;
                    NewMessage {
                        id: MessageId::new(),
                        room_id: room.clone(),
                        sender: Some(sender.clone()),
                        message_type: MessageType::Text,
                        content: format!(
                            "Seeded message {} of the history benchmark, about as long as a chat line.",
                            written + i + 1
                        ),
                        client_id: None,
                        event: None,
                        attachments: Vec::new(),
                        created_at: at,
                    }
                })
                .collect();
            store
                .insert_messages(&batch)
                .await
                .with_context(|| format!("storing a batch for {room}"))?;
            *left -= n;
            written += n;
            bar.set_position(written);
            bar.set_message(format!(
                "{:.0} messages/s",
                written as f64 / started.elapsed().as_secs_f64().max(1e-9)
            ));
        }
    }
    bar.finish_and_clear();
    store
        .sync_messages()
        .await
        .context("syncing the seeded messages")?;
    let last_seq = store.get_room(&room).await?.map_or(0, |r| r.last_seq);
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "seeded {written} messages in {seconds:.1} s ({:.0}/s); room {room} now ends at seq {last_seq}",
        written as f64 / seconds.max(1e-9)
    );
    Ok(())
}

/// The seeding user, created if missing (with a random password: nobody logs in as it).
async fn seed_user(store: &DynStore, username: &str) -> anyhow::Result<Arc<Sender>> {
    let user = match store.get_user_by_username(username).await? {
        Some(user) => user,
        None => {
            let hash = accounts::hash_password(accounts::random_token())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            store
                .insert_user(&NewUser {
                    id: UserId::new(),
                    username: username.to_string(),
                    password_hash: hash,
                    display_name: String::new(),
                    is_admin: false,
                    created_at: now_ms(),
                })
                .await?
        }
    };
    Ok(crate::services::rooms::sender_of(&user))
}

/// A public room with this id, created if missing (anyone logged in may read it).
async fn ensure_room(store: &DynStore, id: &str, owner: UserId) -> anyhow::Result<RoomId> {
    let id = RoomId::parse(id).map_err(|e| anyhow::anyhow!("room id {id:?}: {e}"))?;
    if store.get_room(&id).await?.is_none() {
        store
            .insert_room(
                &NewRoom {
                    id: id.clone(),
                    kind: RoomKind::Public,
                    name: id.as_str().to_string(),
                    description: "Filled by parley bench seed-history".into(),
                    owner_id: Some(owner),
                    direct_key: None,
                    created_at: now_ms(),
                    members: vec![(owner, Role::Owner)],
                    created_by: Some(owner),
                },
                None,
            )
            .await?;
    }
    Ok(id)
}
