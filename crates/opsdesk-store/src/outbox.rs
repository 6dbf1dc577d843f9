//! The durable outbox: claiming due messages, recording attempts, depth for metrics.

use opsdesk_core::outbox::OutboxItem;

use crate::db::{Conn, Val};
use crate::docs::{decode, doc_record};
use crate::{Result, StoreError};

fn secs(t: opsdesk_core::Timestamp) -> Val {
    Val::Int(t.as_second())
}

doc_record!(
    OutboxItem,
    "outbox",
    [
        "kind",
        "idempotency_key",
        "state",
        "ticket_id",
        "webhook_id",
        "next_attempt_at",
        "locked_until",
        "created_at",
        "updated_at"
    ],
    |o| [
        Val::from(o.kind.as_str()),
        Val::from(o.idempotency_key.as_str()),
        Val::from(o.state.as_str()),
        Val::from(o.ticket_id),
        Val::from(o.webhook_id),
        secs(o.next_attempt_at),
        Val::from(o.locked_until.map(|t| t.as_second())),
        secs(o.created_at),
        secs(o.updated_at)
    ]
);

/// Outbox depth for metrics and readiness.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxStats {
    pub pending: i64,
    pub failed: i64,
    /// Creation time (UTC seconds) of the oldest pending item.
    pub oldest_pending: Option<i64>,
}

impl Conn {
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
}
