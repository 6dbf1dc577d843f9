//! The email channel's use cases: handing inbound mail to the spool (`spool.rs`), ingest
//! (threading, requesters, loop protection, attachments) in one transaction per message,
//! suspended mail, and outgoing mail built from outbox messages with the headers a customer's
//! client threads by, in the admin's templates. MIME parsing and SMTP live in `opsdesk-mail`; this module
//! takes an already parsed message ([`ParsedEmail`]) and hands outgoing mail to a [`Mailer`].

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use hmac::{Hmac, Mac};
use opsdesk_core::mail::{own_message_id, reply_token, state, subject_ticket_tag, InboundEmail};
use opsdesk_core::model::{normalize_email, valid_email, Id};
use opsdesk_core::outbox::OutboxItem;
use opsdesk_core::ticket::{CcChange, CommentInput, Status, TicketInput, Via};
use opsdesk_store::Conn;
use serde_json::{json, Value};
use sha2::Sha256;

use crate::people::UserInput;
use crate::{Actor, App, AppError, Origin, Result};

/// What to do with mail from an address no user has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownSenders {
    /// Make the sender an end-user and their message a ticket (Zendesk's default).
    Accept,
    /// Record the message as rejected and tell the sender how to reach support.
    Reject,
}

/// What to do with a reply to a ticket from someone who is not on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonParticipants {
    /// Add it as an internal note tagged `mail_review`, for an agent to decide.
    Note,
    /// Make it a new ticket of its own.
    NewTicket,
}

/// The email channel's settings (`opsdesk serve --support-address …`).
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Addresses mail is accepted for (lower-cased); the first is the From of outgoing mail.
    /// Empty: any recipient is accepted and outgoing mail comes from `support@<host>`.
    pub support_addresses: Vec<String>,
    /// The display name of outgoing mail.
    pub from_name: String,
    pub unknown_senders: UnknownSenders,
    pub non_participants: NonParticipants,
    /// Messages from one address per hour after which its mail no longer triggers email
    /// (an auto-responder talking to another).
    pub auto_reply_limit_per_hour: i64,
}

impl Default for MailConfig {
    fn default() -> Self {
        MailConfig {
            support_addresses: vec![],
            from_name: "Support".into(),
            unknown_senders: UnknownSenders::Accept,
            non_participants: NonParticipants::Note,
            auto_reply_limit_per_hour: 20,
        }
    }
}

impl MailConfig {
    /// Whether mail for `address` is accepted (the SMTP listener's RCPT check).
    pub fn accepts(&self, address: &str) -> bool {
        if self.support_addresses.is_empty() {
            return true;
        }
        let a = normalize_email(address);
        // A plus address (`support+id42-…@`) belongs to its base address.
        let base = match (a.split_once('+'), a.split_once('@')) {
            (Some((local, _)), Some((_, domain))) => format!("{local}@{domain}"),
            _ => a.clone(),
        };
        self.support_addresses.iter().any(|s| *s == a || *s == base)
    }

    fn is_own(&self, address: &str) -> bool {
        !self.support_addresses.is_empty() && self.accepts(address)
    }
}

/// Why a message was automatic, from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoKind {
    /// `Auto-Submitted`, `X-Autoreply`, `X-Autorespond`: an out-of-office or auto-responder.
    AutoReplied,
    /// `Precedence: bulk|junk|list`, `List-Id`: newsletters and lists.
    Bulk,
    /// A delivery-status notification (bounce).
    Bounce,
}

impl AutoKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            AutoKind::AutoReplied => "auto_replied",
            AutoKind::Bulk => "bulk",
            AutoKind::Bounce => "bounce",
        }
    }
}

/// A file from a message.
#[derive(Debug, Clone)]
pub struct MailFile {
    pub file_name: String,
    pub content_type: String,
    pub content: Vec<u8>,
    /// The Content-ID of an inline part (referred to as `cid:` in the HTML).
    pub inline_cid: Option<String>,
}

/// A parsed inbound message: what ingest needs, nothing MIME-specific.
#[derive(Debug, Clone, Default)]
pub struct ParsedEmail {
    /// Without angle brackets.
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from_address: Option<String>,
    pub from_name: Option<String>,
    /// Every address the message was sent to (To, Cc, Delivered-To, X-Original-To), lower-cased.
    pub recipients: Vec<String>,
    /// The To and Cc people, for the ticket's CCs.
    pub cc: Vec<(String, Option<String>)>,
    pub subject: String,
    /// The new text (quoted history trimmed); plain text.
    pub text: String,
    pub files: Vec<MailFile>,
    pub auto: Option<AutoKind>,
    /// For bounces: the recipients that failed.
    pub bounced: Vec<String>,
    /// For bounces: the Message-IDs found in the returned message (which one of ours failed).
    pub bounced_message_ids: Vec<String>,
    /// The value of the message's [`LOOP_HEADER`], if it has one.
    pub loop_id: Option<String>,
    /// SHA-256 of the raw message (the key of a message without a Message-ID).
    pub raw_sha256: String,
    pub size: usize,
}

