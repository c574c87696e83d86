//! For tests only (the `test-support` feature, which the integration tests
//! turn on; never in a release build): a throwaway schema per test, and a
//! relay that plays a database outage.

use std::str::FromStr;
use std::sync::Arc;

use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// A throwaway schema in a shared PostgreSQL database, for tests: each test gets
/// its own tables (and its own `_sqlx_migrations`), so tests run in parallel
/// against one server and leave nothing behind.
///
/// [`TestSchema::url`] is the base URL plus `options=-c search_path=<schema>`
/// (and `application_name=<schema>`), so anything that takes a database URL,
/// such as `parley serve --database-url`, works inside the schema without knowing
/// about it. Drop the schema with [`TestSchema::drop_schema`] once everything
/// using it has stopped; if the handle is dropped without that (a test panicked),
/// `Drop` drops the schema anyway, blocking briefly.
pub struct TestSchema {
    name: String,
    url: String,
    admin: PgConnectOptions,
    dropped: bool,
}

/// Creates an empty schema `t_<random hex>` in the database at `base_url` (e.g.
/// `postgres://postgres@127.0.0.1:5432/test`, as in `PARLEY_TEST_DATABASE_URL`).
/// Tables appear once something runs the migrations through [`TestSchema::url`].
pub async fn test_schema(base_url: &str) -> anyhow::Result<TestSchema> {
    let admin = PgConnectOptions::from_str(base_url)?;
    let name = format!("t_{:016x}", rand::random::<u64>());
    let mut url = url::Url::parse(base_url)?;
    url.query_pairs_mut()
        .append_pair("options", &format!("-c search_path={name}"))
        .append_pair("application_name", &name);
    let mut conn = PgConnection::connect_with(&admin).await?;
    // The name is ours, made of [t_0-9a-f]: nothing to inject.
    let created = sqlx::query(AssertSqlSafe(format!("create schema {name}")))
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    created?;
    Ok(TestSchema {
        name,
        url: url.to_string(),
        admin,
        dropped: false,
    })
}

impl TestSchema {
    /// The database URL whose connections work inside this schema.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's name, `t_<16 hex digits>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Ends any connection still working in the schema, then drops it and all it holds.
    pub async fn drop_schema(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_schema(&self.admin, &self.name).await
    }
}

async fn drop_schema(admin: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(admin).await?;
    // A connection left open (a server killed mid-test, a pool not yet closed)
    // could hold locks that make the drop wait; our URL tags such connections
    // with the schema's name.
    let result = async {
        sqlx::query(
            "select pg_terminate_backend(pid) from pg_stat_activity \
             where application_name = $1 and pid <> pg_backend_pid()",
        )
        .bind(name)
        .execute(&mut conn)
        .await?;
        sqlx::query("set lock_timeout = '10s'")
            .execute(&mut conn)
            .await?;
        sqlx::query(AssertSqlSafe(format!(
            "drop schema if exists {name} cascade"
        )))
        .execute(&mut conn)
        .await?;
        anyhow::Ok(())
    }
    .await;
    let _ = conn.close().await;
    result
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let admin = self.admin.clone();
        let name = self.name.clone();
        // `Drop` cannot await, and may run inside a runtime (which forbids
        // block_on there): a short-lived thread with its own runtime can do both.
        let outcome = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|rt| rt.block_on(drop_schema(&admin, &name)))
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test schema {}: {e:#}", self.name),
            Err(_) => eprintln!("could not drop test schema {}: cleanup panicked", self.name),
        }
    }
}

/// A TCP relay in front of PostgreSQL, for tests that play an outage (the
/// store conformance suite, and whole servers in the integration tests). Give
/// the client [`Relay::url`] instead of the database's URL. While
/// [stalled](Relay::stall) it drops the connections it carried and accepts new
/// ones without ever answering: the worst case for a client, no error and no
/// reply. [`Relay::resume`] lets new connections through again.
pub struct Relay {
    url: String,
    stalled: Arc<std::sync::atomic::AtomicBool>,
    /// Cancelled to cut every connection carried so far.
    epoch: Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Starts relaying to the host and port of `database_url` (e.g. a
    /// [`TestSchema::url`]); [`Relay::url`] is the same URL through the relay.
    pub async fn start(database_url: &str) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let mut url = url::Url::parse(database_url)?;
        let host = url.host_str().context("the database URL has no host")?;
        let target = format!("{host}:{}", url.port().unwrap_or(5432));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        url.set_host(Some("127.0.0.1"))?;
        url.set_port(Some(addr.port()))
            .map_err(|()| anyhow::anyhow!("the database URL cannot take a port"))?;
        let stalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let epoch = Arc::new(std::sync::Mutex::new(
            tokio_util::sync::CancellationToken::new(),
        ));
        let (flag, tokens) = (Arc::clone(&stalled), Arc::clone(&epoch));
        let accept = tokio::spawn(async move {
            // Connections accepted while stalled are held open, unanswered.
            let mut held = Vec::new();
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(std::sync::atomic::Ordering::SeqCst) {
                    held.push(client);
                    continue;
                }
                held.clear();
                let cut = tokens.lock().unwrap_or_else(|p| p.into_inner()).clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = cut.cancelled() => {}
                    }
                });
            }
        });
        Ok(Self {
            url: url.to_string(),
            stalled,
            epoch,
            accept,
        })
    }

    /// The database URL, through the relay.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The outage begins: carried connections are cut, new ones hang.
    pub fn stall(&self) {
        self.stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut epoch = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
        epoch.cancel();
        *epoch = tokio_util::sync::CancellationToken::new();
    }

    /// The outage ends: new connections reach the database again.
    pub fn resume(&self) {
        self.stalled
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.epoch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .cancel();
    }
}
