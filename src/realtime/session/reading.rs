//! The reading half of a session: each frame the client sends, decoded,
//! within its budget, and answered through the services; stored messages
//! fetched for a resume or a gap.

use super::*;
use crate::domain::message::MessageType;
use crate::services::writer::attachments_taken;

impl Session {
    pub(super) async fn read_loop<St, E>(&mut self, ctx: &Services, mut stream: St)
    where
        St: Stream<Item = Result<Message, E>> + Unpin,
        E: Into<axum::Error>,
    {
        let mut pending: FuturesUnordered<PendingSend> = FuturesUnordered::new();
        let mut budget = FrameBudget::new(Instant::now());
        loop {
            tokio::select! {
                biased;
                () = self.control.cancelled() => break,
                () = ctx.shutdown.cancelled() => break,
                Some((client_id, result)) = pending.next(), if !pending.is_empty() => {
                    self.on_sent(client_id.as_deref(), result);
                }
                () = self.fills.ready.notified() => {
                    let (recheck, due) = self.fills.take();
                    if recheck {
                        Box::pin(self.recheck_credential(ctx)).await;
                        if !self.control.is_closed() {
                            Box::pin(self.recheck_rooms(ctx)).await;
                        }
                    }
                    for fill in due {
                        if let Err(err) = Box::pin(self.fill(ctx, fill)).await {
                            tracing::debug!(error = %err, "could not fill a gap; will retry");
                        }
                    }
                }
                frame = stream.next(), if pending.len() < MAX_PENDING_SENDS => {
                    let Some(frame) = frame else { break };
                    let frame = match frame {
                        Ok(frame) => frame,
                        Err(err) => {
                            let err: axum::Error = err.into();
                            let (code, reason) = close_for_read_error(&err);
                            tracing::debug!(error = %err, code, "websocket read failed");
                            self.control.close(code, reason);
                            break;
                        }
                    };
                    self.control.mark_received();
                    match frame {
                        Message::Text(text) => {
                            let decoded = ClientMsg::decode(text.as_str());
                            // Messages have their own rate; everything else spends the budget.
                            if !matches!(decoded, Ok(ClientMsg::Message { .. }))
                                && !self.within_budget(&mut budget)
                            {
                                continue;
                            }
                            if let Some(send) = Box::pin(self.on_frame(ctx, decoded)).await {
                                pending.push(send);
                            }
                        }
                        Message::Binary(_) => {
                            if self.within_budget(&mut budget) {
                                self.reply(Outbound::Frame(error_frame("binary_not_supported", "frames must be JSON text", None)));
                            }
                        }
                        Message::Close(_) => break,
                        Message::Ping(_) | Message::Pong(_) => {}
                    }
                }
            }
        }
        // Sends already accepted still finish (and are delivered to everyone else).
        while let Some((client_id, result)) = pending.next().await {
            self.on_sent(client_id.as_deref(), result);
        }
    }

    /// The acknowledgement of a fresh message is its own copy arriving through
    /// the hub; a repeated `client_id` gets the original here; errors get an
    /// `error` frame carrying the `client_id`.
    pub(super) fn on_sent(&self, client_id: Option<&str>, result: Result<InsertOutcome, AppError>) {
        match result {
            Ok(InsertOutcome::Inserted(_)) => {}
            Ok(InsertOutcome::Duplicate(message)) => {
                let frame = ServerEvent::ChatMessage {
                    room_id: &message.room_id,
                    message: MessageView::new(&message, true, false),
                }
                .encode();
                self.reply(Outbound::Frame(frame));
            }
            Ok(InsertOutcome::AttachmentsTaken) => {
                self.reply_error(&attachments_taken(), client_id);
            }
            Err(err) => self.reply_error(&err, client_id),
        }
    }