/// A message to send.
#[derive(Debug, Clone)]
pub struct OutgoingMail {
    pub from: String,
    pub from_name: String,
    pub to: String,
    pub to_name: Option<String>,
    pub reply_to: Option<String>,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// Without angle brackets.
    pub message_id: String,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    /// Extra headers (`Auto-Submitted`, `X-Opsdesk-Ticket-Id`, the loop header).
    pub headers: Vec<(String, String)>,
}

/// Why a send failed, and whether to try again.
#[derive(Debug, Clone)]
pub struct SendFailure {
    pub message: String,
    pub permanent: bool,
}

/// Sends outgoing mail (SMTP in `opsdesk-mail`).
pub trait Mailer: Send + Sync {
    fn send<'a>(
        &'a self,
        mail: &'a OutgoingMail,
    ) -> Pin<Box<dyn Future<Output = std::result::Result<(), SendFailure>> + Send + 'a>>;
}

/// The admin-editable wrappers of outgoing mail (`GET/PUT /api/v2/mail/settings`), rendered
/// with the placeholder language: `{{content}}` (the message), `{{delimiter}}` (the reply
/// line, ticket mail only), `{{footer}}` and `{{from_name}}`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MailTemplates {
    pub html_template: String,
    pub text_template: String,
    pub footer: String,
}

impl Default for MailTemplates {
    fn default() -> Self {
        MailTemplates {
            html_template: "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n<body style=\"font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; font-size: 14px; line-height: 1.5; color: #2f3941;\">\n{% if delimiter %}<div style=\"color: #b5b5b5;\">{{delimiter}}</div>\n{% endif %}<div>{{content}}</div>\n<div style=\"color: #68737d; font-size: 12px; margin-top: 24px;\">{{footer}}</div>\n</body></html>\n".into(),
            text_template: "{% if delimiter %}{{delimiter}}\n\n{% endif %}{{content}}\n\n--\n{{footer}}\n".into(),
            footer: "This email is a service from {{from_name}}.".into(),
        }
    }
}

/// The most a template may hold.
const MAX_TEMPLATE: usize = 100_000;

/// The header outgoing mail carries so the instance recognises its own mail coming back.
pub const LOOP_HEADER: &str = "X-Opsdesk-Loop";

/// What ingest did with a message.
#[derive(Debug, Clone)]
pub struct Ingested {
    pub record: InboundEmail,
    /// The message had been ingested before (same Message-ID): nothing was written.
    pub duplicate: bool,
}

impl App {
    /// Make (first start) or read the key that signs reply addresses and Message-IDs; every
    /// node reads the same one. Run by [`App::prepare`], so signing never needs a write
    /// while a use case holds one.
    pub(crate) async fn load_mail_key(&self) -> Result<()> {
        let mut tx = self.store.write().await?;
        let k = tx
            .setting_or_init("mail_signing_key", &crate::attachments::random_token(64))
            .await?;
        tx.commit().await?;
        let _ = self.mail_key.set(k.into_bytes());
        Ok(())
    }

    fn mail_key(&self) -> Result<&[u8]> {
        self.mail_key.get().map(Vec::as_slice).ok_or_else(|| {
            AppError::Internal("the mail signing key is not loaded (App::prepare)".into())
        })
    }

    async fn sign(&self, what: &str) -> Result<String> {
        let key = self.mail_key()?;
        let mut mac = Hmac::<Sha256>::new_from_slice(key)
            .map_err(|_| AppError::Internal("mail key".into()))?;
        mac.update(what.as_bytes());
        let mut s = hex::encode(mac.finalize().into_bytes());
        s.truncate(12);
        Ok(s)
    }

    /// The support address outgoing mail comes from.
    pub fn support_address(&self) -> String {
        self.mail
            .support_addresses
            .first()
            .cloned()
            .unwrap_or_else(|| {
                let host = self
                    .public_url
                    .split("://")
                    .nth(1)
                    .unwrap_or("localhost")
                    .split(['/', ':'])
                    .next()
                    .unwrap_or("localhost")
                    .to_string();
                format!("support@{host}")
            })
    }

    /// The reply address of a ticket: `local+id<ticket>-<signature>@domain`.
    pub async fn reply_address(&self, ticket_id: Id) -> Result<String> {
        let from = self.support_address();
        let (local, domain) = from.split_once('@').unwrap_or((from.as_str(), "localhost"));
        let sig = self.sign(&format!("reply:{ticket_id}")).await?;
        Ok(format!("{local}+id{ticket_id}-{sig}@{domain}"))
    }

    /// The Message-ID of outgoing message `message` about `ticket_id`.
    pub async fn outgoing_message_id(&self, ticket_id: Id, message: Id) -> Result<String> {
        let from = self.support_address();
        let domain = from.split_once('@').map(|x| x.1).unwrap_or("localhost");
        let sig = self.sign(&format!("mid:{ticket_id}:{message}")).await?;
        Ok(format!("opsdesk.{ticket_id}.{message}.{sig}@{domain}"))
    }

