use super::*;
use crate::domain::ids::MessageId;
use crate::domain::message::MessageType;

fn sender(name: &str) -> Arc<Sender> {
    Arc::new(Sender {
        id: UserId::new(),
        username: name.into(),
        display_name: String::new(),
        avatar_version: 0,
    })
}

fn room(id: &str) -> RoomId {
    RoomId::parse(id).unwrap()
}

fn message(room: &RoomId, seq: i64, from: &Arc<Sender>) -> Message {
    Message {
        id: MessageId::new(),
        room_id: room.clone(),
        seq,
        sender: Some(from.clone()),
        message_type: MessageType::Text,
        content: format!("message {seq}"),
        client_id: None,
        event: None,
        attachments: Vec::new(),
        created_at: seq,
    }
}

fn seqs(page: &MessagePage) -> Vec<i64> {
    page.messages.iter().map(|m| m.seq).collect()
}

fn hit(cache: &TailCache, room: &RoomId, page: Page) -> MessagePage {
    match cache.lookup(room, page) {
        Lookup::Hit(page) => page,
        other => panic!("expected a hit for {page:?}, got {other:?}"),
    }
}

fn is_miss(cache: &TailCache, room: &RoomId, page: Page) -> bool {
    matches!(cache.lookup(room, page), Lookup::Miss(_))
}

/// A cache that knows `ann`'s name, with `r` holding seqs `1..=n`.
fn filled(n: i64) -> (TailCache, RoomId, Arc<Sender>) {
    let cache = TailCache::new(1 << 20);
    let r = room("r");
    let ann = sender("ann");
    let all: Vec<Message> = (1..=n).map(|s| message(&r, s, &ann)).collect();
    cache.committed(&all);
    cache.learn_senders([ann.clone()], cache.ticket(&r));
    (cache, r, ann)
}

#[test]
fn a_room_cached_from_its_first_message_serves_every_page() {
    let (cache, r, _) = filled(30);
    let latest = hit(&cache, &r, Page::Latest { limit: 10 });
    assert_eq!(seqs(&latest), (21..=30).collect::<Vec<_>>());
    assert!(latest.has_more);
    let all = hit(&cache, &r, Page::Latest { limit: 50 });
    assert_eq!(seqs(&all), (1..=30).collect::<Vec<_>>());
    assert!(!all.has_more);
    let before = hit(&cache, &r, Page::Before { seq: 5, limit: 10 });
    assert_eq!((seqs(&before), before.has_more), (vec![1, 2, 3, 4], false));
    let before = hit(&cache, &r, Page::Before { seq: 99, limit: 2 });
    assert_eq!((seqs(&before), before.has_more), (vec![29, 30], true));
    let after = hit(&cache, &r, Page::After { seq: 25, limit: 3 });
    assert_eq!((seqs(&after), after.has_more), (vec![26, 27, 28], true));
    let after = hit(&cache, &r, Page::After { seq: 28, limit: 3 });
    assert_eq!((seqs(&after), after.has_more), (vec![29, 30], false));
    let end = hit(&cache, &r, Page::After { seq: 30, limit: 3 });
    assert!(end.messages.is_empty() && !end.has_more);
    assert!(is_miss(&cache, &room("other"), Page::Latest { limit: 1 }));
}

#[test]
fn a_tail_that_starts_mid_room_serves_only_what_it_holds() {
    let cache = TailCache::new(1 << 20);
    let r = room("r");
    let ann = sender("ann");
    // The server started when the room was at 100.
    let recent: Vec<Message> = (101..=110).map(|s| message(&r, s, &ann)).collect();
    cache.committed(&recent);
    cache.learn_senders([ann.clone()], cache.ticket(&r));
    assert_eq!(
        seqs(&hit(&cache, &r, Page::Latest { limit: 10 })),
        (101..=110).collect::<Vec<_>>()
    );
    assert!(is_miss(&cache, &r, Page::Latest { limit: 11 }));
    assert!(is_miss(&cache, &r, Page::After { seq: 99, limit: 5 }));
    assert_eq!(
        seqs(&hit(&cache, &r, Page::After { seq: 100, limit: 5 })),
        [101, 102, 103, 104, 105]
    );
    assert!(is_miss(&cache, &r, Page::Before { seq: 105, limit: 5 }));
    assert_eq!(
        seqs(&hit(&cache, &r, Page::Before { seq: 106, limit: 5 })),
        [101, 102, 103, 104, 105]
    );
}

