//! The server's configuration: every flag of `parley`, each also a `PARLEY_*`
//! environment variable. The subcommands that use it are in `cli`. Imports
//! `domain/` and the store's settings only.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{ArgAction, Parser, ValueEnum};
use url::Url;

use crate::domain::net::IpNet;
use crate::store::redact_url;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Parser, Clone)]
pub struct Config {
    /// Address to listen on.
    #[arg(
        long,
        env = "PARLEY_BIND",
        default_value = "127.0.0.1:8000",
        global = true
    )]
    pub bind: SocketAddr,

    /// Directory for the SQLite database and other local state.
    #[arg(long, env = "PARLEY_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,

    /// Database URL: `sqlite://path` or `postgres://...`. Default: SQLite in the data dir.
    #[arg(long, env = "PARLEY_DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Maximum database connections in the pool.
    #[arg(
        long,
        env = "PARLEY_DB_MAX_CONNECTIONS",
        default_value_t = 8,
        global = true
    )]
    pub db_max_connections: u32,

    /// Redis URL for running several nodes (message bus, presence, shared limits).
    /// Without it this node works alone with in-process fan-out.
    #[arg(long, env = "PARLEY_REDIS_URL", global = true)]
    pub redis_url: Option<String>,

    /// Prefix for this deployment's Redis keys and channel (`parley:<namespace>:...`).
    #[arg(
        long,
        env = "PARLEY_REDIS_NAMESPACE",
        default_value = "main",
        global = true
    )]
    pub redis_namespace: String,

    /// Public URL users open (used for the Origin check, links and Secure cookies).
    /// Default: http://<bind>.
    #[arg(long, env = "PARLEY_PUBLIC_URL", global = true)]
    pub public_url: Option<Url>,

    /// Further origins allowed to open cookie-authenticated WebSockets (comma separated).
    #[arg(
        long,
        env = "PARLEY_ALLOWED_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub allowed_origins: Vec<String>,

    /// Whether anyone may register an account.
    #[arg(long, env = "PARLEY_REGISTRATION_OPEN", default_value_t = true, action = ArgAction::Set, global = true)]
    pub registration_open: bool,

    /// Public room every new user joins (created at startup); empty for none.
    #[arg(
        long,
        env = "PARLEY_DEFAULT_ROOM",
        default_value = "general",
        global = true
    )]
    pub default_room: String,

    /// How long a login session lasts.
    #[arg(long, env = "PARLEY_SESSION_TTL", default_value = "14d", value_parser = humantime::parse_duration, global = true)]
    pub session_ttl: Duration,

    /// Longest message, in characters after trimming.
    #[arg(
        long,
        env = "PARLEY_MAX_MESSAGE_CHARS",
        default_value_t = 5000,
        global = true
    )]
    pub max_message_chars: usize,

    /// Messages per second a user may send, sustained.
    #[arg(long, env = "PARLEY_MESSAGE_RATE", default_value_t = 10, global = true)]
    pub message_rate: u32,

    /// Messages a user may send in a burst above the sustained rate.
    #[arg(
        long,
        env = "PARLEY_MESSAGE_BURST",
        default_value_t = 20,
        global = true
    )]
    pub message_burst: u32,

    /// Failed logins per username within the login window before 429.
    #[arg(
        long,
        env = "PARLEY_LOGIN_MAX_FAILURES",
        default_value_t = 5,
        global = true
    )]
    pub login_max_failures: u32,

    /// Failed logins per client IP within the login window before 429.
    #[arg(
        long,
        env = "PARLEY_LOGIN_MAX_FAILURES_PER_IP",
        default_value_t = 20,
        global = true
    )]
    pub login_max_failures_per_ip: u32,

    /// Window over which failed logins are counted.
    #[arg(long, env = "PARLEY_LOGIN_WINDOW", default_value = "15m", value_parser = humantime::parse_duration, global = true)]
    pub login_window: Duration,

    /// Interval of WebSocket pings and `heartbeat` frames; a peer silent for two is closed.
    #[arg(long, env = "PARLEY_HEARTBEAT_INTERVAL", default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    pub heartbeat_interval: Duration,

    /// How long after a user's last connection closes they are announced as gone (`user_left`). Coming back sooner (a reload, a network blip, a reconnect storm) announces nothing; 0 announces at once
    #[arg(long, env = "PARLEY_PRESENCE_GRACE", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub presence_grace: Duration,

    /// Frames queued for one WebSocket before it counts as a slow consumer and is closed (1013).
    #[arg(
        long,
        env = "PARLEY_WS_OUTBOUND_QUEUE",
        default_value_t = 256,
        global = true
    )]
    pub ws_outbound_queue: usize,

    /// Most WebSocket connections served at once.
    #[arg(
        long,
        env = "PARLEY_MAX_CONNECTIONS",
        default_value_t = 200_000,
        global = true
    )]
    pub max_connections: usize,

    /// Memory for the recent messages of active rooms, in MiB: the latest
    /// history page and resumes from a recent seq are served without a query.
    /// 0 turns it off; it is always off with --redis-url.
    #[arg(
        long,
        env = "PARLEY_TAIL_CACHE_MIB",
        default_value_t = 32,
        global = true
    )]
    pub tail_cache_mib: usize,

    /// How long shutdown waits for sessions and writes to finish.
    #[arg(long, env = "PARLEY_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub shutdown_timeout: Duration,

    /// Same as `--trusted-proxies 127.0.0.0/8,::1`: a reverse proxy on this machine.
    #[arg(long, env = "PARLEY_TRUST_PROXY_HEADERS", default_value_t = false, action = ArgAction::Set, global = true)]
    pub trust_proxy_headers: bool,

    /// Log output format.
    #[arg(
        long,
        env = "PARLEY_LOG_FORMAT",
        value_enum,
        default_value = "pretty",
        global = true
    )]
    pub log_format: LogFormat,

    /// Reverse proxies whose `X-Forwarded-For` is believed (addresses or CIDRs,
    /// comma separated). The client IP is the rightmost forwarded address that
    /// is not one of them; requests from anyone else are taken at their peer address.
    #[arg(
        long,
        env = "PARLEY_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_ip_net,
        global = true
    )]
    pub trusted_proxies: Vec<IpNet>,

    /// When an SQLite commit reaches the disk: `full` syncs every commit before
    /// anything is acknowledged or delivered; `normal` syncs only at checkpoints
    /// and may lose the last commits on a power cut or OS crash.
    #[arg(
        long,
        env = "PARLEY_SQLITE_SYNCHRONOUS",
        value_enum,
        default_value = "full",
        global = true
    )]
    pub sqlite_synchronous: SqliteSynchronousArg,

    /// Most WebSocket connections one user may hold on this node; the next one
    /// is closed at once with 4029.
    #[arg(
        long,
        env = "PARLEY_MAX_CONNECTIONS_PER_USER",
        default_value_t = 32,
        global = true
    )]
    pub max_connections_per_user: usize,

    /// How long a client may take to send a request's headers (and, on a kept-alive
    /// connection, to start the next request) before the connection is closed.
    #[arg(long, env = "PARLEY_HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration, global = true)]
    pub http_header_timeout: Duration,

    /// Most users one user may block at once (`409 too_many_blocks` beyond).
    #[arg(
        long,
        env = "PARLEY_MAX_BLOCKS_PER_USER",
        default_value_t = 1000,
        global = true
    )]
    pub max_blocks_per_user: u32,

    /// Rooms one user may create per hour: group, public and new direct rooms
    /// (`429 too_many_rooms` beyond). Counted in the database, across nodes.
    #[arg(
        long,
        env = "PARLEY_MAX_ROOMS_PER_HOUR",
        default_value_t = 30,
        global = true
    )]
    pub max_rooms_per_hour: u32,

    /// Usable invite links one room may have at once (`409 too_many_invites` beyond).
    #[arg(
        long,
        env = "PARLEY_MAX_INVITES_PER_ROOM",
        default_value_t = 100,
        global = true
    )]
    pub max_invites_per_room: u32,

    /// Live login sessions per user; a login beyond it ends the user's least
    /// recently used session (and its WebSockets).
    #[arg(
        long,
        env = "PARLEY_MAX_SESSIONS_PER_USER",
        default_value_t = 50,
        global = true
    )]
    pub max_sessions_per_user: u32,

    /// API tokens per user (`409 too_many_tokens` beyond).
    #[arg(
        long,
        env = "PARLEY_MAX_TOKENS_PER_USER",
        default_value_t = 50,
        global = true
    )]
    pub max_tokens_per_user: u32,

    /// Members one request may add when creating a room (`400 too_many_members` beyond).
    #[arg(
        long,
        env = "PARLEY_MAX_MEMBERS_PER_REQUEST",
        default_value_t = 100,
        global = true
    )]
    pub max_members_per_request: usize,

    /// Images (avatars) decoded at once, off the async threads; 0 = one per CPU.
    #[arg(long, env = "PARLEY_IMAGE_WORKERS", default_value_t = 0, global = true)]
    pub image_workers: usize,

    /// Images that may wait for a worker; past that an upload gets `503 busy`.
    #[arg(long, env = "PARLEY_IMAGE_QUEUE", default_value_t = 16, global = true)]
    pub image_queue: usize,

    /// How long an image waits for a worker before the upload gets `503 busy`.
    #[arg(long, env = "PARLEY_IMAGE_QUEUE_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration, global = true)]
    pub image_queue_timeout: Duration,

    /// Image uploads (avatars) a user may make per minute, refilled evenly; past it `429 rate_limited`.
    #[arg(
        long,
        env = "PARLEY_IMAGE_UPLOADS_PER_MINUTE",
        default_value_t = 10,
        global = true
    )]
    pub image_uploads_per_minute: u32,

    /// Where attachments are kept: unset = the directory `<data-dir>/files`;
    /// `s3://bucket/prefix` = S3-compatible object storage, which every node
    /// of a cluster must share.
    #[arg(long, env = "PARLEY_STORAGE_URL", global = true)]
    pub storage_url: Option<String>,

    /// The S3 endpoint (MinIO, Garage, Ceph, R2…); unset = AWS.
    #[arg(long, env = "PARLEY_S3_ENDPOINT", global = true)]
    pub s3_endpoint: Option<String>,

    #[arg(
        long,
        env = "PARLEY_S3_REGION",
        default_value = "us-east-1",
        global = true
    )]
    pub s3_region: String,

    #[arg(long, env = "PARLEY_S3_ACCESS_KEY_ID", global = true)]
    pub s3_access_key_id: Option<String>,

    #[arg(
        long,
        env = "PARLEY_S3_SECRET_ACCESS_KEY",
        hide_env_values = true,
        global = true
    )]
    pub s3_secret_access_key: Option<String>,

    /// Allow a plain-http S3 endpoint (a store on the same host or network).
    #[arg(long, env = "PARLEY_S3_ALLOW_HTTP", global = true)]
    pub s3_allow_http: bool,

    /// Largest attachment, in bytes (`413 file_too_large` beyond). 25 MiB.
    #[arg(long, env = "PARLEY_MAX_UPLOAD_BYTES", default_value_t = 25 * 1024 * 1024, global = true)]
    pub max_upload_bytes: u64,

    /// Bytes a user may upload in any 24 hours (`413 upload_quota_exceeded` beyond). 1 GiB.
    #[arg(long, env = "PARLEY_MAX_UPLOAD_BYTES_PER_DAY", default_value_t = 1024 * 1024 * 1024, global = true)]
    pub max_upload_bytes_per_day: u64,

    /// Attachments one message may carry (`400 too_many_attachments` beyond).
    #[arg(
        long,
        env = "PARLEY_MAX_ATTACHMENTS_PER_MESSAGE",
        default_value_t = 10,
        global = true
    )]
    pub max_attachments_per_message: usize,

    /// Longest voice message, in seconds (`413 voice_too_long` beyond).
    #[arg(
        long,
        env = "PARLEY_MAX_VOICE_SECONDS",
        default_value_t = 300,
        global = true
    )]
    pub max_voice_seconds: u32,

    /// Most pixels (width × height) of an image attachment (`413 image_too_large` beyond).
    #[arg(
        long,
        env = "PARLEY_MAX_IMAGE_PIXELS",
        default_value_t = 40_000_000,
        global = true
    )]
    pub max_image_pixels: u64,

    /// Longest side of an image attachment, in pixels.
    #[arg(
        long,
        env = "PARLEY_MAX_IMAGE_SIDE",
        default_value_t = 10_000,
        global = true
    )]
    pub max_image_side: u32,

    /// Attachment uploads a user may make per minute, refilled evenly; past it `429 rate_limited`.
    #[arg(
        long,
        env = "PARLEY_UPLOADS_PER_MINUTE",
        default_value_t = 60,
        global = true
    )]
    pub uploads_per_minute: u32,

    /// How long an upload waits to be posted before it is deleted.
    #[arg(long, env = "PARLEY_UNPOSTED_UPLOAD_TTL", default_value = "24h", value_parser = humantime::parse_duration, global = true)]
    pub unposted_upload_ttl: Duration,
}

