//! The email channel's tables: attachments (record plus bytes), inbound messages (unique by
//! message key) and instance values.

use opsdesk_core::mail::{Attachment, InboundEmail};
use opsdesk_core::model::Id;

use crate::db::{Conn, Val};
use crate::docs::{doc_record, Cond};
use crate::Result;

fn secs(t: opsdesk_core::Timestamp) -> Val {
    Val::Int(t.as_second())
}

doc_record!(
    Attachment,
    "attachments",
    [
        "token",
        "upload_token",
        "ticket_id",
        "comment_id",
        "public",
        "size",
        "created_at"
    ],
    |a| [
        Val::from(a.token.as_str()),
        Val::from(a.upload_token.as_deref()),
        Val::from(a.ticket_id),
        Val::from(a.comment_id),
        Val::from(a.public),
        Val::Int(a.size),
        secs(a.created_at)
    ]
);

doc_record!(
    InboundEmail,
    "inbound_emails",
    [
        "message_key",
        "message_id",
        "ticket_id",
        "state",
        "from_address",
        "created_at"
    ],
    |m| [
        Val::from(m.message_key.as_str()),
        Val::from(m.message_id.as_deref()),
        Val::from(m.ticket_id),
        Val::from(m.state.as_str()),
        Val::from(m.from_address.as_deref()),
        secs(m.created_at)
    ]
);

impl Conn {
    /// Store an attachment with its bytes; sets its id.
    pub async fn insert_attachment(&mut self, a: &mut Attachment, content: Vec<u8>) -> Result<()> {
        let id = self.insert(a).await?;
        self.exec(
            "UPDATE attachments SET content = $1 WHERE id = $2",
            &[Val::Bytes(content), Val::Int(id)],
        )
        .await?;
        Ok(())
    }

    /// An attachment's bytes.
    pub async fn attachment_content(&mut self, id: Id) -> Result<Option<Vec<u8>>> {
        match self
            .opt(
                "SELECT content FROM attachments WHERE id = $1 AND content IS NOT NULL",
                &[Val::Int(id)],
            )
            .await?
        {
            Some(r) => Ok(Some(r.bytes(0)?)),
            None => Ok(None),
        }
    }

    /// The inbound message recorded under `key`, if any.
    pub async fn inbound_by_key(&mut self, key: &str) -> Result<Option<InboundEmail>> {
        self.find(&[Cond::Eq("message_key", Val::from(key))]).await
    }

    /// The ticket an inbound message with one of these Message-IDs went to (the most recent).
    pub async fn ticket_of_message_ids(&mut self, ids: &[String]) -> Result<Option<Id>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let mut args = vec![];
        let w = crate::docs::where_sql(
            &[
                Cond::In(
                    "message_id",
                    ids.iter().map(|i| Val::from(i.as_str())).collect(),
                ),
                Cond::NotNull("ticket_id"),
            ],
            &mut args,
        );
        let sql =
            format!("SELECT ticket_id FROM inbound_emails WHERE {w} ORDER BY id DESC LIMIT 1");
        match self.opt(&sql, &args).await? {
            Some(r) => Ok(r.opt_i64(0)?),
            None => Ok(None),
        }
    }

    /// The Message-IDs of the mail a ticket was made from and replied with, oldest first (at
    /// most `limit`): the References of outgoing mail.
    pub async fn message_ids_of_ticket(
        &mut self,
        ticket_id: Id,
        limit: i64,
    ) -> Result<Vec<String>> {
        let rows = self
            .all(
                "SELECT message_id FROM inbound_emails WHERE ticket_id = $1 \
                 AND message_id IS NOT NULL ORDER BY id LIMIT $2",
                &[Val::Int(ticket_id), Val::Int(limit)],
            )
            .await?;
        rows.iter().map(|r| r.str(0)).collect()
    }

    /// Messages received from `address` since `since` (UTC seconds): the auto-reply rate limit.
    pub async fn inbound_from_since(&mut self, address: &str, since: i64) -> Result<i64> {
        self.int(
            "SELECT COUNT(*) FROM inbound_emails WHERE from_address = $1 AND created_at >= $2",
            &[Val::from(address), Val::Int(since)],
        )
        .await
    }

    /// Attach uploads to a comment (only uploads not yet attached).
    pub async fn attach_uploads(
        &mut self,
        ids: &[Id],
        ticket_id: Id,
        comment_id: Id,
        public: bool,
    ) -> Result<()> {
        for id in ids {
            if let Some(mut a) = self.get::<Attachment>(*id).await? {
                if a.comment_id.is_none() {
                    a.ticket_id = Some(ticket_id);
                    a.comment_id = Some(comment_id);
                    a.public = public;
                    a.upload_token = None;
                    self.update(&a).await?;
                }
            }
        }
        Ok(())
    }

    /// A setting, made from `init` the first time it is asked for (every node then reads the
    /// same value).
    pub async fn setting_or_init(&mut self, name: &str, init: &str) -> Result<String> {
        self.exec(
            "INSERT INTO instance_values (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[Val::from(name), Val::from(init)],
        )
        .await?;
        self.one(
            "SELECT value FROM instance_values WHERE name = $1",
            &[Val::from(name)],
        )
        .await?
        .str(0)
    }

    /// An instance value, if set.
    pub async fn instance_value(&mut self, name: &str) -> Result<Option<String>> {
        match self
            .opt(
                "SELECT value FROM instance_values WHERE name = $1",
                &[Val::from(name)],
            )
            .await?
        {
            Some(r) => Ok(Some(r.str(0)?)),
            None => Ok(None),
        }
    }

    /// Set (or replace) an instance value.
    pub async fn set_instance_value(&mut self, name: &str, value: &str) -> Result<()> {
        self.exec(
            "INSERT INTO instance_values (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[Val::from(name), Val::from(value)],
        )
        .await?;
        Ok(())
    }
}
