//! The Redis side of a multi-node setup: one publishing and one subscribing
//! connection per node (not per socket), presence keys that expire when a node
//! dies, and the counters behind cross-node rate limits.
//!
//! Redis is a hint channel, never the source of truth: when it is down nodes
//! keep serving their own clients, and when it returns every session re-checks
//! its rooms against the database.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::{Envelope, Event, apply};
use crate::bus::hub::Hub;
use crate::domain::ids::UserId;
use crate::domain::time::now_ms;
use crate::store::room_cache::RoomCache;

/// A node whose heartbeat is older than this is dead: its users count as offline.
pub const NODE_TTL_MS: i64 = 30_000;
/// Presence keys outlive a dead node's heartbeat long enough to be reaped, then expire.
const KEY_TTL_MS: i64 = NODE_TTL_MS * 4;
/// How often a node refreshes its heartbeat and presence.
pub const HEARTBEAT: Duration = Duration::from_secs(10);
/// Events waiting to be published; beyond this they are dropped (and recovered
/// by the receiving sessions from the database).
const OUTBOX: usize = 16_384;

/// GCRA rate limit (one Redis round trip, atomic across nodes). Time comes from
/// the Redis server so all nodes agree. Returns -1 if allowed, else the wait in µs.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
if tat - now > tolerance then return tat - now - tolerance end
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return -1
";

/// Failed-login counters (fixed window): adds one to each key and gives a key
/// without an expiry (a new one) `ARGV[1]` ms to live, in one atomic step.
/// `PEXPIRE ... NX` would do the second part in one command, but only from
/// Redis 7; this works on Redis 6 (and anything since 2.6).
const INCREMENT: &str = r"
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  if redis.call('PTTL', key) < 0 then
    redis.call('PEXPIRE', key, ARGV[1])
  end
end
return 0
";

pub struct RedisLink {
    node: Uuid,
    namespace: String,
    client: redis::Client,
    /// For commands; `None` until the first successful connection.
    commands: RwLock<Option<ConnectionManager>>,
    outbox: mpsc::Sender<String>,
    subscribed: AtomicBool,
    reconnects: AtomicU64,
    dropped: AtomicU64,
    gcra: redis::Script,
    increment: redis::Script,
}

impl RedisLink {
    /// Starts the publisher and subscriber tasks. Connecting happens in the
    /// background with backoff, so a node starts even while Redis is down.
    pub fn start(
        url: &str,
        namespace: &str,
        hub: Hub,
        rooms: Arc<RoomCache>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let client = redis::Client::open(url)?;
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let link = Arc::new(Self {
            node: Uuid::now_v7(),
            namespace: namespace.to_string(),
            client,
            commands: RwLock::new(None),
            outbox,
            subscribed: AtomicBool::new(false),
            reconnects: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            gcra: redis::Script::new(GCRA),
            increment: redis::Script::new(INCREMENT),
        });
        tasks.spawn(link.clone().publish_loop(rx, shutdown.clone()));
        tasks.spawn(link.clone().subscribe_loop(hub, rooms, shutdown));
        Ok(link)
    }

    pub fn node(&self) -> Uuid {
        self.node
    }

    fn key(&self, suffix: &str) -> String {
        format!("parley:{}:{suffix}", self.namespace)
    }

    fn node_key(&self, node: Uuid) -> String {
        self.key(&format!("node:{node}"))
    }

