//! Storage: one diesel-async query layer over SQLite and PostgreSQL.
//!
//! [`DbPool`] hands out a [`DbConn`], an enum over both backends; [`with_conn!`] runs the same
//! diesel query on whichever arm is live, so a query is written once. SQLite gets one writer
//! connection (SQLite serialises writers anyway; one connection means no `SQLITE_BUSY` on lock
//! upgrades) and a few readers, all in WAL mode.

pub mod blocking;
pub mod file_lock;
pub mod json;
pub mod models;
pub mod schema;
pub mod status;
pub mod store;

use std::time::Duration;

use diesel::{Connection, SqliteConnection};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use futures::FutureExt;

use crate::config::DatabaseUrl;

/// The async SQLite connection: a sync diesel connection run on the process-lived blocking pool of
/// [`blocking`].
pub type SqliteConn = SyncConnectionWrapper<SqliteConnection, blocking::ProcessBlocking>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const PG_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Pragmas for every SQLite connection. `synchronous=FULL`: a 202 means the event survives a power
/// cut, not only a process crash; group commit keeps the fsync cost per request small.
/// `busy_timeout` comes first: switching to WAL takes a lock, and without the timeout a connection
/// opened while another process (or a stopping server) still holds one fails with "database is
/// locked".
const SQLITE_PRAGMAS: &str = "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
     PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;";
/// Page cache of the writer, in KiB: the delivery indexes it updates stay in memory (the default
/// 2 MiB cost 20% more CPU per delivery in the steady benchmark).
const SQLITE_WRITER_CACHE_KIB: i64 = 16 * 1024;
/// Page cache of each reader, in KiB: readers page small windows in.
const SQLITE_READER_CACHE_KIB: i64 = 2 * 1024;
/// Longest wait for a PostgreSQL connection (a free slot, a new connection, the check of an idle
/// one), after which the caller answers 503: a server that hangs instead of refusing must not
/// hang every request with it.
pub const PG_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest wait for a free SQLite connection; as long as `busy_timeout`, since the one writer may
/// itself be waiting that long on another process's lock.
pub const SQLITE_WAIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `$body` with `$c` bound to the live backend's connection (`&mut` to it).
macro_rules! with_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::db::DbConn::Sqlite(obj) => {
                let $c: &mut $crate::db::SqliteConn = &mut *obj;
                $body
            }
            $crate::db::DbConn::Pg(obj) => {
                let $c: &mut diesel_async::AsyncPgConnection = &mut *obj;
                $body
            }
        }
    };
}
// Crate-local: the macro names our connection types, so it is no API for other crates.
pub(crate) use with_conn;

/// A pooled connection to either backend.
// Lives on the stack for one unit of work; boxing the larger arm would cost an allocation per
// checkout.
#[allow(clippy::large_enum_variant)]
pub enum DbConn {
    /// SQLite.
    Sqlite(Object<SqliteConn>),
    /// PostgreSQL.
    Pg(Object<AsyncPgConnection>),
}

impl DbConn {
    /// True on PostgreSQL (for the few queries whose SQL differs).
    pub fn is_pg(&self) -> bool {
        matches!(self, DbConn::Pg(_))
    }
}

/// Errors from taking a connection out of the pool.
#[derive(Debug, thiserror::Error)]
#[error("database unavailable: {0}")]
pub struct PoolError(pub String);

/// Connection pools over the configured backend. A PostgreSQL connection handed out again is first
/// checked with `SELECT 1` (diesel-async's default), though it costs a round trip: it is what turns
/// a server that stopped answering into a 503 within [`PG_CHECKOUT_TIMEOUT`] instead of a request
/// that hangs. A SQLite connection is not (`RecyclingMethod::Fast`): a local file does not stop
/// answering, and its queries run on a blocking pool that lives as long as the process
/// ([`blocking`]).
#[derive(Clone)]
pub enum DbPool {
    /// SQLite: one writer, several readers.
    Sqlite {
        /// The only connection that writes.
        writer: Pool<SqliteConn>,
        /// Read-only work (listings, lookups).
        reader: Pool<SqliteConn>,
    },
    /// PostgreSQL: one pool for everything.
    Pg(Pool<AsyncPgConnection>),
}

impl DbPool {
    /// Builds the pools (no connection is opened yet).
    pub fn new(url: &DatabaseUrl) -> anyhow::Result<Self> {
        match url {
            DatabaseUrl::Sqlite(path) => Ok(DbPool::Sqlite {
                writer: sqlite_pool(path, 1, SQLITE_WRITER_CACHE_KIB)?,
                reader: sqlite_pool(path, 4, SQLITE_READER_CACHE_KIB)?,
            }),
            DatabaseUrl::Postgres(url) => {
                let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(url.as_str());
                let pool = Pool::builder(manager)
                    .max_size(16)
                    .runtime(deadpool::Runtime::Tokio1)
                    .wait_timeout(Some(PG_CHECKOUT_TIMEOUT))
                    .create_timeout(Some(PG_CHECKOUT_TIMEOUT))
                    .recycle_timeout(Some(PG_CHECKOUT_TIMEOUT))
                    .build()?;
                Ok(DbPool::Pg(pool))
            }
        }
    }

    /// True on PostgreSQL.
    pub fn is_pg(&self) -> bool {
        matches!(self, DbPool::Pg(_))
    }

