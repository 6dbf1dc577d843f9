//! Automations, webhooks, schedules, ticket metrics, the tag index, the outbox and job leases.

use opsdesk_core::model::Id;
use opsdesk_core::outbox::{OutboxItem, Webhook};
use opsdesk_core::rules::Automation;
use opsdesk_core::ticket_metrics::TicketMetrics;
use serde_json::Value;

use crate::db::{Conn, Val};
use crate::docs::{decode, Doc};
use crate::{Result, StoreError};

fn secs(t: opsdesk_core::Timestamp) -> Val {
    Val::Int(t.as_second())
}

impl Doc for Automation {
    const TABLE: &'static str = "automations";
    const COLUMNS: &'static [&'static str] = &["position", "active", "created_at", "updated_at"];
    fn id(&self) -> Id {
        self.id
    }
    fn set_id(&mut self, id: Id) {
        self.id = id;
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Int(self.position),
            Val::from(self.active),
            secs(self.created_at),
            secs(self.updated_at),
        ]
    }
}

impl Doc for Webhook {
    const TABLE: &'static str = "webhooks";
    const COLUMNS: &'static [&'static str] = &["name_key", "status", "created_at", "updated_at"];
    fn id(&self) -> Id {
        self.id
    }
    fn set_id(&mut self, id: Id) {
        self.id = id;
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::from(self.name.to_lowercase()),
            Val::from(self.status.as_str()),
            secs(self.created_at),
            secs(self.updated_at),
        ]
    }
}

impl Doc for opsdesk_core::business_hours::ScheduleRecord {
    const TABLE: &'static str = "schedules";
    const COLUMNS: &'static [&'static str] = &["created_at", "updated_at"];
    fn id(&self) -> Id {
        self.id
    }
    fn set_id(&mut self, id: Id) {
        self.id = id;
    }
    fn values(&self) -> Vec<Val> {
        vec![secs(self.created_at), secs(self.updated_at)]
    }
}

impl Doc for opsdesk_core::sla::SlaPolicy {
    const TABLE: &'static str = "sla_policies";
    const COLUMNS: &'static [&'static str] = &["position", "created_at", "updated_at"];
    fn id(&self) -> Id {
        self.id
    }
    fn set_id(&mut self, id: Id) {
        self.id = id;
    }
    fn values(&self) -> Vec<Val> {
        vec![
            Val::Int(self.position),
            secs(self.created_at),
            secs(self.updated_at),
        ]
    }
}

impl Doc for opsdesk_core::sla::TicketSla {
    const TABLE: &'static str = "ticket_slas";
    const COLUMNS: &'static [&'static str] = &["next_breach_at", "updated_at"];
    fn id(&self) -> Id {
        self.id
    }
    fn set_id(&mut self, id: Id) {
        self.id = id;
    }
    fn values(&self) -> Vec<Val> {
        vec![Val::from(self.next_breach_at), Val::Int(self.updated_at)]
    }
}

impl Doc for TicketMetrics {
    const TABLE: &'static str = "ticket_metrics";
    const COLUMNS: &'static [&'static str] = &["updated_at"];
    fn id(&self) -> Id {
        self.id
    }
    fn set_id(&mut self, id: Id) {
        self.id = id;
    }
    fn values(&self) -> Vec<Val> {
        vec![secs(self.updated_at)]
    }
}

impl Doc for OutboxItem {
    const TABLE: &'static str = "outbox";
    const COLUMNS: &'static [&'static str] = &[
        "kind",
        "idempotency_key",
        "state",
        "ticket_id",
        "webhook_id",
        "next_attempt_at",
        "locked_until",
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
            Val::from(self.kind.as_str()),
            Val::from(self.idempotency_key.as_str()),
            Val::from(self.state.as_str()),
            Val::from(self.ticket_id),
            Val::from(self.webhook_id),
            secs(self.next_attempt_at),
            Val::from(self.locked_until.map(|t| t.as_second())),
            secs(self.created_at),
            secs(self.updated_at),
        ]
    }
}

/// Outbox depth for metrics and readiness.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxStats {
    pub pending: i64,
    pub failed: i64,
    /// Creation time (UTC seconds) of the oldest pending item.
    pub oldest_pending: Option<i64>,
}

/// A job lease: who holds it and the job's saved state.
#[derive(Debug, Clone)]
pub struct Lease {
    pub data: Value,
}

impl Conn {
    /// Write or replace a ticket's metrics.
    pub async fn put_ticket_metrics(&mut self, m: &TicketMetrics) -> Result<()> {
        let data = serde_json::to_string(m).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.exec(
            "INSERT INTO ticket_metrics (id, data, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, updated_at = excluded.updated_at",
            &[Val::Int(m.id), Val::Text(data), secs(m.updated_at)],
        )
        .await?;
        Ok(())
    }