    /// Write a message to the spool (the HTTP relay endpoint and the pipe command); the ingest
    /// worker takes it from there.
    pub fn spool_inbound(&self, raw: &[u8]) -> Result<PathBuf> {
        let spool = self
            .spool
            .as_ref()
            .ok_or_else(|| AppError::Unavailable("inbound mail is not configured".into()))?;
        let path = spool.accept(raw).map_err(|e| {
            tracing::error!(error = %e, "spooling inbound mail failed");
            AppError::Unavailable("the mail spool cannot be written".into())
        })?;
        metrics::counter!("mail_spooled_total").increment(1);
        self.mail_wakeup.notify_one();
        Ok(path)
    }

    /// The ticket a message belongs to, and by which rule: a signed reply address, then
    /// In-Reply-To/References (our own Message-IDs, then those of mail already ingested), then
    /// a `[#id]` subject tag.
    /// The third value says whether the rule was a signed one (reply address or our own
    /// Message-ID): proof the sender received mail about that ticket, which a From header is
    /// not.
    async fn thread_of(
        &self,
        tx: &mut Conn,
        m: &ParsedEmail,
    ) -> Result<Option<(Id, String, bool)>> {
        for r in &m.recipients {
            if let Some((id, sig)) = reply_token(r) {
                if self.sign(&format!("reply:{id}")).await? == sig {
                    return Ok(Some((id, format!("reply address {r}"), true)));
                }
            }
        }
        let mut refs: Vec<String> = m.in_reply_to.clone();
        refs.extend(m.references.iter().rev().cloned());
        for r in &refs {
            if let Some((tid, mid, sig)) = own_message_id(r) {
                if self.sign(&format!("mid:{tid}:{mid}")).await? == sig {
                    return Ok(Some((tid, format!("In-Reply-To/References <{r}>"), true)));
                }
            }
        }
        if let Some(t) = tx.ticket_of_message_ids(&refs).await? {
            return Ok(Some((
                t,
                "In-Reply-To/References of earlier mail".into(),
                false,
            )));
        }
        if let Some(t) = subject_ticket_tag(&m.subject) {
            return Ok(Some((t, format!("subject tag [#{t}]"), false)));
        }
        Ok(None)
    }

    /// Ingest one parsed message in one transaction: a new ticket, a comment, a note for
    /// review, a bounce or a suspension, recorded under the message's key so a second ingest
    /// of the same message writes nothing.
    pub async fn ingest_email(&self, m: ParsedEmail) -> Result<Ingested> {
        let key = match &m.message_id {
            Some(id) => format!("mid:{id}"),
            None => format!("sha256:{}", m.raw_sha256),
        };
        let now = self.now();
        let from = m
            .from_address
            .as_deref()
            .map(normalize_email)
            .filter(|a| valid_email(a));
        // What can be looked up without the writer is, so the write holds it briefly. (Replies
        // of one conversation are ingested in order, so the thread lookup sees the message
        // before.)
        let (thread, recent) = {
            let mut c = self.store.read().await?;
            if let Some(r) = c.inbound_by_key(&key).await? {
                metrics::counter!("mail_duplicates_total").increment(1);
                return Ok(Ingested {
                    record: r,
                    duplicate: true,
                });
            }
            let thread = self.thread_of(&mut c, &m).await?;
            let recent = match &from {
                Some(f) => c.inbound_from_since(f, now.as_second() - 3600).await?,
                None => 0,
            };
            (thread, recent)
        };
        let mut rec = InboundEmail {
            id: 0,
            message_key: key,
            message_id: m.message_id.clone(),
            state: String::new(),
            reason: String::new(),
            ticket_id: None,
            audit_id: None,
            from_address: from.clone(),
            from_name: m.from_name.clone(),
            subject: m.subject.chars().take(500).collect(),
            recipients: m.recipients.iter().take(50).cloned().collect(),
            auto: m.auto.map(|a| a.as_str().to_string()),
            size: m.size as i64,
            text: None,
            created_at: now,
        };
        let mut tx = self.store.write().await?;
        let suspend = |rec: &mut InboundEmail, why: &str| {
            rec.state = state::SUSPENDED.into();
            rec.reason = why.into();
            rec.text = Some(m.text.chars().take(10_000).collect());
        };
        let own_loop = match &m.loop_id {
            Some(l) => l.trim() == self.node_loop_id().await?,
            None => false,
        };
        match (&from, m.auto) {
            (_, Some(AutoKind::Bounce)) => {
                rec.state = state::BOUNCE.into();
                rec.reason = self
                    .record_bounces(&mut tx, &m.bounced, &m.bounced_message_ids)
                    .await?;
            }
            (_, _) if own_loop => suspend(&mut rec, "mail sent by this help desk came back"),
            (Some(f), _) if self.mail.is_own(f) => {
                suspend(&mut rec, "the sender is one of this help desk's addresses")
            }
            (_, Some(AutoKind::Bulk)) => suspend(&mut rec, "bulk or list mail"),
            (None, _) => suspend(&mut rec, "no valid sender address"),
            (Some(f), auto) => {
                let f = f.clone();
                self.ingest_from(&mut tx, &m, &f, auto, thread, recent, &mut rec)
                    .await?;
            }
        }
        // The key is unique: when the same message was ingested meanwhile (the pipe command
        // and the worker racing for one spool file), this write is dropped whole.
        match tx.insert(&mut rec).await {
            Ok(_) => {}
            Err(opsdesk_store::StoreError::Conflict(_)) => {
                drop(tx);
                let mut c = self.store.read().await?;
                let r = c
                    .inbound_by_key(&rec.message_key)
                    .await?
                    .ok_or(AppError::NotFound)?;
                metrics::counter!("mail_duplicates_total").increment(1);
                return Ok(Ingested {
                    record: r,
                    duplicate: true,
                });
            }
            Err(e) => return Err(e.into()),
        }
        tx.commit().await?;
        metrics::counter!("mail_ingested_total", "state" => rec.state.clone()).increment(1);
        tracing::info!(
            mail.id = rec.id,
            ticket.id = ?rec.ticket_id,
            state = %rec.state,
            "inbound mail ingested"
        );
        Ok(Ingested {
            record: rec,
            duplicate: false,
        })
    }

