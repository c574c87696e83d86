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

use crate::bus::outbox::{ChatFrame, Outbound, Outbox, Refused};
use crate::domain::ids::{Credential, RoomId, SessionKey, UserId};
use crate::domain::time::now_ms;

pub type ConnId = u64;

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
mod tests;
