//! A thin, backend-neutral layer over sqlx: one connection enum, one value enum, one row enum.
//! Everything above it (the store's queries) is written once. SQL uses `$1…$n` placeholders,
//! which both SQLite and PostgreSQL accept.

use sqlx::pool::PoolConnection;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Row as _, Sqlite, Transaction};

use crate::StoreError;

/// A bind value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// NULL for an integer column (typed, so PostgreSQL's cached statements stay consistent).
    Null,
    /// NULL for a text column.
    NullText,
    Int(i64),
    Text(String),
    Real(f64),
    /// A binary column (`BLOB` / `bytea`): attachment contents.
    Bytes(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Self {
        Val::Int(v)
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Self {
        Val::Int(v as i64)
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Self {
        Val::Text(v.to_string())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Self {
        Val::Text(v)
    }
}
impl From<Option<i64>> for Val {
    fn from(v: Option<i64>) -> Self {
        v.map(Val::Int).unwrap_or(Val::Null)
    }
}
impl From<Option<String>> for Val {
    fn from(v: Option<String>) -> Self {
        v.map(Val::Text).unwrap_or(Val::NullText)
    }
}
impl From<Option<&str>> for Val {
    fn from(v: Option<&str>) -> Self {
        v.map(|s| Val::Text(s.to_string())).unwrap_or(Val::NullText)
    }
}

/// A connection or transaction on either backend.
pub enum Conn {
    SqliteTx(crate::group::GroupTx),
    SqliteConn(PoolConnection<Sqlite>),
    PgTx(Transaction<'static, Postgres>),
    PgConn(PoolConnection<Postgres>),
}

/// A result row on either backend.
pub enum Row {
    Sqlite(SqliteRow),
    Pg(PgRow),
}

macro_rules! bind_all {
    ($q:expr, $args:expr) => {{
        let mut q = $q;
        for a in $args {
            q = match a {
                Val::Null => q.bind(Option::<i64>::None),
                Val::NullText => q.bind(Option::<String>::None),
                Val::Int(i) => q.bind(*i),
                Val::Text(s) => q.bind(s.as_str()),
                Val::Real(f) => q.bind(*f),
                Val::Bytes(b) => q.bind(b.as_slice()),
            };
        }
        q
    }};
}

/// Run one statement on a bare SQLite connection (the group writer's end-of-group statements).
/// Boxed so the futures that call it stay `Send`.
pub(crate) fn exec_sqlite<'c>(
    c: &'c mut sqlx::SqliteConnection,
    sql: &'c str,
    args: &'c [Val],
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>> {
    Box::pin(async move {
        bind_all!(sqlx::query(sql), args)
            .execute(c)
            .await
            .map(|_| ())
    })
}

impl Conn {
    /// A write that nothing in the same transaction reads back (the full-text index): on the
    /// SQLite group writer it runs after the group's last savepoint ([`crate::group`]); elsewhere
    /// now.
    pub(crate) async fn exec_deferred(
        &mut self,
        sql: String,
        args: Vec<Val>,
    ) -> Result<(), StoreError> {
        if let Conn::SqliteTx(g) = self {
            return g.defer(sql, args).await;
        }
        self.exec(&sql, &args).await.map(|_| ())
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Conn::PgTx(_) | Conn::PgConn(_))
    }

    /// Run a statement; returns rows affected.
    pub async fn exec(&mut self, sql: &str, args: &[Val]) -> Result<u64, StoreError> {
        let n = match self {
            Conn::SqliteTx(c) => bind_all!(sqlx::query(sql), args)
                .execute(c.conn()?)
                .await?
                .rows_affected(),
            Conn::SqliteConn(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Conn::PgTx(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
            Conn::PgConn(c) => bind_all!(sqlx::query(sql), args)
                .execute(&mut **c)
                .await?
                .rows_affected(),
        };
        Ok(n)
    }

    pub async fn all(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Row>, StoreError> {
        Ok(match self {
            Conn::SqliteTx(c) => bind_all!(sqlx::query(sql), args)
                .fetch_all(c.conn()?)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::SqliteConn(c) => bind_all!(sqlx::query(sql), args)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::PgTx(c) => bind_all!(sqlx::query(sql), args)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Pg)
                .collect(),
            Conn::PgConn(c) => bind_all!(sqlx::query(sql), args)
                .fetch_all(&mut **c)
                .await?
                .into_iter()
                .map(Row::Pg)
                .collect(),
        })
    }

    pub async fn opt(&mut self, sql: &str, args: &[Val]) -> Result<Option<Row>, StoreError> {
        Ok(match self {
            Conn::SqliteTx(c) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(c.conn()?)
                .await?
                .map(Row::Sqlite),
            Conn::SqliteConn(c) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(&mut **c)
                .await?
                .map(Row::Sqlite),
            Conn::PgTx(c) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(&mut **c)
                .await?
                .map(Row::Pg),
            Conn::PgConn(c) => bind_all!(sqlx::query(sql), args)
                .fetch_optional(&mut **c)
                .await?
                .map(Row::Pg),
        })
    }

    pub async fn one(&mut self, sql: &str, args: &[Val]) -> Result<Row, StoreError> {
        self.opt(sql, args).await?.ok_or(StoreError::NotFound)
    }

    /// A single integer (`SELECT COUNT(*)…`, `… RETURNING id`).
    pub async fn int(&mut self, sql: &str, args: &[Val]) -> Result<i64, StoreError> {
        self.one(sql, args).await?.i64(0)
    }

    pub async fn commit(self) -> Result<(), StoreError> {
        match self {
            Conn::SqliteTx(t) => t.commit().await?,
            Conn::PgTx(t) => t.commit().await?,
            Conn::SqliteConn(_) | Conn::PgConn(_) => {}
        }
        Ok(())
    }
}

impl Row {
    pub fn i64(&self, i: usize) -> Result<i64, StoreError> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<i64, _>(i)?,
            Row::Pg(r) => r.try_get::<i64, _>(i)?,
        })
    }
    pub fn opt_i64(&self, i: usize) -> Result<Option<i64>, StoreError> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<Option<i64>, _>(i)?,
            Row::Pg(r) => r.try_get::<Option<i64>, _>(i)?,
        })
    }
    pub fn str(&self, i: usize) -> Result<String, StoreError> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<String, _>(i)?,
            Row::Pg(r) => r.try_get::<String, _>(i)?,
        })
    }
    pub fn opt_str(&self, i: usize) -> Result<Option<String>, StoreError> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<Option<String>, _>(i)?,
            Row::Pg(r) => r.try_get::<Option<String>, _>(i)?,
        })
    }
    pub fn bytes(&self, i: usize) -> Result<Vec<u8>, StoreError> {
        Ok(match self {
            Row::Sqlite(r) => r.try_get::<Vec<u8>, _>(i)?,
            Row::Pg(r) => r.try_get::<Vec<u8>, _>(i)?,
        })
    }
    /// Decode a JSON text column.
    pub fn json<T: serde::de::DeserializeOwned>(&self, i: usize) -> Result<T, StoreError> {
        let s = self.str(i)?;
        serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
    }
}

impl Conn {
    /// Run several `;`-separated statements (migrations).
    pub async fn script(&mut self, sql: &str) -> Result<(), StoreError> {
        match self {
            Conn::SqliteTx(c) => sqlx::raw_sql(sql).execute(c.conn()?).await.map(|_| ())?,
            Conn::SqliteConn(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(|_| ())?,
            Conn::PgTx(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(|_| ())?,
            Conn::PgConn(c) => sqlx::raw_sql(sql).execute(&mut **c).await.map(|_| ())?,
        };
        Ok(())
    }
}