    async fn record_bounces(
        &self,
        tx: &mut Conn,
        bounced: &[String],
        returned_ids: &[String],
    ) -> Result<String> {
        // Only a report about mail this help desk sent (its signed Message-ID is in the
        // returned headers) counts: a forged report must not mark an address undeliverable.
        let mut ours = false;
        for id in returned_ids {
            if let Some((t, n, sig)) = own_message_id(id) {
                if self.sign(&format!("mid:{t}:{n}")).await? == sig {
                    ours = true;
                    break;
                }
            }
        }
        if !ours {
            return Ok("delivery report about mail this help desk did not send: ignored".into());
        }
        let mut marked = vec![];
        for addr in bounced.iter().take(20) {
            let Some(u) = tx.user_by_email(addr).await? else {
                continue;
            };
            for mut i in tx.identities_of(u.id).await? {
                if i.kind == "email" && normalize_email(&i.value) == normalize_email(addr) {
                    i.undeliverable_count += 1;
                    i.deliverable_state = "undeliverable".into();
                    i.updated_at = self.now();
                    tx.update(&i).await?;
                    marked.push(format!("{} (user {})", i.value, u.id));
                }
            }
        }
        Ok(if marked.is_empty() {
            "delivery failure for no known user".into()
        } else {
            format!("delivery failed to {}", marked.join(", "))
        })
    }

