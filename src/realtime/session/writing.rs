//! The writing half of a session: the only task that sends on the socket.
//! It delivers each room's messages once and in seq order (see `delivery`),
//! and asks the reader to fetch what a lasting gap is missing.

use super::*;

/// The only task that writes to the socket.
pub(super) struct Writer {
    pub(super) me: UserId,
    pub(super) outbox: Arc<Outbox>,
    /// Gaps to fetch from the store, for the reader.
    pub(super) fills: Arc<FillRequests>,
    pub(super) control: Arc<ConnControl>,
    pub(super) shutdown: CancellationToken,
}

impl Writer {
    pub(super) async fn run<Si: Sink<Message> + Unpin>(self, mut sink: Si) {
        let mut delivery = Delivery::default();
        let (code, reason) = loop {
            let fill_at = delivery.next_fill_at().map(tokio::time::Instant::from_std);
            tokio::select! {
                biased;
                () = self.control.cancelled() => break self.control.close_reason().unwrap_or((close::NORMAL, "closed")),
                () = self.shutdown.cancelled() => {
                    // Deliver what is already queued, then ask clients to reconnect elsewhere.
                    let items = self.outbox.try_take();
                    if self.deliver(&mut sink, &mut delivery, items).await.is_err() {
                        return;
                    }
                    break (close::RESTART, "server restarting");
                }
                items = self.outbox.take() => {
                    let Some(items) = items else { break (close::NORMAL, "closed") };
                    if self.deliver(&mut sink, &mut delivery, items).await.is_err() {
                        self.control.close(close::GOING_AWAY, "write failed");
                        return;
                    }
                }
                () = sleep_until(fill_at), if fill_at.is_some() => {
                    for fill in delivery.due_fills(Instant::now()) {
                        self.fills.push(fill);
                    }
                }
            }
        };
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
        let _ = tokio::time::timeout(WRITE_TIMEOUT, sink.close()).await;
    }

    /// Applies the items taken from the outbox and writes the frames they
    /// produce, flushing at least every `WRITE_BATCH` frames. The frame list
    /// lives only for the batch: an idle connection keeps no buffer.
    async fn deliver<Si: Sink<Message> + Unpin>(
        &self,
        sink: &mut Si,
        delivery: &mut Delivery,
        items: VecDeque<Outbound>,
    ) -> Result<(), ()> {
        let mut out = Vec::new();
        let mut unflushed = false;
        for item in items {
            if self.apply(delivery, item, &mut out) {
                feed(sink, Message::Ping(Default::default())).await?;
                unflushed = true;
            }
            if out.len() >= WRITE_BATCH {
                write_all(sink, &mut out).await?;
                unflushed = false;
            }
        }
        if unflushed || !out.is_empty() {
            write_all(sink, &mut out).await?;
        }
        Ok(())
    }

    /// Applies one queued item; true if it asks for a WebSocket ping.
    fn apply(&self, delivery: &mut Delivery, item: Outbound, out: &mut Vec<Utf8Bytes>) -> bool {
        match item {
            Outbound::Frame(frame) => out.push(frame),
            Outbound::Chat { room, messages } => {
                for message in messages.iter() {
                    delivery.live(&room, message.seq, message.for_user(self.me).clone(), out);
                }
            }
            Outbound::Tick(frame) => {
                out.push(frame);
                return true;
            }
            Outbound::StartAfter(rooms) => {
                for (room, last_seq) in &rooms {
                    delivery.start_after(room, *last_seq);
                }
            }
            Outbound::ResumeStart { room, since } => delivery.resume_start(&room, since),
            Outbound::ResumeChunk { room, messages } => delivery.resume_chunk(&room, messages, out),
            Outbound::ResumeEnd { room } => {
                let (last_seq, replayed) = delivery.resume_end(&room);
                out.push(
                    ServerEvent::ResumeComplete {
                        room_id: &room,
                        last_seq,
                        replayed,
                    }
                    .encode(),
                );
            }
            Outbound::Fill { room, messages } => delivery.fill(&room, messages, out),
            Outbound::Resync { membership } => {
                if membership {
                    self.fills.recheck();
                }
                for fill in delivery.resync() {
                    self.fills.push(fill);
                }
            }
        }
        false
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn feed<Si: Sink<Message> + Unpin>(sink: &mut Si, message: Message) -> Result<(), ()> {
    match tokio::time::timeout(WRITE_TIMEOUT, sink.feed(message)).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}

async fn write_all<Si: Sink<Message> + Unpin>(
    sink: &mut Si,
    out: &mut Vec<Utf8Bytes>,
) -> Result<(), ()> {
    for frame in out.drain(..) {
        feed(sink, Message::Text(frame)).await?;
    }
    match tokio::time::timeout(WRITE_TIMEOUT, sink.flush()).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
