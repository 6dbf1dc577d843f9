//! Group commit for SQLite's single writer.
//!
//! SQLite has one writer; each COMMIT writes every B-tree page the transaction touched to the
//! WAL. Use cases that arrive together touch the same pages (the right-most leaves of the
//! tickets, audits and comments tables and their indexes), so committing them together writes
//! those pages once. Each use case still gets its own transaction semantics: it runs inside a
//! SAVEPOINT on the shared physical transaction, a failure rolls back to its savepoint only, and
//! `commit()` returns only after the physical COMMIT is durable — so nothing is acknowledged
//! before it is on disk, and if that COMMIT fails every use case in the group gets the error.
//!
//! A use case's `commit()` defers the physical COMMIT while other use cases are queued for the
//! writer (up to [`MAX_GROUP`]); the last one in the group commits and wakes the others.
//!
//! Full-text index writes are deferred to the end of the group ([`GroupTx::defer`]). FTS5
//! flushes its pending terms to a new segment at every SAVEPOINT once a transaction has written
//! to it, so indexing inside each use case's savepoint wrote one segment per use case and kept
//! FTS5 merging; run after the last RELEASE, a group's entries become one segment. A use case
//! that rolls back takes its deferred statements with it; if one fails at the end, the whole
//! physical transaction rolls back and every use case in it gets the error.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, SqliteConnection};
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use crate::db::{exec_sqlite, Val};
use crate::StoreError;

/// A statement kept for the end of the group.
struct Deferred {
    sql: String,
    args: Vec<Val>,
}

/// Run one statement. Boxed with a concrete lifetime so futures that use it can be spawned
/// (sqlx's executor bounds otherwise defeat the `Send` check).
fn run<'c>(
    c: &'c mut SqliteConnection,
    sql: &'static str,
) -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send + 'c>> {
    Box::pin(async move { sqlx::query(sql).execute(c).await.map(|_| ()) })
}

/// Most logical transactions folded into one physical one.
pub const MAX_GROUP: usize = 64;

pub struct WriterState {
    conn: Option<SqliteConnection>,
    in_tx: bool,
    generation: u64,
    pending: usize,
    /// Deferred statements of the use cases released into this physical transaction.
    deferred: Vec<Deferred>,
}

pub struct GroupWriter {
    state: Arc<Mutex<WriterState>>,
    waiting: AtomicUsize,
    /// (last committed or failed generation, its error if it failed)
    done: watch::Sender<(u64, Option<String>)>,
}

impl GroupWriter {
    pub fn new(conn: SqliteConnection) -> Arc<GroupWriter> {
        let (done, _) = watch::channel((0, None));
        Arc::new(GroupWriter {
            state: Arc::new(Mutex::new(WriterState {
                conn: Some(conn),
                in_tx: false,
                generation: 0,
                pending: 0,
                deferred: vec![],
            })),
            waiting: AtomicUsize::new(0),
            done,
        })
    }

    /// Start a logical transaction (a savepoint on the shared physical one).
    pub async fn begin(self: &Arc<Self>) -> Result<GroupTx, StoreError> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let mut g = self.state.clone().lock_owned().await;
        self.waiting.fetch_sub(1, Ordering::SeqCst);
        if !g.in_tx {
            let conn = g
                .conn
                .as_mut()
                .ok_or_else(|| StoreError::Unavailable("the database is closed".into()))?;
            run(conn, "BEGIN IMMEDIATE").await?;
            g.in_tx = true;
            g.generation += 1;
        }
        let conn = g
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("the database is closed".into()))?;
        if let Err(e) = run(conn, "SAVEPOINT opsdesk_tx").await {
            // Leave the connection usable for the next caller.
            finish_physical(&mut g, self, false).await;
            return Err(e.into());
        }
        Ok(GroupTx {
            guard: Some(g),
            writer: self.clone(),
            own: vec![],
        })
    }

    /// Close the connection (waits for the current user).
    pub async fn close(&self) {
        let mut g = self.state.lock().await;
        if let Some(c) = g.conn.take() {
            let _ = c.close().await;
        }
    }
}

/// COMMIT (or ROLLBACK) the physical transaction and wake everyone waiting on it.
async fn finish_physical(g: &mut WriterState, w: &GroupWriter, commit: bool) -> Option<String> {
    let generation = g.generation;
    let deferred = std::mem::take(&mut g.deferred);
    let err = match g.conn.as_mut() {
        Some(c) if g.in_tx => {
            let mut result = Ok(());
            if commit {
                for d in &deferred {
                    result = exec_sqlite(c, &d.sql, &d.args).await;
                    if result.is_err() {
                        break;
                    }
                }
            }
            if result.is_ok() {
                let sql = if commit { "COMMIT" } else { "ROLLBACK" };
                result = run(c, sql).await;
            }
            match result {
                Ok(_) => None,
                Err(e) => {
                    // A failed statement or COMMIT leaves the transaction open: roll it back.
                    let _ = run(c, "ROLLBACK").await;
                    Some(e.to_string())
                }
            }
        }
        _ => None,
    };
    let had_pending = g.pending > 0;
    g.in_tx = false;
    g.pending = 0;
    let err = if !commit && had_pending {
        Some("the grouped transaction was rolled back".to_string())
    } else {
        err
    };
    w.done.send_replace((generation, err.clone()));
    err
}

