use std::collections::VecDeque;

use super::*;
use crate::domain::ids::TokenId;

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
fn opened_with(hub: &Hub, user: UserId, credential: Credential) -> (ConnId, Rx, Arc<ConnControl>) {
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