/// `--sqlite-synchronous`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SqliteSynchronousArg {
    Full,
    Normal,
}

impl SqliteSynchronousArg {
    pub fn store_setting(self) -> crate::store::SqliteSync {
        match self {
            Self::Full => crate::store::SqliteSync::Full,
            Self::Normal => crate::store::SqliteSync::Normal,
        }
    }
}

fn parse_ip_net(text: &str) -> Result<IpNet, String> {
    IpNet::parse(text.trim())
}

impl Config {
    /// Fails fast with a readable message on settings that cannot work.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.max_message_chars == 0 || self.max_message_chars > 50_000 {
            bail!("--max-message-chars must be between 1 and 50000");
        }
        if self.message_rate == 0 || self.message_burst == 0 {
            bail!("--message-rate and --message-burst must be at least 1");
        }
        if self.heartbeat_interval < Duration::from_millis(100) {
            bail!("--heartbeat-interval must be at least 100ms");
        }
        if self.ws_outbound_queue < 8 {
            bail!("--ws-outbound-queue must be at least 8");
        }
        if self.max_connections == 0 || self.max_connections_per_user == 0 {
            bail!("--max-connections and --max-connections-per-user must be at least 1");
        }
        if self.http_header_timeout < Duration::from_millis(100) {
            bail!("--http-header-timeout must be at least 100ms");
        }
        if self.tail_cache_mib > 65_536 {
            bail!("--tail-cache-mib is at most 65536");
        }
        if self.db_max_connections == 0 {
            bail!("--db-max-connections must be at least 1");
        }
        if let Some(url) = &self.public_url
            && !matches!(url.scheme(), "http" | "https")
        {
            bail!("--public-url must be an http:// or https:// URL");
        }
        for origin in &self.allowed_origins {
            Url::parse(origin)
                .with_context(|| format!("--allowed-origins: {origin:?} is not a URL"))?;
        }
        if !self.default_room.is_empty() {
            crate::domain::room::RoomId::parse(&self.default_room)
                .map_err(|e| anyhow::anyhow!("--default-room: {e}"))?;
            if crate::domain::room::RESERVED_ROOM_IDS.contains(&self.default_room.as_str()) {
                bail!("--default-room: {:?} is reserved", self.default_room);
            }
        }
        self.database_url()?;
        if self.image_workers > 256 {
            bail!("--image-workers is at most 256");
        }
        if self.image_queue > 10_000 {
            bail!("--image-queue is at most 10000");
        }
        if self.image_uploads_per_minute == 0 {
            bail!("--image-uploads-per-minute must be at least 1");
        }
        if self.uploads_per_minute == 0 {
            bail!("--uploads-per-minute must be at least 1");
        }
        if self.max_upload_bytes == 0 {
            bail!("--max-upload-bytes must be at least 1");
        }
        if !(1..=100).contains(&self.max_attachments_per_message) {
            bail!("--max-attachments-per-message is 1 to 100");
        }
        if let Some(url) = &self.storage_url
            && !url.starts_with("s3://")
        {
            bail!("--storage-url must be an s3://bucket/prefix URL (unset: the data directory)");
        }
        if let Some(url) = &self.redis_url
            && !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
        {
            bail!(
                "--redis-url must start with redis://, rediss:// or unix:// (got {:?})",
                crate::store::redact_url(url)
            );
        }
        if self.redis_namespace.is_empty()
            || !self
                .redis_namespace
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            bail!("--redis-namespace is letters, digits, '-' and '_'");
        }
        for (flag, value) in [
            ("--max-blocks-per-user", self.max_blocks_per_user),
            ("--max-rooms-per-hour", self.max_rooms_per_hour),
            ("--max-invites-per-room", self.max_invites_per_room),
            ("--max-sessions-per-user", self.max_sessions_per_user),
            ("--max-tokens-per-user", self.max_tokens_per_user),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        if !(1..=10_000).contains(&self.max_members_per_request) {
            bail!("--max-members-per-request must be between 1 and 10000");
        }
        Ok(())
    }

    /// The database URL in effect: the flag, or SQLite under the data dir.
    pub fn database_url(&self) -> anyhow::Result<String> {
        match &self.database_url {
            Some(url) if url.starts_with("sqlite:") || url.starts_with("postgres") => {
                Ok(url.clone())
            }
            Some(url) => bail!(
                "--database-url must start with sqlite: or postgres:// (got {:?})",
                crate::store::redact_url(url)
            ),
            None => Ok(format!(
                "sqlite://{}",
                self.data_dir.join("parley.db").display()
            )),
        }
    }

    /// The URL users open: `--public-url`, else derived from the bind address.
    pub fn public_url(&self) -> Url {
        if let Some(url) = &self.public_url {
            return url.clone();
        }
        let host = if self.bind.ip().is_unspecified() {
            "127.0.0.1".to_string()
        } else {
            self.bind.ip().to_string()
        };
        let text = match self.bind {
            SocketAddr::V6(_) if !self.bind.ip().is_unspecified() => {
                format!("http://[{host}]:{}/", self.bind.port())
            }
            _ => format!("http://{host}:{}/", self.bind.port()),
        };
        Url::parse(&text).expect("an address and port always form a valid URL")
    }

    /// The proxies whose `X-Forwarded-For` is believed: `--trusted-proxies`,
    /// plus loopback with `--trust-proxy-headers`.
    pub fn proxies(&self) -> Vec<IpNet> {
        let mut proxies = self.trusted_proxies.clone();
        if self.trust_proxy_headers {
            proxies.extend(IpNet::loopback());
        }
        proxies
    }

    /// Image workers in effect: the flag, or one per CPU.
    pub fn image_workers(&self) -> usize {
        match self.image_workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    /// Cookies get the Secure flag when users reach us over https.
    pub fn secure_cookies(&self) -> bool {
        self.public_url().scheme() == "https"
    }

    /// A configuration for tests: a fresh data dir, a random port, quick timers.
    /// The S3 flags, for `storage::open`.
    pub fn s3_options(&self) -> crate::storage::S3Options {
        crate::storage::S3Options {
            endpoint: self.s3_endpoint.clone(),
            region: self.s3_region.clone(),
            access_key_id: self.s3_access_key_id.clone(),
            secret_access_key: self.s3_secret_access_key.clone(),
            allow_http: self.s3_allow_http,
        }
    }

    pub fn for_tests(data_dir: PathBuf) -> Self {
        let mut config = Config::parse_from(["parley"]);
        config.bind = "127.0.0.1:0".parse().expect("literal address");
        config.data_dir = data_dir;
        config.database_url = None;
        config.redis_url = None;
        config.public_url = None;
        config.allowed_origins = Vec::new();
        config.registration_open = true;
        config.heartbeat_interval = Duration::from_secs(30);
        // Departures at once, as most tests expect; the grace has tests of its own.
        config.presence_grace = Duration::ZERO;
        config.shutdown_timeout = Duration::from_secs(5);
        config
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self
                    .database_url()
                    .map(|u| crate::store::redact_url(&u))
                    .ok(),
            )
            .field("db_max_connections", &self.db_max_connections)
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_namespace", &self.redis_namespace)
            .field("storage_url", &self.storage_url)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("max_upload_bytes_per_day", &self.max_upload_bytes_per_day)
            .field("public_url", &self.public_url().as_str())
            .field("allowed_origins", &self.allowed_origins)
            .field("registration_open", &self.registration_open)
            .field("default_room", &self.default_room)
            .field(
                "session_ttl",
                &humantime::format_duration(self.session_ttl).to_string(),
            )
            .field("max_message_chars", &self.max_message_chars)
            .field("message_rate", &self.message_rate)
            .field("message_burst", &self.message_burst)
            .field("login_max_failures", &self.login_max_failures)
            .field("login_max_failures_per_ip", &self.login_max_failures_per_ip)
            .field(
                "login_window",
                &humantime::format_duration(self.login_window).to_string(),
            )
            .field(
                "heartbeat_interval",
                &humantime::format_duration(self.heartbeat_interval).to_string(),
            )
            .field("presence_grace", &self.presence_grace)
            .field("ws_outbound_queue", &self.ws_outbound_queue)
            .field("max_connections", &self.max_connections)
            .field("tail_cache_mib", &self.tail_cache_mib)
            .field(
                "shutdown_timeout",
                &humantime::format_duration(self.shutdown_timeout).to_string(),
            )
            .field("trust_proxy_headers", &self.trust_proxy_headers)
            .field("log_format", &self.log_format)
            .field(
                "trusted_proxies",
                &self
                    .trusted_proxies
                    .iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>(),
            )
            .field("sqlite_synchronous", &self.sqlite_synchronous)
            .field("max_connections_per_user", &self.max_connections_per_user)
            .field(
                "http_header_timeout",
                &humantime::format_duration(self.http_header_timeout).to_string(),
            )
            .field("max_blocks_per_user", &self.max_blocks_per_user)
            .field("max_rooms_per_hour", &self.max_rooms_per_hour)
            .field("max_invites_per_room", &self.max_invites_per_room)
            .field("max_sessions_per_user", &self.max_sessions_per_user)
            .field("max_tokens_per_user", &self.max_tokens_per_user)
            .field("max_members_per_request", &self.max_members_per_request)
            .field("image_workers", &self.image_workers())
            .field("image_queue", &self.image_queue)
            .field(
                "image_queue_timeout",
                &humantime::format_duration(self.image_queue_timeout).to_string(),
            )
            .field("image_uploads_per_minute", &self.image_uploads_per_minute)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_safe() {
        let config = Config::parse_from(["parley"]);
        assert_eq!(
            config.sqlite_synchronous.store_setting(),
            crate::store::SqliteSync::Full,
            "durable unless the operator opts out"
        );
        assert!(config.proxies().is_empty(), "no X-Forwarded-For believed");
        let behind = Config::parse_from(["parley", "--trust-proxy-headers", "true"]);
        assert_eq!(behind.proxies(), IpNet::loopback().to_vec());
        let listed = Config::parse_from(["parley", "--trusted-proxies", "10.0.0.0/8, 192.0.2.1"]);
        assert_eq!(listed.proxies().len(), 2);
        assert!(Config::try_parse_from(["parley", "--trusted-proxies", "nginx"]).is_err());
    }
}