#[test]
fn a_store_read_seeds_the_tail_only_if_nothing_moved() {
    let cache = TailCache::new(1 << 20);
    let r = room("r");
    let ann = sender("ann");
    let store: Vec<Message> = (1..=80).map(|s| message(&r, s, &ann)).collect();
    let page = Page::Latest { limit: 50 };
    let answer = MessagePage {
        messages: store[30..].to_vec(),
        has_more: true,
    };

    // A commit lands while the read is on its way: the answer is not kept.
    let Lookup::Miss(ticket) = cache.lookup(&r, page) else {
        panic!("empty cache")
    };
    cache.committed([&message(&r, 81, &ann)]);
    cache.offer(&r, page, &answer, ticket);
    assert!(is_miss(&cache, &r, Page::Latest { limit: 2 }));

    // Another room evicted meanwhile: not kept either (its state moved).
    let r2 = room("r2");
    let Lookup::Miss(ticket) = cache.lookup(&r2, page) else {
        panic!()
    };
    cache.forget([&r]);
    let answer2 = MessagePage {
        messages: (1..=3).map(|s| message(&r2, s, &ann)).collect(),
        has_more: false,
    };
    cache.offer(&r2, page, &answer2, ticket);
    assert!(is_miss(&cache, &r2, page));

    // Quiet: the answer seeds the room, and the next page comes from memory.
    let ticket = cache.ticket(&r2);
    cache.offer(&r2, page, &answer2, ticket);
    assert_eq!(seqs(&hit(&cache, &r2, page)), [1, 2, 3]);
    // A deep page is never offered (it does not reach the end).
    let r3 = room("r3");
    let ticket = cache.ticket(&r3);
    cache.offer(&r3, Page::Before { seq: 4, limit: 3 }, &answer2, ticket);
    assert!(is_miss(&cache, &r3, page));
}

#[test]
fn a_seed_extends_a_short_tail_backwards() {
    let cache = TailCache::new(1 << 20);
    let r = room("r");
    let ann = sender("ann");
    cache.committed([&message(&r, 60, &ann)]);
    let page = Page::Latest { limit: 50 };
    let Lookup::Miss(ticket) = cache.lookup(&r, page) else {
        panic!()
    };
    let answer = MessagePage {
        messages: (11..=60).map(|s| message(&r, s, &ann)).collect(),
        has_more: true,
    };
    cache.offer(&r, page, &answer, ticket);
    let served = hit(&cache, &r, page);
    assert_eq!(seqs(&served), (11..=60).collect::<Vec<_>>());
    assert!(served.has_more);
    cache.committed([&message(&r, 61, &ann)]);
    assert_eq!(seqs(&hit(&cache, &r, Page::Latest { limit: 2 })), [60, 61]);
}

#[test]
fn a_skipped_seq_starts_the_room_over() {
    let (cache, r, ann) = filled(10);
    cache.committed([&message(&r, 12, &ann)]);
    assert!(is_miss(&cache, &r, Page::Latest { limit: 2 }));
    assert_eq!(seqs(&hit(&cache, &r, Page::Latest { limit: 1 })), [12]);
    assert!(is_miss(&cache, &r, Page::After { seq: 10, limit: 5 }));
}

