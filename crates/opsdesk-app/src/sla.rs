//! SLA policies (`/api/v2/slas/policies`), each ticket's SLA (the first matching policy and
//! where its targets stand), the metric events, and the breach scheduler's step.

use opsdesk_core::business_hours::Schedule;
use opsdesk_core::clock;
use opsdesk_core::model::Id;
use opsdesk_core::rules::{self, Facts};
use opsdesk_core::sla::{metric_states, sla_events, TicketSla};
use opsdesk_core::ticket::Ticket;
use opsdesk_core::ticket_metrics::TicketMetrics;
use opsdesk_core::Invalid;
use opsdesk_store::Page;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{Actor, App, AppError, Result};

/// What a policy create or update carries.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SlaPolicyInput {
    pub title: Option<String>,
    pub description: Option<String>,
    pub position: Option<i64>,
    pub filter: Option<opsdesk_core::rules::Conditions>,
    pub policy_metrics: Option<Vec<opsdesk_core::sla::PolicyMetric>>,
}

impl App {
    pub async fn list_sla_policies(
        &self,
        actor: &Actor,
    ) -> Result<Vec<opsdesk_core::sla::SlaPolicy>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let mut v: Vec<opsdesk_core::sla::SlaPolicy> =
            c.list(&[], &Page::All { limit: 1000 }).await?.items;
        v.sort_by_key(|p| (p.position, p.id));
        Ok(v)
    }

    pub async fn get_sla_policy(
        &self,
        actor: &Actor,
        id: Id,
    ) -> Result<opsdesk_core::sla::SlaPolicy> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.get(id).await?.ok_or(AppError::NotFound)
    }

    /// Create (`id` None) or update an SLA policy. An update replaces `filter` and
    /// `policy_metrics` when it carries them, as Zendesk does.
    pub async fn save_sla_policy(
        &self,
        actor: &Actor,
        id: Option<Id>,
        input: SlaPolicyInput,
    ) -> Result<opsdesk_core::sla::SlaPolicy> {
        use opsdesk_core::sla::SlaPolicy;
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut p = match id {
            Some(id) => tx.get::<SlaPolicy>(id).await?.ok_or(AppError::NotFound)?,
            None => {
                let count = tx.count::<SlaPolicy>(&[]).await?;
                SlaPolicy {
                    id: 0,
                    title: String::new(),
                    description: None,
                    position: count + 1,
                    filter: Default::default(),
                    policy_metrics: vec![],
                    created_at: now,
                    updated_at: now,
                }
            }
        };
        let mut inv = Invalid::new();
        if id.is_none() && input.title.is_none() {
            inv.blank("title", "Title");
        }
        if let Some(t) = &input.title {
            opsdesk_core::model::check_text(t, "title", "Title", 255, &mut inv);
            p.title = t.trim().to_string();
        }
        if let Some(d) = input.description {
            p.description = Some(d);
        }
        if let Some(pos) = input.position {
            p.position = pos;
        }
        if let Some(f) = input.filter {
            p.filter = f;
        }
        if let Some(m) = input.policy_metrics {
            p.policy_metrics = m;
        }
        for m in &mut p.policy_metrics {
            m.priority = m.priority.to_lowercase();
        }
        if let Err(e) = opsdesk_core::sla::validate_policy(&p.filter, &p.policy_metrics) {
            for (k, v) in e.details {
                inv.details.entry(k).or_default().extend(v);
            }
        }
        inv.into_result()?;
        p.updated_at = now;
        let p = crate::records::save_doc(&mut tx, p, id.is_some()).await?;
        tx.bump_rules_version().await?;
        tx.commit().await?;
        self.sla_cache.clear();
        Ok(p)
    }

    pub async fn delete_sla_policy(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        if !tx.delete::<opsdesk_core::sla::SlaPolicy>(id).await? {
            return Err(AppError::NotFound);
        }
        tx.bump_rules_version().await?;
        tx.commit().await?;
        self.sla_cache.clear();
        Ok(())
    }

    /// `PUT /slas/policies/reorder` `{"sla_policy_ids": [...]}`.
    pub async fn reorder_sla_policies(
        &self,
        actor: &Actor,
        ids: &[Id],
    ) -> Result<Vec<opsdesk_core::sla::SlaPolicy>> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let out = crate::records::reorder(&mut tx, ids, self.now()).await?;
        tx.bump_rules_version().await?;
        tx.commit().await?;
        self.sla_cache.clear();
        Ok(out)
    }
}

impl App {
    /// `include=slas`: for each ticket, the first SLA policy (by position) whose filter it
    /// matches, and where each of that policy's targets for the ticket's priority stands,
    /// computed now.
    pub async fn ticket_slas(
        &self,
        actor: &Actor,
        ts: &[&Ticket],
    ) -> Result<std::collections::HashMap<Id, Value>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let cfg = self.sla_config(&mut c).await?;
        let now = self.now().as_second();
        let mut out = std::collections::HashMap::new();
        for t in ts {
            let m = c
                .get::<TicketMetrics>(t.id)
                .await?
                .unwrap_or_else(|| TicketMetrics::from_ticket(t));
            let sla = self.compute_sla(&mut c, &cfg, t, &m).await?;
            let Some(pid) = sla.policy_id else {
                out.insert(t.id, json!({"policy_metrics": []}));
                continue;
            };
            let metrics: Vec<Value> = sla
                .metrics
                .iter()
                .map(|s| {
                    let left = s.breach_at.map(|b| b - now);
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
                json!({"policy": {"id": pid, "title": sla.policy_title}, "policy_metrics": metrics}),
            );
        }
        Ok(out)
    }
}

