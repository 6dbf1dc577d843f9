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
        let schedule = self.default_schedule(&mut c).await?;
        Ok(render(&m, self.now().as_second(), schedule.as_deref()))
    }

    /// All tickets' metrics, a page at a time (by ticket id).
    pub async fn ticket_metrics(&self, actor: &Actor, page: &Page) -> Result<Paged<Value>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let p: Paged<TicketMetrics> = c.list(&[], page).await?;
        let schedule = self.default_schedule(&mut c).await?;
        let now = self.now().as_second();
        Ok(p.map(|m| render(&m, now, schedule.as_deref())))
    }
}

impl App {
    /// `include=slas`: for each ticket, the first SLA policy (by position) whose filter it
    /// matches, and where each of that policy's targets for the ticket's priority stands.
    pub async fn ticket_slas(
        &self,
        actor: &Actor,
        ts: &[&Ticket],
    ) -> Result<std::collections::HashMap<Id, Value>> {
        use opsdesk_core::rules::{self, Facts};
        use opsdesk_core::sla::{metric_states, SlaPolicy};
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let mut policies: Vec<SlaPolicy> = c.list(&[], &Page::All { limit: 1000 }).await?.items;
        policies.sort_by_key(|p| (p.position, p.id));
        let schedule = self.default_schedule(&mut c).await?;
        let now = self.now();
        let uses = |prefix: &str| {
            policies.iter().any(|p| {
                p.filter
                    .all
                    .iter()
                    .chain(&p.filter.any)
                    .any(|c| c.field.starts_with(prefix))
            })
        };
        let (need_req, need_org) = (uses("requester."), uses("organization."));
        let mut out = std::collections::HashMap::new();
        for t in ts {
            let mut facts = Facts::at_rest(actor.id(), actor.user.role);
            facts.now = Some(now);
            facts.schedule = schedule.clone();
            let m = c
                .get::<TicketMetrics>(t.id)
                .await?
                .unwrap_or_else(|| TicketMetrics::from_ticket(t));
            facts.metrics = Some(m.clone());
            if need_req {
                if let Some(u) = c.get::<opsdesk_core::model::User>(t.requester_id).await? {
                    facts.requester_fields = u.user_fields.into_iter().collect();
                }
            }
            if need_org {
                if let Some(oid) = t.organization_id {
                    if let Some(o) = c.get::<opsdesk_core::model::Organization>(oid).await? {
                        facts.organization_fields = o.organization_fields.into_iter().collect();
                    }
                }
            }
            let Some(p) = policies
                .iter()
                .find(|p| rules::evaluate(&p.filter, t, &facts).is_ok())
            else {
                out.insert(t.id, json!({"policy_metrics": []}));
                continue;
            };
            let states = metric_states(
                &p.policy_metrics,
                t.priority,
                &m,
                now.as_second(),
                schedule.as_deref(),
            );
            let metrics: Vec<Value> = states
                .iter()
                .map(|s| {
                    let left = s.breach_at.map(|b| b - now.as_second());
                    json!({
                        "metric": s.metric,
                        "stage": s.stage,
                        "breach_at": s.breach_at.map(|b| clock::format(clock::from_unix(b))),
                        "breached": s.breached,
                        "hours": left.map(|l| l / 3600),
                        "minutes": left.map(|l| (l % 3600) / 60),
                        "target": s.target_minutes,
                        "business_hours": s.business_hours,
                    })
                })
                .collect();
            out.insert(
                t.id,
                json!({"policy": {"id": p.id, "title": p.title}, "policy_metrics": metrics}),
            );
        }
        Ok(out)
    }
}

/// SLA policies and the default schedule, cached per rules version like the triggers.
#[derive(Default)]
pub struct SlaCache {
    inner: std::sync::RwLock<Option<(i64, std::sync::Arc<SlaConfig>, std::time::Instant)>>,
}

impl SlaCache {
    pub(crate) fn clear(&self) {
        if let Ok(mut g) = self.inner.write() {
            *g = None;
        }
    }
}

pub struct SlaConfig {
    pub policies: Vec<opsdesk_core::sla::SlaPolicy>,
    pub schedule: Option<std::sync::Arc<Schedule>>,
    uses_requester: bool,
    uses_organization: bool,
}

