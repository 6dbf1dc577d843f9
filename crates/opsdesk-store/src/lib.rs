//! opsdesk storage: one [`Store`] over SQLite (default, embedded) and PostgreSQL.
//!
//! Records are kept as JSON documents (`data`) beside the index columns queries need; the
//! ticket row is the projection of its append-only audits. SQL lives only in this crate.
//! See `docs/ARCHITECTURE.md` for why.

mod db;
mod docs;
mod group;
mod jobs;
mod kpi;
mod mail;
mod migrate;
mod outbox;
mod records;
mod search;
mod sessions;
pub mod testing;
mod ticket_state;
mod tickets;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

pub use db::{Conn, Row, Val};
pub use docs::{Cond, Doc, Order, Page, Paged};
pub use jobs::Lease;
pub use kpi::{KpiCount, KpiQuery, KpiStat, StatBucket, StatFill};
pub use migrate::{MIGRATIONS_POSTGRES, MIGRATIONS_SQLITE};
pub use outbox::OutboxStats;
pub use records::{OrgField, StoredToken, UserAuth, UserField};
pub use search::{Change, Hit, Visibility};
pub use sessions::WebSession;

/// Storage errors. A database error never reaches an API client verbatim.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness constraint was hit (the constraint or index name).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database could not be reached (pool timeout, connection refused).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// The database refused a value (too long for an index, malformed text).
    #[error("value refused by the database: {0}")]
    Rejected(String),
    #[error("database error: {0}")]
    Db(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
            // Connection exceptions (class 08) and server shutdown (57P01-57P03): the database is
            // going away or coming back, not a bug.
            sqlx::Error::Database(d)
                if d.code().is_some_and(|c| {
                    c.starts_with("08") || matches!(c.as_ref(), "57P01" | "57P02" | "57P03")
                }) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            sqlx::Error::Database(d)
                if d.code()
                    .is_some_and(|c| c.starts_with("22") || c.as_ref() == "54000") =>
            {
                StoreError::Rejected(d.message().to_string())
            }
            // Deadlocks and serialization failures: the client may simply retry.
            sqlx::Error::Database(d)
                if d.code()
                    .is_some_and(|c| c.as_ref() == "40P01" || c.as_ref() == "40001") =>
            {
                StoreError::Unavailable(d.message().to_string())
            }
            sqlx::Error::Database(d) => {
                if d.is_unique_violation() {
                    StoreError::Conflict(d.constraint().unwrap_or(d.message()).to_string())
                } else {
                    StoreError::Db(e.to_string())
                }
            }
            _ => StoreError::Db(e.to_string()),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Clone)]
enum Pools {
    Sqlite {
        write: Arc<group::GroupWriter>,
        read: SqlitePool,
    },
    Pg(PgPool),
}

/// Connection pool figures for `/metrics`.
#[derive(Debug, Clone, Copy)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

/// The database handle. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    pools: Arc<Pools>,
}

/// How to open a store.
#[derive(Debug, Clone)]
pub enum DbConfig {
    /// A SQLite file (created if missing).
    Sqlite { path: std::path::PathBuf },
    /// A PostgreSQL URL, optionally confined to one schema (tests use a fresh schema each).
    Postgres {
        url: String,
        schema: Option<String>,
        max_connections: u32,
    },
}

impl Store {
    pub async fn open(cfg: &DbConfig) -> Result<Store> {
        match cfg {
            DbConfig::Sqlite { path } => Store::open_sqlite(path).await,
            DbConfig::Postgres {
                url,
                schema,
                max_connections,
            } => Store::open_postgres(url, schema.as_deref(), *max_connections).await,
        }
    }