    /// Whether the subscription is up (cross-node events are flowing).
    pub fn is_connected(&self) -> bool {
        self.subscribed.load(Ordering::Relaxed)
    }

    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    /// Queues an event for the other nodes; never waits.
    pub fn publish(&self, event: Event) {
        let envelope = Envelope {
            v: 1,
            origin: self.node,
            event,
        };
        let Ok(text) = serde_json::to_string(&envelope) else {
            return;
        };
        if self.outbox.try_send(text).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(
                    dropped,
                    "redis outbox full: cross-node events dropped (clients will resync)"
                );
            }
        }
    }

    /// A command connection, connecting on first use.
    async fn connection(&self) -> Option<ConnectionManager> {
        if let Some(conn) = self
            .commands
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
        {
            return Some(conn);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        match self.client.get_connection_manager_with_config(config).await {
            Ok(conn) => {
                *self.commands.write().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                Some(conn)
            }
            Err(err) => {
                tracing::debug!(error = %err, "redis unreachable");
                None
            }
        }
    }

    /// Round trip for readiness checks.
    pub async fn ping(&self) -> bool {
        let Some(mut conn) = self.connection().await else {
            return false;
        };
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    async fn publish_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<String>,
        shutdown: CancellationToken,
    ) {
        let channel = self.key("events");
        loop {
            let payload = tokio::select! {
                payload = rx.recv() => payload,
                () = shutdown.cancelled() => return,
            };
            let Some(payload) = payload else { return };
            let Some(mut conn) = self.connection().await else {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if let Err(err) = conn.publish::<_, _, i64>(&channel, payload).await {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %err, "publish failed");
            }
        }
    }

    async fn subscribe_loop(
        self: Arc<Self>,
        hub: Hub,
        rooms: Arc<RoomCache>,
        shutdown: CancellationToken,
    ) {
        let channel = self.key("events");
        let mut backoff = Duration::from_millis(100);
        loop {
            let subscribed = async {
                let mut pubsub = self.client.get_async_pubsub().await?;
                pubsub.subscribe(&channel).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(Duration::from_secs(2), subscribed).await {
                Ok(Ok(mut pubsub)) => {
                    backoff = Duration::from_millis(100);
                    self.subscribed.store(true, Ordering::Relaxed);
                    let count = self.reconnects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(node = %self.node, connections = count + 1, "redis bus subscribed");
                    // Whatever happened while we were not listening is in the
                    // database: cached permissions are dropped (a lost
                    // `RoomChanged` would leave them stale), every session
                    // re-checks its rooms and membership, and our presence is
                    // written again in full.
                    rooms.clear();
                    hub.resync_all();
                    self.rewrite_presence(&hub.local_users()).await;
                    let mut messages = pubsub.on_message();
                    loop {
                        let message = tokio::select! {
                            message = messages.next() => message,
                            () = shutdown.cancelled() => return,
                        };
                        let Some(message) = message else { break };
                        let Ok(envelope) =
                            serde_json::from_slice::<Envelope>(message.get_payload_bytes())
                        else {
                            tracing::warn!("ignoring a malformed bus message");
                            continue;
                        };
                        if envelope.origin != self.node {
                            apply(&hub, &rooms, envelope.event);
                        }
                    }
                    self.subscribed.store(false, Ordering::Relaxed);
                    tracing::warn!("redis bus connection lost; reconnecting");
                }
                Ok(Err(err)) => tracing::debug!(error = %err, "redis subscribe failed"),
                Err(_) => tracing::debug!("redis subscribe timed out"),
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    // ---- presence: a hash per node of its online users, and a sorted set of
    // node heartbeats; a user is online if a live node lists them.

    async fn live_nodes(&self, conn: &mut ConnectionManager) -> redis::RedisResult<Vec<Uuid>> {
        let ids: Vec<String> = conn
            .zrangebyscore(self.key("nodes"), now_ms() - NODE_TTL_MS, "+inf")
            .await?;
        Ok(ids
            .iter()
            .filter_map(|id| Uuid::parse_str(id).ok())
            .collect())
    }

    /// Which of `users` a live node other than this one lists as online.
    pub async fn online_elsewhere(&self, users: &[UserId]) -> HashSet<UserId> {
        let mut found = HashSet::new();
        let Some(mut conn) = self.connection().await else {
            return found;
        };
        let Ok(nodes) = self.live_nodes(&mut conn).await else {
            return found;
        };
        let fields: Vec<String> = users.iter().map(UserId::to_string).collect();
        let mut pipe = redis::pipe();
        let others: Vec<Uuid> = nodes.into_iter().filter(|n| *n != self.node).collect();
        for node in &others {
            pipe.cmd("HMGET").arg(self.node_key(*node)).arg(&fields);
        }
        if others.is_empty() {
            return found;
        }
        let Ok(rows) = pipe
            .query_async::<Vec<Vec<Option<String>>>>(&mut conn)
            .await
        else {
            return found;
        };
        for row in rows {
            for (user, value) in users.iter().zip(row) {
                if value.is_some() {
                    found.insert(*user);
                }
            }
        }
        found
    }

    /// Lists the user as online here; true if no other live node lists them.
    pub async fn mark_online(&self, user: UserId) -> bool {
        if let Some(mut conn) = self.connection().await {
            let key = self.node_key(self.node);
            // Every key expires on its own, so a node that dies leaves nothing behind for long.
            let mut pipe = redis::pipe();
            pipe.hset(&key, user.to_string(), 1)
                .pexpire(&key, KEY_TTL_MS);
            let _: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        }
        self.online_elsewhere(&[user]).await.is_empty()
    }

    /// Removes the user from this node's list; true if no other live node lists them.
    pub async fn mark_offline(&self, user: UserId) -> bool {
        if let Some(mut conn) = self.connection().await {
            let key = self.node_key(self.node);
            let _: redis::RedisResult<()> = conn.hdel(&key, user.to_string()).await;
        }
        self.online_elsewhere(&[user]).await.is_empty()
    }

    /// Writes this node's presence list from scratch (after Redis was away).
    async fn rewrite_presence(&self, users: &[UserId]) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let key = self.node_key(self.node);
        let mut pipe = redis::pipe();
        pipe.atomic().del(&key);
        for chunk in users.chunks(1000) {
            let pairs: Vec<(String, i32)> = chunk.iter().map(|u| (u.to_string(), 1)).collect();
            pipe.hset_multiple(&key, &pairs);
        }
        pipe.pexpire(&key, KEY_TTL_MS);
        pipe.zadd(self.key("nodes"), self.node.to_string(), now_ms());
        pipe.pexpire(self.key("nodes"), KEY_TTL_MS);
        if let Err(err) = pipe.query_async::<()>(&mut conn).await {
            tracing::warn!(error = %err, "could not write presence to redis");
        }
    }

    /// Refreshes this node's heartbeat and its presence list's expiry.
    pub async fn heartbeat(&self) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.zadd(self.key("nodes"), self.node.to_string(), now_ms());
        pipe.pexpire(self.key("nodes"), KEY_TTL_MS);
        pipe.pexpire(self.node_key(self.node), KEY_TTL_MS);
        if let Err(err) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(error = %err, "redis heartbeat failed");
        }
    }

    /// A clean shutdown: this node's presence goes at once instead of expiring.
    pub async fn leave(&self) {
        let Some(mut conn) = self.connection().await else {
            return;
        };
        let mut pipe = redis::pipe();
        pipe.del(self.node_key(self.node))
            .zrem(self.key("nodes"), self.node.to_string());
        if let Err(err) = pipe.query_async::<()>(&mut conn).await {
            tracing::debug!(error = %err, "could not remove this node from redis");
        }
    }

    /// Takes over the presence list of one node that stopped beating (only one
    /// live node wins each), returning the users that were online there.
    pub async fn claim_dead_node(&self) -> Option<(Uuid, Vec<UserId>)> {
        let mut conn = self.connection().await?;
        let stale: Vec<String> = conn
            .zrangebyscore_limit(self.key("nodes"), "-inf", now_ms() - NODE_TTL_MS, 0, 1)
            .await
            .ok()?;
        let node = Uuid::parse_str(stale.first()?).ok()?;
        let lock: Option<String> = redis::cmd("SET")
            .arg(self.key(&format!("reap:{node}")))
            .arg(self.node.to_string())
            .arg("NX")
            .arg("EX")
            .arg(60)
            .query_async(&mut conn)
            .await
            .ok()?;
        lock?;
        let users: Vec<String> = conn.hkeys(self.node_key(node)).await.unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.del(self.node_key(node))
            .zrem(self.key("nodes"), node.to_string());
        let _: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        Some((
            node,
            users.iter().filter_map(|u| UserId::parse(u).ok()).collect(),
        ))
    }

    /// GCRA: `Ok(None)` if allowed, `Ok(Some(wait))` if over the rate.
    pub async fn rate(
        &self,
        key: &str,
        per_second: u32,
        burst: u32,
    ) -> redis::RedisResult<Option<Duration>> {
        let Some(mut conn) = self.connection().await else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis unreachable",
            )));
        };
        let interval = 1_000_000 / i64::from(per_second.max(1));
        let tolerance = interval * i64::from(burst.max(1) - 1);
        let wait: i64 = self
            .gcra
            .key(self.key(&format!("rate:{key}")))
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut conn)
            .await?;
        Ok((wait >= 0).then(|| Duration::from_micros(wait.unsigned_abs())))
    }

    /// As `rate`, for rates slower than one a second: one event per
    /// `interval`, `burst` at once.
    pub async fn rate_every(
        &self,
        key: &str,
        interval: Duration,
        burst: u32,
    ) -> redis::RedisResult<Option<Duration>> {
        let Some(mut conn) = self.connection().await else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis unreachable",
            )));
        };
        let interval = i64::try_from(interval.as_micros())
            .unwrap_or(i64::MAX)
            .max(1);
        let tolerance = interval.saturating_mul(i64::from(burst.max(1) - 1));
        let wait: i64 = self
            .gcra
            .key(self.key(&format!("rate:{key}")))
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut conn)
            .await?;
        Ok((wait >= 0).then(|| Duration::from_micros(wait.unsigned_abs())))
    }

    /// Failed-login counters (fixed window): current counts for these keys.
    pub async fn counts(&self, keys: &[String]) -> redis::RedisResult<Vec<(u32, Duration)>> {
        let Some(mut conn) = self.connection().await else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis unreachable",
            )));
        };
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.get(self.key(key)).pttl(self.key(key));
        }
        let raw: Vec<(Option<u32>, i64)> = pipe.query_async(&mut conn).await?;
        Ok(raw
            .into_iter()
            .map(|(n, ttl)| (n.unwrap_or(0), Duration::from_millis(ttl.max(0) as u64)))
            .collect())
    }

    /// Adds one to each counter; a new counter lives for `window`.
    pub async fn increment(&self, keys: &[String], window: Duration) -> redis::RedisResult<()> {
        let Some(mut conn) = self.connection().await else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis unreachable",
            )));
        };
        let mut invocation = self.increment.prepare_invoke();
        for key in keys {
            invocation.key(self.key(key));
        }
        invocation
            .arg(window.as_millis().max(1) as u64)
            .invoke_async::<i64>(&mut conn)
            .await
            .map(|_| ())
    }

    pub async fn delete(&self, keys: &[String]) -> redis::RedisResult<()> {
        let Some(mut conn) = self.connection().await else {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "redis unreachable",
            )));
        };
        let keys: Vec<String> = keys.iter().map(|k| self.key(k)).collect();
        conn.del(keys).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shared Redis of `PARLEY_TEST_REDIS_URL`, under a namespace of its own.
    fn link(test: &str) -> Option<(Arc<RedisLink>, CancellationToken, TaskTracker)> {
        let Some(url) = std::env::var("PARLEY_TEST_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            eprintln!("skipping {test}: set PARLEY_TEST_REDIS_URL to run it");
            return None;
        };
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let namespace = format!("t{}", Uuid::now_v7().simple());
        let link = RedisLink::start(
            &url,
            &namespace,
            Hub::new(),
            Arc::new(RoomCache::default()),
            &tasks,
            shutdown.clone(),
        )
        .unwrap();
        Some((link, shutdown, tasks))
    }

    /// Slow rates (image uploads: a few a minute) on the same GCRA script.
    #[tokio::test]
    async fn slow_rates_allow_the_burst_then_give_the_wait() {
        let Some((link, shutdown, tasks)) = link("slow_rates") else {
            return;
        };
        let interval = Duration::from_secs(20);
        for _ in 0..3 {
            assert_eq!(link.rate_every("img:ann", interval, 3).await.unwrap(), None);
        }
        let wait = link
            .rate_every("img:ann", interval, 3)
            .await
            .unwrap()
            .unwrap();
        assert!(
            wait > Duration::from_secs(15) && wait <= interval,
            "{wait:?}"
        );
        assert_eq!(link.rate_every("img:bob", interval, 3).await.unwrap(), None);
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }

    /// A counter's window starts at its first failure and later failures do
    /// not move it (without `PEXPIRE NX`, which Redis 6 lacks).
    #[tokio::test]
    async fn failure_counters_keep_the_window_of_their_first_increment() {
        let Some((link, shutdown, tasks)) = link("failure_counters") else {
            return;
        };
        let keys = vec!["login:u:ann".to_string(), "login:i:127.0.0.1".to_string()];
        link.increment(&keys, Duration::from_secs(60))
            .await
            .unwrap();
        link.increment(&keys, Duration::from_secs(3600))
            .await
            .unwrap();
        link.increment(&keys[..1], Duration::from_secs(3600))
            .await
            .unwrap();
        let counts = link.counts(&keys).await.unwrap();
        assert_eq!(counts[0].0, 3);
        assert_eq!(counts[1].0, 2);
        for (_, left) in &counts {
            assert!(
                *left > Duration::from_secs(50) && *left <= Duration::from_secs(60),
                "{left:?}"
            );
        }
        link.delete(&keys).await.unwrap();
        assert_eq!(link.counts(&keys).await.unwrap()[0].0, 0);
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
    }
}
