//! One WebSocket connection: a reader (this task) that decodes frames and calls
//! the services, and a writer task that alone owns the socket's sending half.
//! The writer delivers each room's messages exactly once and in seq order
//! (see `delivery`); when a gap lasts, it asks the reader to fetch the missing
//! messages from the database.

use std::collections::{HashSet, VecDeque};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::stream::FuturesUnordered;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::domain::ids::{RoomId, UserId};
use crate::domain::message::{InsertOutcome, Sender};
use crate::domain::time::now_ms;
use crate::domain::user::User;
use crate::error::AppError;
use crate::realtime::delivery::{Delivery, Fill};
use crate::realtime::frame_budget::{FrameBudget, Verdict};
use crate::realtime::hub::{
    ConnControl, Credential, Hub, Outbound, Presence, SESSION_ENDED, Scope, close,
};
use crate::realtime::outbox::{Outbox, Refused};
use crate::realtime::protocol::{ClientMsg, DecodeError, RoomPresence, ServerEvent, UserBrief};
use crate::realtime::user_slots::UserSlot;
use crate::services::messages::{self, ReadUpTo};
use crate::services::{accounts, presence, profiles, rooms};
use crate::state::AppState;
use crate::store::Page;
use crate::views::{MessageView, ProfileView, RoomView};

/// Messages a client may have waiting for their commit at once; past that the
/// session stops reading until one completes (back-pressure, not buffering).
const MAX_PENDING_SENDS: usize = 64;
/// Most frames written before a flush.
const WRITE_BATCH: usize = 64;
/// A write that takes longer than this means the peer is gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Stored messages read per query when resuming or filling a gap.
const PAGE: u32 = 200;

/// What is left of opening once the connection is in the hub.
struct Arrival {
    /// The rooms the connection followed when it registered.
    followed: Vec<RoomId>,
    /// The user's profile, if their arrival is to be announced.
    announce: Option<Box<ProfileView>>,
}

/// Everything decided before the upgrade.
pub struct SessionStart {
    pub user: User,
    /// The session or token the upgrade was authenticated with: revoking it
    /// closes the connection.
    pub credential: Credential,
    /// When that stops working, Unix ms (`i64::MAX` for API tokens).
    pub expires_at: i64,
    pub scope: Scope,
    /// Resume this room from this seq as soon as the connection opens (`?since_seq=`).
    pub since_seq: Option<i64>,
    /// `Hub::revocations` before the credential was checked.
    pub revocations_before: u64,
    pub tickets: Option<Tickets>,
}

/// A connection's places in the server's limits, held until it ends.
pub struct Tickets {
    /// One of the server's `--max-connections`.
    pub permit: OwnedSemaphorePermit,
    /// One of the user's `--max-connections-per-user`.
    pub user_slot: UserSlot,
}

type PendingSend = Pin<
    Box<dyn Future<Output = (Option<String>, Result<InsertOutcome, AppError>)> + Send + 'static>,
>;

/// What a connection task starts from, boxed: a task's future keeps its
/// arguments for as long as it runs, and this one runs as long as the
/// connection (memory per idle connection is what limits how many we hold).
pub struct Opening {
    pub state: AppState,
    pub start: SessionStart,
}

/// Runs a connection until either side ends it.
pub async fn run(socket: Box<WebSocket>, opening: Box<Opening>) {
    // A debug span: an info span would cost every idle connection a few hundred bytes.
    let span = tracing::debug_span!(
        "ws.session",
        user_id = %opening.start.user.id,
        scope = ?opening.start.scope
    );
    serve(socket, opening).instrument(span).await;
}

/// Ends a connection that may not open: an `error` frame saying why, then
/// the close frame. The permit keeps the connection counted until it is gone.
pub async fn refuse(
    mut socket: WebSocket,
    code: u16,
    error_code: &'static str,
    message: String,
    permit: OwnedSemaphorePermit,
) {
    let frame = error_frame(error_code, &message, None);
    let close = CloseFrame {
        code,
        reason: Utf8Bytes::from(message),
    };
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        socket.send(Message::Text(frame)).await?;
        socket.send(Message::Close(Some(close))).await
    })
    .await;
    drop(permit);
}

async fn serve(socket: Box<WebSocket>, opening: Box<Opening>) {
    // Moved out inside blocks, so that the boxes are freed now rather than
    // when the connection ends (a box moved out of lives to the end of its scope).
    let Opening { state, start } = {
        let opening = opening;
        *opening
    };
    let (sink, stream) = {
        let socket = socket;
        *socket
    }
    .split();
    // Futures that run once are boxed: their state would otherwise stay in
    // this long-lived future, making every idle connection bigger.
    let Some(mut session) = Box::pin(Session::start(&state, start, sink)).await else {
        return;
    };
    session.read_loop(&state, stream).await;
    Box::pin(session.finish(&state)).await;
}

