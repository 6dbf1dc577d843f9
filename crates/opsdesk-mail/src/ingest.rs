//! The ingest worker: takes spooled messages oldest first, parses each and hands it to
//! `App::ingest_email`; a message leaves the spool only once the database has it. While the
//! database is unavailable, messages wait and are retried; a message that can never be read is
//! moved to `failed/` with the reason.

use std::path::Path;
use std::time::Duration;

use opsdesk_app::{App, AppError};
use tokio::sync::watch;

/// What became of one spooled file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Ingested,
    Duplicate,
    /// Moved to `failed/`.
    Failed,
    /// Left in the spool for a later try (the database is unavailable).
    Retry,
}

/// Ingest one spooled file.
pub async fn ingest_file(app: &App, path: &Path) -> Outcome {
    let Some(spool) = app.spool.clone() else {
        return Outcome::Retry;
    };
    let raw = match tokio::fs::read(path).await {
        Ok(r) => r,
        // Another worker (or the pipe command) took it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Outcome::Duplicate,
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "reading a spooled message failed");
            return Outcome::Retry;
        }
    };
    let parsed = match crate::parse(&raw) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "spooled message cannot be parsed");
            metrics::counter!("mail_failed_total").increment(1);
            let _ = spool.fail(path, &e.to_string());
            return Outcome::Failed;
        }
    };
    match app.ingest_email(parsed).await {
        Ok(r) => {
            if let Err(e) = spool.done(path) {
                tracing::error!(error = %e, "removing an ingested message from the spool failed");
            }
            if r.duplicate {
                Outcome::Duplicate
            } else {
                Outcome::Ingested
            }
        }
        Err(AppError::Unavailable(m)) => {
            tracing::warn!(error = %m, "database unavailable; the message stays spooled");
            Outcome::Retry
        }
        Err(AppError::Internal(m)) => {
            tracing::error!(error = %m, "ingest failed; the message stays spooled");
            Outcome::Retry
        }
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "message refused by ingest");
            metrics::counter!("mail_failed_total").increment(1);
            let _ = spool.fail(path, &e.to_string());
            Outcome::Failed
        }
    }
}

/// Ingest everything spooled now, oldest first and one at a time (so replies land on their
/// ticket in the order they arrived); stops early (returning false) when the database is
/// unavailable.
pub async fn drain(app: &App) -> bool {
    let Some(spool) = app.spool.clone() else {
        return true;
    };
    let pending = match spool.pending() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "listing the mail spool failed");
            return false;
        }
    };
    metrics::gauge!("mail_spool_depth").set(pending.len() as f64);
    for p in &pending {
        if ingest_file(app, p).await == Outcome::Retry {
            return false;
        }
    }
    true
}

/// The worker: drains the spool when woken (a message spooled) and every few seconds; backs
/// off while the database is unavailable.
pub fn spawn(app: App, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            if *stop.borrow() {
                break;
            }
            let ok = drain(&app).await;
            app.heartbeats
                .mail
                .store(app.now().as_second(), std::sync::atomic::Ordering::Relaxed);
            let wait = if ok {
                backoff = Duration::from_secs(1);
                Duration::from_secs(2)
            } else {
                backoff = (backoff * 2).min(Duration::from_secs(30));
                backoff
            };
            tokio::select! {
                _ = app.mail_wakeup.notified(), if ok => {}
                _ = tokio::time::sleep(wait) => {}
                _ = stop.changed() => {}
            }
        }
    })
}