    /// The room a frame is about: the connection's room, or the frame's `room_id` on `/ws/`.
    pub(super) fn target_room(&self, room_id: Option<RoomId>) -> Result<RoomId, AppError> {
        match (&self.scope, room_id) {
            (Scope::Room(room), None) => Ok(room.clone()),
            (Scope::Room(room), Some(given)) if &given == room => Ok(given),
            (Scope::Room(_), Some(_)) => Err(AppError::bad_request(
                "wrong_room",
                "this connection is for another room; use /ws/ for several",
            )),
            (Scope::AllRooms, Some(given)) => Ok(given),
            (Scope::AllRooms, None) => Err(AppError::bad_request(
                "room_required",
                "frames on /ws/ need a room_id",
            )),
        }
    }

    /// Whether a frame other than a message may be handled (see `frame_budget`);
    /// over the budget it is dropped, and the client told once a second.
    pub(super) fn within_budget(&self, budget: &mut FrameBudget) -> bool {
        match budget.spend(Instant::now()) {
            Verdict::Allow => true,
            Verdict::Drop => false,
            Verdict::DropAndWarn => {
                self.reply(Outbound::Frame(error_frame(
                    "rate_limited",
                    "too many frames: typing, receipts, resumes and pings are limited to 20 a second",
                    None,
                )));
                false
            }
        }
    }

    pub(super) async fn on_frame(
        &self,
        ctx: &Services,
        decoded: Result<ClientMsg, DecodeError>,
    ) -> Option<PendingSend> {
        let msg = match decoded {
            Ok(msg) => msg,
            Err(err) => {
                self.reply(Outbound::Frame(error_frame(
                    err.code,
                    &err.message,
                    err.client_id.as_deref(),
                )));
                return None;
            }
        };
        let result = match msg {
            ClientMsg::Message {
                content,
                message_type,
                client_id,
                room_id,
                attachments,
            } => {
                // The server decides a message's type from its attachments;
                // a client may name it, but never `system`.
                if message_type.as_deref().is_some_and(|t| {
                    !MessageType::from_code(t).is_some_and(MessageType::is_user_written)
                }) {
                    let err = AppError::bad_request(
                        "invalid_message_type",
                        "clients send message_type text, image, file, voice or video",
                    );
                    self.reply_error(&err, client_id.as_deref());
                    return None;
                }
                let room = match self.target_room(room_id) {
                    Ok(room) => room,
                    Err(err) => {
                        self.reply_error(&err, client_id.as_deref());
                        return None;
                    }
                };
                let ctx = ctx.clone();
                let sender = self.sender.clone();
                return Some(Box::pin(async move {
                    let result = messages::post(
                        &ctx,
                        &sender,
                        &room,
                        &content,
                        client_id.as_deref(),
                        &attachments,
                    )
                    .await;
                    (client_id, result)
                }));
            }
            ClientMsg::Typing { is_typing, room_id } => match self.target_room(room_id) {
                Ok(room) => {
                    messages::typing(ctx, self.me, &self.sender.username, &room, is_typing).await
                }
                Err(err) => Err(err),
            },
            ClientMsg::Read { up_to_seq, room_id } => match self.target_room(room_id) {
                Ok(room) => {
                    messages::mark_read(ctx, self.me, &room, ReadUpTo::Seq(up_to_seq)).await
                }
                Err(err) => Err(err),
            },
            ClientMsg::ReadStatus {
                message_ids,
                room_id,
            } => match self.target_room(room_id) {
                Ok(room) => {
                    messages::mark_read(ctx, self.me, &room, ReadUpTo::Messages(message_ids)).await
                }
                Err(err) => Err(err),
            },
            ClientMsg::Resume { since_seq, room_id } => match self.target_room(room_id) {
                Ok(room) => match messages::resume_point(ctx, &room, self.me, since_seq).await {
                    Ok(since) => {
                        self.reply(Outbound::ResumeStart {
                            room: room.clone(),
                            since,
                        });
                        self.replay(ctx, &room, since).await
                    }
                    Err(err) => Err(err),
                },
                Err(err) => Err(err),
            },
            ClientMsg::Ping { .. } => {
                self.reply(Outbound::Frame(
                    ServerEvent::Pong {
                        timestamp: now_ms(),
                    }
                    .encode(),
                ));
                Ok(())
            }
            ClientMsg::HeartbeatAck { .. } => Ok(()),
        };
        if let Err(err) = result {
            self.reply_error(&err, None);
        }
        None
    }

