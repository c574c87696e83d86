//! One simulated client: a WebSocket on `/ws/chat/<room>/` authenticated with
//! a bearer token, opened from a chosen local address. It measures every
//! message it receives, and when it is a sender it sends at a fixed rate
//! (open loop) or keeps a window of unacknowledged messages full (closed
//! loop). When its connection drops it reconnects and resumes from the last
//! seq it saw, as the protocol's recommended client does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::MissedTickBehavior;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::bench::accounting::{Receipt, Sent, Tally};
use crate::bench::frame::{self, Chat, Frame, Kind};
use crate::bench::progress::Progress;

type Ws = WebSocketStream<TcpStream>;

/// After a `rate_limited` answer, a closed-loop sender waits this long before
/// filling its window again, instead of hammering the limiter.
const RATE_LIMITED_PAUSE: Duration = Duration::from_millis(100);
/// Longest wait for the server to answer our close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// Microseconds since the run began: the send time carried in each message.
#[derive(Debug, Clone, Copy)]
pub struct Clock(Instant);

impl Clock {
    pub fn start() -> Self {
        Self(Instant::now())
    }

    pub fn micros(&self) -> u64 {
        self.0.elapsed().as_micros() as u64
    }
}

/// What every client of a run shares (read-only, except the counters).
pub struct Shared {
    pub clock: Clock,
    /// Distinguishes this run's `client_id`s from earlier runs' (see [`frame::client_id`]).
    pub run_id: u64,
    pub server: SocketAddr,
    /// `ws://host:port`, without a trailing slash.
    pub ws_base: String,
    pub read_buffer: usize,
    pub connect_timeout: Duration,
    /// How long a client keeps trying to reconnect after losing its connection.
    pub reconnect_timeout: Duration,
    pub message_size: usize,
    pub progress: Progress,
    pub latency_template: Histogram<u32>,
}

#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// One message every `interval`, acknowledged or not.
    Open { interval: Duration },
    /// At most `window` messages unacknowledged, each sent as soon as there is room.
    Closed { window: usize },
}

#[derive(Debug, Clone, Copy)]
pub struct Sending {
    pub pace: Pace,
    /// Messages this sender sends at most.
    pub quota: u64,
}

/// Who a client is.
pub struct Spec {
    pub index: usize,
    pub room: usize,
    pub room_id: Arc<str>,
    pub token: Arc<str>,
    pub source: Option<IpAddr>,
    pub sending: Option<Sending>,
    /// Whether this client drops its connection in the reconnect storm.
    pub joins_storm: bool,
}

/// What the run tells each client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    StartSending,
    StopSending,
    /// Drop the connection now (as if the network failed) and reconnect with resume.
    Drop,
    /// Close the connection and report.
    Finish,
}

/// Everything a client measured.
pub struct Outcome {
    pub index: usize,
    pub room: usize,
    /// How long the first connection took, up to `connection_established`.
    pub connect_time: Option<Duration>,
    pub connect_error: Option<String>,
    pub tally: Option<Tally>,
    pub sent: Option<Sent>,
    /// Connections lost that we did not close, by reason.
    pub disconnects: BTreeMap<String, u64>,
    pub reconnects: u64,
    /// A reconnect that never succeeded, and why.
    pub gave_up: Option<String>,
    /// From the storm's drop to `resume_complete` on the new connection.
    pub back_after: Option<Duration>,
    /// `error` frames that do not answer one of our messages, by code.
    pub other_errors: BTreeMap<String, u64>,
    /// Frames that could not be read as JSON objects.
    pub unparsed: u64,
}