    /// Open (creating) a SQLite database: WAL, `synchronous=NORMAL` (durable across process
    /// crashes), a busy timeout, one writer connection and a small pool of readers.
    pub async fn open_sqlite(path: &Path) -> Result<Store> {
        let base = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("cache_size", "-65536")
            // Pages read through a memory map: a reader's page cache is emptied whenever
            // another connection has written since its last read, so under writes every read
            // re-read its pages with read(2) (docs/benchmarks.md, "Reads under writes").
            .pragma("mmap_size", "1073741824")
            // SQLite's default; a background checkpointer was measured and made p99 worse
            // (docs/benchmarks.md).
            .pragma("wal_autocheckpoint", "1000");
        // A local file cannot go stale: no ping before each use (it would cost a round trip).
        // The one writer connection, shared by use cases through group commit.
        // The writer keeps SQLite's default temp_store: with `memory`, the statement journal
        // of every statement that fires a trigger (migration 0018) stays in memory, and
        // releasing it walks the whole journal of the enclosing use case's SAVEPOINT
        // (crate::group), so a use case writing a thousand tickets slowed quadratically
        // (docs/benchmarks.md, "Search"). By default that journal moves to a temporary file
        // past 64 KiB. Readers keep their temporary tables (`IN (…)` lists, sorts) in memory.
        let write = group::GroupWriter::new(sqlx::ConnectOptions::connect(&base).await?);
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(base.pragma("temp_store", "memory").read_only(true))
            .await?;
        Ok(Store {
            pools: Arc::new(Pools::Sqlite { write, read }),
        })
    }

    pub async fn open_postgres(
        url: &str,
        schema: Option<&str>,
        max_connections: u32,
    ) -> Result<Store> {
        let mut opts = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Unavailable(format!("bad database URL: {e}")))?;
        if let Some(s) = schema {
            opts = opts.options([("search_path", s)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(2))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(opts)
            .await?;
        Ok(Store {
            pools: Arc::new(Pools::Pg(pool)),
        })
    }

    /// Connections open and idle (SQLite: the read pool; the writer is one more).
    pub fn pool_stats(&self) -> PoolStats {
        match &*self.pools {
            Pools::Sqlite { read, .. } => PoolStats {
                size: read.size() + 1,
                idle: read.num_idle() as u32,
            },
            Pools::Pg(p) => PoolStats {
                size: p.size(),
                idle: p.num_idle() as u32,
            },
        }
    }

    pub fn backend(&self) -> &'static str {
        match &*self.pools {
            Pools::Sqlite { .. } => "sqlite",
            Pools::Pg(_) => "postgres",
        }
    }

    /// Begin a write transaction (SQLite: on the single writer connection).
    pub async fn write(&self) -> Result<Conn> {
        Ok(match &*self.pools {
            Pools::Sqlite { write, .. } => Conn::SqliteTx(write.begin().await?),
            Pools::Pg(p) => Conn::PgTx(p.begin().await?),
        })
    }

    /// A connection for reads (no transaction).
    pub async fn read(&self) -> Result<Conn> {
        Ok(match &*self.pools {
            Pools::Sqlite { read, .. } => Conn::SqliteConn(read.acquire().await?),
            Pools::Pg(p) => Conn::PgConn(p.acquire().await?),
        })
    }

    /// Apply pending migrations. Safe to call from several nodes at once (PostgreSQL takes an
    /// advisory lock; SQLite has one writer).
    pub async fn migrate(&self) -> Result<Vec<String>> {
        migrate::run(self).await
    }

    /// Names of migrations not yet applied.
    pub async fn pending_migrations(&self) -> Result<Vec<String>> {
        migrate::pending(self).await
    }

    /// Check the database answers.
    pub async fn ping(&self) -> Result<()> {
        let mut c = self.read().await?;
        c.int("SELECT CAST(1 AS BIGINT)", &[]).await?;
        Ok(())
    }

    pub async fn close(&self) {
        match &*self.pools {
            Pools::Sqlite { write, read } => {
                read.close().await;
                write.close().await;
            }
            Pools::Pg(p) => p.close().await,
        }
    }
}