/// SLA policies and the default schedule, cached per rules version like the triggers (schedule
/// and policy changes bump the version and clear this cache).
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
    /// The default schedule.
    pub schedule: Option<std::sync::Arc<Schedule>>,
    /// Every schedule by id, for tickets a trigger gave one (`set_schedule`).
    pub schedules: std::collections::HashMap<Id, std::sync::Arc<Schedule>>,
    uses_requester: bool,
    uses_organization: bool,
    /// The zone KPI days and weeks are counted in (instance value `kpi_time_zone`, UTC by
    /// default; `opsdesk kpi rebuild --time-zone`).
    pub kpi_tz: jiff::tz::TimeZone,
}

impl SlaConfig {
    /// The ticket's own schedule (`set_schedule`), else the default one.
    pub fn schedule_for(&self, t: &Ticket) -> Option<std::sync::Arc<Schedule>> {
        t.schedule_id
            .and_then(|id| self.schedules.get(&id).cloned())
            .or_else(|| self.schedule.clone())
    }
}

impl App {
    pub(crate) async fn sla_config(
        &self,
        c: &mut opsdesk_store::Conn,
    ) -> Result<std::sync::Arc<SlaConfig>> {
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
        let kpi_tz = match c.instance_value(crate::kpi::TIME_ZONE_SETTING).await? {
            Some(z) => jiff::tz::TimeZone::get(&z).unwrap_or_else(|_| {
                tracing::warn!(time_zone = %z, "unknown KPI time zone; counting in UTC");
                jiff::tz::TimeZone::UTC
            }),
            None => jiff::tz::TimeZone::UTC,
        };
        let cfg = std::sync::Arc::new(SlaConfig {
            kpi_tz,
            uses_requester: uses("requester."),
            uses_organization: uses("organization."),
            schedule: self.default_schedule(c).await?,
            schedules: self.all_schedules(c).await?,
            policies,
        });
        if let Ok(mut g) = self.sla_cache.inner.write() {
            *g = Some((version, cfg.clone(), std::time::Instant::now()));
        }
        Ok(cfg)
    }

    /// The schedule a ticket's business hours count in: the one a trigger set on it, else the
    /// default (cached with the SLA configuration).
    pub(crate) async fn schedule_of(
        &self,
        c: &mut opsdesk_store::Conn,
        t: &Ticket,
    ) -> Result<Option<std::sync::Arc<Schedule>>> {
        let cfg = self.sla_config(c).await?;
        Ok(cfg.schedule_for(t))
    }

    /// The default schedule (cached with the SLA configuration): what business-hours
    /// conditions and metrics count in.
    pub(crate) async fn schedule(
        &self,
        c: &mut opsdesk_store::Conn,
    ) -> Result<Option<std::sync::Arc<Schedule>>> {
        Ok(self.sla_config(c).await?.schedule.clone())
    }

    /// A ticket's SLA now: the first policy whose filter it matches and the state of each of
    /// its targets for the ticket's priority.
    async fn compute_sla(
        &self,
        c: &mut opsdesk_store::Conn,
        cfg: &SlaConfig,
        t: &Ticket,
        m: &TicketMetrics,
    ) -> Result<TicketSla> {
        let now = self.now().as_second();
        let schedule = cfg.schedule_for(t);
        let mut facts = Facts::at_rest(-1, opsdesk_core::model::Role::Admin);
        facts.now = Some(self.now());
        facts.schedule = schedule.clone();
        facts.metrics = Some(m.clone());
        if cfg.uses_requester {
            if let Some(u) = c
                .get_shared::<opsdesk_core::model::User>(t.requester_id)
                .await?
            {
                facts.requester_fields = u.user_fields.into_iter().collect();
            }
        }
        if cfg.uses_organization {
            if let Some(oid) = t.organization_id {
                if let Some(o) = c
                    .get_shared::<opsdesk_core::model::Organization>(oid)
                    .await?
                {
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
                now,
                schedule.as_deref(),
                self.sla_warning_secs,
            ),
            None => vec![],
        };
        Ok(TicketSla::new(
            t.id,
            policy,
            states,
            now,
            self.sla_warning_secs,
        ))
    }

    /// Recompute a ticket's SLA and record it (with its next breach) and the metric events
    /// that moved. Runs in the ticket write's transaction, and in the breach scheduler's.
    /// Returns the `warning` and `breach` events it recorded (their types), for the
    /// scheduler's trigger run.
    pub(crate) async fn refresh_sla(
        &self,
        tx: &mut opsdesk_store::Conn,
        t: &Ticket,
        m: &TicketMetrics,
    ) -> Result<Vec<&'static str>> {
        let cfg = self.sla_config(tx).await?;
        if cfg.policies.is_empty() {
            return Ok(vec![]);
        }
        let new = self.compute_sla(tx, &cfg, t, m).await?;
        let old = tx.ticket_sla(t.id).await?;
        let unchanged = old.as_ref().is_some_and(|o| {
            o.policy_id == new.policy_id
                && o.metrics == new.metrics
                && o.next_breach_at == new.next_breach_at
                && o.next_due_at == new.next_due_at
        });
        if unchanged || (old.is_none() && new.policy_id.is_none()) {
            return Ok(vec![]);
        }
        let events = sla_events(old.as_ref(), &new, new.updated_at, self.sla_warning_secs);
        let mut kinds = vec![];
        for (kind, counter) in [
            ("warning", "sla_warnings_total"),
            ("breach", "sla_breaches_total"),
        ] {
            let n = events.iter().filter(|e| e["type"] == kind).count();
            if n > 0 {
                metrics::counter!(counter).increment(n as u64);
                kinds.push(kind);
            }
        }
        tx.put_ticket_sla(&new, &events).await?;
        self.record_sla_facts(tx, t, old.as_ref(), &events).await?;
        Ok(kinds)
    }