struct Session {
    /// Rooms followed at registration (`/ws/`: every room the user belongs to).
    rooms: Vec<RoomId>,
    me: UserId,
    sender: Arc<Sender>,
    /// How others see this user (no e-mail), to announce the arrival; dropped
    /// once announced (memory per connection matters), rebuilt for a departure.
    profile: Option<Box<ProfileView>>,
    scope: Scope,
    outbox: Arc<Outbox>,
    control: Arc<ConnControl>,
    /// Gaps the writer wants filled from the store.
    fills: Arc<FillRequests>,
    hub: Hub,
    conn_id: Option<u64>,
    writer: Option<JoinHandle<()>>,
    opened: Instant,
    /// The connection's places in the limits, held until the session ends.
    _tickets: Option<Tickets>,
}

impl Session {
    /// Opens the session: loads and queues what the client gets first, joins
    /// the hub and starts the writer. `None` if it could not open (the client
    /// was told, and the connection is closed).
    async fn start<Si>(state: &AppState, start: SessionStart, sink: Si) -> Option<Self>
    where
        Si: Sink<Message> + Unpin + Send + 'static,
    {
        let SessionStart {
            user,
            credential,
            expires_at,
            scope,
            since_seq,
            revocations_before,
            tickets,
        } = start;
        let user_id = user.id;
        let outbox = Outbox::new(state.config.ws_outbound_queue);
        let fills = Arc::new(FillRequests::default());
        let control = ConnControl::new();
        control.set_expires_at(expires_at);
        let writer = Writer {
            me: user_id,
            outbox: outbox.clone(),
            fills: fills.clone(),
            control: control.clone(),
            shutdown: state.shutdown.clone(),
        };
        let opened = Self::open(
            state,
            user,
            scope,
            since_seq,
            outbox.clone(),
            control.clone(),
            fills,
        )
        .await;
        let mut session = match opened {
            Ok(session) => session,
            Err(err) => {
                tracing::warn!(error = %err, "could not open session");
                let _ = outbox.try_push(Outbound::Frame(error_frame(
                    err.code(),
                    &err.public_message(),
                    None,
                )));
                control.close(close::INTERNAL, "could not open session");
                outbox.close();
                writer.run(sink).await;
                return None;
            }
        };
        session._tickets = tickets;
        let arrival = session.register(state, credential).await;
        session.writer = Some(state.tasks.spawn(writer.run(sink).in_current_span()));
        session.arrive(state, arrival).await;
        // A revocation committed after the upgrade was authenticated, but before
        // the hub knew this connection, found nothing here to close: look again
        // if there was any revocation meanwhile.
        if state.hub.revocations() != revocations_before {
            session.recheck_credential(state).await;
        }
        tracing::info!(%user_id, "websocket connected");

        match (session.scope.clone(), since_seq) {
            (Scope::Room(room), Some(since)) => {
                if let Err(err) = session.replay(state, &room, since).await {
                    session.reply_error(&err, None);
                }
            }
            // A message committed after the room positions were read but before
            // the hub knew this connection would otherwise wait for the next one.
            _ => session.reply(Outbound::Resync { membership: false }),
        }
        Some(session)
    }

    /// Leaves the hub, lets the writer send what is queued and the close frame, and logs the end.
    async fn finish(mut self, state: &AppState) {
        let (code, reason) = match self.control.close_reason() {
            Some(reason) => reason,
            None if state.shutdown.is_cancelled() => (close::RESTART, "server restarting"),
            None => (close::NORMAL, "closed"),
        };
        self.unregister(state).await;
        self.outbox.close();
        if let Some(writer) = self.writer.take() {
            let _ = writer.await;
        }
        tracing::info!(
            code,
            reason,
            user_id = %self.me,
            duration_ms = self.opened.elapsed().as_millis() as u64,
            "websocket closed"
        );
    }

