//! Fresh databases for tests: SQLite always, PostgreSQL when `OPSDESK_TEST_DATABASE_URL` is
//! set (a new schema per store, dropped by nobody: schemas are cheap and names unique).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{DbConfig, Result, Store};

pub use crate::search::force_set_walk;

static N: AtomicU64 = AtomicU64::new(0);

fn unique(tag: &str) -> String {
    let n = N.fetch_add(1, Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{tag}_{}_{}_{}", std::process::id(), n, t % 1_000_000_000)
}

/// A fresh, migrated SQLite store in a new temporary directory.
pub async fn sqlite() -> Result<Store> {
    let dir = std::env::temp_dir().join(unique("opsdesk_test"));
    std::fs::create_dir_all(&dir).map_err(|e| crate::StoreError::Unavailable(e.to_string()))?;
    let s = Store::open_sqlite(&dir.join("opsdesk.db")).await?;
    s.migrate().await?;
    Ok(s)
}

/// A fresh, migrated PostgreSQL store in its own schema, if `OPSDESK_TEST_DATABASE_URL` is set.
pub async fn postgres() -> Result<Option<Store>> {
    let Ok(url) = std::env::var("OPSDESK_TEST_DATABASE_URL") else {
        return Ok(None);
    };
    if url.is_empty() {
        return Ok(None);
    }
    let schema = unique("t");
    let admin = Store::open_postgres(&url, None, 2).await?;
    let mut c = admin.write().await?;
    c.exec(&format!("CREATE SCHEMA {schema}"), &[]).await?;
    c.commit().await?;
    admin.close().await;
    let s = Store::open(&DbConfig::Postgres {
        url,
        schema: Some(schema),
        max_connections: 8,
    })
    .await?;
    s.migrate().await?;
    Ok(Some(s))
}

/// Every backend this run can test: `[("sqlite", …), ("postgres", …)?]`.
pub async fn all() -> Result<Vec<(&'static str, Store)>> {
    let mut v = vec![("sqlite", sqlite().await?)];
    if let Some(p) = postgres().await? {
        v.push(("postgres", p));
    }
    Ok(v)
}
