//! The in-process hub: which local WebSocket connections follow which rooms,
//! which users have connections here, and fan-out of pre-serialized frames.
//!
//! Fan-out never waits: each connection has a bounded queue and a full queue
//! marks a slow consumer, which is closed (1013) instead of delaying the others.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use tokio_util::sync::CancellationToken;

use crate::domain::ids::{RoomId, SessionKey, TokenId, UserId};
use crate::domain::time::now_ms;
use crate::realtime::outbox::{Outbox, Refused};

pub type ConnId = u64;

/// What a connection's writer is asked to do.
#[derive(Debug)]
pub enum Outbound {
    /// Send this frame as it is.
    Frame(Utf8Bytes),
    /// Committed chat messages of one room, ascending (one commit's worth): each
    /// is sent unless this connection already delivered its seq.
    Chat {
        room: RoomId,
        messages: Arc<[ChatFrame]>,
    },
    /// Heartbeat: send a WebSocket ping and this `heartbeat` frame.
    Tick(Utf8Bytes),
    /// The client has these rooms up to these seqs: deliver what follows, in order.
    StartAfter(Vec<(RoomId, i64)>),
    /// A resume began: stored messages after `since` follow as chunks.
    ResumeStart { room: RoomId, since: i64 },
    /// Stored messages being replayed, ascending.
    ResumeChunk {
        room: RoomId,
        messages: Vec<(i64, Utf8Bytes)>,
    },
    /// Replay finished: send `resume_complete`.
    ResumeEnd { room: RoomId },
    /// Stored messages fetched to fill a gap, ascending.
    Fill {
        room: RoomId,
        messages: Vec<(i64, Utf8Bytes)>,
    },
    /// Messages may have been missed: re-check every room against the store.
    /// With `membership`, membership changes may have been missed too (the bus
    /// was down): re-check which rooms the connection may follow.
    Resync { membership: bool },
}

/// A committed message serialized for its sender (`is_own: true`) and for everyone else.
#[derive(Debug)]
pub struct ChatFrame {
    pub seq: i64,
    pub sender: Option<UserId>,
    pub own: Utf8Bytes,
    pub others: Utf8Bytes,
}

impl ChatFrame {
    /// The copy meant for `user`.
    pub fn for_user(&self, user: UserId) -> &Utf8Bytes {
        if self.sender == Some(user) {
            &self.own
        } else {
            &self.others
        }
    }
}

/// Close codes the server uses.
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_PAYLOAD: u16 = 1007;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const RESTART: u16 = 1012;
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// The user already holds `--max-connections-per-user` connections here.
    pub const TOO_MANY_CONNECTIONS: u16 = 4029;
}

/// The close reason (with 1008) when the credential that authenticated a
/// connection ends: logout, a password change, logout-others, the session
/// expiring, or the API token being deleted.
pub const SESSION_ENDED: &str = "session ended";

/// What authenticated a connection, so that revoking it can end the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    /// A login session (cookie).
    Session(SessionKey),
    /// A personal API token (bearer).
    Token(TokenId),
}

/// Shared between a connection's tasks and the hub: how to stop it and why.
#[derive(Debug, Default)]
pub struct ConnControl {
    cancel: CancellationToken,
    close: OnceLock<(u16, &'static str)>,
    /// When the last frame (of any kind) arrived from the peer, Unix ms.
    last_rx_ms: AtomicI64,
    /// When the login session behind the connection expires, Unix ms
    /// (`i64::MAX` for API tokens, which do not). Raised as the session slides.
    expires_at_ms: AtomicI64,
}

impl ConnControl {
    pub fn new() -> Arc<Self> {
        let control = Self::default();
        control.last_rx_ms.store(now_ms(), Ordering::Relaxed);
        control.expires_at_ms.store(i64::MAX, Ordering::Relaxed);
        Arc::new(control)
    }

    /// The connection's credential stops working at `at` (Unix ms), unless extended.
    pub fn set_expires_at(&self, at: i64) {
        self.expires_at_ms.store(at, Ordering::Relaxed);
    }

    /// The session was extended: it now lasts until `at` at least.
    pub fn extend_until(&self, at: i64) {
        self.expires_at_ms.fetch_max(at, Ordering::Relaxed);
    }

