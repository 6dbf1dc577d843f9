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

/// Run one statement without arguments (transaction control).
fn run<'c>(
    c: &'c mut SqliteConnection,
    sql: &'static str,
) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c {
    exec_sqlite(c, sql, &[])
}

/// Most logical transactions folded into one physical one.
pub const MAX_GROUP: usize = 64;

/// Deferred statements a use case keeps before it tries to run them early.
const FLUSH_AT: usize = 4096;

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
    /// nothing in the same transaction reads back: the full-text index. A use case that has
    /// kept [`FLUSH_AT`] of them runs them at once when it may ([`GroupTx::flush_deferred`]),
    /// so a long one (a reindex, an organisation delete that touches many users) does not hold
    /// them all in memory.
    pub(crate) async fn defer(&mut self, sql: String, args: Vec<Val>) -> Result<(), StoreError> {
        self.own.push(Deferred { sql, args });
        if self.own.len() >= FLUSH_AT {
            self.flush_deferred().await?;
        }
        Ok(())
    }

    /// Run this use case's deferred statements now, inside its savepoint (rolled back with it),
    /// if no earlier use case of the group has statements waiting: those must run first, and
    /// they cannot run inside this savepoint. Otherwise they stay for the end of the group.
    async fn flush_deferred(&mut self) -> Result<(), StoreError> {
        let earlier_waiting = self.guard.as_ref().is_some_and(|g| !g.deferred.is_empty());
        if earlier_waiting {
            return Ok(());
        }
        let own = std::mem::take(&mut self.own);
        let c = self.conn()?;
        for d in &own {
            exec_sqlite(c, &d.sql, &d.args).await?;
        }
        Ok(())
    }

    /// Release the savepoint and return once the physical transaction holding it has committed.
    ///
    /// The work runs in its own task, so it goes to the end even if the caller stops waiting (a
    /// request whose client went away is dropped at its next await): a group left halfway
    /// through its deferred statements or its COMMIT would lose index entries or leave the
    /// transaction open for the next use case to commit.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        let Some(g) = self.guard.take() else {
            return Ok(());
        };
        let own = std::mem::take(&mut self.own);
        let writer = self.writer.clone();
        match tokio::spawn(commit_use_case(g, own, writer)).await {
            Ok(r) => r,
            Err(e) => Err(StoreError::Unavailable(format!(
                "the commit did not finish: {e}"
            ))),
        }
    }
}

/// [`GroupTx::commit`]'s work: release the savepoint, hand the deferred statements to the group,
/// and commit the group or wait for the one who does.
async fn commit_use_case(
    mut g: OwnedMutexGuard<WriterState>,
    mut own: Vec<Deferred>,
    writer: Arc<GroupWriter>,
) -> Result<(), StoreError> {
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
    g.deferred.append(&mut own);
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

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::Connection;

    async fn count(w: &Arc<GroupWriter>) -> Result<i64, StoreError> {
        let mut tx = w.begin().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(tx.conn()?)
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// A deferred statement runs at the end of the group; one that fails rolls the whole
    /// physical transaction back and its use case gets the error.
    #[tokio::test]
    async fn deferred_statements_run_at_the_end_or_fail_the_group() -> Result<(), StoreError> {
        let w = GroupWriter::new(SqliteConnection::connect("sqlite::memory:").await?);
        let mut tx = w.begin().await?;
        run(tx.conn()?, "CREATE TABLE t (x INTEGER)").await?;
        tx.commit().await?;

        let mut tx = w.begin().await?;
        tx.defer("INSERT INTO t VALUES ($1)".into(), vec![Val::Int(1)])
            .await?;
        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(tx.conn()?)
            .await?;
        assert_eq!(before, 0, "not run before the end of the group");
        tx.commit().await?;
        assert_eq!(count(&w).await?, 1);

        let mut tx = w.begin().await?;
        run(tx.conn()?, "INSERT INTO t VALUES (2)").await?;
        tx.defer("INSERT INTO no_such_table VALUES (1)".into(), vec![])
            .await?;
        assert!(
            tx.commit().await.is_err(),
            "the failure reaches the use case"
        );
        assert_eq!(count(&w).await?, 1, "and nothing of its group was kept");

        let mut tx = w.begin().await?;
        tx.defer("INSERT INTO t VALUES (3)".into(), vec![]).await?;
        drop(tx);
        assert_eq!(
            count(&w).await?,
            1,
            "a dropped use case takes its statements along"
        );
        Ok(())
    }
}