    /// Loads what the session needs and queues, before anything else can reach
    /// the connection, `connection_established` and where each room starts.
    async fn open(
        state: &AppState,
        user: User,
        scope: Scope,
        since_seq: Option<i64>,
        outbox: Arc<Outbox>,
        control: Arc<ConnControl>,
        fills: Arc<FillRequests>,
    ) -> Result<Self, AppError> {
        let mut profile = profiles::view(state, &user, Some(&user)).await?;
        profile.is_online = true;
        let heartbeat_interval = state.config.heartbeat_interval.as_secs_f64();
        let brief = UserBrief {
            id: user.id,
            username: &user.username,
            display_name: user.shown_name(),
        };

        // (room, last seq) for every room this connection follows.
        let positions: Vec<(RoomId, i64)> = match &scope {
            Scope::Room(room) => {
                vec![(
                    room.clone(),
                    state.store.get_room(room).await?.map_or(0, |r| r.last_seq),
                )]
            }
            Scope::AllRooms => state
                .store
                .list_rooms_for_user(user.id)
                .await?
                .into_iter()
                .map(|s| (s.room.id, s.room.last_seq))
                .collect(),
        };
        let mut online_by_room = Vec::with_capacity(positions.len());
        let mut everyone = HashSet::new();
        for (room, _) in &positions {
            let members: Vec<UserId> = match state.rooms.get(&state.store, room).await? {
                Some(access) => access.members.keys().copied().collect(),
                None => Vec::new(),
            };
            everyone.extend(members.iter().copied());
            online_by_room.push(members);
        }
        let everyone: Vec<UserId> = everyone.into_iter().collect();
        let mut online = state.cluster.online(&everyone).await;
        online.insert(user.id);
        let online_in = |members: &[UserId]| {
            let mut list: Vec<UserId> = members
                .iter()
                .copied()
                .filter(|m| online.contains(m))
                .collect();
            if !list.contains(&user.id) {
                list.push(user.id);
            }
            list
        };

        let frame = match &scope {
            Scope::Room(room) => ServerEvent::ConnectionEstablished {
                room_id: Some(room),
                user: brief,
                user_profile: &profile,
                heartbeat_interval,
                last_seq: Some(positions[0].1),
                online: Some(online_in(&online_by_room[0])),
                rooms: None,
            }
            .encode(),
            Scope::AllRooms => ServerEvent::ConnectionEstablished {
                room_id: None,
                user: brief,
                user_profile: &profile,
                heartbeat_interval,
                last_seq: None,
                online: None,
                rooms: Some(
                    positions
                        .iter()
                        .zip(&online_by_room)
                        .map(|((room_id, last_seq), members)| RoomPresence {
                            room_id,
                            last_seq: *last_seq,
                            online: online_in(members),
                        })
                        .collect(),
                ),
            }
            .encode(),
        };
        // The queue is not yet registered anywhere: these are the first items
        // in it, and the only ones. However many rooms the user is in, where
        // they start is one item, so opening never looks like a slow reader.
        let _ = outbox.try_push(Outbound::Frame(frame));
        profile.email = None;
        let start = match (&scope, since_seq) {
            // A resume replays from the client's seq instead (never past the
            // room's end: a stale client must not skip future messages).
            (Scope::Room(room), Some(since)) => Outbound::ResumeStart {
                room: room.clone(),
                since: since.min(positions[0].1),
            },
            _ => Outbound::StartAfter(positions.clone()),
        };
        let _ = outbox.try_push(start);
        Ok(Self {
            rooms: positions.into_iter().map(|(room, _)| room).collect(),
            me: user.id,
            sender: rooms::sender_of(&user),
            profile: Some(Box::new(profile)),
            scope,
            outbox,
            control,
            fills,
            hub: state.hub.clone(),
            conn_id: None,
            writer: None,
            opened: Instant::now(),
            _tickets: None,
        })
    }

    /// Joins the hub; announces the user if this is their first connection anywhere.
    /// Joins the hub and records the user as online; what is left to do once
    /// the writer runs is in the returned [`Arrival`].
    async fn register(&mut self, state: &AppState, credential: Credential) -> Arrival {
        let rooms = std::mem::take(&mut self.rooms);
        let followed = rooms.clone();
        let (id, first_here) = state.hub.register(
            self.me,
            self.scope.clone(),
            rooms,
            self.outbox.clone(),
            self.control.clone(),
            credential,
        );
        self.conn_id = Some(id);
        let profile = self.profile.take();
        let announce = match profile.filter(|_| first_here) {
            Some(profile) if state.cluster.came_online(self.me).await => Some(profile),
            _ => None,
        };
        Arrival { followed, announce }
    }