    pub fn expires_at(&self) -> i64 {
        self.expires_at_ms.load(Ordering::Relaxed)
    }

    /// Ends the connection with this close code; the first reason given wins.
    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.close.set((code, reason));
        self.cancel.cancel();
    }

    pub fn close_reason(&self) -> Option<(u16, &'static str)> {
        self.close.get().copied()
    }

    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    pub fn is_closed(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn mark_received(&self) {
        self.last_rx_ms.store(now_ms(), Ordering::Relaxed);
    }

    pub fn last_received_ms(&self) -> i64 {
        self.last_rx_ms.load(Ordering::Relaxed)
    }
}

/// Which rooms a connection follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// `/ws/chat/<room>/`: one room, for as long as the user may read it.
    Room(RoomId),
    /// `/ws/`: every room the user belongs to, following joins and leaves.
    AllRooms,
}

#[derive(Clone)]
struct Subscriber {
    conn: ConnId,
    user: UserId,
    outbox: Arc<Outbox>,
    control: Arc<ConnControl>,
}

struct Conn {
    user: UserId,
    scope: Scope,
    outbox: Arc<Outbox>,
    control: Arc<ConnControl>,
    rooms: Vec<RoomId>,
    credential: Credential,
}

#[derive(Default)]
struct RoomSubs {
    subs: Vec<Subscriber>,
}

#[derive(Default)]
struct State {
    conns: HashMap<ConnId, Conn>,
    rooms: HashMap<RoomId, RoomSubs>,
    /// Open connections per user.
    users: HashMap<UserId, Vec<ConnId>>,
    /// Open connections per login session or API token, so revoking one finds
    /// its connections without looking at anyone else's.
    credentials: HashMap<Credential, Vec<ConnId>>,
    /// Users whose last connection here closed, still counted as present
    /// until their departure is due (`--presence-grace`): a reconnect before
    /// then continues their presence, and nobody hears they left.
    departing: HashMap<UserId, Departing>,
}

struct Departing {
    /// What their last connection followed, for the announcement.
    rooms: Vec<RoomId>,
    due: Instant,
}

/// What closing a connection means for its user's presence on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// They have another connection here.
    Stays,
    /// That was their last connection: they are gone now.
    Leaves,
    /// That was their last connection: they count as gone once the departure
    /// is due, unless they reconnect first (`Hub::take_departures`).
    LeavesLater,
}

impl State {
    fn subscribe(&mut self, room: &RoomId, sub: Subscriber) {
        self.rooms.entry(room.clone()).or_default().subs.push(sub);
    }

    fn unsubscribe(&mut self, room: &RoomId, conn: ConnId) {
        let Some(entry) = self.rooms.get_mut(room) else {
            return;
        };
        entry.subs.retain(|s| s.conn != conn);
        if entry.subs.is_empty() {
            self.rooms.remove(room);
        }
    }
}

#[derive(Clone, Default)]
pub struct Hub {
    state: Arc<RwLock<State>>,
    next_id: Arc<AtomicU64>,
    /// Credentials ended so far (see `revocations`).
    revocations: Arc<AtomicU64>,
}

impl Hub {
    pub fn new() -> Self {
        Self::default()
    }

