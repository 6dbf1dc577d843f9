//! Ticket metrics (`/api/v2/ticket_metrics`, `/api/v2/tickets/{id}/metrics`): per-ticket
//! timestamps, counts and durations in calendar and business minutes (the default schedule).

use opsdesk_core::business_hours::Schedule;
use opsdesk_core::clock;
use opsdesk_core::model::Id;
use opsdesk_core::ticket::Ticket;
use opsdesk_core::ticket_metrics::TicketMetrics;
use opsdesk_store::{Page, Paged};
use serde_json::{json, Value};

use crate::{Actor, App, AppError, Result};

/// Zendesk's ticket_metric object.
fn render(m: &TicketMetrics, now: i64, schedule: Option<&Schedule>) -> Value {
    let f = |t: Option<opsdesk_core::Timestamp>| t.map(clock::format);
    let created = m.created_at.as_second();
    let span = |to: Option<opsdesk_core::Timestamp>| -> Value {
        match to {
            Some(t) if t.as_second() >= created => {
                let cal = t.as_second() - created;
                let bus = schedule.map_or(cal, |s| s.business_seconds(created, t.as_second()));
                json!({"calendar": cal / 60, "business": bus / 60})
            }
            _ => json!({"calendar": null, "business": null}),
        }
    };
    let w = m.waits(now, schedule);
    let mins = |x: (i64, i64)| json!({"calendar": x.0 / 60, "business": x.1 / 60});
    json!({
        "id": m.id,
        "ticket_id": m.ticket_id,
        "created_at": clock::format(m.created_at),
        "updated_at": clock::format(m.updated_at),
        "group_stations": m.group_stations,
        "assignee_stations": m.assignee_stations,
        "reopens": m.reopens,
        "replies": m.replies,
        "assignee_updated_at": f(m.assignee_updated_at),
        "requester_updated_at": f(m.requester_updated_at),
        "status_updated_at": clock::format(m.status_updated_at),
        "initially_assigned_at": f(m.initially_assigned_at),
        "assigned_at": f(m.assigned_at),
        "solved_at": f(m.solved_at),
        "latest_comment_added_at": f(m.latest_comment_added_at),
        "reply_time_in_minutes": span(m.first_reply_at),
        "reply_time_in_seconds": {"calendar": m.first_reply_at.map(|t| t.as_second() - created)},
        "first_resolution_time_in_minutes": span(m.first_solved_at),
        "full_resolution_time_in_minutes": span(m.solved_at),
        "agent_wait_time_in_minutes": mins(w.agent),
        "requester_wait_time_in_minutes": mins(w.requester),
        "on_hold_time_in_minutes": mins(w.on_hold),
    })
}

impl App {
    /// One ticket's metrics.
    pub async fn ticket_metric(&self, actor: &Actor, ticket_id: Id) -> Result<Value> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let t: Ticket = c.ticket(ticket_id).await?.ok_or(AppError::NotFound)?;
        let m = c
            .get::<TicketMetrics>(ticket_id)
            .await?
            .unwrap_or_else(|| TicketMetrics::from_ticket(&t));
        let schedule = self.schedule_of(&mut c, &t).await?;
        Ok(render(&m, self.now().as_second(), schedule.as_deref()))
    }

    /// All tickets' metrics, a page at a time (by ticket id).
    pub async fn ticket_metrics(&self, actor: &Actor, page: &Page) -> Result<Paged<Value>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let p: Paged<TicketMetrics> = c.list(&[], page).await?;
        let schedule = self.schedule(&mut c).await?;
        let now = self.now().as_second();
        Ok(p.map(|m| render(&m, now, schedule.as_deref())))
    }
}