impl App {
    async fn sla_config(&self, c: &mut opsdesk_store::Conn) -> Result<std::sync::Arc<SlaConfig>> {
        const RECHECK: std::time::Duration = std::time::Duration::from_secs(1);
        if let Ok(g) = self.sla_cache.inner.read() {
            if let Some((_, cfg, at)) = g.as_ref() {
                if at.elapsed() < RECHECK {
                    return Ok(cfg.clone());
                }
            }
        }
        let version = c.rules_version().await?;
        if let Ok(mut g) = self.sla_cache.inner.write() {
            if let Some((v, cfg, at)) = g.as_mut() {
                if *v == version {
                    *at = std::time::Instant::now();
                    return Ok(cfg.clone());
                }
            }
        }
        let mut policies: Vec<opsdesk_core::sla::SlaPolicy> =
            c.list(&[], &Page::All { limit: 1000 }).await?.items;
        policies.sort_by_key(|p| (p.position, p.id));
        let uses = |prefix: &str| {
            policies.iter().any(|p| {
                p.filter
                    .all
                    .iter()
                    .chain(&p.filter.any)
                    .any(|c| c.field.starts_with(prefix))
            })
        };
        let cfg = std::sync::Arc::new(SlaConfig {
            uses_requester: uses("requester."),
            uses_organization: uses("organization."),
            schedule: self.default_schedule(c).await?,
            policies,
        });
        if let Ok(mut g) = self.sla_cache.inner.write() {
            *g = Some((version, cfg.clone(), std::time::Instant::now()));
        }
        Ok(cfg)
    }

    /// Recompute a ticket's SLA (policy, targets, next breach) and record the metric events
    /// that moved. Runs in the ticket write's transaction, and in the breach scheduler's.
    pub(crate) async fn refresh_sla(
        &self,
        tx: &mut opsdesk_store::Conn,
        t: &Ticket,
        m: &TicketMetrics,
    ) -> Result<()> {
        use opsdesk_core::rules::{self, Facts};
        use opsdesk_core::sla::{metric_states, sla_events, TicketSla};
        let cfg = self.sla_config(tx).await?;
        if cfg.policies.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let mut facts = Facts::at_rest(-1, opsdesk_core::model::Role::Admin);
        facts.now = Some(now);
        facts.schedule = cfg.schedule.clone();
        facts.metrics = Some(m.clone());
        if cfg.uses_requester {
            if let Some(u) = tx.get::<opsdesk_core::model::User>(t.requester_id).await? {
                facts.requester_fields = u.user_fields.into_iter().collect();
            }
        }
        if cfg.uses_organization {
            if let Some(oid) = t.organization_id {
                if let Some(o) = tx.get::<opsdesk_core::model::Organization>(oid).await? {
                    facts.organization_fields = o.organization_fields.into_iter().collect();
                }
            }
        }
        let policy = cfg
            .policies
            .iter()
            .find(|p| rules::evaluate(&p.filter, t, &facts).is_ok());
        let states = match policy {
            Some(p) => metric_states(
                &p.policy_metrics,
                t.priority,
                m,
                now.as_second(),
                cfg.schedule.as_deref(),
            ),
            None => vec![],
        };
        let new = TicketSla::new(t.id, policy, states, now.as_second());
        let old = tx.ticket_sla(t.id).await?;
        let unchanged = old.as_ref().is_some_and(|o| {
            o.policy_id == new.policy_id
                && o.metrics == new.metrics
                && o.next_breach_at == new.next_breach_at
        });
        if unchanged || (old.is_none() && new.policy_id.is_none()) {
            return Ok(());
        }
        let events = sla_events(old.as_ref(), &new, now.as_second());
        let breaches = events.iter().filter(|e| e["type"] == "breach").count();
        if breaches > 0 {
            metrics::counter!("sla_breaches_total").increment(breaches as u64);
        }
        tx.put_ticket_sla(&new, &events).await?;
        Ok(())
    }

    /// The breach scheduler's step: recompute the tickets whose next breach is due, so their
    /// breach events are recorded when the breach happens, not at the next update. Returns
    /// how many tickets it looked at.
    pub async fn sla_breach_tick(&self, limit: i64) -> Result<usize> {
        let now = self.now().as_second();
        let due = {
            let mut c = self.store.read().await?;
            c.due_slas(now, limit).await?
        };
        for id in &due {
            let mut tx = self.store.write().await?;
            let Some(t) = tx.ticket_for_update(*id).await? else {
                tx.commit().await?;
                continue;
            };
            let m = tx
                .get::<TicketMetrics>(*id)
                .await?
                .unwrap_or_else(|| TicketMetrics::from_ticket(&t));
            self.refresh_sla(&mut tx, &t, &m).await?;
            tx.commit().await?;
        }
        Ok(due.len())
    }

    /// `GET /api/v2/incremental/ticket_metric_events?start_time=`: events from that second,
    /// oldest first, up to `limit`; resumes after `after_id` within the same second.
    pub async fn ticket_metric_events(
        &self,
        actor: &Actor,
        start: i64,
        after_id: Id,
        limit: i64,
    ) -> Result<Vec<(Id, i64, Value)>> {
        actor.require_admin()?;
        let mut c = self.store.read().await?;
        Ok(c.metric_events(start, after_id, limit).await?)
    }
}
