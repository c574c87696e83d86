//! One WebSocket connection: a reader (this task) that decodes frames and calls
//! the services, and a writer task that alone owns the socket's sending half.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::FuturesUnordered;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tracing::Instrument;

use crate::domain::ids::{RoomId, UserId};
use crate::domain::message::{InsertOutcome, Sender};
use crate::domain::time::now_ms;
use crate::domain::user::User;
use crate::error::AppError;
use crate::realtime::delivery::Delivery;
use crate::realtime::hub::{ConnControl, Hub, Outbound, Scope, close};
use crate::realtime::protocol::{ClientMsg, RoomPresence, ServerEvent, UserBrief};
use crate::services::messages::{self, ReadUpTo};
use crate::services::{profiles, rooms};
use crate::state::AppState;
use crate::store::Page;
use crate::views::{MessageView, ProfileView};

/// Messages a client may have waiting for their commit at once; past that the
/// session stops reading until one completes (back-pressure, not buffering).
const MAX_PENDING_SENDS: usize = 64;
/// A write that takes longer than this means the peer is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Stored messages replayed per query when resuming.
const RESUME_PAGE: u32 = 200;

/// Everything decided before the upgrade.
pub struct SessionStart {
    pub user: User,
    pub scope: Scope,
    /// Resume this room from this seq as soon as the connection opens (`?since_seq=`).
    pub since_seq: Option<i64>,
    pub permit: Option<OwnedSemaphorePermit>,
}

type PendingSend = Pin<
    Box<dyn Future<Output = (Option<String>, Result<InsertOutcome, AppError>)> + Send + 'static>,
>;

/// Runs a connection until either side ends it.
pub async fn run(socket: WebSocket, state: AppState, start: SessionStart) {
    let span = tracing::info_span!("ws.session", user_id = %start.user.id, scope = ?start.scope);
    let (sink, stream) = socket.split();
    serve(sink, stream, state, start).instrument(span).await;
}

/// The session over any sink/stream of messages, so it can be driven without a socket.
pub async fn serve<Si, St, E>(sink: Si, stream: St, state: AppState, start: SessionStart)
where
    Si: Sink<Message> + Unpin + Send + 'static,
    St: Stream<Item = Result<Message, E>> + Unpin,
    E: Into<axum::Error>,
{
    let opened = std::time::Instant::now();
    let SessionStart {
        user,
        scope,
        since_seq,
        permit: _permit,
    } = start;
    let user_id = user.id;
    let (tx, rx) = mpsc::channel(state.config.ws_outbound_queue);
    let control = ConnControl::new();

    let mut session = match Session::open(&state, user, scope, tx.clone(), control.clone()).await {
        Ok(session) => session,
        Err(err) => {
            tracing::warn!(error = %err, "could not open session");
            let _ = tx.try_send(Outbound::Frame(error_frame(
                err.code(),
                &err.public_message(),
                None,
            )));
            control.close(close::INTERNAL, "could not open session");
            drop(tx);
            write_loop(sink, user_id, rx, control, state.shutdown.clone()).await;
            return;
        }
    };

    // Resume is queued before registering, so no live message can overtake the replay.
    if let (Scope::Room(room), Some(since)) = (&session.scope, since_seq) {
        let _ = tx.try_send(Outbound::ResumeStart {
            room: room.clone(),
            since,
        });
    }
    session.register(&state).await;
    let writer = state.tasks.spawn(
        write_loop(sink, user_id, rx, control.clone(), state.shutdown.clone()).in_current_span(),
    );
    tracing::info!("websocket connected");

    if let (Scope::Room(room), Some(since)) = (session.scope.clone(), since_seq)
        && let Err(err) = session.replay(&state, &room, since).await
    {
        session.reply_error(&err, None);
    }
    session.read_loop(&state, stream).await;

    let (code, reason) = control.close_reason().unwrap_or((close::NORMAL, "closed"));
    session.unregister(&state).await;
    drop(session);
    drop(tx);
    let _ = writer.await;
    tracing::info!(
        code,
        reason,
        duration_ms = opened.elapsed().as_millis() as u64,
        "websocket closed"
    );
}

struct Session {
    hub: Hub,
    /// Rooms followed at registration (`/ws/`: every room the user belongs to).
    rooms: Vec<RoomId>,
    user: User,
    sender: Arc<Sender>,
    profile: ProfileView,
    scope: Scope,
    tx: mpsc::Sender<Outbound>,
    control: Arc<ConnControl>,
    conn_id: Option<u64>,
}