    /// Keep the tag index in step with a ticket's tags (call with the tags before and after):
    /// one statement for the removed tags, one for the added.
    pub async fn set_ticket_tags(
        &mut self,
        ticket_id: Id,
        before: &[String],
        after: &[String],
    ) -> Result<()> {
        let removed: Vec<&String> = before.iter().filter(|t| !after.contains(t)).collect();
        let added: Vec<&String> = after.iter().filter(|t| !before.contains(t)).collect();
        if !removed.is_empty() {
            let mut args = vec![Val::Int(ticket_id)];
            let ps: Vec<String> = removed
                .iter()
                .map(|t| {
                    args.push(Val::from(t.as_str()));
                    format!("${}", args.len())
                })
                .collect();
            let sql = format!(
                "DELETE FROM ticket_tags WHERE ticket_id = $1 AND tag IN ({})",
                ps.join(", ")
            );
            self.exec(&sql, &args).await?;
        }
        if !added.is_empty() {
            let mut args = vec![Val::Int(ticket_id)];
            let rows: Vec<String> = added
                .iter()
                .map(|t| {
                    args.push(Val::from(t.as_str()));
                    format!("(${}, $1)", args.len())
                })
                .collect();
            let sql = format!(
                "INSERT INTO ticket_tags (tag, ticket_id) VALUES {} ON CONFLICT DO NOTHING",
                rows.join(", ")
            );
            self.exec(&sql, &args).await?;
        }
        Ok(())
    }

    /// Write a ticket's computed SLA (with its next breach, indexed) and the events it made.
    pub async fn put_ticket_sla(
        &mut self,
        sla: &opsdesk_core::sla::TicketSla,
        events: &[Value],
    ) -> Result<()> {
        let data = serde_json::to_string(sla).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.exec(
            "INSERT INTO ticket_slas (id, data, next_breach_at, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, next_breach_at = excluded.next_breach_at, updated_at = excluded.updated_at",
            &[
                Val::Int(sla.id),
                Val::Text(data),
                Val::from(sla.next_breach_at),
                Val::Int(sla.updated_at),
            ],
        )
        .await?;
        for e in events {
            let time = e
                .get("time")
                .and_then(Value::as_str)
                .and_then(opsdesk_core::clock::parse)
                .map_or(sla.updated_at, |t| t.as_second());
            self.exec(
                "INSERT INTO ticket_metric_events (ticket_id, time, data) VALUES ($1, $2, $3)",
                &[Val::Int(sla.id), Val::Int(time), Val::Text(e.to_string())],
            )
            .await?;
        }
        Ok(())
    }

    pub async fn ticket_sla(
        &mut self,
        ticket_id: Id,
    ) -> Result<Option<opsdesk_core::sla::TicketSla>> {
        match self
            .opt(
                "SELECT data FROM ticket_slas WHERE id = $1",
                &[Val::Int(ticket_id)],
            )
            .await?
        {
            Some(r) => Ok(Some(r.json(0)?)),
            None => Ok(None),
        }
    }

    /// Tickets whose next SLA breach is due (an index seek on `next_breach_at`).
    pub async fn due_slas(&mut self, now: i64, limit: i64) -> Result<Vec<Id>> {
        let rows = self
            .all(
                "SELECT id FROM ticket_slas WHERE next_breach_at <= $1 ORDER BY next_breach_at LIMIT $2",
                &[Val::Int(now), Val::Int(limit)],
            )
            .await?;
        rows.iter().map(|r| r.i64(0)).collect()
    }