#[test]
fn rooms_keep_their_newest_messages_and_old_rooms_go_first() {
    let (cache, r, ann) = filled(ROOM_MESSAGES as i64 + 44);
    let first = ROOM_MESSAGES as i64 + 44 - ROOM_MESSAGES as i64 + 1;
    assert_eq!(
        hit(&cache, &r, Page::Latest { limit: 200 }).messages[0].seq,
        ROOM_MESSAGES as i64 + 44 - 199
    );
    assert!(is_miss(
        &cache,
        &r,
        Page::After {
            seq: first - 2,
            limit: 5
        }
    ));

    // A budget of about three full rooms: the least recently used ones are dropped.
    let one_room = ROOM_OVERHEAD + ROOM_MESSAGES * (MESSAGE_OVERHEAD + 11);
    let small = TailCache::new(one_room * 3);
    for name in ["a", "b", "c", "d", "e"] {
        let id = room(name);
        let messages: Vec<Message> = (1..=ROOM_MESSAGES as i64)
            .map(|s| message(&id, s, &ann))
            .collect();
        small.committed(&messages);
        if name == "a" {
            small.learn_senders([ann.clone()], small.ticket(&id));
        }
        // `a` stays in use.
        let _ = small.lookup(&room("a"), Page::Latest { limit: 1 });
    }
    assert!(!is_miss(&small, &room("a"), Page::Latest { limit: 1 }));
    assert!(!is_miss(&small, &room("e"), Page::Latest { limit: 1 }));
    assert!(is_miss(&small, &room("b"), Page::Latest { limit: 1 }));
    let inner = small.lock().unwrap();
    assert!(inner.bytes <= inner.budget);
    let counted: usize = inner.rooms.values().map(|t| t.bytes).sum();
    assert_eq!(counted, inner.bytes);
}

#[test]
fn sender_names_come_from_the_store_not_from_the_commit() {
    let cache = TailCache::new(1 << 20);
    let r = room("r");
    // Posted by a session that logged in as "ann" before she renamed herself.
    let stale = sender("ann");
    cache.committed([&message(&r, 1, &stale)]);
    let page = Page::Latest { limit: 5 };
    let Lookup::Senders { missing, ticket } = cache.lookup(&r, page) else {
        panic!("the commit's sender details are not trusted")
    };
    assert_eq!(missing, [stale.id]);
    let current = Arc::new(Sender {
        display_name: "Ann B.".into(),
        ..(*stale).clone()
    });
    cache.learn_senders([current.clone()], ticket);
    let served = hit(&cache, &r, page);
    assert_eq!(
        served.messages[0].sender.as_ref().unwrap().display_name,
        "Ann B."
    );

    // A rename: the name is forgotten, and a read that raced it is not kept.
    let Lookup::Hit(_) = cache.lookup(&r, page) else {
        panic!()
    };
    let ticket = cache.ticket(&r);
    cache.sender_changed(stale.id);
    cache.learn_senders([current.clone()], ticket);
    assert!(matches!(cache.lookup(&r, page), Lookup::Senders { .. }));
    // System messages without a sender need no name.
    let mut system = message(&r, 2, &stale);
    system.sender = None;
    cache.committed([&system]);
    let Lookup::Senders { missing, .. } = cache.lookup(&r, page) else {
        panic!()
    };
    assert_eq!(missing, [stale.id]);
}

#[test]
fn a_disabled_cache_always_misses() {
    let cache = TailCache::new(0);
    let r = room("r");
    let ann = sender("ann");
    cache.committed([&message(&r, 1, &ann)]);
    cache.learn_senders([ann], cache.ticket(&r));
    assert!(is_miss(&cache, &r, Page::Latest { limit: 1 }));
}