impl Session {
    /// Loads what the session needs and queues `connection_established` first.
    async fn open(
        state: &AppState,
        user: User,
        scope: Scope,
        tx: mpsc::Sender<Outbound>,
        control: Arc<ConnControl>,
    ) -> Result<Self, AppError> {
        let mut profile = profiles::view(state, &user, Some(&user)).await?;
        profile.is_online = true;
        let heartbeat_interval = state.config.heartbeat_interval.as_secs_f64();
        let brief = UserBrief {
            id: user.id,
            username: &user.username,
            display_name: user.shown_name(),
        };
        let mut rooms = Vec::new();
        let frame = match &scope {
            Scope::Room(room) => {
                rooms.push(room.clone());
                let last_seq = state.store.get_room(room).await?.map_or(0, |r| r.last_seq);
                let mut online = state.hub.present_in_room(room);
                if !online.contains(&user.id) {
                    online.push(user.id);
                }
                ServerEvent::ConnectionEstablished {
                    room_id: Some(room),
                    user: brief,
                    user_profile: &profile,
                    heartbeat_interval,
                    last_seq: Some(last_seq),
                    online: Some(online),
                    rooms: None,
                }
                .encode()
            }
            Scope::AllRooms => {
                let summaries = state.store.list_rooms_for_user(user.id).await?;
                rooms.extend(summaries.iter().map(|s| s.room.id.clone()));
                let presence = summaries
                    .iter()
                    .map(|s| {
                        let mut online = state.hub.present_in_room(&s.room.id);
                        if !online.contains(&user.id) {
                            online.push(user.id);
                        }
                        RoomPresence {
                            room_id: &s.room.id,
                            last_seq: s.room.last_seq,
                            online,
                        }
                    })
                    .collect();
                ServerEvent::ConnectionEstablished {
                    room_id: None,
                    user: brief,
                    user_profile: &profile,
                    heartbeat_interval,
                    last_seq: None,
                    online: None,
                    rooms: Some(presence),
                }
                .encode()
            }
        };
        let _ = tx.try_send(Outbound::Frame(frame));
        Ok(Self {
            hub: state.hub.clone(),
            rooms,
            sender: rooms::sender_of(&user),
            user,
            profile,
            scope,
            tx,
            control,
            conn_id: None,
        })
    }

