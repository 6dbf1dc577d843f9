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

/// Failed ingests (internal errors) per spooled file, in this process.
static ATTEMPTS: std::sync::Mutex<std::collections::BTreeMap<PathBuf, u32>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());
const MAX_ATTEMPTS: u32 = 5;

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
            // Retried a few times (a passing fault), then set aside so it cannot hold up the
            // messages behind it for ever.
            let n = {
                let mut a = ATTEMPTS.lock().unwrap_or_else(|e| e.into_inner());
                let n = a.entry(path.to_path_buf()).or_insert(0);
                *n += 1;
                *n
            };
            if n >= MAX_ATTEMPTS {
                tracing::error!(error = %m, path = %path.display(), "ingest kept failing; message moved to failed/");
                metrics::counter!("mail_failed_total").increment(1);
                let _ = spool.fail(path, &format!("ingest failed {n} times: {m}"));
                return Outcome::Failed;
            }
            tracing::error!(error = %m, attempt = n, "ingest failed; the message stays spooled");
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

/// Lanes ingested side by side. Messages that belong together go to the same lane, in
/// arrival order: those from one sender, and those linked by Message-ID (a reply and what it
/// answers) or naming the same ticket (reply address, subject tag, our Message-IDs). So a
/// reply is never ingested before the message it answers, one person's messages land in the
/// order they were sent, and unrelated mail shares the database's group commit.
pub const LANES: usize = 8;
/// The most messages read into memory per round, and their most bytes.
const BATCH: usize = 2_000;
const BATCH_BYTES: usize = 256 * 1024 * 1024;

/// What ties a message to others: its sender, the Message-IDs it has and refers to, and the
/// tickets it names.
fn conversation_keys(p: &ParsedEmail) -> Vec<String> {
    use opsdesk_core::mail::{own_message_id, reply_token, subject_ticket_tag};
    let mut keys = vec![];
    // People: the sender and everyone on To/Cc (a message that makes bob@ a CC creates his
    // user; his own mail must not race it).
    for a in p.from_address.iter().chain(p.cc.iter().map(|(a, _)| a)) {
        keys.push(format!("person:{a}"));
    }
    for id in p
        .message_id
        .iter()
        .chain(&p.in_reply_to)
        .chain(&p.references)
    {
        keys.push(format!("mid:{id}"));
        if let Some((t, _, _)) = own_message_id(id) {
            keys.push(format!("ticket:{t}"));
        }
    }
    for r in &p.recipients {
        if let Some((t, _)) = reply_token(r) {
            keys.push(format!("ticket:{t}"));
        }
    }
    if let Some(t) = subject_ticket_tag(&p.subject) {
        keys.push(format!("ticket:{t}"));
    }
    keys
}

/// Group a batch (each message's conversation keys, in arrival order) into lanes: connected
/// messages share one.
fn lanes_of(batch: &[Vec<String>]) -> Vec<usize> {
    fn root(parent: &mut [usize], mut i: usize) -> usize {
        while parent[i] != i {
            parent[i] = parent[parent[i]];
            i = parent[i];
        }
        i
    }
    let mut parent: Vec<usize> = (0..batch.len()).collect();
    let mut owner: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (i, keys) in batch.iter().enumerate() {
        for k in keys {
            match owner.get(k) {
                Some(&j) => {
                    let (a, b) = (root(&mut parent, i), root(&mut parent, j));
                    parent[a.max(b)] = a.min(b);
                }
                None => {
                    owner.insert(k.clone(), i);
                }
            }
        }
    }
    (0..batch.len())
        .map(|i| root(&mut parent, i) % LANES)
        .collect()
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
    let mut batch: Vec<(PathBuf, ParsedEmail)> = vec![];
    let mut bytes = 0;
    for path in pending {
        // Large messages: a round holds at most BATCH_BYTES of them (plus one).
        if bytes > BATCH_BYTES {
            break;
        }
        match read(app, &path).await {
            Ok(p) => {
                bytes += p.size;
                batch.push((path, p));
            }
            Err(Outcome::Retry) => return false,
            Err(_) => {}
        }
    }
    let keys: Vec<Vec<String>> = batch.iter().map(|(_, p)| conversation_keys(p)).collect();
    let mut lanes: Vec<Vec<(PathBuf, ParsedEmail)>> = (0..LANES).map(|_| vec![]).collect();
    for (lane, item) in lanes_of(&keys).into_iter().zip(batch) {
        lanes[lane].push(item);
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
        if let Some(s) = &app.spool {
            // Files a crash left half-written (never acknowledged).
            s.sweep_tmp(Duration::from_secs(3600));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(from: &str, id: &str, irt: &[&str], subject: &str, to: &[&str]) -> ParsedEmail {
        ParsedEmail {
            from_address: Some(from.into()),
            message_id: Some(id.into()),
            in_reply_to: irt.iter().map(|s| s.to_string()).collect(),
            subject: subject.into(),
            recipients: to.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn related_messages_share_a_lane() {
        let batch = [
            msg("a@x", "1@x", &[], "Help", &["s@d"]),
            // B replies to A's message: same conversation though another sender.
            msg("b@x", "2@x", &["1@x"], "Re: Help", &["s@d"]),
            // Unrelated.
            msg("c@x", "3@x", &[], "Other", &["s@d"]),
            // A again, about something else: one sender's mail stays in order.
            msg("a@x", "4@x", &[], "New topic", &["s@d"]),
            // Two messages naming ticket 42, by subject tag and by reply address.
            msg("d@x", "5@x", &[], "Re: [#42] x", &["s@d"]),
            msg("e@x", "6@x", &[], "y", &["s+id42-abcdef@d"]),
            msg("f@x", "7@x", &["opsdesk.42.9.abc@d"], "z", &["s@d"]),
        ];
        let keys: Vec<Vec<String>> = batch.iter().map(conversation_keys).collect();
        let l = lanes_of(&keys);
        assert_eq!(l[0], l[1]);
        assert_eq!(l[0], l[3]);
        assert_eq!(l[4], l[5]);
        assert_eq!(l[4], l[6]);
        assert!(l.iter().all(|x| *x < LANES));
        // Unrelated mail is spread out (the components' roots are 0, 2, 4).
        assert_ne!(l[0], l[2]);
        assert_ne!(l[2], l[4]);
    }
}
