//! Webhooks and the durable outbox: what rules ask to send, written in the same transaction as
//! the ticket change that asked for it, and delivered later by a worker.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{ts, ts_opt, Timestamp};
use crate::model::Id;

/// A webhook (`/api/v2/webhooks`): where `notification_webhook` actions send their requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: Id,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `active` or `inactive`.
    pub status: String,
    pub endpoint: String,
    /// GET, POST, PUT, PATCH or DELETE.
    pub http_method: String,
    /// `json`, `xml` or `form_encoded`.
    pub request_format: String,
    #[serde(default)]
    pub subscriptions: Vec<String>,
    /// `{"type": "basic_auth"|"bearer_token"|"api_key", "data": {...}, "add_position": "header"}`.
    #[serde(default)]
    pub authentication: Option<Value>,
    #[serde(default)]
    pub custom_headers: serde_json::Map<String, Value>,
    /// HMAC-SHA256 key for `X-Zendesk-Webhook-Signature`. Never shown with the webhook; read
    /// it through `/webhooks/{id}/signing_secret`.
    pub signing_secret: String,
    pub created_by: Id,
    pub updated_by: Id,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

/// One message waiting to go out (or gone): an email or a webhook request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxItem {
    pub id: Id,
    /// `email` or `webhook`.
    pub kind: String,
    /// Unique per message: `event:<audit event id>` for rule notifications, so a message is
    /// queued once however often the work around it is retried. Sent with webhook requests
    /// (`X-Opsdesk-Idempotency-Key`) so a receiver can drop a repeat delivery.
    pub idempotency_key: String,
    /// `pending`, `delivered` or `failed` (gave up after the last retry).
    pub state: String,
    pub ticket_id: Option<Id>,
    /// The webhook, for webhook requests.
    pub webhook_id: Option<Id>,
    /// Email: `{"to", "to_name", "user_id", "subject", "text", "html"}`. Webhook: `{"body"}`.
    pub payload: Value,
    pub attempts: i64,
    #[serde(with = "ts")]
    pub next_attempt_at: Timestamp,
    #[serde(with = "ts_opt", default)]
    pub delivered_at: Option<Timestamp>,
    /// A worker holds the item until then (a crashed worker's claim runs out).
    #[serde(with = "ts_opt", default)]
    pub locked_until: Option<Timestamp>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The latest attempts, newest last (at most [`KEPT_ATTEMPTS`]): `{"at", "status",
    /// "duration_ms", "response", "error"}`.
    #[serde(default)]
    pub responses: Vec<Value>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

impl OutboxItem {
    /// A message to send as soon as possible.
    pub fn pending(
        kind: &str,
        idempotency_key: String,
        ticket_id: Option<Id>,
        webhook_id: Option<Id>,
        payload: Value,
        now: crate::Timestamp,
    ) -> OutboxItem {
        OutboxItem {
            id: 0,
            kind: kind.into(),
            idempotency_key,
            state: "pending".into(),
            ticket_id,
            webhook_id,
            payload,
            attempts: 0,
            next_attempt_at: now,
            delivered_at: None,
            locked_until: None,
            last_error: None,
            responses: vec![],
            created_at: now,
            updated_at: now,
        }
    }
}

pub const KEPT_ATTEMPTS: usize = 10;

/// Retry schedule: seconds to wait after the n-th failed attempt (1-based); None: give up.
/// 10 s, 30 s, 1 min, 5 min, 15 min, 1 h, then every 2 h until 24 attempts (about a day and a
/// half in all).
pub fn retry_delay(attempts: i64) -> Option<i64> {
    const STEPS: [i64; 6] = [10, 30, 60, 300, 900, 3600];
    match attempts {
        n if n < 1 => Some(0),
        n if n <= STEPS.len() as i64 => Some(STEPS[(n - 1) as usize]),
        n if n < MAX_ATTEMPTS => Some(7200),
        _ => None,
    }
}

pub const MAX_ATTEMPTS: i64 = 24;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_and_stop() {
        assert_eq!(retry_delay(1), Some(10));
        assert_eq!(retry_delay(2), Some(30));
        assert_eq!(retry_delay(6), Some(3600));
        assert_eq!(retry_delay(7), Some(7200));
        assert_eq!(retry_delay(23), Some(7200));
        assert_eq!(retry_delay(24), None);
        let total: i64 = (1..MAX_ATTEMPTS).map(|n| retry_delay(n).unwrap()).sum();
        assert!(total > 24 * 3600 && total < 48 * 3600, "{total}");
    }
}