    /// Joins the hub and announces the user where they just became present.
    async fn register(&mut self, state: &AppState) {
        let rooms = std::mem::take(&mut self.rooms);
        let (id, change) = state.hub.register(
            self.user.id,
            self.scope.clone(),
            rooms,
            self.tx.clone(),
            self.control.clone(),
        );
        self.conn_id = Some(id);
        for room in &change.rooms {
            self.announce_presence(state, room, true);
        }
        // A room joined between loading the list and registering would be
        // missed: look again now that joins reach this connection.
        if self.scope == Scope::AllRooms {
            match state.store.list_room_ids_for_user(self.user.id).await {
                Ok(ids) => {
                    for room in ids {
                        if state.hub.follow_room(self.user.id, &room) {
                            self.announce_presence(state, &room, true);
                        }
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not recheck rooms"),
            }
        }
    }

    fn announce_presence(&self, state: &AppState, room: &RoomId, joined: bool) {
        let (room_id, user_id, username, user_profile) = (
            room,
            self.user.id,
            self.user.username.as_str(),
            &self.profile,
        );
        let frame = if joined {
            ServerEvent::UserJoined {
                room_id,
                user_id,
                username,
                user_profile,
            }
            .encode()
        } else {
            ServerEvent::UserLeft {
                room_id,
                user_id,
                username,
                user_profile,
            }
            .encode()
        };
        state.hub.broadcast(room, &frame, Some(self.user.id));
    }

    async fn unregister(&mut self, state: &AppState) {
        let Some(id) = self.conn_id.take() else {
            return;
        };
        let change = state.hub.unregister(id);
        self.profile.is_online = !change.user_changed;
        for room in &change.rooms {
            if state.typing.stop(room, self.user.id) {
                messages::announce_typing(state, room, self.user.id, &self.user.username, false);
            }
            self.announce_presence(state, room, false);
        }
        if change.user_changed
            && let Err(err) = state.store.update_last_seen(self.user.id, now_ms()).await
        {
            tracing::warn!(error = %err, "could not record last_seen");
        }
    }

    /// Queues a frame for this connection; a full queue means the client is not reading.
    fn reply(&self, item: Outbound) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(item) {
            self.control.close(close::TRY_AGAIN_LATER, "slow consumer");
        }
    }

    fn reply_error(&self, err: &AppError, client_id: Option<&str>) {
        self.reply(Outbound::Frame(error_frame(
            err.code(),
            &err.public_message(),
            client_id,
        )));
    }

    async fn read_loop<St, E>(&mut self, state: &AppState, mut stream: St)
    where
        St: Stream<Item = Result<Message, E>> + Unpin,
        E: Into<axum::Error>,
    {
        let mut pending: FuturesUnordered<PendingSend> = FuturesUnordered::new();
        loop {
            tokio::select! {
                biased;
                () = self.control.cancelled() => break,
                () = state.shutdown.cancelled() => break,
                Some((client_id, result)) = pending.next(), if !pending.is_empty() => {
                    self.on_sent(client_id.as_deref(), result);
                }
                frame = stream.next(), if pending.len() < MAX_PENDING_SENDS => {
                    let Some(frame) = frame else { break };
                    let frame = match frame {
                        Ok(frame) => frame,
                        Err(err) => {
                            let err: axum::Error = err.into();
                            if is_too_big(&err) {
                                self.control.close(close::TOO_BIG, "frame larger than 64 KiB");
                            } else {
                                tracing::debug!(error = %err, "websocket read failed");
                                self.control.close(close::GOING_AWAY, "read failed");
                            }
                            break;
                        }
                    };
                    self.control.mark_received();
                    match frame {
                        Message::Text(text) => {
                            if let Some(send) = self.on_text(state, &text).await {
                                pending.push(send);
                            }
                        }
                        Message::Binary(_) => self.reply(Outbound::Frame(error_frame(
                            "binary_not_supported",
                            "frames must be JSON text",
                            None,
                        ))),
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
    fn on_sent(&self, client_id: Option<&str>, result: Result<InsertOutcome, AppError>) {
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
            Err(err) => self.reply_error(&err, client_id),
        }
    }

    /// The room a frame is about: the connection's room, or the frame's `room_id` on `/ws/`.
    fn target_room(&self, room_id: Option<RoomId>) -> Result<RoomId, AppError> {
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

    async fn on_text(&self, state: &AppState, text: &Utf8Bytes) -> Option<PendingSend> {
        let msg = match ClientMsg::decode(text.as_str()) {
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
            } => {
                if message_type.as_deref().is_some_and(|t| t != "text") {
                    let err = AppError::bad_request(
                        "invalid_message_type",
                        "clients send message_type \"text\"",
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
                let state = state.clone();
                let sender = self.sender.clone();
                return Some(Box::pin(async move {
                    let result =
                        messages::post(&state, &sender, &room, &content, client_id.as_deref())
                            .await;
                    (client_id, result)
                }));
            }
            ClientMsg::Typing { is_typing, room_id } => match self.target_room(room_id) {
                Ok(room) => {
                    messages::typing(state, self.user.id, &self.user.username, &room, is_typing)
                        .await
                }
                Err(err) => Err(err),
            },
            ClientMsg::Read { up_to_seq, room_id } => match self.target_room(room_id) {
                Ok(room) => {
                    messages::mark_read(state, self.user.id, &room, ReadUpTo::Seq(up_to_seq)).await
                }
                Err(err) => Err(err),
            },
            ClientMsg::ReadStatus {
                message_ids,
                room_id,
            } => match self.target_room(room_id) {
                Ok(room) => {
                    messages::mark_read(state, self.user.id, &room, ReadUpTo::Messages(message_ids))
                        .await
                }
                Err(err) => Err(err),
            },
            ClientMsg::Resume { since_seq, room_id } => match self.target_room(room_id) {
                Ok(room) => {
                    self.reply(Outbound::ResumeStart {
                        room: room.clone(),
                        since: since_seq.max(0),
                    });
                    self.replay(state, &room, since_seq.max(0)).await
                }
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

    /// Replays stored messages after `since` (the writer holds live ones meanwhile)
    /// and ends with `resume_complete`. `ResumeStart` must already be queued.
    async fn replay(&self, state: &AppState, room: &RoomId, since: i64) -> Result<(), AppError> {
        let outcome = self.replay_pages(state, room, since).await;
        // Always end the resume, or live messages of the room would stay held.
        self.send(Outbound::ResumeEnd { room: room.clone() }).await;
        outcome
    }

    async fn replay_pages(
        &self,
        state: &AppState,
        room: &RoomId,
        since: i64,
    ) -> Result<(), AppError> {
        let mut after = since;
        loop {
            let (page, mine, others) = messages::history(
                state,
                self.user.id,
                room,
                Page::After {
                    seq: after,
                    limit: RESUME_PAGE,
                },
            )
            .await?;
            let Some(last) = page.messages.last() else {
                return Ok(());
            };
            after = last.seq;
            let frames = page
                .messages
                .iter()
                .map(|m| {
                    let view = MessageView::for_viewer(m, self.user.id, mine, others);
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
            self.send(Outbound::ResumeChunk {
                room: room.clone(),
                messages: frames,
            })
            .await;
            if !page.has_more {
                return Ok(());
            }
        }
    }

    /// Queues with back-pressure (resume can be long); gives up if the session ends.
    async fn send(&self, item: Outbound) {
        tokio::select! {
            _ = self.tx.send(item) => {}
            () = self.control.cancelled() => {}
        }
    }
}

impl Drop for Session {
    /// A session that panicked still leaves the hub.
    fn drop(&mut self) {
        if let Some(id) = self.conn_id.take() {
            self.hub.unregister(id);
        }
    }
}

fn error_frame(code: &str, message: &str, client_id: Option<&str>) -> Utf8Bytes {
    ServerEvent::Error {
        code,
        message,
        client_id,
    }
    .encode()
}

fn is_too_big(err: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source: Option<&(dyn std::error::Error + 'static)> = err.source();
    while let Some(e) = source {
        if let Some(tungstenite::Error::Capacity(_)) = e.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = e.source();
    }
    false
}

/// The only task that writes to the socket.
async fn write_loop<Si>(
    mut sink: Si,
    me: UserId,
    mut rx: mpsc::Receiver<Outbound>,
    control: Arc<ConnControl>,
    shutdown: tokio_util::sync::CancellationToken,
) where
    Si: Sink<Message> + Unpin,
{
    let mut delivery = Delivery::default();
    let mut out: Vec<Utf8Bytes> = Vec::with_capacity(16);
    let (code, reason) = loop {
        tokio::select! {
            biased;
            () = control.cancelled() => break control.close_reason().unwrap_or((close::NORMAL, "closed")),
            () = shutdown.cancelled() => {
                // Deliver what is already queued, then ask clients to reconnect elsewhere.
                while let Ok(item) = rx.try_recv() {
                    let _ping = apply(&mut delivery, me, item, &mut out);
                }
                if write_all(&mut sink, &mut out).await.is_err() {
                    return;
                }
                break (close::RESTART, "server restarting");
            }
            item = rx.recv() => {
                let Some(item) = item else { break (close::NORMAL, "closed") };
                let mut ping = apply(&mut delivery, me, item, &mut out).is_some();
                // Write whatever else is queued in the same flush.
                while out.len() < 64 {
                    match rx.try_recv() {
                        Ok(item) => ping |= apply(&mut delivery, me, item, &mut out).is_some(),
                        Err(_) => break,
                    }
                }
                if ping && feed(&mut sink, Message::Ping(Default::default())).await.is_err() {
                    control.close(close::GOING_AWAY, "write failed");
                    return;
                }
                if write_all(&mut sink, &mut out).await.is_err() {
                    control.close(close::GOING_AWAY, "write failed");
                    return;
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

/// Applies one queued item; `Some(())` if it asks for a WebSocket ping.
fn apply(
    delivery: &mut Delivery,
    me: UserId,
    item: Outbound,
    out: &mut Vec<Utf8Bytes>,
) -> Option<()> {
    match item {
        Outbound::Frame(frame) => out.push(frame),
        Outbound::Chat { room, messages } => {
            for message in messages.iter() {
                delivery.live(&room, message.seq, message.for_user(me).clone(), out);
            }
        }
        Outbound::Tick(frame) => {
            out.push(frame);
            return Some(());
        }
        Outbound::ResumeStart { room, since } => delivery.resume_start(room, since),
        Outbound::ResumeChunk { room, messages } => delivery.resume_chunk(&room, messages, out),
        Outbound::ResumeEnd { room } => {
            let (last_seq, replayed) = delivery.resume_end(&room, out);
            out.push(
                ServerEvent::ResumeComplete {
                    room_id: &room,
                    last_seq,
                    replayed,
                }
                .encode(),
            );
        }
    }
    None
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