    async fn ingest_from(
        &self,
        tx: &mut Conn,
        m: &ParsedEmail,
        from: &str,
        auto: Option<AutoKind>,
        thread: Option<(Id, String, bool)>,
        recent: i64,
        rec: &mut InboundEmail,
    ) -> Result<()> {
        let sender = match tx.user_by_email(from).await? {
            Some(u) => u,
            None if self.mail.unknown_senders == UnknownSenders::Reject => {
                rec.state = state::REJECTED.into();
                rec.reason =
                    "unknown sender; this help desk accepts mail from known users only".into();
                // No answer to automatic mail, nor past the hourly limit (a forged sender must
                // not turn the help desk into a source of backscatter).
                if auto.is_none() && recent < self.mail.auto_reply_limit_per_hour {
                    self.queue_rejection(tx, from, &m.subject, &rec.message_key)
                        .await?;
                }
                return Ok(());
            }
            None => self.new_sender(tx, from, m.from_name.as_deref()).await?,
        };
        if sender.suspended {
            rec.state = state::SUSPENDED.into();
            rec.reason = "the sender is a suspended user".into();
            rec.text = Some(m.text.chars().take(10_000).collect());
            return Ok(());
        }
        let actor = Actor { user: sender };
        // Mail that answers automatically, or an address writing too often, triggers no email
        // back: that is how two auto-responders keep each other busy.
        let quiet = auto.is_some() || recent >= self.mail.auto_reply_limit_per_hour;
        let upload = crate::attachments::random_token(24);
        let mut skipped = vec![];
        for f in &m.files {
            if f.content.len() > self.max_attachment_bytes {
                skipped.push(format!(
                    "{} ({} bytes, over the {} byte limit)",
                    f.file_name,
                    f.content.len(),
                    self.max_attachment_bytes
                ));
                continue;
            }
            self.store_upload(
                tx,
                None,
                &f.file_name,
                &f.content_type,
                f.content.clone(),
                &upload,
                f.inline_cid.as_deref(),
            )
            .await?;
        }
        let mut text = m.text.trim().to_string();
        if text.is_empty() {
            text = if m.files.is_empty() {
                "(empty message)".into()
            } else {
                "(no text; see the attachments)".into()
            };
        }
        if !skipped.is_empty() {
            text.push_str(&format!("\n\n[opsdesk: not kept: {}]", skipped.join("; ")));
        }
        let comment = CommentInput {
            body: Some(text),
            uploads: (m.files.len() > skipped.len()).then(|| vec![upload]),
            ..Default::default()
        };
        let support = m
            .recipients
            .iter()
            .find(|r| self.mail.accepts(r))
            .cloned()
            .unwrap_or_else(|| self.support_address());
        let via = self.email_via(from, m.from_name.as_deref(), &m.recipients, &support);
        let mut system = json!({"message_id": m.message_id, "inbound_email": rec.message_key});
        if quiet {
            system["suppress_email_to"] = json!([actor.id()]);
        }
        let mut origin = Origin {
            client: Some("opsdesk-mail".into()),
            ip_address: None,
            system: None,
        };
        let existing = match &thread {
            Some((id, _, _)) => tx.ticket_for_update(*id).await?,
            None => None,
        };
        match (existing, thread) {
            (Some(t), Some((_, why, signed))) if t.status != Status::Closed => {
                let participant = actor.is_staff()
                    || t.requester_id == actor.id()
                    || t.email_cc_ids.contains(&actor.id())
                    || t.collaborator_ids.contains(&actor.id());
                // A From header is easy to forge: mail from an agent's address becomes a public
                // reply only when it came by a signed rule; otherwise it is held as a note.
                let unproven_staff = actor.is_staff() && !signed;
                if participant || self.mail.non_participants == NonParticipants::Note {
                    let note = !participant || unproven_staff;
                    // A proven agent's reply may start with Zendesk's mail commands.
                    let (commands, comment) = if actor.is_staff() && !note {
                        let (cmds, body) = opsdesk_core::mail::agent_commands(
                            comment.body.as_deref().unwrap_or(""),
                        );
                        let body = if body.is_empty() && !cmds.is_empty() {
                            "(changed by email)".to_string()
                        } else {
                            body
                        };
                        (
                            cmds,
                            CommentInput {
                                body: Some(body),
                                ..comment
                            },
                        )
                    } else {
                        (vec![], comment)
                    };
                    let mut inv = opsdesk_core::Invalid::new();
                    let files = self.comment_uploads(tx, &actor, &comment, &mut inv).await?;
                    inv.into_result()?;
                    let Some(mut c) =
                        self.build_comment(&actor, &comment, &via, actor.id(), true, files)
                    else {
                        return Err(AppError::Internal("empty mail comment".into()));
                    };
                    let mut nt = t.clone();
                    if note {
                        c.public = false;
                        if !nt.tags.iter().any(|x| x == "mail_review") {
                            nt.tags.push("mail_review".into());
                        }
                        system["review"] = json!(if unproven_staff {
                            "mail from an agent's address without a signed reply address"
                        } else {
                            "reply from someone not on the ticket"
                        });
                    } else if !actor.is_staff()
                        && matches!(nt.status, Status::Pending | Status::Solved)
                    {
                        // A requester's reply reopens the ticket.
                        nt.status = Status::Open;
                    }
                    let applied =
                        apply_mail_commands(&commands, &mut nt, &mut c.public, actor.id());
                    if !applied.is_empty() {
                        system["mail_commands"] = json!(applied);
                    }
                    origin.system = Some(system);
                    let (t2, audit) = self
                        .save_update(tx, &actor, t, nt, Some(c), via, &origin, None)
                        .await?;
                    rec.state = if note { state::NOTE } else { state::COMMENT }.into();
                    rec.reason = format!("threaded by {why}");
                    rec.ticket_id = Some(t2.id);
                    rec.audit_id = audit.map(|a| a.id);
                    return Ok(());
                }
                rec.reason = format!(
                    "threaded by {why} to #{}, but the sender is not on it: new ticket",
                    t.id
                );
            }
            (Some(t), Some((_, why, _))) => {
                rec.reason = format!("threaded by {why} to closed #{}: follow-up ticket", t.id);
            }
            (None, Some((id, why, _))) => {
                rec.reason = format!("{why} names #{id}, which does not exist: new ticket");
            }
            (_, None) => rec.reason = "no thread: new ticket".into(),
        }
        let ccs: Vec<CcChange> =
            m.cc.iter()
                .filter(|(a, _)| !self.mail.accepts(a) && normalize_email(a) != from)
                .filter(|(a, _)| valid_email(a))
                .take(crate::tickets::MAX_PEOPLE)
                .map(|(a, n)| CcChange {
                    user_id: None,
                    user_email: Some(normalize_email(a)),
                    user_name: n.clone(),
                    action: Some("put".into()),
                })
                .collect();
        let input = TicketInput {
            subject: Some(ticket_subject(&m.subject)),
            comment: Some(comment),
            email_ccs: (!ccs.is_empty()).then_some(ccs),
            ..Default::default()
        };
        origin.system = Some(system);
        let (t, audit) = self
            .create_ticket_tx(tx, &actor, input, via, &origin)
            .await?;
        rec.state = state::TICKET.into();
        rec.ticket_id = Some(t.id);
        rec.audit_id = Some(audit.id);
        Ok(())
    }