    /// The triggers' turn when the scheduler records a warning or a breach: a trigger with
    /// the condition `sla_event is warning|breach` fires as on an update (tag, assign, notify
    /// the assignee, call a webhook), and what it does is written as an audit by the system
    /// user (via `rule`). Nothing is written when no trigger fires.
    pub(crate) async fn sla_event_triggers(
        &self,
        tx: &mut opsdesk_store::Conn,
        t: &Ticket,
        kind: &str,
    ) -> Result<()> {
        // Only triggers that use `sla_event` run (run_triggers picks them); with none, nothing
        // is written.
        let actor = crate::automations::system_actor(self.now());
        let outcome = self
            .run_triggers(tx, &actor, Some(t), t.clone(), None, Some(kind))
            .await?;
        if outcome.events.is_empty() {
            return Ok(());
        }
        let via = opsdesk_core::ticket::Via {
            channel: "rule".into(),
            source: json!({"from": {}, "to": {}, "rel": "sla"}),
        };
        let meta =
            json!({"system": {"client": "opsdesk sla scheduler", "sla_event": kind}, "custom": {}});
        self.write_update(
            tx,
            &actor,
            t.clone(),
            outcome.ticket,
            outcome.events,
            outcome.comments,
            via,
            meta,
            outcome.trace,
        )
        .await?;
        Ok(())
    }

    /// The breach scheduler's step: recompute the tickets whose next warning or breach is
    /// due, so those events are recorded (and the triggers that react to them run) when they
    /// happen, not at the next update. Returns how many tickets it looked at.
    pub async fn sla_breach_tick(&self, limit: i64) -> Result<usize> {
        let now = self.now().as_second();
        let due = {
            let mut c = self.store.read().await?;
            c.due_slas(now, limit).await?
        };
        let no_policies = {
            let mut c = self.store.read().await?;
            self.sla_config(&mut c).await?.policies.is_empty()
        };
        for id in &due {
            let mut tx = self.store.write().await?;
            let t = tx.ticket_for_update(*id).await?;
            let Some(t) = t.filter(|_| !no_policies) else {
                // Gone, or no policy left: nothing is due on it any more.
                tx.clear_sla_due(*id).await?;
                tx.commit().await?;
                continue;
            };
            let m = tx
                .get::<TicketMetrics>(*id)
                .await?
                .unwrap_or_else(|| TicketMetrics::from_ticket(&t));
            let kinds = self.refresh_sla(&mut tx, &t, &m).await?;
            // A breach outranks the warning recorded with it in the same step.
            if let Some(kind) = kinds.last() {
                self.sla_event_triggers(&mut tx, &t, kind).await?;
            }
            tx.commit().await?;
        }
        Ok(due.len())
    }

    /// Recompute the SLA of open tickets with ids above `after` (up to `limit`, one
    /// transaction): after policies change, so every open ticket follows the new ones now
    /// rather than at its next update (`opsdesk sla recompute`). Returns how many were looked
    /// at and the last id, to continue from.
    pub async fn recompute_slas(&self, after: Id, limit: i64) -> Result<(usize, Option<Id>)> {
        let ids = {
            let mut c = self.store.read().await?;
            c.open_ticket_ids_after(after, limit).await?
        };
        let mut tx = self.store.write().await?;
        for id in &ids {
            let Some(t) = tx.ticket_for_update(*id).await? else {
                continue;
            };
            let m = tx
                .get::<TicketMetrics>(*id)
                .await?
                .unwrap_or_else(|| TicketMetrics::from_ticket(&t));
            self.refresh_sla(&mut tx, &t, &m).await?;
        }
        tx.commit().await?;
        Ok((ids.len(), ids.last().copied()))
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
