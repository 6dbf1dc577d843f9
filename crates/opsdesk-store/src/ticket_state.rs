//! State derived from each ticket write, kept in the write's transaction: the ticket's
//! metrics, its tags in the tag index, its SLA (with the next breach indexed) and the metric
//! events.

use opsdesk_core::model::Id;
use opsdesk_core::sla::TicketSla;
use opsdesk_core::ticket_metrics::TicketMetrics;
use serde_json::Value;

use crate::db::{Conn, Val};
use crate::docs::doc_record;
use crate::{Result, StoreError};

fn secs(t: opsdesk_core::Timestamp) -> Val {
    Val::Int(t.as_second())
}

doc_record!(TicketMetrics, "ticket_metrics", ["updated_at"], |m| [
    Val::Int(m.updated_at.as_second())
]);

doc_record!(
    TicketSla,
    "ticket_slas",
    ["next_breach_at", "next_due_at", "updated_at"],
    |s| [
        Val::from(s.next_breach_at),
        Val::from(s.next_due_at),
        Val::Int(s.updated_at)
    ]
);

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
    /// one statement for the removed tags, one for the added. Each row also carries the
    /// ticket's status while it is live, filled in and kept current by the database's
    /// triggers (migration 0018).
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
            // The database fills in the ticket's status (migration 0018's triggers).
            let sql = format!(
                "INSERT INTO ticket_tags (tag, ticket_id) VALUES {} ON CONFLICT DO NOTHING",
                rows.join(", ")
            );
            self.exec(&sql, &args).await?;
        }
        Ok(())
    }

    /// Write a ticket's computed SLA (with its next breach, indexed) and the events it made.
    pub async fn put_ticket_sla(&mut self, sla: &TicketSla, events: &[Value]) -> Result<()> {
        let data = serde_json::to_string(sla).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.exec(
            "INSERT INTO ticket_slas (id, data, next_breach_at, next_due_at, updated_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, next_breach_at = excluded.next_breach_at, \
             next_due_at = excluded.next_due_at, updated_at = excluded.updated_at",
            &[
                Val::Int(sla.id),
                Val::Text(data),
                Val::from(sla.next_breach_at),
                Val::from(sla.next_due_at),
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

    pub async fn ticket_sla(&mut self, ticket_id: Id) -> Result<Option<TicketSla>> {
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

    /// Tickets not closed nor deleted with an id above `after`, in id order (up to `limit`):
    /// what an SLA recomputation walks.
    pub async fn open_ticket_ids_after(&mut self, after: Id, limit: i64) -> Result<Vec<Id>> {
        let rows = self
            .all(
                "SELECT id FROM tickets WHERE id > $1 AND status <> 'closed' \
                 AND deleted_at IS NULL ORDER BY id LIMIT $2",
                &[Val::Int(after), Val::Int(limit)],
            )
            .await?;
        rows.iter().map(|r| r.i64(0)).collect()
    }

    /// The database's plan for the scheduler's lookup ([`Conn::due_slas`]), for benchmarks.
    pub async fn explain_due_slas(&mut self, now: i64) -> Result<String> {
        let (sql, col) = if self.is_postgres() {
            ("EXPLAIN SELECT id FROM ticket_slas WHERE next_due_at <= $1 ORDER BY next_due_at LIMIT $2", 0)
        } else {
            ("EXPLAIN QUERY PLAN SELECT id FROM ticket_slas WHERE next_due_at <= $1 ORDER BY next_due_at LIMIT $2", 3)
        };
        let rows = self.all(sql, &[Val::Int(now), Val::Int(500)]).await?;
        let lines: Result<Vec<String>> = rows.iter().map(|r| r.str(col)).collect();
        Ok(lines?.join("; "))
    }

    /// Benchmarks only: `n` SLA rows for tickets `first_id..`, their next due instants spread
    /// evenly over `spread` seconds from `from` (one statement; no tickets behind them).
    pub async fn insert_synthetic_slas(
        &mut self,
        first_id: Id,
        n: i64,
        from: i64,
        spread: i64,
    ) -> Result<()> {
        let sql = if self.is_postgres() {
            "INSERT INTO ticket_slas (id, data, next_breach_at, next_due_at, updated_at) \
             SELECT $1 + g, '{}', $3 + (g * $4) / $2, $3 + (g * $4) / $2, $3 \
             FROM generate_series(0::bigint, $2 - 1) AS g"
        } else {
            "WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x + 1 < $2) \
             INSERT INTO ticket_slas (id, data, next_breach_at, next_due_at, updated_at) \
             SELECT $1 + x, '{}', $3 + (x * $4) / $2, $3 + (x * $4) / $2, $3 FROM g"
        };
        self.exec(
            sql,
            &[
                Val::Int(first_id),
                Val::Int(n),
                Val::Int(from),
                Val::Int(spread),
            ],
        )
        .await?;
        Ok(())
    }

    /// The next SLA breach (UTC seconds) of each of these tickets that has one.
    pub async fn next_breaches(
        &mut self,
        ids: &[Id],
    ) -> Result<std::collections::HashMap<Id, i64>> {
        let mut out = std::collections::HashMap::new();
        for chunk in ids.chunks(500) {
            let mut args = vec![];
            let w = crate::docs::where_sql(
                &[
                    crate::Cond::In("id", chunk.iter().map(|i| Val::Int(*i)).collect()),
                    crate::Cond::NotNull("next_breach_at"),
                ],
                &mut args,
            );
            let sql = format!("SELECT id, next_breach_at FROM ticket_slas WHERE {w}");
            for r in self.all(&sql, &args).await? {
                out.insert(r.i64(0)?, r.i64(1)?);
            }
        }
        Ok(out)
    }

    /// Nothing is due on this ticket any more (it is gone, or no policy is left).
    pub async fn clear_sla_due(&mut self, ticket_id: Id) -> Result<()> {
        self.exec(
            "UPDATE ticket_slas SET next_due_at = NULL WHERE id = $1",
            &[Val::Int(ticket_id)],
        )
        .await?;
        Ok(())
    }

    /// Tickets whose next SLA warning or breach is due (an index seek on `next_due_at`).
    pub async fn due_slas(&mut self, now: i64, limit: i64) -> Result<Vec<Id>> {
        let rows = self
            .all(
                "SELECT id FROM ticket_slas WHERE next_due_at <= $1 ORDER BY next_due_at LIMIT $2",
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
}