    /// The auto-reply to an unknown sender when only known users may write in.
    async fn queue_rejection(
        &self,
        tx: &mut Conn,
        to: &str,
        subject: &str,
        key: &str,
    ) -> Result<()> {
        let text = format!(
            "We could not accept your message \"{subject}\": this help desk takes requests \
             by email only from registered users.\n\nPlease sign in at {} to open a request, \
             or ask your organisation's administrator to add you.",
            self.public_url
        );
        let mut it = OutboxItem::pending(
            "email",
            format!("{key}:rejected"),
            None,
            None,
            json!({
                "to": to,
                "subject": format!("Your message could not be accepted: {subject}"),
                "text": text,
                "html": crate::html::text_to_html(&text),
            }),
            self.now(),
        );
        tx.insert(&mut it).await?;
        Ok(())
    }

    /// The mail an outbox email item becomes: signed Message-ID and reply address, and
    /// In-Reply-To/References to the mail the ticket came from, so the customer's client
    /// threads it and a reply finds its ticket.
    pub(crate) async fn outgoing_mail(&self, item: &OutboxItem) -> Result<OutgoingMail> {
        let p = &item.payload;
        let s = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut mail = OutgoingMail {
            from: self.support_address(),
            from_name: self.mail.from_name.clone(),
            to: s("to"),
            to_name: p.get("to_name").and_then(Value::as_str).map(str::to_string),
            reply_to: None,
            subject: s("subject"),
            text: s("text"),
            html: s("html"),
            message_id: String::new(),
            in_reply_to: None,
            references: vec![],
            headers: vec![
                ("Auto-Submitted".into(), "auto-generated".into()),
                (LOOP_HEADER.into(), self.node_loop_id().await?),
            ],
        };
        let mut delimiter = "";
        match item.ticket_id {
            Some(tid) => {
                delimiter = opsdesk_core::mail::REPLY_DELIMITER;
                mail.message_id = self.outgoing_message_id(tid, item.id).await?;
                mail.reply_to = Some(self.reply_address(tid).await?);
                let mut c = self.store.read().await?;
                let refs = c.message_ids_of_ticket(tid, 20).await?;
                mail.in_reply_to = refs.last().cloned();
                mail.references = refs;
                mail.headers
                    .push(("X-Opsdesk-Ticket-Id".into(), tid.to_string()));
            }
            None => {
                let domain = mail
                    .from
                    .split_once('@')
                    .map(|x| x.1)
                    .unwrap_or("localhost");
                mail.message_id = format!("opsdesk.0.{}.0@{domain}", item.id);
            }
        }
        let t = self.mail_templates().await?;
        let mut values = std::collections::HashMap::new();
        values.insert("from_name".to_string(), self.mail.from_name.clone());
        let footer = opsdesk_core::placeholders::render(&t.footer, &values);
        values.insert("delimiter".into(), delimiter.to_string());
        values.insert("footer".into(), footer.clone());
        values.insert("content".into(), mail.text.clone());
        mail.text = opsdesk_core::placeholders::render(&t.text_template, &values);
        values.insert("delimiter".into(), crate::html::escape(delimiter));
        values.insert("footer".into(), crate::html::escape(&footer));
        values.insert("content".into(), mail.html.clone());
        mail.html = opsdesk_core::placeholders::render(&t.html_template, &values);
        Ok(mail)
    }

    /// The outgoing mail templates (the defaults until an admin changes them).
    pub async fn mail_templates(&self) -> Result<MailTemplates> {
        let mut c = self.store.read().await?;
        Ok(match c.instance_value("mail_templates").await? {
            Some(j) => serde_json::from_str(&j).unwrap_or_default(),
            None => MailTemplates::default(),
        })
    }

    /// `GET /api/v2/mail/settings` (admins): the templates, and the channel's settings from
    /// the command line.
    pub async fn mail_settings(&self, actor: &Actor) -> Result<Value> {
        actor.require_admin()?;
        let t = self.mail_templates().await?;
        Ok(json!({
            "html_template": t.html_template,
            "text_template": t.text_template,
            "footer": t.footer,
            "support_addresses": self.mail.support_addresses,
            "from_address": self.support_address(),
            "from_name": self.mail.from_name,
            "unknown_senders": match self.mail.unknown_senders { UnknownSenders::Accept => "accept", UnknownSenders::Reject => "reject" },
            "non_participants": match self.mail.non_participants { NonParticipants::Note => "note", NonParticipants::NewTicket => "new-ticket" },
            "auto_reply_limit_per_hour": self.mail.auto_reply_limit_per_hour,
            "max_attachment_bytes": self.max_attachment_bytes,
            "outgoing_configured": self.mailer.is_some(),
            "inbound_spool_depth": self.spool.as_ref().map(|s| s.depth()),
        }))
    }