/// Runs one client until told to finish, its control channel closes, or it
/// loses its connection for good.
pub async fn run(
    spec: Spec,
    shared: Arc<Shared>,
    control: mpsc::Receiver<Control>,
    connect_permit: OwnedSemaphorePermit,
) -> Outcome {
    let mut outcome = Outcome {
        index: spec.index,
        room: spec.room,
        connect_time: None,
        connect_error: None,
        tally: None,
        sent: None,
        disconnects: BTreeMap::new(),
        reconnects: 0,
        gave_up: None,
        back_after: None,
        other_errors: BTreeMap::new(),
        unparsed: 0,
    };
    let started = Instant::now();
    let first = connect(&spec, &shared, None).await;
    drop(connect_permit);
    let (ws, last_seq) = match first {
        Ok(connected) => connected,
        Err(reason) => {
            shared.progress.connect_failed.add(1);
            outcome.connect_error = Some(reason);
            return outcome;
        }
    };
    outcome.connect_time = Some(started.elapsed());
    shared.progress.connected.add(1);
    shared.progress.room_connected[spec.room].add(1);

    let mut client = Client {
        sent: spec.sending.map(|_| Sent::default()),
        spec,
        shared,
        tally: Tally::new(last_seq),
        pending: HashMap::new(),
        resent: HashSet::new(),
        next_n: 0,
        sending: false,
        resuming: false,
        paused_until: None,
        storm_at: None,
        outcome,
    };
    client.serve(ws, control).await;
    let Client {
        mut outcome,
        tally,
        sent,
        ..
    } = client;
    outcome.tally = Some(tally);
    outcome.sent = sent;
    outcome
}

struct Client {
    spec: Spec,
    shared: Arc<Shared>,
    tally: Tally,
    sent: Option<Sent>,
    /// Sent, not yet acknowledged: message number → send time (µs).
    pending: HashMap<u64, u64>,
    /// Messages sent again after a reconnect; their echo may come twice.
    resent: HashSet<u64>,
    next_n: u64,
    /// Between `StartSending` and `StopSending`.
    sending: bool,
    /// Reconnected and waiting for `resume_complete`: no sending meanwhile.
    resuming: bool,
    /// Closed loop after `rate_limited`: no sending until then.
    paused_until: Option<tokio::time::Instant>,
    /// When the reconnect storm dropped this client's connection.
    storm_at: Option<Instant>,
    outcome: Outcome,
}

/// Why the connection loop stopped.
enum Stop {
    Finish,
    Lost(String),
    /// The reconnect storm: drop the connection now.
    Storm,
}