    // A panic while holding the lock only ever leaves the maps as they were
    // between two statements; carrying on is better than failing every session.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a connection following `rooms`, authenticated by
    /// `credential`; true if it is the user's first connection on this node.
    pub fn register(
        &self,
        user: UserId,
        scope: Scope,
        rooms: Vec<RoomId>,
        outbox: Arc<Outbox>,
        control: Arc<ConnControl>,
        credential: Credential,
    ) -> (ConnId, bool) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let mut state = self.write();
        for room in &rooms {
            state.subscribe(
                room,
                Subscriber {
                    conn: id,
                    user,
                    outbox: outbox.clone(),
                    control: control.clone(),
                },
            );
        }
        let conns = state.users.entry(user).or_default();
        conns.push(id);
        let first_here = conns.len() == 1;
        // Back before their departure was due: their presence goes on.
        let first = first_here && state.departing.remove(&user).is_none();
        state.credentials.entry(credential).or_default().push(id);
        state.conns.insert(
            id,
            Conn {
                user,
                scope,
                outbox,
                control,
                rooms,
                credential,
            },
        );
        (id, first)
    }

    /// Removes a connection; returns the rooms it followed and what it means
    /// for its user's presence. With `depart_at`, a user leaving here is kept
    /// as departing until then instead of leaving at once.
    pub fn unregister(&self, id: ConnId, depart_at: Option<Instant>) -> (Vec<RoomId>, Presence) {
        let mut state = self.write();
        let Some(conn) = state.conns.remove(&id) else {
            return (Vec::new(), Presence::Stays);
        };
        for room in &conn.rooms {
            state.unsubscribe(room, id);
        }
        let mut presence = Presence::Stays;
        if let Some(conns) = state.users.get_mut(&conn.user) {
            conns.retain(|c| *c != id);
            if conns.is_empty() {
                state.users.remove(&conn.user);
                presence = match depart_at {
                    Some(due) => {
                        let rooms = conn.rooms.clone();
                        state.departing.insert(conn.user, Departing { rooms, due });
                        Presence::LeavesLater
                    }
                    None => Presence::Leaves,
                };
            }
        }
        if let Some(conns) = state.credentials.get_mut(&conn.credential) {
            conns.retain(|c| *c != id);
            if conns.is_empty() {
                state.credentials.remove(&conn.credential);
            }
        }
        (conn.rooms, presence)
    }

    /// Users whose departure is due by `now` and who did not come back: from
    /// here on they are gone, with the rooms their last connection followed.
    pub fn take_departures(&self, now: Instant) -> Vec<(UserId, Vec<RoomId>)> {
        self.write()
            .departing
            .extract_if(|_, d| d.due <= now)
            .map(|(user, d)| (user, d.rooms))
            .collect()
    }

    /// Every pending departure, due or not (the server is stopping).
    pub fn take_all_departures(&self) -> Vec<(UserId, Vec<RoomId>)> {
        self.write()
            .departing
            .drain()
            .map(|(user, d)| (user, d.rooms))
            .collect()
    }

    /// How many credentials have been ended on this node. A connection
    /// authenticated before a revocation that reached this node ahead of its
    /// registration was not found by it: when the count read before
    /// authenticating is unchanged after registering, no such revocation
    /// happened, and the credential needs no second look in the database.
    pub fn revocations(&self) -> u64 {
        self.revocations.load(Ordering::SeqCst)
    }

    /// What authenticated a connection.
    pub fn credential_of(&self, id: ConnId) -> Option<Credential> {
        self.read().conns.get(&id).map(|c| c.credential)
    }

    /// The session or token was revoked: its connections here close (1008).
    pub fn end_credential(&self, credential: Credential) {
        // Counted before looking: a connection registered after the look reads
        // the new count (see `revocations`).
        self.revocations.fetch_add(1, Ordering::SeqCst);
        let state = self.read();
        let Some(ids) = state.credentials.get(&credential) else {
            return;
        };
        for id in ids {
            if let Some(conn) = state.conns.get(id) {
                conn.control.close(close::POLICY, SESSION_ENDED);
            }
        }
    }

    /// The session was extended to `expires_at` (Unix ms): its connections
    /// here stay open until then.
    pub fn extend_session(&self, key: SessionKey, expires_at: i64) {
        let state = self.read();
        let Some(ids) = state.credentials.get(&Credential::Session(key)) else {
            return;
        };
        for id in ids {
            if let Some(conn) = state.conns.get(id) {
                conn.control.extend_until(expires_at);
            }
        }
    }

    /// The user now belongs to `room`: their `/ws/` connections here follow it.
    pub fn follow_room(&self, user: UserId, room: &RoomId) {
        let mut state = self.write();
        let ids: Vec<ConnId> = state.users.get(&user).cloned().unwrap_or_default();
        for id in ids {
            Self::follow(&mut state, id, room);
        }
    }

    /// One `/ws/` connection follows `room` (if it does not already).
    pub fn follow_for(&self, id: ConnId, room: &RoomId) {
        Self::follow(&mut self.write(), id, room);
    }

    fn follow(state: &mut State, id: ConnId, room: &RoomId) {
        let Some(conn) = state.conns.get_mut(&id) else {
            return;
        };
        if conn.scope != Scope::AllRooms || conn.rooms.contains(room) {
            return;
        }
        conn.rooms.push(room.clone());
        let sub = Subscriber {
            conn: id,
            user: conn.user,
            outbox: conn.outbox.clone(),
            control: conn.control.clone(),
        };
        state.subscribe(room, sub);
    }

    /// One connection stops following `room`.
    pub fn unfollow_for(&self, id: ConnId, room: &RoomId) {
        let mut state = self.write();
        let Some(conn) = state.conns.get_mut(&id) else {
            return;
        };
        if !conn.rooms.contains(room) {
            return;
        }
        conn.rooms.retain(|r| r != room);
        state.unsubscribe(room, id);
    }

    /// The rooms a connection follows now.
    pub fn rooms_of(&self, id: ConnId) -> Vec<RoomId> {
        self.read()
            .conns
            .get(&id)
            .map(|c| c.rooms.clone())
            .unwrap_or_default()
    }

    /// The user no longer belongs to `room`: their `/ws/` connections here stop
    /// following it and, when `lost_access`, their connections to that room
    /// close (1008).
    pub fn unfollow_room(&self, user: UserId, room: &RoomId, lost_access: bool) {
        let mut state = self.write();
        let ids: Vec<ConnId> = state.users.get(&user).cloned().unwrap_or_default();
        for id in ids {
            let Some(conn) = state.conns.get_mut(&id) else {
                continue;
            };
            match &conn.scope {
                Scope::AllRooms => {}
                Scope::Room(r) if r == room && lost_access => {
                    conn.control
                        .close(close::POLICY, "no longer a member of this room");
                }
                Scope::Room(_) => continue,
            }
            if !conn.rooms.contains(room) {
                continue;
            }
            conn.rooms.retain(|r| r != room);
            state.unsubscribe(room, id);
        }
    }

    /// Sends a frame to every connection following `room`, except `skip_user`'s.
    pub fn broadcast(&self, room: &RoomId, frame: &Utf8Bytes, skip_user: Option<UserId>) {
        self.broadcast_as(room, frame, skip_user, Urgency::Needed);
    }

    /// Sends a frame to every connection following `room`, except
    /// `skip_user`'s, as something the client can do without if it is behind.
    pub fn broadcast_ephemeral(&self, room: &RoomId, frame: &Utf8Bytes, skip_user: Option<UserId>) {
        self.broadcast_as(room, frame, skip_user, Urgency::Ephemeral);
    }

    fn broadcast_as(
        &self,
        room: &RoomId,
        frame: &Utf8Bytes,
        skip_user: Option<UserId>,
        urgency: Urgency,
    ) {
        let state = self.read();
        let Some(entry) = state.rooms.get(room) else {
            return;
        };
        for sub in &entry.subs {
            if Some(sub.user) != skip_user {
                let item = Outbound::Frame(frame.clone());
                match urgency {
                    Urgency::Needed => offer(sub, item),
                    Urgency::Ephemeral => offer_ephemeral(sub, item),
                }
            }
        }
    }

    /// Fans committed chat messages of one room out: one queue slot per follower
    /// per commit, however many messages it holds.
    pub fn broadcast_chat(&self, room: &RoomId, messages: &Arc<[ChatFrame]>) {
        let state = self.read();
        let Some(entry) = state.rooms.get(room) else {
            return;
        };
        for sub in &entry.subs {
            offer(
                sub,
                Outbound::Chat {
                    room: room.clone(),
                    messages: messages.clone(),
                },
            );
        }
    }

    /// Sends a frame to every connection of `user` (e.g. `room_joined` on `/ws/`).
    pub fn send_to_user(&self, user: UserId, frame: &Utf8Bytes, all_rooms_only: bool) {
        let state = self.read();
        let Some(ids) = state.users.get(&user) else {
            return;
        };
        for id in ids {
            let Some(conn) = state.conns.get(id) else {
                continue;
            };
            if all_rooms_only && conn.scope != Scope::AllRooms {
                continue;
            }
            let sub = Subscriber {
                conn: *id,
                user,
                outbox: conn.outbox.clone(),
                control: conn.control.clone(),
            };
            offer(&sub, Outbound::Frame(frame.clone()));
        }
    }

    /// Users with a connection on this node.
    /// Users present on this node: connected, or departing but not yet gone.
    pub fn local_users(&self) -> Vec<UserId> {
        let state = self.read();
        state
            .users
            .keys()
            .chain(state.departing.keys())
            .copied()
            .collect()
    }

    /// Whether the user is present on this node (see `local_users`).
    pub fn is_online(&self, user: UserId) -> bool {
        let state = self.read();
        state.users.contains_key(&user) || state.departing.contains_key(&user)
    }

    pub fn connection_count(&self) -> usize {
        self.read().conns.len()
    }

    /// One shared heartbeat for every connection: close those whose session
    /// has expired by `now_ms` (1008) and those silent since the previous tick
    /// (`silent_before_ms`), ping the rest. Returns the sessions that expire
    /// before `refresh_before_ms`, each once, for the caller to extend.
    pub fn heartbeat(
        &self,
        frame: &Utf8Bytes,
        silent_before_ms: i64,
        now_ms: i64,
        refresh_before_ms: i64,
    ) -> Vec<SessionKey> {
        let state = self.read();
        let mut due = HashSet::new();
        for (id, conn) in &state.conns {
            if let Credential::Session(key) = conn.credential {
                let expires_at = conn.control.expires_at();
                if expires_at <= now_ms {
                    conn.control.close(close::POLICY, SESSION_ENDED);
                    continue;
                }
                if expires_at < refresh_before_ms {
                    due.insert(key);
                }
            }
            if conn.control.last_received_ms() < silent_before_ms {
                conn.control.close(close::GOING_AWAY, "no response to ping");
                continue;
            }
            let sub = Subscriber {
                conn: *id,
                user: conn.user,
                outbox: conn.outbox.clone(),
                control: conn.control.clone(),
            };
            offer(&sub, Outbound::Tick(frame.clone()));
        }
        due.into_iter().collect()
    }

    /// Asks every connection to re-check its rooms against the store (after
    /// the bus was down and cross-node events may have been missed).
    pub fn resync_all(&self) {
        let state = self.read();
        for (id, conn) in &state.conns {
            let sub = Subscriber {
                conn: *id,
                user: conn.user,
                outbox: conn.outbox.clone(),
                control: conn.control.clone(),
            };
            offer(&sub, Outbound::Resync { membership: true });
        }
    }
}