    /// A connection for work that writes.
    pub async fn write(&self) -> Result<DbConn, PoolError> {
        match self {
            DbPool::Sqlite { writer, .. } => {
                writer.get().await.map(DbConn::Sqlite).map_err(pool_err)
            }
            DbPool::Pg(pool) => pg_checkout(pool).await,
        }
    }

    /// A connection for work that only reads.
    pub async fn read(&self) -> Result<DbConn, PoolError> {
        match self {
            DbPool::Sqlite { reader, .. } => {
                reader.get().await.map(DbConn::Sqlite).map_err(pool_err)
            }
            DbPool::Pg(pool) => pg_checkout(pool).await,
        }
    }

    /// True when the database answers a trivial query within a second.
    pub async fn ping(&self) -> bool {
        let pool = self.clone();
        // Spawned so that a timed-out query is never dropped mid-flight: dropping an in-flight
        // SQLite query calls `block_in_place`, which panics on actix's threads.
        let probe = tokio::spawn(async move {
            let mut conn = pool.read().await.ok()?;
            with_conn!(&mut conn, c => c.batch_execute("SELECT 1").await.ok())
        });
        matches!(
            tokio::time::timeout(Duration::from_secs(1), probe).await,
            Ok(Ok(Some(())))
        )
    }
}

/// A PostgreSQL connection within [`PG_CHECKOUT_TIMEOUT`] overall: the pool bounds each step, but
/// checking several idle connections in turn could add up. Dropping a checkout is safe on
/// PostgreSQL (an unfinished connection is simply closed).
async fn pg_checkout(pool: &Pool<AsyncPgConnection>) -> Result<DbConn, PoolError> {
    match tokio::time::timeout(PG_CHECKOUT_TIMEOUT, pool.get()).await {
        Ok(got) => got.map(DbConn::Pg).map_err(pool_err),
        Err(_) => Err(PoolError(format!(
            "no connection within {} s",
            PG_CHECKOUT_TIMEOUT.as_secs()
        ))),
    }
}

fn pool_err(e: impl std::fmt::Display) -> PoolError {
    PoolError(e.to_string())
}

fn sqlite_pool(path: &str, size: usize, cache_kib: i64) -> anyhow::Result<Pool<SqliteConn>> {
    let mut config = ManagerConfig::<SqliteConn>::default();
    config.recycling_method = RecyclingMethod::Fast;
    config.custom_setup = Box::new(move |url| {
        let url = url.to_string();
        let pragmas = format!("{SQLITE_PRAGMAS} PRAGMA cache_size = -{cache_kib};");
        async move {
            let mut conn = SqliteConn::establish(&url).await?;
            conn.batch_execute(&pragmas)
                .await
                .map_err(diesel::ConnectionError::CouldntSetupConfiguration)?;
            Ok(conn)
        }
        .boxed()
    });
    let manager = AsyncDieselConnectionManager::<SqliteConn>::new_with_config(path, config);
    // Only the wait for a slot is bounded: giving up on it is safe, whereas a dropped SQLite
    // connection setup would block the thread that drops it (a panic on an actix thread); setup
    // is local anyway.
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(SQLITE_WAIT_TIMEOUT))
        .build()?)
}

/// Key of the PostgreSQL advisory lock that serialises migrations across nodes ("beema_mg").
const PG_MIGRATION_LOCK: i64 = 0x6265_656d_615f_6d67;

/// Applies pending migrations. Blocking: call it from a thread with no async runtime entered,
/// because diesel's migration harness blocks on the async connection (`block_in_place`, which
/// panics on actix's threads).
pub fn run_migrations(url: &DatabaseUrl) -> anyhow::Result<()> {
    match url {
        DatabaseUrl::Sqlite(path) => {
            let mut conn = SqliteConnection::establish(path)?;
            diesel::connection::SimpleConnection::batch_execute(&mut conn, SQLITE_PRAGMAS)?;
            conn.run_pending_migrations(SQLITE_MIGRATIONS)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        DatabaseUrl::Postgres(url) => {
            let mut conn =
                <AsyncConnectionWrapper<AsyncPgConnection> as Connection>::establish(url)?;
            // Nodes starting together on a fresh database would race to create the same tables
            // (`duplicate key ... pg_type_typname_nsp_index`): one migrates, the others wait, then
            // find nothing left to do. Session-level, so also released if this connection closes.
            use diesel::connection::SimpleConnection as Sync;
            let lock = format!("SELECT pg_advisory_lock({PG_MIGRATION_LOCK})");
            Sync::batch_execute(&mut conn, &lock)?;
            let migrated = conn
                .run_pending_migrations(PG_MIGRATIONS)
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}"));
            let unlock = format!("SELECT pg_advisory_unlock({PG_MIGRATION_LOCK})");
            let _ = Sync::batch_execute(&mut conn, &unlock);
            migrated?;
        }
    }
    Ok(())
}

/// Runs [`run_migrations`] on a fresh thread, so it is safe to await from any runtime.
pub async fn migrate(url: &DatabaseUrl) -> anyhow::Result<()> {
    let url = url.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run_migrations(&url));
    });
    rx.await
        .map_err(|_| anyhow::anyhow!("migration thread panicked"))?
}