    /// Queues the stored messages of `room` after `after`, as this user sees
    /// them, page by page, as resume chunks or gap fills.
    pub(super) async fn send_stored_after(
        &self,
        ctx: &Services,
        room: &RoomId,
        after: i64,
        as_resume: bool,
    ) -> Result<(), AppError> {
        let mut after = after;
        loop {
            let (page, mine, others) = messages::history(
                ctx,
                self.me,
                room,
                Page::After {
                    seq: after,
                    limit: PAGE,
                },
            )
            .await?;
            let Some(last) = page.messages.last() else {
                return Ok(());
            };
            after = last.seq;
            let messages = page
                .messages
                .iter()
                .map(|m| {
                    let view = MessageView::for_viewer(m, self.me, mine, others);
                    (
                        m.seq,
                        ServerEvent::ChatMessage {
                            room_id: room,
                            message: view,
                        }
                        .encode(),
                    )
                })
                .collect();
            let room = room.clone();
            self.send(if as_resume {
                Outbound::ResumeChunk { room, messages }
            } else {
                Outbound::Fill { room, messages }
            })
            .await;
            if !page.has_more {
                return Ok(());
            }
        }
    }

    /// Replays stored messages after `since` and ends with `resume_complete`.
    /// `ResumeStart` must already be queued.
    pub(super) async fn replay(
        &self,
        ctx: &Services,
        room: &RoomId,
        since: i64,
    ) -> Result<(), AppError> {
        let outcome = self.send_stored_after(ctx, room, since, true).await;
        // Always end the resume, or the room's gaps would never be filled.
        self.send(Outbound::ResumeEnd { room: room.clone() }).await;
        outcome
    }

    /// Closes the connection (1008) if the session or token it was opened
    /// with no longer works: its revocation may not have reached this node
    /// (the bus was down), or came before the connection was registered.
    pub(super) async fn recheck_credential(&self, ctx: &Services) {
        let Some(credential) = self.conn_id.and_then(|id| ctx.bus.hub().credential_of(id)) else {
            return;
        };
        match accounts::credential_valid(ctx, self.me, credential).await {
            Ok(true) => {}
            Ok(false) => self.control.close(close::POLICY, SESSION_ENDED),
            Err(err) => tracing::debug!(error = %err, "could not recheck the credential"),
        }
    }

    /// After the bus was down this node may have missed membership changes
    /// made on others: re-read them from the database (the permission cache
    /// was cleared when the bus came back). A room connection that lost access
    /// closes (1008); a `/ws/` connection stops following rooms the user left
    /// and follows rooms they joined, with `room_left` / `room_joined`.
    pub(super) async fn recheck_rooms(&self, ctx: &Services) {
        let Some(conn) = self.conn_id else { return };
        match &self.scope {
            Scope::Room(room) => match rooms::access(ctx, room, self.me).await {
                Ok(_) => {}
                Err(AppError::Forbidden { .. } | AppError::NotFound { .. }) => {
                    self.control
                        .close(close::POLICY, "no longer a member of this room");
                }
                Err(err) => tracing::debug!(error = %err, "could not recheck the room"),
            },
            Scope::AllRooms => {
                // Snapshot first: a room followed after it (a live join) is not
                // taken for one we missed leaving.
                let followed = ctx.bus.hub().rooms_of(conn);
                let member_of = match rooms::ids_of(ctx, self.me).await {
                    Ok(ids) => ids,
                    Err(err) => {
                        tracing::debug!(error = %err, "could not recheck rooms");
                        return;
                    }
                };
                for room in followed.iter().filter(|r| !member_of.contains(r)) {
                    ctx.bus.hub().unfollow_for(conn, room);
                    self.reply(Outbound::Frame(
                        ServerEvent::RoomLeft {
                            room_id: room,
                            reason: Departure::Removed,
                        }
                        .encode(),
                    ));
                }
                let joined: Vec<&RoomId> =
                    member_of.iter().filter(|r| !followed.contains(r)).collect();
                if joined.is_empty() {
                    return;
                }
                for room in &joined {
                    ctx.bus.hub().follow_for(conn, room);
                }
                // A removal committed between the read and the follow would
                // have found nothing to unfollow yet: look once more.
                let still = match rooms::ids_of(ctx, self.me).await {
                    Ok(ids) => ids,
                    Err(err) => {
                        tracing::debug!(error = %err, "could not recheck rooms");
                        for room in &joined {
                            ctx.bus.hub().unfollow_for(conn, room);
                        }
                        return;
                    }
                };
                for room in joined {
                    if !still.contains(room) {
                        ctx.bus.hub().unfollow_for(conn, room);
                        continue;
                    }
                    if let Ok(Some(found)) = rooms::find(ctx, room).await {
                        self.reply(Outbound::Frame(
                            ServerEvent::RoomJoined {
                                room_id: room,
                                room: RoomView::new(&found),
                            }
                            .encode(),
                        ));
                    }
                }
            }
        }
    }