/// One use case's transaction on the shared writer.
pub struct GroupTx {
    guard: Option<OwnedMutexGuard<WriterState>>,
    writer: Arc<GroupWriter>,
    /// This use case's deferred statements, handed to the group when its savepoint is released.
    own: Vec<Deferred>,
}

impl GroupTx {
    /// The writer connection this use case holds (an error, not a panic, once it has been
    /// given up by commit or drop).
    pub fn conn(&mut self) -> Result<&mut SqliteConnection, StoreError> {
        self.guard
            .as_mut()
            .and_then(|g| g.conn.as_mut())
            .ok_or_else(|| StoreError::Unavailable("the database is closed".into()))
    }

    /// Keep a statement for the end of the group (see the module doc). Only for writes that
    /// nothing in the same transaction reads back: the full-text index.
    pub(crate) fn defer(&mut self, sql: String, args: Vec<Val>) {
        self.own.push(Deferred { sql, args });
    }

    /// Run this use case's deferred statements now, inside its savepoint (a long use case that
    /// would otherwise hold them all in memory).
    pub(crate) async fn flush_deferred(&mut self) -> Result<(), StoreError> {
        let own = std::mem::take(&mut self.own);
        let c = self.conn()?;
        for d in &own {
            exec_sqlite(c, &d.sql, &d.args).await?;
        }
        Ok(())
    }

    /// Release the savepoint and return once the physical transaction holding it has committed.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(mut g) = self.guard.take() else {
            return Ok(());
        };
        let writer = self.writer.clone();
        if let Some(c) = g.conn.as_mut() {
            if let Err(e) = run(c, "RELEASE opsdesk_tx").await {
                let _ = run(c, "ROLLBACK TO opsdesk_tx").await;
                let _ = run(c, "RELEASE opsdesk_tx").await;
                if g.pending == 0 {
                    finish_physical(&mut g, &writer, true).await;
                }
                return Err(e.into());
            }
        }
        g.pending += 1;
        g.deferred.append(&mut self.own);
        let generation = g.generation;
        if writer.waiting.load(Ordering::SeqCst) > 0 && g.pending < MAX_GROUP {
            // Others are queued: let them join; the last of the group commits.
            let mut rx = writer.done.subscribe();
            drop(g);
            loop {
                {
                    let v = rx.borrow_and_update();
                    if v.0 >= generation {
                        return match &v.1 {
                            None => Ok(()),
                            Some(e) if v.0 == generation => Err(StoreError::Db(e.clone())),
                            Some(_) => Ok(()),
                        };
                    }
                }
                // Nobody may be left to commit (the queue drained into rollbacks): check.
                if tokio::time::timeout(Duration::from_millis(5), rx.changed())
                    .await
                    .is_err()
                {
                    let mut g = writer.state.clone().lock_owned().await;
                    if g.in_tx
                        && g.generation == generation
                        && writer.waiting.load(Ordering::SeqCst) == 0
                    {
                        return match finish_physical(&mut g, &writer, true).await {
                            None => Ok(()),
                            Some(e) => Err(StoreError::Db(e)),
                        };
                    }
                }
            }
        }
        match finish_physical(&mut g, &writer, true).await {
            None => Ok(()),
            Some(e) => Err(StoreError::Db(e)),
        }
    }
}

impl Drop for GroupTx {
    fn drop(&mut self) {
        // Dropped without commit: undo this use case's writes only. The guard moves into a task,
        // so nobody else uses the connection before the rollback has run.
        if let Some(g) = self.guard.take() {
            let writer = self.writer.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(rollback_dropped(g, writer));
            }
        }
    }
}

/// Undo a dropped use case's savepoint; commit what the group already holds if nobody else will.
async fn rollback_dropped(mut g: OwnedMutexGuard<WriterState>, writer: Arc<GroupWriter>) {
    if let Some(c) = g.conn.as_mut() {
        let _ = run(c, "ROLLBACK TO opsdesk_tx").await;
        let _ = run(c, "RELEASE opsdesk_tx").await;
    }
    if writer.waiting.load(Ordering::SeqCst) == 0 {
        let commit = g.pending > 0;
        finish_physical(&mut g, &writer, commit).await;
    }
}
