//! Group commit: one task writes every message. It takes whatever is queued,
//! stores it in one transaction, then fans each committed message out, so a
//! message is delivered only after it is durable and many senders share one
//! commit.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::domain::message::{InsertOutcome, Message, NewMessage};
use crate::error::AppError;
use crate::realtime::hub::Hub;
use crate::realtime::protocol::ServerEvent;
use crate::store::{DynStore, StoreError};
use crate::views::MessageView;

/// Most messages committed in one transaction.
const MAX_BATCH: usize = 512;
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
    pub fn start(store: DynStore, hub: Hub, stop: CancellationToken) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(run(store, hub, rx, stop));
        (Self { tx }, task)
    }

    /// Stores a message and, once committed, delivers it to every follower of its room.
    pub async fn write(&self, message: NewMessage) -> Result<InsertOutcome, AppError> {
        let (reply, answer) = oneshot::channel();
        self.tx.send(Job { message, reply }).await.map_err(|_| shutting_down())?;
        answer.await.map_err(|_| shutting_down())?
    }
}

fn shutting_down() -> AppError {
    AppError::Store(StoreError::Unavailable("the server is shutting down".into()))
}

async fn run(store: DynStore, hub: Hub, mut rx: mpsc::Receiver<Job>, stop: CancellationToken) {
    let mut messages = Vec::with_capacity(MAX_BATCH);
    let mut replies = Vec::with_capacity(MAX_BATCH);
    loop {
        let first = tokio::select! {
            job = rx.recv() => job,
            () = stop.cancelled() => {
                rx.close();
                rx.recv().await
            }
        };
        let Some(first) = first else { break };
        messages.push(first.message);
        replies.push(first.reply);
        while messages.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => {
                    messages.push(job.message);
                    replies.push(job.reply);
                }
                Err(_) => break,
            }
        }
        match store.insert_messages(&messages).await {
            Ok(outcomes) => {
                for (outcome, reply) in outcomes.into_iter().zip(replies.drain(..)) {
                    if let InsertOutcome::Inserted(message) = &outcome {
                        fan_out(&hub, message);
                    }
                    let _ = reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                tracing::error!(error = ?err, batch = messages.len(), "storing messages failed");
                let reason: Arc<str> = Arc::from(err.to_string());
                for reply in replies.drain(..) {
                    let _ = reply.send(Err(AppError::Store(StoreError::Unavailable(reason.to_string().into()))));
                }
            }
        }
        messages.clear();
    }
}

/// Serializes a committed message twice (the sender's copy says `is_own`) and
/// hands the shared bytes to every local follower of the room.
pub fn fan_out(hub: &Hub, message: &Message) {
    let sender = message.sender.as_ref().map(|s| s.id);
    let own = ServerEvent::ChatMessage { room_id: &message.room_id, message: MessageView::new(message, true, false) }.encode();
    let others =
        ServerEvent::ChatMessage { room_id: &message.room_id, message: MessageView::new(message, false, false) }.encode();
    hub.broadcast_chat(&message.room_id, message.seq, sender, &own, &others);
}
