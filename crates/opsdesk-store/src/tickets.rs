//! Tickets: the projection row, its append-only audits and comments.

use opsdesk_core::model::Id;
use opsdesk_core::search::index_text;
use opsdesk_core::ticket::{event_id, Audit, Comment, Ticket};
use serde_json::Value;

use crate::db::{Conn, Row, Val};
use crate::docs::{Cond, Doc, Page, Paged};
use crate::{Result, StoreError};

impl Doc for Ticket {
    const TABLE: &'static str = "tickets";
    const COLUMNS: &'static [&'static str] = &[
        "requester_id",
        "submitter_id",
        "assignee_id",
        "group_id",
        "organization_id",
        "status",
        "priority",
        "ticket_type",
        "problem_id",
        "external_id",
        "created_at",
        "updated_at",
    ];
    fn id(&self) -> Id {
        self.id
    }
    fn set_id(&mut self, id: Id) {
        self.id = id;
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Int(self.requester_id),
            Val::Int(self.submitter_id),
            Val::from(self.assignee_id),
            Val::from(self.group_id),
            Val::from(self.organization_id),
            Val::from(self.status.as_str()),
            Val::from(self.priority.map(|p| p.as_str())),
            Val::from(self.ticket_type.map(|p| p.as_str())),
            Val::from(self.problem_id),
            Val::from(self.external_id.clone()),
            Val::Int(self.created_at.as_second()),
            Val::Int(self.updated_at.as_second()),
        ]
    }
    const SEARCHED: bool = true;
    const SOFT_DELETED: bool = true;
    /// The subject; then tags, text custom-field values and the external id. Comments are
    /// indexed on their own (ticket_comments_fts / ticket_words).
    fn search_text(&self) -> Vec<String> {
        let values: Vec<String> = self
            .custom_fields
            .iter()
            .filter_map(|f| match &f.value {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect();
        vec![
            index_text(self.subject.as_deref()),
            index_text(
                self.tags
                    .iter()
                    .chain(values.iter())
                    .map(String::as_str)
                    .chain(self.external_id.as_deref()),
            ),
        ]
    }
}

fn json(v: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decode_audit(r: &Row) -> Result<Audit> {
    let id = r.i64(0)?;
    let mut events: Vec<Value> = r.json(6)?;
    for (i, e) in events.iter_mut().enumerate() {
        if let Value::Object(m) = e {
            m.insert("id".into(), Value::from(event_id(id, i)));
        }
    }
    Ok(Audit {
        id,
        ticket_id: r.i64(1)?,
        author_id: r.i64(2)?,
        created_at: opsdesk_core::clock::from_unix(r.i64(3)?),
        via: r.json(4)?,
        metadata: r.json(5)?,
        events,
    })
}

const AUDIT_COLS: &str = "id, ticket_id, author_id, created_at, via, metadata, events";

impl Conn {
    /// Insert a new ticket and its first audit. Sets `ticket.id`, `audit.id`, `audit.ticket_id`,
    /// and the ids of the comments (one per Comment event, in order).
    pub async fn create_ticket(
        &mut self,
        t: &mut Ticket,
        audit: &mut Audit,
        comments: &mut [Comment],
    ) -> Result<()> {
        if t.id > 0 {
            self.insert_with_id(t).await?;
        } else {
            self.insert(t).await?;
        }
        audit.ticket_id = t.id;
        self.append_audit(audit, comments, true).await
    }

    /// Write a ticket's new projection and the audit that got it there.
    pub async fn save_ticket(
        &mut self,
        t: &Ticket,
        audit: &mut Audit,
        comments: &mut [Comment],
    ) -> Result<()> {
        self.update(t).await?;
        audit.ticket_id = t.id;
        self.append_audit(audit, comments, false).await
    }

    /// `new_ticket`: the audit creates its ticket, so its comments are the ticket's first.
    async fn append_audit(
        &mut self,
        audit: &mut Audit,
        comments: &mut [Comment],
        new_ticket: bool,
    ) -> Result<()> {
        let stored: Vec<Value> = audit
            .events
            .iter()
            .map(|e| {
                let mut e = e.clone();
                if let Value::Object(m) = &mut e {
                    m.remove("id");
                }
                e
            })
            .collect();
        audit.id = self
            .int(
                "INSERT INTO ticket_audits (ticket_id, author_id, created_at, via, metadata, events) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    Val::Int(audit.ticket_id),
                    Val::Int(audit.author_id),
                    Val::Int(audit.created_at.as_second()),
                    Val::Text(json(&audit.via)?),
                    Val::Text(json(&audit.metadata)?),
                    Val::Text(json(&stored)?),
                ],
            )
            .await?;
        let mut ci = 0;
        for (i, e) in audit.events.iter_mut().enumerate() {
            let eid = event_id(audit.id, i);
            if let Value::Object(m) = e {
                m.insert("id".into(), Value::from(eid));
                if m.get("type").and_then(Value::as_str) == Some("Comment") {
                    m.insert("audit_id".into(), Value::from(audit.id));
                    if let Some(c) = comments.get_mut(ci) {
                        c.id = eid;
                        c.audit_id = audit.id;
                        c.ticket_id = audit.ticket_id;
                        ci += 1;
                        self.insert_comment(c).await?;
                    }
                }
            }
        }
        if ci != comments.len() {
            return Err(StoreError::Corrupt(
                "comments without Comment events".into(),
            ));
        }
        self.index_comments(comments, new_ticket.then_some(true))
            .await
    }

    /// One comment row (its full-text entry is written with its audit's, index_comments).
    async fn insert_comment(&mut self, c: &Comment) -> Result<()> {
        let args = vec![
            Val::Int(c.id),
            Val::Int(c.ticket_id),
            Val::Int(c.audit_id),
            Val::Int(c.author_id),
            Val::from(c.public),
            Val::Int(c.created_at.as_second()),
            Val::Text(json(c)?),
        ];
        self.exec(
            "INSERT INTO ticket_comments (id, ticket_id, audit_id, author_id, public, created_at, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &args,
        )
        .await?;
        Ok(())
    }

    /// The id the next ticket will get, reserved for this transaction (so triggers and
    /// placeholders can see it before the row exists). Ids are never reused.
    pub async fn next_ticket_id(&mut self) -> Result<Id> {
        if self.is_postgres() {
            self.int(
                "SELECT nextval(pg_get_serial_sequence('tickets', 'id'))",
                &[],
            )
            .await
        } else {
            // The writer holds the database's write lock for the whole transaction.
            self.int(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'tickets'), 0) + 1",
                &[],
            )
            .await
        }
    }

    /// A live (not deleted) ticket.
    pub async fn ticket(&mut self, id: Id) -> Result<Option<Ticket>> {
        self.find(&[Cond::Eq("id", Val::Int(id)), Cond::IsNull("deleted_at")])
            .await
    }

    /// Lock a live ticket for update (PostgreSQL: `FOR UPDATE`; SQLite holds the write lock).
    pub async fn ticket_for_update(&mut self, id: Id) -> Result<Option<Ticket>> {
        let sql = if self.is_postgres() {
            "SELECT id, data FROM tickets WHERE id = $1 AND deleted_at IS NULL FOR UPDATE"
        } else {
            "SELECT id, data FROM tickets WHERE id = $1 AND deleted_at IS NULL"
        };
        match self.opt(sql, &[Val::Int(id)]).await? {
            Some(r) => Ok(Some(crate::docs::decode(&r)?)),
            None => Ok(None),
        }
    }

    pub async fn tickets(&mut self, conds: &[Cond], page: &Page) -> Result<Paged<Ticket>> {
        let mut c = conds.to_vec();
        c.push(Cond::IsNull("deleted_at"));
        self.list(&c, page).await
    }

    /// Soft-delete (Zendesk keeps deleted tickets for 30 days, restorable).
    pub async fn soft_delete_ticket(&mut self, id: Id, by: Id, at: i64) -> Result<bool> {
        Ok(self
            .exec(
                &format!("UPDATE tickets SET deleted_at = $1, deleted_by = $2, updated_at = $1, change_seq = {} WHERE id = $3 AND deleted_at IS NULL", self.change_seq_expr("tickets")),
                &[Val::Int(at), Val::Int(by), Val::Int(id)],
            )
            .await?
            > 0)
    }

    pub async fn restore_ticket(&mut self, id: Id) -> Result<bool> {
        Ok(self
            .exec(&format!("UPDATE tickets SET deleted_at = NULL, deleted_by = NULL, change_seq = {} WHERE id = $1 AND deleted_at IS NOT NULL", self.change_seq_expr("tickets")), &[Val::Int(id)])
            .await?
            > 0)
    }

    /// Deleted tickets: (ticket, deleted_at, deleted_by).
    pub async fn deleted_tickets(
        &mut self,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<(Ticket, i64, i64)>> {
        let rows = self
            .all(
                &format!("SELECT id, data, deleted_at, deleted_by FROM tickets WHERE deleted_at IS NOT NULL ORDER BY id LIMIT {} OFFSET {}", limit.clamp(1, 1000), offset.max(0)),
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    crate::docs::decode(r)?,
                    r.i64(2)?,
                    r.opt_i64(3)?.unwrap_or(0),
                ))
            })
            .collect()
    }

    /// Permanently remove a soft-deleted ticket with its audits and comments.
    pub async fn purge_ticket(&mut self, id: Id) -> Result<bool> {
        let n = self
            .exec(
                "DELETE FROM tickets WHERE id = $1 AND deleted_at IS NOT NULL",
                &[Val::Int(id)],
            )
            .await?;
        if n > 0 {
            self.unindex_text("tickets", id).await?;
            if self.is_postgres() {
                self.exec(
                    "DELETE FROM ticket_words WHERE ticket_id = $1",
                    &[Val::Int(id)],
                )
                .await?;
            } else {
                // Deferred like every full-text write, so it runs after the entries earlier
                // use cases of the group deferred (crate::group).
                self.exec_deferred(
                    "DELETE FROM ticket_comments_fts WHERE rowid >= $1 AND rowid < $2".into(),
                    vec![Val::Int(id << 21), Val::Int((id + 1) << 21)],
                )
                .await?;
            }
            self.exec(
                "DELETE FROM ticket_comments WHERE ticket_id = $1",
                &[Val::Int(id)],
            )
            .await?;
            self.exec(
                "DELETE FROM ticket_audits WHERE ticket_id = $1",
                &[Val::Int(id)],
            )
            .await?;
            // Queued messages carry the ticket's text too.
            for table in ["ticket_tags", "ticket_metrics", "outbox"] {
                let col = if table == "ticket_metrics" {
                    "id"
                } else {
                    "ticket_id"
                };
                self.exec(
                    &format!("DELETE FROM {table} WHERE {col} = $1"),
                    &[Val::Int(id)],
                )
                .await?;
            }
        }
        Ok(n > 0)
    }

    pub async fn audits(&mut self, ticket_id: Id, page: &Page) -> Result<Paged<Audit>> {
        self.page_rows(
            "ticket_audits",
            AUDIT_COLS,
            &[Cond::Eq("ticket_id", Val::Int(ticket_id))],
            page,
            decode_audit,
        )
        .await
    }

    pub async fn all_audits(&mut self, ticket_id: Id) -> Result<Vec<Audit>> {
        let rows = self
            .all(
                &format!("SELECT {AUDIT_COLS} FROM ticket_audits WHERE ticket_id = $1 ORDER BY id"),
                &[Val::Int(ticket_id)],
            )
            .await?;
        rows.iter().map(decode_audit).collect()
    }

    pub async fn audit(&mut self, ticket_id: Id, audit_id: Id) -> Result<Option<Audit>> {
        let r = self
            .opt(
                &format!("SELECT {AUDIT_COLS} FROM ticket_audits WHERE ticket_id = $1 AND id = $2"),
                &[Val::Int(ticket_id), Val::Int(audit_id)],
            )
            .await?;
        r.as_ref().map(decode_audit).transpose()
    }

    /// Comments of a ticket, oldest first; `public_only` hides internal notes.
    pub async fn comments(
        &mut self,
        ticket_id: Id,
        public_only: bool,
        page: &Page,
    ) -> Result<Paged<Comment>> {
        let mut conds = vec![Cond::Eq("ticket_id", Val::Int(ticket_id))];
        if public_only {
            conds.push(Cond::Eq("public", Val::Int(1)));
        }
        self.page_rows("ticket_comments", "id, data", &conds, page, |r| {
            let mut c: Comment = r.json(1)?;
            c.id = r.i64(0)?;
            Ok(c)
        })
        .await
    }

    /// Ids of incidents linked to a problem.
    pub async fn incident_ids(&mut self, problem_id: Id) -> Result<Vec<Id>> {
        let rows = self
            .all(
                "SELECT id FROM tickets WHERE problem_id = $1 AND deleted_at IS NULL ORDER BY id",
                &[Val::Int(problem_id)],
            )
            .await?;
        rows.iter().map(|r| r.i64(0)).collect()
    }

    /// Which of these problem tickets have incidents.
    pub async fn problems_with_incidents(&mut self, ids: &[Id]) -> Result<Vec<Id>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut args = vec![];
        let w = crate::docs::where_sql(
            &[Cond::In(
                "problem_id",
                ids.iter().map(|i| Val::Int(*i)).collect(),
            )],
            &mut args,
        );
        let rows = self
            .all(
                &format!(
                    "SELECT DISTINCT problem_id FROM tickets WHERE {w} AND deleted_at IS NULL"
                ),
                &args,
            )
            .await?;
        rows.iter().map(|r| r.i64(0)).collect()
    }
}