mod model {
    //! Random commits, reads and evictions against a plain list of stored
    //! messages: whatever the cache serves must equal what the store holds.
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Commit {
            room: usize,
            count: usize,
        },
        /// `race`: 0 nothing, 1 a commit, 2 a commit and then the room evicted,
        /// between the store read and the offer of its answer.
        Read {
            room: usize,
            page: Page,
            race: u8,
        },
        Rename,
        FailedCommit {
            room: usize,
        },
    }

    fn page() -> impl Strategy<Value = Page> {
        prop_oneof![
            (1u32..60).prop_map(|limit| Page::Latest { limit }),
            (1i64..120, 1u32..60).prop_map(|(seq, limit)| Page::Before { seq, limit }),
            (0i64..120, 1u32..60).prop_map(|(seq, limit)| Page::After { seq, limit }),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0usize..3, 1usize..8).prop_map(|(room, count)| Op::Commit { room, count }),
            6 => (0usize..3, page(), 0u8..3)
                .prop_map(|(room, page, race)| Op::Read { room, page, race }),
            1 => Just(Op::Rename),
            1 => (0usize..3).prop_map(|room| Op::FailedCommit { room }),
        ]
    }

    /// What the store answers.
    fn read(stored: &[Message], page: Page) -> MessagePage {
        let last = stored.len() as i64;
        let (from, to, has_more) = match page {
            Page::Latest { limit } => {
                let from = (last - i64::from(limit) + 1).max(1);
                (from, last, from > 1)
            }
            Page::Before { seq, limit } => {
                let to = (seq - 1).min(last);
                let from = (to - i64::from(limit) + 1).max(1);
                (from, to, from > 1)
            }
            Page::After { seq, limit } => {
                let to = (seq + i64::from(limit)).min(last);
                (seq + 1, to, to < last)
            }
        };
        let messages: Vec<Message> = (from..=to)
            .map(|s| stored[(s - 1) as usize].clone())
            .collect();
        MessagePage { messages, has_more }
    }

    proptest! {
        #[test]
        fn the_cache_serves_what_the_store_holds(ops in proptest::collection::vec(op(), 1..80)) {
            // A small budget, so evictions happen too.
            let cache = TailCache::new(12_000);
            let rooms: Vec<RoomId> = (0..3).map(|i| room(&format!("r{i}"))).collect();
            let mut stored: Vec<Vec<Message>> = vec![Vec::new(); 3];
            let ann_id = UserId::new();
            let mut name = 0;
            let current = |name: i32| Arc::new(Sender {
                id: ann_id,
                username: "ann".into(),
                display_name: format!("Ann {name}"),
                avatar_version: 0,
            });
            // Commits carry whatever name the poster logged in with.
            let mut session_name = 0;
            for op in ops {
                match op {
                    Op::Commit { room, count } => {
                        let batch: Vec<Message> = (0..count)
                            .map(|_| {
                                let seq = stored[room].len() as i64 + 1;
                                let m = message(&rooms[room], seq, &current(session_name));
                                stored[room].push(m.clone());
                                m
                            })
                            .collect();
                        cache.committed(&batch);
                    }
                    Op::FailedCommit { room } => cache.forget([&rooms[room]]),
                    Op::Rename => {
                        name += 1;
                        cache.sender_changed(ann_id);
                        session_name = name - 1; // an older session keeps posting
                    }
                    Op::Read { room, page, race } => {
                        let now_named = |mut m: Message| {
                            m.sender = Some(current(name));
                            m
                        };
                        let expected = read(&stored[room], page);
                        let expected = MessagePage {
                            messages: expected.messages.into_iter().map(now_named).collect(),
                            has_more: expected.has_more,
                        };
                        let served = match cache.lookup(&rooms[room], page) {
                            Lookup::Hit(page) => Some(page),
                            Lookup::Senders { ticket, .. } => {
                                cache.learn_senders([current(name)], ticket);
                                match cache.lookup(&rooms[room], page) {
                                    Lookup::Hit(page) => Some(page),
                                    _ => None,
                                }
                            }
                            Lookup::Miss(ticket) => {
                                if race > 0 {
                                    // A commit lands between the read and the offer.
                                    let seq = stored[room].len() as i64 + 1;
                                    let m = message(&rooms[room], seq, &current(session_name));
                                    stored[room].push(m.clone());
                                    cache.committed([&m]);
                                }
                                if race > 1 {
                                    cache.forget([&rooms[room]]);
                                }
                                cache.offer(&rooms[room], page, &expected, ticket);
                                None
                            }
                        };
                        if let Some(served) = served {
                            prop_assert_eq!(&served.messages, &expected.messages);
                            prop_assert_eq!(served.has_more, expected.has_more, "{:?}", page);
                        }
                    }
                }
            }
        }
    }
}
