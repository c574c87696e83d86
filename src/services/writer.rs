//! Group commit: one task writes every message. It takes whatever is queued
//! and stores it in one transaction; a second task waits until what was
//! committed is on disk (`Store::sync_messages`, one sync for every batch
//! committed meanwhile), then adds it to the rooms' recent tails and fans each
//! message out. So a message is delivered and acknowledged only once it is
//! durable, many senders share one commit, and the writer goes on committing
//! while the disk syncs.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::bus::Bus;
use crate::bus::outbox::ChatFrame;
use crate::domain::ids::RoomId;
use crate::domain::message::{InsertOutcome, Message, NewMessage};
use crate::error::AppError;
use crate::events::ServerEvent;
use crate::services::tail_cache::TailCache;
use crate::store::{DynStore, StoreError};
use crate::views::MessageView;

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 1024;
/// Messages waiting for the writer before senders wait too.
const QUEUE: usize = 8192;

struct Job {
    message: NewMessage,
    reply: oneshot::Sender<Result<InsertOutcome, AppError>>,
}

#[derive(Clone)]
pub struct MessageWriter {
    tx: mpsc::Sender<Job>,
}

impl MessageWriter {
    /// Starts the writer task. It stops once `stop` is cancelled and the queue is drained.
    pub fn start(
        store: DynStore,
        bus: Bus,
        tail: Arc<TailCache>,
        stop: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, bus, tail, rx, stop));
        (Self { tx }, task)
    }

    /// Stores a message and, once committed, delivers it to every follower of its room.
    pub async fn write(&self, message: NewMessage) -> Result<InsertOutcome, AppError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job { message, reply })
            .await
            .map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }
}

/// A message refused because an upload it names is not the sender's to post
/// (any more): the same error as an unknown upload.
pub fn attachments_taken() -> AppError {
    AppError::bad_request(
        "invalid_attachment",
        "an attachment is unknown, not yours, from another room or already posted",
    )
}

fn shutting_down() -> AppError {
    AppError::Store(StoreError::Unavailable(
        "the server is shutting down".into(),
    ))
}

/// A batch the writer is done with, waiting for its sync.
struct Committed {
    messages: Vec<NewMessage>,
    replies: Vec<oneshot::Sender<Result<InsertOutcome, AppError>>>,
    result: Result<Vec<InsertOutcome>, StoreError>,
}

/// Batches committed but not yet released: past this the writer waits for
/// the syncs to catch up.
const UNSYNCED_BATCHES: usize = 64;

async fn run(
    store: DynStore,
    bus: Bus,
    tail: Arc<TailCache>,
    mut rx: mpsc::Receiver<Job>,
    stop: CancellationToken,
) {
    let (committed, unsynced) = mpsc::channel::<Committed>(UNSYNCED_BATCHES);
    let releaser = tokio::spawn(release(store.clone(), bus, tail, unsynced));
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            () = stop.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        let mut messages = vec![first.message];
        let mut replies = vec![first.reply];
        while messages.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    messages.push(job.message);
                    replies.push(job.reply);
                }
                Err(_) => break,
            }
        }
        let result = store.insert_messages(&messages).await;
        let batch = Committed {
            messages,
            replies,
            result,
        };
        if committed.send(batch).await.is_err() {
            tracing::error!("the message releaser stopped; no more messages are written");
            break;
        }
    }
    // Everything committed is still released (and answered) before the end.
    drop(committed);
    let _ = releaser.await;
}

/// Releases committed batches in order, each once a sync that began after
/// its commit is done: however many batches are waiting, one sync.
async fn release(
    store: DynStore,
    bus: Bus,
    tail: Arc<TailCache>,
    mut unsynced: mpsc::Receiver<Committed>,
) {
    let mut ready = Vec::with_capacity(UNSYNCED_BATCHES);
    while unsynced.recv_many(&mut ready, UNSYNCED_BATCHES).await > 0 {
        let synced = store.sync_messages().await;
        for batch in ready.drain(..) {
            let result = match &synced {
                Ok(()) => batch.result,
                // Committed, perhaps, but not known to be on disk: nobody is
                // told of it; the senders retry with their client ids.
                Err(err) => Err(StoreError::Unavailable(err.to_string().into())),
            };
            finish(&bus, &tail, batch.messages, batch.replies, result);
        }
    }
}

/// Makes a synced batch known: the recent tails, every follower, the senders.
fn finish(
    bus: &Bus,
    tail: &TailCache,
    messages: Vec<NewMessage>,
    replies: Vec<oneshot::Sender<Result<InsertOutcome, AppError>>>,
    result: Result<Vec<InsertOutcome>, StoreError>,
) {
    match result {
        Ok(outcomes) => {
            let inserted = outcomes.iter().filter_map(|o| match o {
                InsertOutcome::Inserted(message) => Some(message),
                InsertOutcome::Duplicate(_) | InsertOutcome::AttachmentsTaken => None,
            });
            // Before anyone can see these messages (live or acknowledged),
            // so whoever saw one finds it in the latest history page.
            tail.committed(inserted);
            // A duplicate is fanned out again too: when a commit succeeded
            // but its answer was lost (the connection to the database broke
            // after COMMIT), the first attempt reported `unavailable` and
            // delivered nothing, and the client's retry is the first time
            // anyone hears of it. Connections that already have the seq drop
            // it (see `realtime::delivery`), so nobody sees it twice.
            fan_out(bus, outcomes.iter().filter_map(InsertOutcome::message));
            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                let answer = match outcome {
                    InsertOutcome::AttachmentsTaken => Err(attachments_taken()),
                    stored => Ok(stored),
                };
                let _ = reply.send(answer);
            }
        }
        Err(err) => {
            tracing::error!(error = ?err, batch = messages.len(), "storing messages failed");
            // The transaction may have committed before the error came back.
            tail.forget(messages.iter().map(|m| &m.room_id));
            let reason: Arc<str> = Arc::from(err.to_string());
            for reply in replies {
                let _ = reply.send(Err(AppError::Store(StoreError::Unavailable(
                    reason.to_string().into(),
                ))));
            }
        }
    }
}

/// Serializes each committed message twice (the sender's copy says `is_own`)
/// and hands every local follower of a room one shared batch per commit.
pub fn fan_out<'a>(bus: &Bus, committed: impl Iterator<Item = &'a Message>) {
    let mut by_room: Vec<(&RoomId, Vec<ChatFrame>)> = Vec::new();
    for message in committed {
        let frame = ChatFrame {
            seq: message.seq,
            sender: message.sender.as_ref().map(|s| s.id),
            own: ServerEvent::ChatMessage {
                room_id: &message.room_id,
                message: MessageView::new(message, true, false),
            }
            .encode(),
            others: ServerEvent::ChatMessage {
                room_id: &message.room_id,
                message: MessageView::new(message, false, false),
            }
            .encode(),
        };
        match by_room
            .iter_mut()
            .find(|(room, _)| *room == &message.room_id)
        {
            Some((_, frames)) => frames.push(frame),
            None => by_room.push((&message.room_id, vec![frame])),
        }
    }
    for (room, frames) in by_room {
        bus.chat(room, frames);
    }
}
