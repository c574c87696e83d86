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

use crate::bus::hub::{ConnControl, Hub, Presence, SESSION_ENDED, Scope, close};
use crate::bus::outbox::{Outbound, Outbox, Refused};
use crate::domain::ids::Credential;
use crate::domain::ids::{RoomId, UserId};
use crate::domain::message::{InsertOutcome, Sender};
use crate::domain::time::now_ms;
use crate::domain::user::User;
use crate::error::AppError;
use crate::events::{Departure, RoomPresence, ServerEvent, UserBrief};
use crate::realtime::delivery::{Delivery, Fill};
use crate::realtime::frame_budget::{FrameBudget, Verdict};
use crate::realtime::protocol::{ClientMsg, DecodeError};
use crate::realtime::user_slots::UserSlot;
use crate::services::Services;
use crate::services::messages::{self, ReadUpTo};
use crate::services::{accounts, presence, profiles, rooms};
use crate::store::Page;
use crate::views::{MessageView, ProfileView, RoomView};

/// Messages a client may have waiting for their commit at once; past that the
/// session stops reading until one completes (back-pressure, not buffering).
mod reading;
mod writing;

use reading::FillRequests;
use writing::Writer;

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
    pub ctx: Services,
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
    let Opening { ctx, start } = {
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
    let Some(mut session) = Box::pin(Session::start(&ctx, start, sink)).await else {
        return;
    };
    session.read_loop(&ctx, stream).await;
    Box::pin(session.finish(&ctx)).await;
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
    async fn start<Si>(ctx: &Services, start: SessionStart, sink: Si) -> Option<Self>
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
        let outbox = Outbox::new(ctx.config.ws_outbound_queue);
        let fills = Arc::new(FillRequests::default());
        let control = ConnControl::new();
        control.set_expires_at(expires_at);
        let writer = Writer {
            me: user_id,
            outbox: outbox.clone(),
            fills: fills.clone(),
            control: control.clone(),
            shutdown: ctx.shutdown.clone(),
        };
        let opened = Self::open(
            ctx,
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
        let arrival = session.register(ctx, credential).await;
        session.writer = Some(ctx.tasks.spawn(writer.run(sink).in_current_span()));
        session.arrive(ctx, arrival).await;
        // A revocation committed after the upgrade was authenticated, but before
        // the hub knew this connection, found nothing here to close: look again
        // if there was any revocation meanwhile.
        if ctx.bus.hub().revocations() != revocations_before {
            session.recheck_credential(ctx).await;
        }
        tracing::info!(%user_id, "websocket connected");

        match (session.scope.clone(), since_seq) {
            (Scope::Room(room), Some(since)) => {
                if let Err(err) = session.replay(ctx, &room, since).await {
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
    async fn finish(mut self, ctx: &Services) {
        let (code, reason) = match self.control.close_reason() {
            Some(reason) => reason,
            None if ctx.shutdown.is_cancelled() => (close::RESTART, "server restarting"),
            None => (close::NORMAL, "closed"),
        };
        self.unregister(ctx).await;
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
        ctx: &Services,
        user: User,
        scope: Scope,
        since_seq: Option<i64>,
        outbox: Arc<Outbox>,
        control: Arc<ConnControl>,
        fills: Arc<FillRequests>,
    ) -> Result<Self, AppError> {
        let mut profile = profiles::view(ctx, &user, Some(&user)).await?;
        profile.is_online = true;
        let heartbeat_interval = ctx.config.heartbeat_interval.as_secs_f64();
        let brief = UserBrief {
            id: user.id,
            username: &user.username,
            display_name: user.shown_name(),
        };

        // (room, last seq) for every room this connection follows.
        let positions: Vec<(RoomId, i64)> = match &scope {
            Scope::Room(room) => vec![(room.clone(), rooms::last_seq(ctx, room).await?)],
            Scope::AllRooms => rooms::positions_of(ctx, user.id).await?,
        };
        let mut online_by_room = Vec::with_capacity(positions.len());
        let mut everyone = HashSet::new();
        for (room, _) in &positions {
            let members = rooms::member_ids(ctx, room).await?;
            everyone.extend(members.iter().copied());
            online_by_room.push(members);
        }
        let everyone: Vec<UserId> = everyone.into_iter().collect();
        let mut online = ctx.bus.online(&everyone).await;
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
            hub: ctx.bus.hub().clone(),
            conn_id: None,
            writer: None,
            opened: Instant::now(),
            _tickets: None,
        })
    }

    /// Joins the hub; announces the user if this is their first connection anywhere.
    /// Joins the hub and records the user as online; what is left to do once
    /// the writer runs is in the returned [`Arrival`].
    async fn register(&mut self, ctx: &Services, credential: Credential) -> Arrival {
        let rooms = std::mem::take(&mut self.rooms);
        let followed = rooms.clone();
        let (id, first_here) = ctx.bus.hub().register(
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
            Some(profile) if ctx.bus.came_online(self.me).await => Some(profile),
            _ => None,
        };
        Arrival { followed, announce }
    }

    /// Announces the user's arrival (if it is one) and follows rooms joined
    /// while the connection opened. Runs while the writer already delivers:
    /// with thousands of rooms this takes a while, and meanwhile the outbox
    /// must drain, or the connection would look like a slow reader.
    async fn arrive(&self, ctx: &Services, arrival: Arrival) {
        let Arrival { followed, announce } = arrival;
        if let Some(profile) = announce {
            let rooms = presence::rooms_to_tell(ctx, self.me, &followed).await;
            presence::announce(ctx, &rooms, self.me, &self.sender.username, &profile, true);
        }
        // A room joined between loading the list and registering would be
        // missed: look again now that joins reach this connection.
        if self.scope == Scope::AllRooms {
            match rooms::ids_of(ctx, self.me).await {
                Ok(ids) => {
                    for room in ids.iter().filter(|r| !followed.contains(r)) {
                        ctx.bus.hub().follow_room(self.me, room);
                    }
                }
                Err(err) => tracing::warn!(error = %err, "could not recheck rooms"),
            }
        }
    }

    /// Leaves the hub. If this was the user's last connection here, they leave
    /// once `--presence-grace` has passed without them coming back (announced
    /// by the shared timer, see `presence::depart`), or now without one.
    async fn unregister(&mut self, ctx: &Services) {
        let Some(id) = self.conn_id.take() else {
            return;
        };
        let grace = ctx.config.presence_grace;
        let depart_at = (!grace.is_zero()).then(|| Instant::now() + grace);
        let (rooms, presence) = ctx.bus.hub().unregister(id, depart_at);
        for room in &rooms {
            if ctx.typing.stop(room, self.me) {
                messages::announce_typing(ctx, room, self.me, &self.sender.username, false);
            }
        }
        if presence == Presence::Leaves {
            presence::depart(ctx, self.me, &rooms).await;
        }
    }

    /// Queues a frame for this connection; a full queue means the client is not reading.
    fn reply(&self, item: Outbound) {
        if let Err(Refused::Full) = self.outbox.try_push(item) {
            self.control.close(close::TRY_AGAIN_LATER, "slow consumer");
        }
    }

    /// Reports an error for a frame that started nothing.
    fn reply_error(&self, err: &AppError, client_id: Option<&str>) {
        self.reply(Outbound::Frame(error_frame(
            err.code(),
            &err.public_message(),
            client_id,
        )));
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