    /// `PUT /api/v2/mail/settings` (admins): change the templates and footer. The HTML and
    /// text templates must each show `{{content}}`.
    pub async fn update_mail_settings(&self, actor: &Actor, input: &Value) -> Result<Value> {
        actor.require_admin()?;
        let mut t = self.mail_templates().await?;
        let mut inv = opsdesk_core::Invalid::new();
        for (key, slot) in [
            ("html_template", &mut t.html_template),
            ("text_template", &mut t.text_template),
            ("footer", &mut t.footer),
        ] {
            match input.get(key) {
                None => {}
                Some(Value::String(v)) if v.len() > MAX_TEMPLATE => inv.invalid(
                    key,
                    key,
                    &format!("is too long (maximum is {MAX_TEMPLATE} bytes)"),
                ),
                Some(Value::String(v)) if key != "footer" && !v.contains("{{content}}") => {
                    inv.invalid(key, key, "must contain {{content}}, where the message goes")
                }
                Some(Value::String(v)) => *slot = v.clone(),
                Some(_) => inv.invalid(key, key, "must be a string"),
            }
        }
        inv.into_result()?;
        let mut tx = self.store.write().await?;
        let j = serde_json::to_string(&t).map_err(|e| AppError::Internal(e.to_string()))?;
        tx.set_instance_value("mail_templates", &j).await?;
        tx.commit().await?;
        self.mail_settings(actor).await
    }

    /// `GET /api/v2/mail/inbound`: the record of every inbound message, newest first, by
    /// state (admins; `suspended` is the queue to review).
    pub async fn list_inbound(
        &self,
        actor: &Actor,
        state: Option<&str>,
        page: &opsdesk_store::Page,
    ) -> Result<opsdesk_store::Paged<InboundEmail>> {
        actor.require_admin()?;
        self.inbound_page(state, page).await
    }

    /// Inbound message records, by state.
    async fn inbound_page(
        &self,
        state: Option<&str>,
        page: &opsdesk_store::Page,
    ) -> Result<opsdesk_store::Paged<InboundEmail>> {
        let conds: Vec<opsdesk_store::Cond> = state
            .map(|s| opsdesk_store::Cond::Eq("state", opsdesk_store::Val::from(s)))
            .into_iter()
            .collect();
        let mut c = self.store.read().await?;
        Ok(c.list(&conds, page).await?)
    }

    /// A new end-user for an unknown sender (named after the message, else the address).
    async fn new_sender(
        &self,
        tx: &mut Conn,
        address: &str,
        name: Option<&str>,
    ) -> Result<opsdesk_core::model::User> {
        self.create_user_tx(
            tx,
            UserInput {
                name: name.filter(|n| !n.trim().is_empty()).map(str::to_string),
                email: Some(Some(address.to_string())),
                role: Some("end-user".into()),
                ..Default::default()
            },
        )
        .await
    }

    /// The `via` of what mail makes: who sent it, to which support address.
    fn email_via(&self, from: &str, name: Option<&str>, recipients: &[String], to: &str) -> Via {
        Via {
            channel: "email".into(),
            source: json!({
                "from": {"address": from, "name": name, "original_recipients": recipients},
                "to": {"address": to, "name": self.mail.from_name},
                "rel": null,
            }),
        }
    }