    /// Fetches what the writer is missing (a lasting gap, or a resync).
    pub(super) async fn fill(&self, ctx: &Services, fill: Fill) -> Result<(), AppError> {
        if rooms::access(ctx, &fill.room, self.me).await.is_err() {
            return Ok(());
        }
        self.send_stored_after(ctx, &fill.room, fill.after, false)
            .await
    }

    /// Queues with back-pressure (replays can be long); gives up if the session ends.
    pub(super) async fn send(&self, item: Outbound) {
        tokio::select! {
            _ = self.outbox.push(item) => {}
            () = self.control.cancelled() => {}
        }
    }
}

/// The close code for what went wrong reading a frame: the peer broke the
/// protocol (1002: reserved bits, unknown opcodes, bad fragments), sent text
/// that is not UTF-8 (1007), or a frame over the limit (1009); anything else
/// means the connection itself is gone (1001, which the peer will not see).
pub(super) fn close_for_read_error(err: &axum::Error) -> (u16, &'static str) {
    use std::error::Error as _;
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = source {
        match e.downcast_ref::<tungstenite::Error>() {
            Some(tungstenite::Error::Capacity(_)) => {
                return (close::TOO_BIG, "frame larger than 64 KiB");
            }
            Some(tungstenite::Error::Protocol(_)) => {
                return (close::PROTOCOL_ERROR, "websocket protocol violation");
            }
            Some(tungstenite::Error::Utf8(_)) => {
                return (close::INVALID_PAYLOAD, "text frame is not valid UTF-8");
            }
            _ => {}
        }
        source = e.source();
    }
    (close::GOING_AWAY, "read failed")
}

/// Gaps the writer wants fetched from the store, for the reader. A list and a
/// wake-up rather than a channel: it is almost always empty, and a channel
/// would allocate its buffer for every connection.
#[derive(Default)]
pub(super) struct FillRequests {
    pending: std::sync::Mutex<Pending>,
    ready: tokio::sync::Notify,
}

#[derive(Default)]
pub(super) struct Pending {
    fills: Vec<Fill>,
    /// Membership events may have been missed: re-check the rooms followed.
    recheck: bool,
}

impl FillRequests {
    pub(super) fn push(&self, fill: Fill) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.fills.iter_mut().find(|f| f.room == fill.room) {
            Some(existing) => existing.after = existing.after.min(fill.after),
            None => pending.fills.push(fill),
        }
        drop(pending);
        self.ready.notify_one();
    }

    pub(super) fn recheck(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recheck = true;
        self.ready.notify_one();
    }

    /// Whether to re-check membership, and the gaps to fill.
    pub(super) fn take(&self) -> (bool, Vec<Fill>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        (
            std::mem::take(&mut pending.recheck),
            std::mem::take(&mut pending.fills),
        )
    }
}