/// Whether a client behind on reading may miss a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// Messages and changes to rooms and members: a client missing one is wrong.
    Needed,
    /// Typing, presence and read receipts: the next one supersedes it.
    Ephemeral,
}

/// Queues an ephemeral frame without waiting; dropped if the client is behind.
fn offer_ephemeral(sub: &Subscriber, item: Outbound) {
    // Shed: the client is behind and does without it; Closed: it is ending.
    let _ = sub.outbox.try_push_ephemeral(item);
}

/// Queues without waiting; a full queue means the client is not reading.
fn offer(sub: &Subscriber, item: Outbound) {
    match sub.outbox.try_push(item) {
        Ok(()) => {}
        Err(Refused::Shed) => {}
        Err(Refused::Full) => {
            if !sub.control.is_closed() {
                tracing::info!(conn = sub.conn, user_id = %sub.user, "closing slow consumer");
            }
            sub.control.close(close::TRY_AGAIN_LATER, "slow consumer");
        }
        // The session is ending; it unregisters itself.
        Err(Refused::Closed) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    fn room(name: &str) -> RoomId {
        RoomId::parse(name).unwrap()
    }

    fn conn(
        hub: &Hub,
        user: UserId,
        scope: Scope,
        rooms: &[&str],
        cap: usize,
    ) -> (ConnId, Rx, Arc<ConnControl>) {
        authed(hub, user, scope, rooms, cap, token())
    }

    fn authed(
        hub: &Hub,
        user: UserId,
        scope: Scope,
        rooms: &[&str],
        cap: usize,
        credential: Credential,
    ) -> (ConnId, Rx, Arc<ConnControl>) {
        let tx = Outbox::new(cap);
        let rx = Rx {
            outbox: tx.clone(),
            taken: VecDeque::new(),
        };
        let control = ConnControl::new();
        let rooms = rooms.iter().map(|r| room(r)).collect();
        let (id, _first) = hub.register(user, scope, rooms, tx, control.clone(), credential);
        (id, rx, control)
    }

    /// A connection's outbox as its writer sees it, one item at a time.
    struct Rx {
        outbox: Arc<Outbox>,
        taken: VecDeque<Outbound>,
    }

    impl Rx {
        fn try_recv(&mut self) -> Result<Outbound, ()> {
            if self.taken.is_empty() {
                self.taken = self.outbox.try_take();
            }
            self.taken.pop_front().ok_or(())
        }
    }

    fn token() -> Credential {
        Credential::Token(TokenId::new())
    }

    fn session(byte: u8) -> SessionKey {
        SessionKey::from_digest([byte; 32])
    }

    /// A `/ws/` connection following nothing, opened with `credential`.
    fn opened_with(
        hub: &Hub,
        user: UserId,
        credential: Credential,
    ) -> (ConnId, Rx, Arc<ConnControl>) {
        authed(hub, user, Scope::AllRooms, &[], 8, credential)
    }

    #[test]
    fn the_first_and_last_connection_of_a_user_are_reported() {
        let hub = Hub::new();
        let ann = UserId::new();
        let tx = Outbox::new(8);
        let (a, first) = hub.register(
            ann,
            Scope::AllRooms,
            vec![room("r1"), room("r2")],
            tx.clone(),
            ConnControl::new(),
            token(),
        );
        assert!(first);
        let (b, second) = hub.register(
            ann,
            Scope::Room(room("r1")),
            vec![room("r1")],
            tx,
            ConnControl::new(),
            token(),
        );
        assert!(!second);
        assert!(hub.is_online(ann));
        assert_eq!(hub.local_users(), vec![ann]);
        assert_eq!(
            hub.unregister(a, None),
            (vec![room("r1"), room("r2")], Presence::Stays)
        );
        assert_eq!(
            hub.unregister(b, None),
            (vec![room("r1")], Presence::Leaves)
        );
        assert!(!hub.is_online(ann));
    }

    #[test]
    fn a_departing_user_stays_present_until_due_and_a_reconnect_continues_their_presence() {
        let hub = Hub::new();
        let (ann, bob) = (UserId::new(), UserId::new());
        let now = Instant::now();
        let soon = now + std::time::Duration::from_secs(5);
        let (a, _, _) = conn(&hub, ann, Scope::Room(room("r1")), &["r1"], 8);
        let (b, _, _) = conn(&hub, bob, Scope::Room(room("r1")), &["r1"], 8);
        assert_eq!(
            hub.unregister(a, Some(soon)),
            (vec![room("r1")], Presence::LeavesLater)
        );
        assert_eq!(
            hub.unregister(b, Some(soon)),
            (vec![room("r1")], Presence::LeavesLater)
        );
        assert!(hub.is_online(ann), "present until the departure is due");
        assert!(hub.take_departures(now).is_empty(), "not due yet");

        // Ann comes back in time: not her first connection, and no departure.
        let (again, first) = hub.register(
            ann,
            Scope::Room(room("r1")),
            vec![room("r1")],
            Outbox::new(8),
            ConnControl::new(),
            token(),
        );
        assert!(!first, "her presence went on");
        assert_eq!(hub.take_departures(soon), vec![(bob, vec![room("r1")])]);
        assert!(!hub.is_online(bob));
        assert!(hub.is_online(ann));
        assert!(hub.take_departures(soon).is_empty(), "each departure once");

        // Bob returns after he was gone: a first connection again.
        let (_, first) = hub.register(
            bob,
            Scope::AllRooms,
            vec![],
            Outbox::new(8),
            ConnControl::new(),
            token(),
        );
        assert!(first);

        hub.unregister(again, Some(soon));
        assert_eq!(
            hub.local_users().len(),
            2,
            "connected and departing both count"
        );
        assert_eq!(hub.take_all_departures(), vec![(ann, vec![room("r1")])]);
    }

    #[test]
    fn chat_goes_to_followers_with_own_copy_for_sender() {
        let hub = Hub::new();
        let (ann, bob) = (UserId::new(), UserId::new());
        let (_, mut ra, _) = conn(&hub, ann, Scope::AllRooms, &["r1"], 8);
        let (_, mut rb, _) = conn(&hub, bob, Scope::Room(room("r1")), &["r1"], 8);
        let (_, mut rc, _) = conn(&hub, UserId::new(), Scope::AllRooms, &["r2"], 8);
        let frames: Arc<[ChatFrame]> = Arc::from(vec![ChatFrame {
            seq: 1,
            sender: Some(ann),
            own: Utf8Bytes::from("own"),
            others: Utf8Bytes::from("other"),
        }]);
        hub.broadcast_chat(&room("r1"), &frames);
        assert!(
            matches!(ra.try_recv(), Ok(Outbound::Chat { messages, .. }) if messages[0].for_user(ann).as_str() == "own")
        );
        assert!(
            matches!(rb.try_recv(), Ok(Outbound::Chat { messages, .. }) if messages[0].for_user(bob).as_str() == "other")
        );
        assert!(rc.try_recv().is_err());
    }

    #[test]
    fn a_full_queue_closes_only_the_slow_consumer() {
        let hub = Hub::new();
        let (_, _slow_rx, slow) = conn(&hub, UserId::new(), Scope::AllRooms, &["r1"], 1);
        let (_, mut fast_rx, fast) = conn(&hub, UserId::new(), Scope::AllRooms, &["r1"], 8);
        for _ in 0..2 {
            hub.broadcast(&room("r1"), &Utf8Bytes::from("x"), None);
            let _ = fast_rx.try_recv();
        }
        assert_eq!(
            slow.close_reason(),
            Some((close::TRY_AGAIN_LATER, "slow consumer"))
        );
        assert!(!fast.is_closed());
    }

    #[test]
    fn follow_and_unfollow_track_membership() {
        let hub = Hub::new();
        let ann = UserId::new();
        let (_, mut all_rx, _) = conn(&hub, ann, Scope::AllRooms, &[], 8);
        let (_, _single_rx, single) = conn(&hub, ann, Scope::Room(room("r9")), &["r9"], 8);
        hub.follow_room(ann, &room("r1"));
        hub.broadcast(&room("r1"), &Utf8Bytes::from("hello"), None);
        assert!(matches!(all_rx.try_recv(), Ok(Outbound::Frame(f)) if f.as_str() == "hello"));
        hub.unfollow_room(ann, &room("r1"), true);
        hub.broadcast(&room("r1"), &Utf8Bytes::from("after"), None);
        assert!(all_rx.try_recv().is_err());
        // Losing access to r9 closes the single-room connection.
        hub.unfollow_room(ann, &room("r9"), true);
        assert_eq!(single.close_reason().map(|r| r.0), Some(close::POLICY));
    }

    #[test]
    fn one_connection_can_follow_and_unfollow_alone() {
        let hub = Hub::new();
        let ann = UserId::new();
        let (a, mut a_rx, _) = conn(&hub, ann, Scope::AllRooms, &["r1"], 8);
        let (b, mut b_rx, _) = conn(&hub, ann, Scope::AllRooms, &["r1"], 8);
        let (single, _single_rx, _) = conn(&hub, ann, Scope::Room(room("r9")), &["r9"], 8);
        hub.unfollow_for(a, &room("r1"));
        hub.follow_for(a, &room("r2"));
        hub.follow_for(a, &room("r2"));
        hub.follow_for(single, &room("r2"));
        assert_eq!(hub.rooms_of(a), vec![room("r2")]);
        assert_eq!(hub.rooms_of(b), vec![room("r1")]);
        assert_eq!(
            hub.rooms_of(single),
            vec![room("r9")],
            "room connections follow only their room"
        );
        hub.broadcast(&room("r1"), &Utf8Bytes::from("one"), None);
        hub.broadcast(&room("r2"), &Utf8Bytes::from("two"), None);
        assert!(matches!(a_rx.try_recv(), Ok(Outbound::Frame(f)) if f.as_str() == "two"));
        assert!(a_rx.try_recv().is_err(), "once, and nothing from r1");
        assert!(matches!(b_rx.try_recv(), Ok(Outbound::Frame(f)) if f.as_str() == "one"));
        assert!(b_rx.try_recv().is_err());
    }

    #[test]
    fn heartbeat_closes_silent_peers() {
        let hub = Hub::new();
        let (_, mut rx, control) = conn(&hub, UserId::new(), Scope::AllRooms, &[], 8);
        let now = now_ms();
        hub.heartbeat(
            &Utf8Bytes::from("hb"),
            control.last_received_ms() - 1,
            now,
            now,
        );
        assert!(matches!(rx.try_recv(), Ok(Outbound::Tick(_))));
        hub.heartbeat(
            &Utf8Bytes::from("hb"),
            control.last_received_ms() + 1,
            now,
            now,
        );
        assert_eq!(control.close_reason().map(|r| r.0), Some(close::GOING_AWAY));
    }

    #[test]
    fn ending_a_credential_closes_only_its_connections() {
        let hub = Hub::new();
        let ann = UserId::new();
        let bot = token();
        let (_, _ra, a) = opened_with(&hub, ann, Credential::Session(session(1)));
        let (_, _rb, b) = opened_with(&hub, ann, Credential::Session(session(1)));
        let (_, _rc, c) = opened_with(&hub, ann, Credential::Session(session(2)));
        let (d_id, _rd, d) = opened_with(&hub, ann, bot);
        assert_eq!(hub.credential_of(d_id), Some(bot));

        hub.end_credential(Credential::Session(session(1)));
        assert_eq!(a.close_reason(), Some((close::POLICY, SESSION_ENDED)));
        assert_eq!(b.close_reason(), Some((close::POLICY, SESSION_ENDED)));
        assert!(!c.is_closed() && !d.is_closed());

        hub.end_credential(bot);
        assert_eq!(d.close_reason(), Some((close::POLICY, SESSION_ENDED)));
        assert!(!c.is_closed());
    }

    #[test]
    fn a_closed_connections_credential_is_forgotten() {
        let hub = Hub::new();
        let bot = token();
        let (id, _rx, _) = opened_with(&hub, UserId::new(), bot);
        hub.unregister(id, None);
        assert!(hub.read().credentials.is_empty());
        assert_eq!(hub.credential_of(id), None);
    }

    #[test]
    fn heartbeat_closes_expired_sessions_and_reports_those_to_extend() {
        let hub = Hub::new();
        let user = UserId::new();
        let (early, late) = (session(1), session(2));
        let hb = Utf8Bytes::from("hb");
        let now = 1_000_000;
        let (_, _r1, expired) = opened_with(&hub, user, Credential::Session(early));
        expired.set_expires_at(now);
        let (_, _r2, due) = opened_with(&hub, user, Credential::Session(late));
        due.set_expires_at(now + 10);
        let (_, _r3, again) = opened_with(&hub, user, Credential::Session(late));
        again.set_expires_at(now + 50);
        let (_, _r4, bot) = opened_with(&hub, user, token());

        let refresh = hub.heartbeat(&hb, 0, now, now + 100);
        assert_eq!(
            refresh,
            vec![late],
            "each session once, not the expired one"
        );
        assert_eq!(expired.close_reason(), Some((close::POLICY, SESSION_ENDED)));
        assert!(!due.is_closed() && !again.is_closed() && !bot.is_closed());

        hub.extend_session(late, now + 1000);
        assert_eq!(
            (due.expires_at(), again.expires_at()),
            (now + 1000, now + 1000)
        );
        assert!(hub.heartbeat(&hb, 0, now, now + 100).is_empty());
        hub.heartbeat(&hb, 0, now + 1000, now + 1100);
        assert_eq!(due.close_reason(), Some((close::POLICY, SESSION_ENDED)));
        assert!(!bot.is_closed(), "API tokens do not expire");
    }
}