    /// Metric events from `start` (UTC seconds), after event `after_id` at that second, in
    /// order: (id, time, event).
    pub async fn metric_events(
        &mut self,
        start: i64,
        after_id: Id,
        limit: i64,
    ) -> Result<Vec<(Id, i64, Value)>> {
        let rows = self
            .all(
                "SELECT id, time, data FROM ticket_metric_events \
                 WHERE time > $1 OR (time = $1 AND id > $2) ORDER BY time, id LIMIT $3",
                &[Val::Int(start), Val::Int(after_id), Val::Int(limit)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.i64(0)?, r.i64(1)?, r.json(2)?)))
            .collect()
    }

    /// Claim up to `limit` outbox items of `kind` that are due, for `lease_secs`: another
    /// worker (or node) skips them until the claim runs out. Call in a write transaction and
    /// commit before delivering.
    pub async fn claim_outbox(
        &mut self,
        kind: &str,
        now: i64,
        lease_secs: i64,
        limit: i64,
    ) -> Result<Vec<OutboxItem>> {
        let lock = if self.is_postgres() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, data FROM outbox WHERE state = 'pending' AND kind = $1 \
             AND next_attempt_at <= $2 AND (locked_until IS NULL OR locked_until < $2) \
             ORDER BY next_attempt_at, id LIMIT $3{lock}"
        );
        let rows = self
            .all(&sql, &[Val::from(kind), Val::Int(now), Val::Int(limit)])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let mut item: OutboxItem = decode(&r)?;
            item.locked_until = Some(opsdesk_core::clock::from_unix(now + lease_secs));
            self.update(&item).await?;
            out.push(item);
        }
        Ok(out)
    }

    /// Record a delivery attempt — only if this worker's claim (`claimed_until`) still holds:
    /// after a claim ran out another worker may own the message. Returns whether it was written.
    pub async fn finish_outbox(&mut self, item: &OutboxItem, claimed_until: i64) -> Result<bool> {
        let data = serde_json::to_string(item).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let n = self
            .exec(
                "UPDATE outbox SET data = $2, state = $3, next_attempt_at = $4, locked_until = NULL, updated_at = $5 \
                 WHERE id = $1 AND locked_until = $6",
                &[
                    Val::Int(item.id),
                    Val::Text(data),
                    Val::from(item.state.as_str()),
                    secs(item.next_attempt_at),
                    secs(item.updated_at),
                    Val::Int(claimed_until),
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Outbox depth for one kind of message (`email`, `webhook`).
    pub async fn outbox_stats(&mut self, kind: &str) -> Result<OutboxStats> {
        let r = self
            .one(
                "SELECT \
                   (SELECT COUNT(*) FROM outbox WHERE state = 'pending' AND kind = $1), \
                   (SELECT COUNT(*) FROM outbox WHERE state = 'failed' AND kind = $1), \
                   (SELECT MIN(created_at) FROM outbox WHERE state = 'pending' AND kind = $1)",
                &[Val::from(kind)],
            )
            .await?;
        Ok(OutboxStats {
            pending: r.i64(0)?,
            failed: r.i64(1)?,
            oldest_pending: r.opt_i64(2)?,
        })
    }

    /// Take (or keep) the lease `name` for `holder` until `now + ttl`. Returns the job's saved
    /// state when the lease is ours, None when another holder's lease has not run out.
    pub async fn take_lease(
        &mut self,
        name: &str,
        holder: &str,
        now: i64,
        ttl: i64,
    ) -> Result<Option<Lease>> {
        self.exec(
            "INSERT INTO job_leases (name, holder, expires_at, data) VALUES ($1, '', 0, '{}') \
             ON CONFLICT (name) DO NOTHING",
            &[Val::from(name)],
        )
        .await?;
        let n = self
            .exec(
                "UPDATE job_leases SET holder = $2, expires_at = $3 \
                 WHERE name = $1 AND (holder = $2 OR expires_at < $4)",
                &[
                    Val::from(name),
                    Val::from(holder),
                    Val::Int(now + ttl),
                    Val::Int(now),
                ],
            )
            .await?;
        if n == 0 {
            return Ok(None);
        }
        let r = self
            .one(
                "SELECT data FROM job_leases WHERE name = $1",
                &[Val::from(name)],
            )
            .await?;
        Ok(Some(Lease { data: r.json(0)? }))
    }

    /// Save a job's state under its lease (fails with Conflict if the lease was lost).
    pub async fn save_lease(&mut self, name: &str, holder: &str, data: &Value) -> Result<()> {
        let n = self
            .exec(
                "UPDATE job_leases SET data = $3 WHERE name = $1 AND holder = $2",
                &[
                    Val::from(name),
                    Val::from(holder),
                    Val::Text(data.to_string()),
                ],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::Conflict(format!("lease {name} lost")));
        }
        Ok(())
    }

    /// Give the lease up (the saved state stays).
    pub async fn release_lease(&mut self, name: &str, holder: &str) -> Result<()> {
        self.exec(
            "UPDATE job_leases SET expires_at = 0 WHERE name = $1 AND holder = $2",
            &[Val::from(name), Val::from(holder)],
        )
        .await?;
        Ok(())
    }

    /// Raise a flag for a job (e.g. "run now"), whoever holds its lease.
    pub async fn raise_job_flag(&mut self, name: &str) -> Result<()> {
        self.exec(
            "INSERT INTO job_leases (name, holder, expires_at, data) VALUES ($1, '', 0, '{\"raised\":true}') \
             ON CONFLICT (name) DO UPDATE SET data = excluded.data",
            &[Val::from(name)],
        )
        .await?;
        Ok(())
    }

    /// Lower a job's flag; true when it was raised.
    pub async fn take_job_flag(&mut self, name: &str) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE job_leases SET data = '{}' WHERE name = $1 AND data <> '{}'",
                &[Val::from(name)],
            )
            .await?;
        Ok(n > 0)
    }

    /// Whether a job's flag is raised (without lowering it).
    pub async fn job_flag(&mut self, name: &str) -> Result<bool> {
        Ok(self
            .opt(
                "SELECT 1 FROM job_leases WHERE name = $1 AND data <> '{}'",
                &[Val::from(name)],
            )
            .await?
            .is_some())
    }

    /// The saved state of a job (for status endpoints), without taking its lease.
    pub async fn lease_data(&mut self, name: &str) -> Result<Option<(String, i64, Value)>> {
        match self
            .opt(
                "SELECT holder, expires_at, data FROM job_leases WHERE name = $1",
                &[Val::from(name)],
            )
            .await?
        {
            Some(r) => Ok(Some((r.str(0)?, r.i64(1)?, r.json(2)?))),
            None => Ok(None),
        }
    }
}
