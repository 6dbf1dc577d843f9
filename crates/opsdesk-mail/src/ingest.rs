//! The ingest worker: takes spooled messages oldest first, parses each and hands it to
//! `App::ingest_email`; a message leaves the spool only once the database has it. While the
//! database is unavailable, messages wait and are retried; a message that can never be read is
//! moved to `failed/` with the reason.

use std::path::{Path, PathBuf};
use std::time::Duration;

use opsdesk_app::mail::ParsedEmail;
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

/// Read and parse a spooled file; a file that can never be read as mail is moved to
/// `failed/` (the outcome is returned instead).
async fn read(app: &App, path: &Path) -> Result<ParsedEmail, Outcome> {
    let Some(spool) = app.spool.clone() else {
        return Err(Outcome::Retry);
    };
    let raw = match tokio::fs::read(path).await {
        Ok(r) => r,
        // Another worker (or the pipe command) took it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Outcome::Duplicate),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "reading a spooled message failed");
            return Err(Outcome::Retry);
        }
    };
    match crate::parse(&raw) {
        Ok(p) => Ok(p),
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "spooled message cannot be parsed");
            metrics::counter!("mail_failed_total").increment(1);
            let _ = spool.fail(path, &e.to_string());
            Err(Outcome::Failed)
        }
    }
}

/// Ingest a parsed message and take its file out of the spool once the database has it.
async fn ingest_parsed(app: &App, path: &Path, parsed: ParsedEmail) -> Outcome {
    let Some(spool) = app.spool.clone() else {
        return Outcome::Retry;
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

/// Ingest one spooled file.
pub async fn ingest_file(app: &App, path: &Path) -> Outcome {
    match read(app, path).await {
        Ok(p) => ingest_parsed(app, path, p).await,
        Err(o) => o,
    }
}

/// Lanes ingested side by side. A message goes to the lane of its conversation (the first of
/// its References, else In-Reply-To, else its own Message-ID), so a reply is never ingested
/// before the message it answers when both wait in the spool, while unrelated conversations
/// share the database's group commit.
pub const LANES: usize = 8;
/// The most messages read into memory per round.
const BATCH: usize = 2_000;

fn lane_of(p: &ParsedEmail) -> usize {
    use std::hash::{Hash, Hasher};
    let key = p
        .references
        .first()
        .or(p.in_reply_to.first())
        .or(p.message_id.as_ref())
        .or(p.from_address.as_ref());
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % LANES as u64) as usize
}

/// Ingest what is spooled now, oldest first within each conversation; stops early
/// (returning false) when the database is unavailable.
pub async fn drain(app: &App) -> bool {
    let Some(spool) = app.spool.clone() else {
        return true;
    };
    let mut pending = match spool.pending() {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(error = %e, "listing the mail spool failed");
            return false;
        }
    };
    metrics::gauge!("mail_spool_depth").set(pending.len() as f64);
    pending.truncate(BATCH);
    let mut lanes: Vec<Vec<(PathBuf, ParsedEmail)>> = (0..LANES).map(|_| vec![]).collect();
    for path in pending {
        match read(app, &path).await {
            Ok(p) => lanes[lane_of(&p)].push((path, p)),
            Err(Outcome::Retry) => return false,
            Err(_) => {}
        }
    }
    let mut set = tokio::task::JoinSet::new();
    for lane in lanes.into_iter().filter(|l| !l.is_empty()) {
        let app = app.clone();
        set.spawn(async move {
            for (path, p) in lane {
                if ingest_parsed(&app, &path, p).await == Outcome::Retry {
                    return false;
                }
            }
            true
        });
    }
    let mut ok = true;
    while let Some(r) = set.join_next().await {
        ok &= r.unwrap_or(false);
    }
    ok
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
