//! Test harness: the real server on a random port with a fresh data dir, a real
//! HTTP client (with cookies and CSRF) and a real WebSocket client.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Once};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parley::app::Application;
use parley::config::Config;
use parley::http::state::AppState;
use reqwest::cookie::{CookieStore, Jar};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(5);
pub const PASSWORD: &str = "correct-horse-9";

static TRACING: Once = Once::new();

/// Logs only with `TEST_LOG=1`.
fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            parley::telemetry::init(parley::config::LogFormat::Pretty);
        }
    });
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub state: AppState,
    pub data_dir: Arc<tempfile::TempDir>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Config)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    spawn_app_in(dir, configure).await
}

/// Starts a server on an existing data dir (to test restarts).
pub async fn spawn_app_in(
    dir: Arc<tempfile::TempDir>,
    configure: impl FnOnce(&mut Config),
) -> TestApp {
    init_tracing();
    let mut config = Config::for_tests(PathBuf::from(dir.path()));
    configure(&mut config);
    let app = Application::build(config).await.expect("server builds");
    let addr = app.local_addr();
    let state = app.state().clone();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        addr,
        state,
        data_dir: dir,
        server,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful shutdown, as on SIGTERM; returns the data dir for a restart.
    pub async fn stop(self) -> Arc<tempfile::TempDir> {
        self.state.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.server)
            .await
            .expect("server stops in time")
            .expect("server task")
            .expect("server ran cleanly");
        self.data_dir
    }

    /// A client that is not logged in.
    pub fn anonymous(&self) -> Client {
        Client::at(self.addr)
    }

    /// Registers `username` and returns its logged-in client.
    pub async fn user(&self, username: &str) -> Client {
        Client::register(self.addr, username).await
    }
}

pub struct Client {
    pub http: reqwest::Client,
    pub jar: Arc<Jar>,
    pub base: String,
    pub addr: SocketAddr,
    pub profile: Value,
    /// Sent as `Authorization: Bearer` instead of cookies when set.
    pub bearer: Option<String>,
}

impl Client {
    /// A client of the server at `addr`, not logged in.
    pub fn at(addr: SocketAddr) -> Self {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("http client");
        Self {
            http,
            jar,
            base: format!("http://{addr}"),
            addr,
            profile: Value::Null,
            bearer: None,
        }
    }

