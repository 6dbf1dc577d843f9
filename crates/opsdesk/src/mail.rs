//! The email channel's options and the pipe command (`opsdesk mail ingest < message.eml`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use opsdesk_app::mail::{MailConfig, NonParticipants, UnknownSenders};
use opsdesk_app::spool::Spool;
use opsdesk_app::App;

/// Options every mail-handling command shares.
#[derive(Args, Clone, Debug)]
pub struct MailArgs {
    /// Support addresses mail is accepted for (repeat, or separate with commas); the first is
    /// the From of outgoing mail. None: any recipient is accepted.
    #[arg(
        long = "support-address",
        env = "OPSDESK_SUPPORT_ADDRESSES",
        value_delimiter = ',',
        global = true
    )]
    pub support_addresses: Vec<String>,
    /// Display name of outgoing mail.
    #[arg(
        long,
        env = "OPSDESK_MAIL_FROM_NAME",
        default_value = "Support",
        global = true
    )]
    pub mail_from_name: String,
    /// Mail from an unknown address: `accept` (the sender becomes an end-user) or `reject`
    /// (recorded, and the sender told how to reach support).
    #[arg(long, env = "OPSDESK_MAIL_UNKNOWN_SENDERS", default_value = "accept", value_parser = ["accept", "reject"], global = true)]
    pub mail_unknown_senders: String,
    /// A reply to a ticket from someone not on it: `note` (internal note tagged mail_review)
    /// or `new-ticket`.
    #[arg(long, env = "OPSDESK_MAIL_NON_PARTICIPANTS", default_value = "note", value_parser = ["note", "new-ticket"], global = true)]
    pub mail_non_participants: String,
    /// Messages from one address per hour after which its mail triggers no more email back.
    #[arg(
        long,
        env = "OPSDESK_MAIL_AUTO_REPLY_LIMIT",
        default_value_t = 20,
        global = true
    )]
    pub mail_auto_reply_limit: i64,
    /// Largest file kept from a message or accepted as an upload (bytes).
    #[arg(long, env = "OPSDESK_MAX_ATTACHMENT_BYTES", default_value_t = opsdesk_app::attachments::DEFAULT_MAX_BYTES, global = true)]
    pub max_attachment_bytes: usize,
}

impl MailArgs {
    pub fn config(&self) -> Result<MailConfig> {
        let mut addrs = vec![];
        for a in &self.support_addresses {
            let a = opsdesk_core::model::normalize_email(a);
            if a.is_empty() {
                continue;
            }
            anyhow::ensure!(
                opsdesk_core::model::valid_email(&a),
                "--support-address {a:?} is not an email address"
            );
            addrs.push(a);
        }
        Ok(MailConfig {
            support_addresses: addrs,
            from_name: self.mail_from_name.clone(),
            unknown_senders: if self.mail_unknown_senders == "reject" {
                UnknownSenders::Reject
            } else {
                UnknownSenders::Accept
            },
            non_participants: if self.mail_non_participants == "new-ticket" {
                NonParticipants::NewTicket
            } else {
                NonParticipants::Note
            },
            auto_reply_limit_per_hour: self.mail_auto_reply_limit,
        })
    }

    /// Apply the options and open the spool under the data directory.
    pub fn apply(&self, app: &mut App, data_dir: &Path) -> Result<()> {
        app.mail = Arc::new(self.config()?);
        app.max_attachment_bytes = self.max_attachment_bytes;
        let dir = spool_dir(data_dir);
        let spool = Spool::open(&dir)
            .with_context(|| format!("opening the mail spool {}", dir.display()))?;
        app.spool = Some(Arc::new(spool));
        Ok(())
    }
}

pub fn spool_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("mail-spool")
}

#[derive(Subcommand)]
pub enum MailCommand {
    /// Take one message on standard input (for an MTA's pipe transport). It is spooled
    /// durably, then ingested. Exit codes follow sysexits: 0 accepted, 65 not a message or
    /// too large, 67 recipient not handled here, 75 try again later.
    Ingest {
        /// The envelope recipient (the MTA's $recipient), checked against --support-address.
        #[arg(long)]
        recipient: Vec<String>,
        /// Largest message accepted (bytes).
        #[arg(long, default_value_t = 35 * 1024 * 1024)]
        max_message_bytes: usize,
        /// Only spool; a running server ingests it.
        #[arg(long)]
        spool_only: bool,
    },
}

pub const EX_DATAERR: i32 = 65;
pub const EX_NOUSER: i32 = 67;
pub const EX_TEMPFAIL: i32 = 75;

/// The pipe command. Returns the process exit code.
pub async fn pipe(
    data_dir: &Path,
    args: &MailArgs,
    recipients: &[String],
    max: usize,
    spool_only: bool,
    open: impl std::future::Future<Output = Result<App>>,
) -> i32 {
    let cfg = match args.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("opsdesk mail ingest: {e:#}");
            return EX_TEMPFAIL;
        }
    };
    for r in recipients {
        if !cfg.accepts(r) {
            eprintln!("opsdesk mail ingest: <{r}> is not a support address of this help desk");
            return EX_NOUSER;
        }
    }
    let mut raw = Vec::new();
    if let Err(e) = std::io::stdin().take(max as u64 + 1).read_to_end(&mut raw) {
        eprintln!("opsdesk mail ingest: reading the message: {e}");
        return EX_TEMPFAIL;
    }
    if raw.len() > max {
        eprintln!("opsdesk mail ingest: the message is larger than {max} bytes");
        return EX_DATAERR;
    }
    if opsdesk_mail::parse(&raw).is_err() {
        eprintln!("opsdesk mail ingest: standard input is not a mail message");
        return EX_DATAERR;
    }
    for r in recipients {
        let mut with = format!("Delivered-To: {r}\r\n").into_bytes();
        with.extend_from_slice(&raw);
        raw = with;
    }
    let dir = spool_dir(data_dir);
    let spool = match Spool::open(&dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!(
                "opsdesk mail ingest: opening the spool {}: {e}",
                dir.display()
            );
            return EX_TEMPFAIL;
        }
    };
    let path = match spool.accept(&raw) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("opsdesk mail ingest: writing to the spool: {e}");
            return EX_TEMPFAIL;
        }
    };
    if spool_only {
        return 0;
    }
    // Spooled: the message is safe whatever happens next. Ingest it now if the database is
    // reachable; otherwise the server's worker (or the next run) does.
    match open.await {
        Ok(mut app) => {
            if args.apply(&mut app, data_dir).is_ok() {
                let outcome = opsdesk_mail::ingest::ingest_file(&app, &path).await;
                tracing::info!(?outcome, "mail ingest");
            }
            app.store.close().await;
        }
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "database unavailable; the message stays spooled");
        }
    }
    0
}