impl Client {
    async fn serve(&mut self, ws: Ws, mut control: mpsc::Receiver<Control>) {
        let mut ws = ws;
        let mut ticker = None;
        loop {
            let stop = self.drive(&mut ws, &mut control, &mut ticker).await;
            match stop {
                Stop::Finish => {
                    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.close(None)).await;
                    return;
                }
                Stop::Lost(reason) => self.lost(reason),
                Stop::Storm => {
                    self.storm_at = Some(Instant::now());
                    self.lost("storm".into());
                }
            }
            // Gone: like a network failure, nothing is said to the server.
            drop(ws);
            match self.reconnect(&mut control).await {
                Some(new) => ws = new,
                None => return,
            }
        }
    }

    fn lost(&mut self, reason: String) {
        self.shared.progress.disconnects.add(1);
        *self.outcome.disconnects.entry(reason).or_default() += 1;
    }

    /// Reads, sends and obeys the run until the connection is lost or the run ends.
    async fn drive(
        &mut self,
        ws: &mut Ws,
        control: &mut mpsc::Receiver<Control>,
        ticker: &mut Option<tokio::time::Interval>,
    ) -> Stop {
        loop {
            if self.sending && ticker.is_none() {
                *ticker = self.ticker();
            }
            let may_tick = self.sending && ticker.is_some();
            let pause = self.paused_until;
            tokio::select! {
                biased;
                command = control.recv() => match command {
                    Some(Control::StartSending) => {
                        self.sending = true;
                        if let Err(stop) = self.fill_window(ws).await {
                            return stop;
                        }
                    }
                    Some(Control::StopSending) => {
                        self.sending = false;
                        self.shared.progress.stopped.add(1);
                    }
                    Some(Control::Drop) if self.spec.joins_storm => return Stop::Storm,
                    // Spared by the storm: back at once.
                    Some(Control::Drop) => self.shared.progress.back.add(1),
                    Some(Control::Finish) | None => return Stop::Finish,
                },
                frame = ws.next() => {
                    let text = match frame {
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(close))) => {
                            let code = close.map_or(1005, |c| u16::from(c.code));
                            return Stop::Lost(format!("closed {code}"));
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(err)) => return Stop::Lost(describe_ws_error(&err)),
                        None => return Stop::Lost("closed".into()),
                    };
                    let acked = self.on_text(&text);
                    if acked && let Err(stop) = self.fill_window(ws).await {
                        return stop;
                    }
                }
                _ = tick(ticker), if may_tick => {
                    if let Err(stop) = self.send_one(ws).await {
                        return stop;
                    }
                }
                () = sleep_until(pause), if pause.is_some() => {
                    self.paused_until = None;
                    if let Err(stop) = self.fill_window(ws).await {
                        return stop;
                    }
                }
            }
        }
    }

    /// Open loop: a ticker at the sender's rate, its phase spread by the
    /// client's index so that senders do not all send at the same instant.
    fn ticker(&self) -> Option<tokio::time::Interval> {
        let Some(Pace::Open { interval }) = self.pace() else {
            return None;
        };
        // Fractional part of index × golden ratio: evenly spread, deterministic.
        let phase = (self.spec.index as f64 * 0.618_033_988_75).fract();
        let first = tokio::time::Instant::now() + interval.mul_f64(phase);
        let mut ticker = tokio::time::interval_at(first, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
        Some(ticker)
    }

    /// Reconnects with `?since_seq=<last seq seen>`, reads the replay up to
    /// `resume_complete` and resends what is still unacknowledged; retries
    /// with backoff until the reconnect timeout.
    async fn reconnect(&mut self, control: &mut mpsc::Receiver<Control>) -> Option<Ws> {
        let deadline = tokio::time::Instant::now() + self.shared.reconnect_timeout;
        let mut backoff = Duration::from_millis(50);
        loop {
            let since = self.tally.last_seq();
            let reason = match connect(&self.spec, &self.shared, Some(since)).await {
                Ok((mut ws, _)) => {
                    self.outcome.reconnects += 1;
                    match self.until_resumed(&mut ws, control, deadline).await {
                        Ok(()) => {
                            if let Some(dropped) = self.storm_at.take() {
                                self.outcome.back_after = Some(dropped.elapsed());
                                self.shared.progress.back.add(1);
                            }
                            return Some(ws);
                        }
                        Err(Stop::Finish) => return None,
                        Err(Stop::Lost(reason)) => {
                            self.lost(reason.clone());
                            reason
                        }
                        Err(Stop::Storm) => "storm".to_string(),
                    }
                }
                Err(reason) => reason,
            };
            if tokio::time::Instant::now() + backoff >= deadline {
                self.outcome.gave_up = Some(reason);
                return None;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    /// Reads (and measures) the replay until `resume_complete`, then resends
    /// what is still unacknowledged, with the same `client_id`s.
    async fn until_resumed(
        &mut self,
        ws: &mut Ws,
        control: &mut mpsc::Receiver<Control>,
        deadline: tokio::time::Instant,
    ) -> Result<(), Stop> {
        self.resuming = true;
        while self.resuming {
            let frame = tokio::select! {
                biased;
                command = control.recv() => match command {
                    Some(Control::StartSending) => { self.sending = true; continue }
                    Some(Control::StopSending) => { self.sending = false; continue }
                    // Already reconnecting: this reconnect is the storm's too.
                    Some(Control::Drop) => {
                        if self.spec.joins_storm {
                            if self.storm_at.is_none() {
                                self.storm_at = Some(Instant::now());
                                *self.outcome.disconnects.entry("storm".into()).or_default() += 1;
                            }
                        } else {
                            self.shared.progress.back.add(1);
                        }
                        continue
                    }
                    Some(Control::Finish) | None => return Err(Stop::Finish),
                },
                frame = tokio::time::timeout_at(deadline, ws.next()) => frame,
            };
            match frame {
                Err(_) => return Err(Stop::Lost("no resume_complete in time".into())),
                Ok(Some(Ok(Message::Text(text)))) => {
                    self.on_text(&text);
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(None) => {
                    return Err(Stop::Lost("closed while resuming".into()));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(err))) => return Err(Stop::Lost(describe_ws_error(&err))),
            }
        }
        self.resend(ws).await
    }

    /// Handles one text frame; true if it acknowledged one of our messages
    /// (so a closed-loop sender may send the next).
    fn on_text(&mut self, text: &str) -> bool {
        let Some(frame) = Frame::parse(text) else {
            self.outcome.unparsed += 1;
            return false;
        };
        match frame.kind {
            Kind::ChatMessage => match frame.chat {
                Some(chat) => self.on_chat(&chat),
                None => {
                    self.outcome.unparsed += 1;
                    false
                }
            },
            Kind::Error => {
                let code = frame.code.as_deref().unwrap_or("unknown");
                let mine = frame
                    .client_id
                    .as_deref()
                    .and_then(|id| frame::parse_client_id(self.shared.run_id, id))
                    .filter(|(conn, _)| *conn == self.spec.index)
                    .and_then(|(_, n)| self.pending.remove(&n).map(|_| n));
                match (mine, self.sent.as_mut()) {
                    (Some(_), Some(sent)) => {
                        sent.record_error(code);
                        self.shared.progress.errors.add(1);
                        if code == "rate_limited" {
                            self.shared.progress.rate_limited.add(1);
                            if matches!(self.pace(), Some(Pace::Closed { .. })) {
                                self.paused_until =
                                    Some(tokio::time::Instant::now() + RATE_LIMITED_PAUSE);
                            }
                        }
                        true
                    }
                    _ => {
                        *self
                            .outcome
                            .other_errors
                            .entry(code.to_string())
                            .or_default() += 1;
                        false
                    }
                }
            }
            Kind::ResumeComplete => {
                self.resuming = false;
                false
            }
            Kind::ConnectionEstablished | Kind::Other => false,
        }
    }

    fn on_chat(&mut self, chat: &Chat) -> bool {
        let now = self.shared.clock.micros();
        let sent_at = frame::sent_us(&chat.content);
        let mine = chat
            .is_own
            .then(|| {
                chat.client_id
                    .as_deref()
                    .and_then(|id| frame::parse_client_id(self.shared.run_id, id))
            })
            .flatten()
            .filter(|(conn, _)| *conn == self.spec.index)
            .map(|(_, n)| n);
        let repeat_expected = mine.is_some_and(|n| self.resent.contains(&n));
        let receipt = self.tally.receive(
            chat.seq,
            sent_at.map(|t| now.saturating_sub(t)),
            repeat_expected,
            &self.shared.latency_template,
        );
        if sent_at.is_some() && matches!(receipt, Receipt::InOrder | Receipt::OutOfOrder) {
            self.shared.progress.delivered.add(1);
        }
        let (Some(n), Some(sent)) = (mine, self.sent.as_mut()) else {
            return false;
        };
        let Some(sent_at) = self.pending.remove(&n) else {
            return false;
        };
        sent.record_ack(
            chat.seq,
            now.saturating_sub(sent_at),
            &self.shared.latency_template,
        );
        self.shared.progress.acked.add(1);
        self.shared.progress.room_acked[self.spec.room].add(1);
        true
    }

    fn pace(&self) -> Option<Pace> {
        self.spec.sending.map(|s| s.pace)
    }

    fn quota_left(&self) -> bool {
        match (self.spec.sending, &self.sent) {
            (Some(sending), Some(sent)) => sent.sent < sending.quota,
            _ => false,
        }
    }

    /// The next message frame, recorded as sent and pending.
    fn next_message(&mut self) -> Option<String> {
        if !self.quota_left() {
            return None;
        }
        let sent = self.sent.as_mut()?;
        let n = self.next_n;
        self.next_n += 1;
        let now = self.shared.clock.micros();
        self.pending.insert(n, now);
        sent.sent += 1;
        self.shared.progress.sent.add(1);
        Some(frame::message_frame(
            &frame::content(now, self.shared.message_size),
            &frame::client_id(self.shared.run_id, self.spec.index, n),
        ))
    }

    async fn send_one(&mut self, ws: &mut Ws) -> Result<(), Stop> {
        if let Some(text) = self.next_message() {
            ws.send(Message::text(text))
                .await
                .map_err(|e| Stop::Lost(describe_ws_error(&e)))?;
        }
        Ok(())
    }

    /// Closed loop: sends until the window is full (one flush for all).
    async fn fill_window(&mut self, ws: &mut Ws) -> Result<(), Stop> {
        let Some(Pace::Closed { window }) = self.pace() else {
            return Ok(());
        };
        if !self.sending || self.resuming || self.paused_until.is_some() {
            return Ok(());
        }
        let mut queued = false;
        while self.pending.len() < window {
            let Some(text) = self.next_message() else {
                break;
            };
            ws.feed(Message::text(text))
                .await
                .map_err(|e| Stop::Lost(describe_ws_error(&e)))?;
            queued = true;
        }
        if queued {
            ws.flush()
                .await
                .map_err(|e| Stop::Lost(describe_ws_error(&e)))?;
        }
        Ok(())
    }

    /// Sends every unacknowledged message again with its original `client_id`
    /// and send time: the server stores each at most once.
    async fn resend(&mut self, ws: &mut Ws) -> Result<(), Stop> {
        let Some(sent) = self.sent.as_mut() else {
            return Ok(());
        };
        let mut pending: Vec<(u64, u64)> = self.pending.iter().map(|(n, t)| (*n, *t)).collect();
        pending.sort_unstable();
        for (n, sent_at) in &pending {
            self.resent.insert(*n);
            sent.resent += 1;
            let text = frame::message_frame(
                &frame::content(*sent_at, self.shared.message_size),
                &frame::client_id(self.shared.run_id, self.spec.index, *n),
            );
            ws.feed(Message::text(text))
                .await
                .map_err(|e| Stop::Lost(describe_ws_error(&e)))?;
        }
        ws.flush()
            .await
            .map_err(|e| Stop::Lost(describe_ws_error(&e)))?;
        self.fill_window(ws).await
    }
}

async fn tick(ticker: &mut Option<tokio::time::Interval>) {
    match ticker {
        Some(ticker) => {
            ticker.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Opens the WebSocket (from the client's source address) and waits for
/// `connection_established`; returns the socket and the room's `last_seq`.
async fn connect(spec: &Spec, shared: &Shared, since: Option<i64>) -> Result<(Ws, i64), String> {
    let attempt = async {
        let socket = match shared.server {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| format!("socket: {:?}", e.kind()))?;
        if let Some(source) = spec.source {
            socket
                .bind(SocketAddr::new(source, 0))
                .map_err(|e| format!("bind {source}: {:?}", e.kind()))?;
        }
        let stream = socket
            .connect(shared.server)
            .await
            .map_err(|e| format!("tcp connect: {:?}", e.kind()))?;
        let _ = stream.set_nodelay(true);
        let url = match since {
            Some(since) => format!(
                "{}/ws/chat/{}/?since_seq={since}",
                shared.ws_base, spec.room_id
            ),
            None => format!("{}/ws/chat/{}/", shared.ws_base, spec.room_id),
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| format!("bad url: {e}"))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", spec.token))
            .map_err(|_| "the token is not a valid header".to_string())?;
        request.headers_mut().insert("authorization", bearer);
        let config = WebSocketConfig::default()
            .read_buffer_size(shared.read_buffer)
            .write_buffer_size(0);
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config))
                .await
                .map_err(|e| describe_ws_error(&e))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(text))) => {
                    if let Some(frame) = Frame::parse(&text)
                        && frame.kind == Kind::ConnectionEstablished
                    {
                        return Ok((ws, frame.last_seq.unwrap_or(0)));
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    let code = close.map_or(1005, |c| u16::from(c.code));
                    return Err(format!("closed {code} before connection_established"));
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(describe_ws_error(&err)),
                None => return Err("closed before connection_established".into()),
            }
        }
    };
    match tokio::time::timeout(shared.connect_timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err("timeout".into()),
    }
}

/// A short, low-cardinality reason (it is a key in the report).
fn describe_ws_error(err: &WsError) -> String {
    match err {
        WsError::Http(response) => {
            let code = response
                .body()
                .as_deref()
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(body).ok())
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
                .unwrap_or_default();
            format!("http {} {code}", response.status().as_u16())
                .trim_end()
                .to_string()
        }
        WsError::Io(io) => format!("io: {:?}", io.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".into(),
        WsError::Protocol(p) => format!("protocol: {p}"),
        other => format!("websocket: {other}"),
    }
}