    /// Registers `username` on the server at `addr`; returns its logged-in client.
    pub async fn register(addr: SocketAddr, username: &str) -> Self {
        let mut client = Self::at(addr);
        let (status, body) = client
            .post(
                "/tools/api/auth/register/",
                json!({ "username": username, "password": PASSWORD }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "register {username}: {body}");
        client.profile = body["data"].clone();
        client
    }

    /// The same login (cookies or token) against another node.
    pub fn on(&self, addr: SocketAddr) -> Self {
        let mut moved = Self::at(addr);
        if let Some(cookies) = self.cookie_header() {
            let url = reqwest::Url::parse(&moved.base).expect("base url");
            for pair in cookies.split("; ") {
                moved.jar.add_cookie_str(pair, &url);
            }
        }
        moved.profile = self.profile.clone();
        moved.bearer = self.bearer.clone();
        moved
    }

    pub fn id(&self) -> String {
        self.profile["id"].as_str().expect("logged in").to_string()
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        let url = reqwest::Url::parse(&self.base).expect("base url");
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_string))
    }

    /// The raw `Cookie` header, for WebSocket requests.
    pub fn cookie_header(&self) -> Option<String> {
        let url = reqwest::Url::parse(&self.base).expect("base url");
        self.jar
            .cookies(&url)
            .and_then(|h| h.to_str().ok().map(str::to_string))
    }

    /// A request with cookies, the CSRF header (when the cookie exists) or bearer token.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let mut request = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(token) = &self.bearer {
            request = request.bearer_auth(token);
        } else if let Some(csrf) = self.cookie("csrftoken") {
            request = request.header("X-CSRFToken", csrf);
        }
        request
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::PATCH, path).json(&body))
            .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// Creates a room and returns its id.
    pub async fn create_room(&self, name: &str, kind: &str, members: &[&Client]) -> String {
        let ids: Vec<String> = members.iter().map(|m| m.id()).collect();
        let (status, body) = self
            .post(
                "/tools/api/chat/rooms/",
                json!({ "name": name, "room_type": kind, "members": ids }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "create room: {body}");
        body["data"]["room_id"]
            .as_str()
            .expect("room id")
            .to_string()
    }

    /// Sends a message through the REST API and returns it.
    pub async fn say(&self, room: &str, content: &str) -> Value {
        let (status, body) = self
            .post(
                &format!("/tools/api/chat/{room}/send/"),
                json!({ "content": content }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "send: {body}");
        body["data"].clone()
    }

    /// A personal API token for this user.
    pub async fn api_token(&self) -> String {
        let (status, body) = self
            .post("/tools/api/auth/tokens/", json!({ "name": "tests" }))
            .await;
        assert_eq!(status, StatusCode::CREATED, "token: {body}");
        body["data"]["token"].as_str().expect("token").to_string()
    }

    /// The server's own origin, as a browser on its pages would send it.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Opens a WebSocket with this client's session cookie and the server's own Origin.
    pub async fn ws(&self, path: &str) -> Ws {
        self.try_ws(path, Some(&self.origin()))
            .await
            .expect("websocket opens")
    }

    pub async fn try_ws(&self, path: &str, origin: Option<&str>) -> Result<Ws, WsError> {
        let mut request = format!("ws://{}{}", self.addr, path).into_client_request()?;
        if let Some(token) = &self.bearer {
            let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
            request.headers_mut().insert("authorization", value);
        } else if let Some(cookies) = self.cookie_header() {
            request.headers_mut().insert(
                "cookie",
                HeaderValue::from_str(&cookies).expect("cookie header"),
            );
        }
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("origin", HeaderValue::from_str(origin).expect("origin"));
        }
        let (stream, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")?;
        Ok(Ws { stream })
    }
}

/// The address a `parley serve` process prints once it listens, and every
/// line of its stdout (where it logs), collected as it comes so it never
/// blocks on a full pipe.
pub async fn listening_addr(
    child: &mut tokio::process::Child,
) -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("piped stdout");
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            let found = line
                .split("Open http://")
                .nth(1)
                .map(|rest| rest.split('/').next().expect("address").to_string());
            seen.lock().unwrap().push(line);
            if let Some(addr) = found {
                return addr.parse::<SocketAddr>().expect("socket address");
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server starts listening");
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    (addr, seen)
}

/// The HTTP status of a refused WebSocket upgrade.
pub fn refused_status(result: Result<Ws, WsError>) -> u16 {
    refusal(result).0
}

/// The HTTP status and error code of a refused WebSocket upgrade.
pub fn refusal(result: Result<Ws, WsError>) -> (u16, String) {
    match result {
        Err(WsError::Http(response)) => {
            let body: Value = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().unwrap_or_default();
            (response.status().as_u16(), code.to_string())
        }
        Err(other) => panic!("expected an HTTP refusal, got {other:?}"),
        Ok(_) => panic!("expected the upgrade to be refused"),
    }
}

pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send_json(&mut self, value: Value) {
        self.send_raw(Message::text(value.to_string())).await;
    }

    pub async fn send_raw(&mut self, message: Message) {
        tokio::time::timeout(TIMEOUT, self.stream.send(message))
            .await
            .expect("ws send in time")
            .expect("ws send");
    }

    /// The next JSON text frame (skipping pings), or panics after the timeout.
    pub async fn next_json(&mut self) -> Value {
        self.try_next_json(TIMEOUT)
            .await
            .expect("a frame arrives in time")
    }

    pub async fn try_next_json(&mut self, wait: Duration) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()??;
            match frame.expect("ws frame") {
                Message::Text(text) => {
                    return Some(serde_json::from_str(&text).expect("json frame"));
                }
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Skips frames until one of `kind` arrives.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        self.next_of_within(kind, TIMEOUT).await
    }

    /// Skips frames until one of `kind` arrives, waiting up to `wait` (for
    /// what takes several round trips between nodes, or an outage to show).
    pub async fn next_of_within(&mut self, kind: &str, wait: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let frame = self
                .try_next_json(left)
                .await
                .unwrap_or_else(|| panic!("no {kind} frame within {wait:?}"));
            if frame["type"] == kind {
                return frame;
            }
        }
    }

    /// Asserts no frame of `kind` arrives within `wait`.
    pub async fn expect_none_of(&mut self, kind: &str, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.try_next_json(left).await {
                None => return,
                Some(frame) if frame["type"] == kind => panic!("unexpected {kind}: {frame}"),
                Some(_) => continue,
            }
        }
    }

    /// Reads until the server closes; returns its close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        loop {
            match tokio::time::timeout_at(deadline, self.stream.next()).await {
                Err(_) => panic!("the server did not close the connection in time"),
                Ok(None) => return None,
                Ok(Some(Ok(Message::Close(frame)))) => return frame,
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_))) => return None,
            }
        }
    }
}