    /// `GET /api/v2/suspended_tickets/{id}`: a suspended message (staff).
    pub async fn suspended_ticket(&self, actor: &Actor, id: Id) -> Result<InboundEmail> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        suspended_record(&mut c, id).await
    }

    /// `GET /api/v2/suspended_tickets` (staff).
    pub async fn suspended_tickets(
        &self,
        actor: &Actor,
        page: &opsdesk_store::Page,
    ) -> Result<opsdesk_store::Paged<InboundEmail>> {
        actor.require_staff()?;
        self.inbound_page(Some(state::SUSPENDED), page).await
    }

    /// `PUT /api/v2/suspended_tickets/{id}/recover`: make the suspended message the ticket it
    /// would have been (its sender the requester, found or created; its kept text the first
    /// comment), and record that it was recovered and by whom.
    pub async fn recover_suspended(
        &self,
        actor: &Actor,
        id: Id,
    ) -> Result<opsdesk_core::ticket::Ticket> {
        actor.require_staff()?;
        let mut tx = self.store.write().await?;
        let mut rec = suspended_record(&mut tx, id).await?;
        let Some(from) = rec.from_address.clone() else {
            return Err(AppError::Invalid(opsdesk_core::Invalid::one(
                "author",
                "InvalidValue",
                "the message has no sender address to make the requester".to_string(),
            )));
        };
        let sender = match tx.user_by_email(&from).await? {
            Some(u) => u,
            None => {
                self.new_sender(&mut tx, &from, rec.from_name.as_deref())
                    .await?
            }
        };
        let text = rec
            .text
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| "(empty message)".into());
        let via = self.email_via(
            &from,
            rec.from_name.as_deref(),
            &rec.recipients,
            &self.support_address(),
        );
        let origin = Origin {
            client: Some("opsdesk-mail".into()),
            ip_address: None,
            system: Some(
                json!({"message_id": rec.message_id, "inbound_email": rec.message_key, "recovered_by": actor.id()}),
            ),
        };
        let input = TicketInput {
            subject: Some(ticket_subject(&rec.subject)),
            comment: Some(CommentInput {
                body: Some(text),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sender = Actor { user: sender };
        let (t, audit) = self
            .create_ticket_tx(&mut tx, &sender, input, via, &origin)
            .await?;
        rec.state = state::TICKET.into();
        rec.reason = format!("{} (recovered by user {})", rec.reason, actor.id());
        rec.ticket_id = Some(t.id);
        rec.audit_id = Some(audit.id);
        tx.update(&rec).await?;
        tx.commit().await?;
        Ok(t)
    }

    /// `DELETE /api/v2/suspended_tickets/{id}`: drop a suspended message for good.
    pub async fn delete_suspended(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_staff()?;
        let mut tx = self.store.write().await?;
        let rec = suspended_record(&mut tx, id).await?;
        tx.delete::<InboundEmail>(rec.id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The value of [`LOOP_HEADER`]: a hash of the instance's key, the same on every node.
    pub async fn node_loop_id(&self) -> Result<String> {
        self.sign("loop").await
    }
}

/// A suspended message's record (404 when it is not, or no longer, suspended).
async fn suspended_record(c: &mut Conn, id: Id) -> Result<InboundEmail> {
    c.get::<InboundEmail>(id)
        .await?
        .filter(|r| r.state == state::SUSPENDED)
        .ok_or(AppError::NotFound)
}

/// A ticket subject from a mail subject ("(no subject)" when it has none).
fn ticket_subject(subject: &str) -> String {
    Some(subject.trim())
        .filter(|s| !s.is_empty())
        .unwrap_or("(no subject)")
        .chars()
        .take(255)
        .collect()
}

/// Apply an agent's mail commands to the ticket and comment; returns those applied, as
/// `name value` (an unreadable value is skipped).
fn apply_mail_commands(
    commands: &[(String, String)],
    t: &mut opsdesk_core::ticket::Ticket,
    public: &mut bool,
    agent: Id,
) -> Vec<String> {
    use opsdesk_core::ticket::{Priority, TicketType};
    let mut applied = vec![];
    for (name, value) in commands {
        let v = value.to_ascii_lowercase();
        let ok = match name.as_str() {
            "status" => match Status::parse(&v).filter(|s| *s != Status::Closed) {
                Some(s) => {
                    t.status = s;
                    // Solving needs an assignee: the agent who solved it, as on the API.
                    if s == Status::Solved && t.assignee_id.is_none() {
                        t.assignee_id = Some(agent);
                    }
                    if s == Status::New {
                        t.status = Status::Open;
                    }
                    true
                }
                None => false,
            },
            "priority" => Priority::parse(&v).map(|p| t.priority = Some(p)).is_some(),
            "type" => TicketType::parse(&v)
                .map(|x| t.ticket_type = Some(x))
                .is_some(),
            "tags" => {
                for tag in opsdesk_core::model::normalize_tags(value.split_whitespace()) {
                    if !t.tags.contains(&tag) {
                        t.tags.push(tag);
                    }
                }
                true
            }
            "public" => match v.as_str() {
                "true" | "yes" => {
                    *public = true;
                    true
                }
                "false" | "no" => {
                    *public = false;
                    true
                }
                _ => false,
            },
            _ => false,
        };
        if ok {
            applied.push(format!("{name} {value}"));
        }
    }
    applied
}

/// Whether a ticket's audit asked that its email not go to a user (mail that answered
/// automatically).
pub(crate) fn suppressed(audit_meta: &Value, user_id: Id) -> bool {
    audit_meta
        .pointer("/system/suppress_email_to")
        .and_then(Value::as_array)
        .is_some_and(|a| a.iter().any(|v| v.as_i64() == Some(user_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepted_addresses() {
        let c = MailConfig {
            support_addresses: vec!["support@opsdesk.test".into()],
            ..Default::default()
        };
        assert!(c.accepts("Support@Opsdesk.test"));
        assert!(c.accepts("support+id42-abcdef@opsdesk.test"));
        assert!(!c.accepts("sales@opsdesk.test"));
        assert!(!c.accepts("support@other.test"));
        assert!(MailConfig::default().accepts("anyone@anywhere.test"));
        assert!(!MailConfig::default().is_own("anyone@anywhere.test"));
    }
}