    /// Announces the user's arrival (if it is one) and follows rooms joined
    /// while the connection opened. Runs while the writer already delivers:
    /// with thousands of rooms this takes a while, and meanwhile the outbox
    /// must drain, or the connection would look like a slow reader.
    async fn arrive(&self, state: &AppState, arrival: Arrival) {
        let Arrival { followed, announce } = arrival;
        if let Some(profile) = announce {
            let rooms = presence::rooms_to_tell(state, self.me, &followed).await;
            presence::announce(
                state,
                &rooms,
                self.me,
                &self.sender.username,
                &profile,
                true,
            );
        }
        // A room joined between loading the list and registering would be
        // missed: look again now that joins reach this connection.
        if self.scope == Scope::AllRooms {
            match state.store.list_room_ids_for_user(self.me).await {
                Ok(ids) => {
                    for room in ids.iter().filter(|r| !followed.contains(r)) {
                        state.hub.follow_room(self.me, room);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not recheck rooms"),
            }
        }
    }

    /// Leaves the hub. If this was the user's last connection here, they leave
    /// once `--presence-grace` has passed without them coming back (announced
    /// by the shared timer, see `presence::depart`), or now without one.
    async fn unregister(&mut self, state: &AppState) {
        let Some(id) = self.conn_id.take() else {
            return;
        };
        let grace = state.config.presence_grace;
        let depart_at = (!grace.is_zero()).then(|| Instant::now() + grace);
        let (rooms, presence) = state.hub.unregister(id, depart_at);
        for room in &rooms {
            if state.typing.stop(room, self.me) {
                messages::announce_typing(state, room, self.me, &self.sender.username, false);
            }
        }
        if presence == Presence::Leaves {
            presence::depart(state, self.me, &rooms).await;
        }
    }

    /// Queues a frame for this connection; a full queue means the client is not reading.
    fn reply(&self, item: Outbound) {
        if let Err(Refused::Full) = self.outbox.try_push(item) {
            self.control.close(close::TRY_AGAIN_LATER, "slow consumer");
        }
    }

    /// Reports an error for a frame that started nothing.
    fn fail(&self, err: AppError) -> Option<PendingSend> {
        self.reply_error(&err, None);
        None
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
        let mut budget = FrameBudget::new(Instant::now());
        loop {
            tokio::select! {
                biased;
                () = self.control.cancelled() => break,
                () = state.shutdown.cancelled() => break,
                Some((client_id, result)) = pending.next(), if !pending.is_empty() => {
                    self.on_sent(client_id.as_deref(), result);
                }
                () = self.fills.ready.notified() => {
                    let (recheck, due) = self.fills.take();
                    if recheck {
                        Box::pin(self.recheck_credential(state)).await;
                        if !self.control.is_closed() {
                            Box::pin(self.recheck_rooms(state)).await;
                        }
                    }
                    for fill in due {
                        if let Err(err) = Box::pin(self.fill(state, fill)).await {
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
                            if let Some(send) = Box::pin(self.on_frame(state, decoded)).await {
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

    /// Whether a frame other than a message may be handled (see `frame_budget`);
    /// over the budget it is dropped, and the client told once a second.
    fn within_budget(&self, budget: &mut FrameBudget) -> bool {
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

    async fn on_frame(
        &self,
        state: &AppState,
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
                    messages::typing(state, self.me, &self.sender.username, &room, is_typing).await
                }
                Err(err) => Err(err),
            },
            ClientMsg::Read { up_to_seq, room_id } => match self.target_room(room_id) {
                Ok(room) => {
                    messages::mark_read(state, self.me, &room, ReadUpTo::Seq(up_to_seq)).await
                }
                Err(err) => Err(err),
            },
            ClientMsg::ReadStatus {
                message_ids,
                room_id,
            } => match self.target_room(room_id) {
                Ok(room) => {
                    messages::mark_read(state, self.me, &room, ReadUpTo::Messages(message_ids))
                        .await
                }
                Err(err) => Err(err),
            },
            ClientMsg::Resume { since_seq, room_id } => match self.target_room(room_id) {
                Ok(room) => match rooms::access(state, &room, self.me).await {
                    Ok(_) => {
                        // Never past the room's end: a stale client must not skip future messages.
                        let last = match state.store.get_room(&room).await {
                            Ok(found) => found.map_or(0, |r| r.last_seq),
                            Err(err) => return self.fail(err.into()),
                        };
                        let since = since_seq.clamp(0, last);
                        self.reply(Outbound::ResumeStart {
                            room: room.clone(),
                            since,
                        });
                        self.replay(state, &room, since).await
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
    async fn send_stored_after(
        &self,
        state: &AppState,
        room: &RoomId,
        after: i64,
        as_resume: bool,
    ) -> Result<(), AppError> {
        let mut after = after;
        loop {
            let (page, mine, others) = messages::history(
                state,
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
    async fn replay(&self, state: &AppState, room: &RoomId, since: i64) -> Result<(), AppError> {
        let outcome = self.send_stored_after(state, room, since, true).await;
        // Always end the resume, or the room's gaps would never be filled.
        self.send(Outbound::ResumeEnd { room: room.clone() }).await;
        outcome
    }

    /// Closes the connection (1008) if the session or token it was opened
    /// with no longer works: its revocation may not have reached this node
    /// (the bus was down), or came before the connection was registered.
    async fn recheck_credential(&self, state: &AppState) {
        let Some(credential) = self.conn_id.and_then(|id| state.hub.credential_of(id)) else {
            return;
        };
        match accounts::credential_valid(state, self.me, credential).await {
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
    async fn recheck_rooms(&self, state: &AppState) {
        let Some(conn) = self.conn_id else { return };
        match &self.scope {
            Scope::Room(room) => match rooms::access(state, room, self.me).await {
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
                let followed = state.hub.rooms_of(conn);
                let member_of = match state.store.list_room_ids_for_user(self.me).await {
                    Ok(ids) => ids,
                    Err(err) => {
                        tracing::debug!(error = %err, "could not recheck rooms");
                        return;
                    }
                };
                for room in followed.iter().filter(|r| !member_of.contains(r)) {
                    state.hub.unfollow_for(conn, room);
                    self.reply(Outbound::Frame(
                        ServerEvent::RoomLeft {
                            room_id: room,
                            reason: "removed",
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
                    state.hub.follow_for(conn, room);
                }
                // A removal committed between the read and the follow would
                // have found nothing to unfollow yet: look once more.
                let still = match state.store.list_room_ids_for_user(self.me).await {
                    Ok(ids) => ids,
                    Err(err) => {
                        tracing::debug!(error = %err, "could not recheck rooms");
                        for room in &joined {
                            state.hub.unfollow_for(conn, room);
                        }
                        return;
                    }
                };
                for room in joined {
                    if !still.contains(room) {
                        state.hub.unfollow_for(conn, room);
                        continue;
                    }
                    if let Ok(Some(found)) = state.store.get_room(room).await {
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
    async fn fill(&self, state: &AppState, fill: Fill) -> Result<(), AppError> {
        if rooms::access(state, &fill.room, self.me).await.is_err() {
            return Ok(());
        }
        self.send_stored_after(state, &fill.room, fill.after, false)
            .await
    }

    /// Queues with back-pressure (replays can be long); gives up if the session ends.
    async fn send(&self, item: Outbound) {
        tokio::select! {
            _ = self.outbox.push(item) => {}
            () = self.control.cancelled() => {}
        }
    }
}

impl Drop for Session {
    /// A session that panicked still leaves the hub, and its writer still ends.
    fn drop(&mut self) {
        if let Some(id) = self.conn_id.take() {
            self.hub.unregister(id, None);
        }
        self.outbox.close();
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

/// The close code for what went wrong reading a frame: the peer broke the
/// protocol (1002: reserved bits, unknown opcodes, bad fragments), sent text
/// that is not UTF-8 (1007), or a frame over the limit (1009); anything else
/// means the connection itself is gone (1001, which the peer will not see).
fn close_for_read_error(err: &axum::Error) -> (u16, &'static str) {
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
struct FillRequests {
    pending: std::sync::Mutex<Pending>,
    ready: tokio::sync::Notify,
}

#[derive(Default)]
struct Pending {
    fills: Vec<Fill>,
    /// Membership events may have been missed: re-check the rooms followed.
    recheck: bool,
}

impl FillRequests {
    fn push(&self, fill: Fill) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        match pending.fills.iter_mut().find(|f| f.room == fill.room) {
            Some(existing) => existing.after = existing.after.min(fill.after),
            None => pending.fills.push(fill),
        }
        drop(pending);
        self.ready.notify_one();
    }

    fn recheck(&self) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recheck = true;
        self.ready.notify_one();
    }

    /// Whether to re-check membership, and the gaps to fill.
    fn take(&self) -> (bool, Vec<Fill>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        (
            std::mem::take(&mut pending.recheck),
            std::mem::take(&mut pending.fills),
        )
    }
}

/// The only task that writes to the socket.
struct Writer {
    me: UserId,
    outbox: Arc<Outbox>,
    /// Gaps to fetch from the store, for the reader.
    fills: Arc<FillRequests>,
    control: Arc<ConnControl>,
    shutdown: CancellationToken,
}

impl Writer {
    async fn run<Si: Sink<Message> + Unpin>(self, mut sink: Si) {
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
