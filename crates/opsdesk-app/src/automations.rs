//! Automations: time-based rules, run on a schedule over every ticket that is not closed.
//!
//! A run is one job, coordinated through the database: whoever holds the `automations` lease
//! (a row in `job_leases`) runs it, so with several nodes on PostgreSQL it runs once, not once
//! per node. The run walks tickets in id order; each chunk of updates commits together with the
//! run's cursor, so a run that dies (a crash, a lost lease) is resumed by the next holder from
//! the last committed ticket, and no ticket is acted on twice by one run.

use std::collections::BTreeMap;

use opsdesk_core::model::{Id, Role, User};
use opsdesk_core::rules::{self, Automation, Facts};
use opsdesk_core::ticket::{Status, Ticket, Via};
use opsdesk_core::ticket_metrics::TicketMetrics;
use opsdesk_store::{Cond, Order, Page, Val};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::rules::rule_via;
use crate::{Actor, App, Origin, Result};

const LEASE: &str = "automations";
/// A row of its own for "run now", so asking never touches the lease of a run in progress.
const REQUEST_FLAG: &str = "automations:request";
/// A holder that stops renewing loses the lease after this long.
const LEASE_SECS: i64 = 120;
/// Tickets read per batch, and updates per transaction.
const READ_BATCH: i64 = 500;
const WRITE_CHUNK: usize = 50;

#[derive(Debug, Clone, Copy)]
pub struct AutomationConfig {
    /// Seconds between runs (Zendesk: hourly).
    pub interval_secs: i64,
    /// The most tickets one automation acts on per run (Zendesk: 1,000 per hour).
    pub max_per_automation: i64,
}

impl Default for AutomationConfig {
    fn default() -> Self {
        AutomationConfig {
            interval_secs: 3600,
            max_per_automation: 1000,
        }
    }
}

/// A run in progress, saved with the lease after every committed chunk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    pub started_at: i64,
    /// Every ticket with an id up to this one has been dealt with.
    pub cursor: Id,
    pub examined: i64,
    pub updated: i64,
    /// Firings per automation id.
    pub fired: BTreeMap<Id, i64>,
    /// The run was resumed after its holder stopped.
    #[serde(default)]
    pub resumed: i64,
}

/// What the lease row keeps between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobState {
    #[serde(default)]
    pub run: Option<RunState>,
    #[serde(default)]
    pub last_started_at: Option<i64>,
    #[serde(default)]
    pub last_finished_at: Option<i64>,
    #[serde(default)]
    pub last_run: Option<RunState>,
}

/// The actor automations write as (Zendesk shows automation updates with author -1).
pub(crate) fn system_actor(now: opsdesk_core::Timestamp) -> Actor {
    let mut u = User::new("opsdesk".into(), None, Role::Admin, now);
    u.id = -1;
    Actor { user: u }
}

impl App {
    /// Run the automations if a run is due (or unfinished) and this node gets the lease.
    /// Returns the finished run, or None when nothing ran here.
    pub async fn run_automations_if_due(&self) -> Result<Option<RunState>> {
        let now = self.now().as_second();
        let mut tx = self.store.write().await?;
        let Some(lease) = tx.take_lease(LEASE, &self.node_id, now, LEASE_SECS).await? else {
            return Ok(None);
        };
        let mut state: JobState = serde_json::from_value(lease.data).unwrap_or_default();
        let requested = tx.take_job_flag(REQUEST_FLAG).await?;
        let due = requested
            || state
                .last_started_at
                .is_none_or(|t| now >= t + self.automation.interval_secs);
        if state.run.is_none() && !due {
            tx.release_lease(LEASE, &self.node_id).await?;
            tx.commit().await?;
            return Ok(None);
        }
        let mut run = match state.run.take() {
            Some(mut r) => {
                r.resumed += 1;
                tracing::info!(cursor = r.cursor, "resuming an unfinished automation run");
                r
            }
            None => RunState {
                started_at: now,
                ..Default::default()
            },
        };
        state.run = Some(run.clone());
        tx.save_lease(LEASE, &self.node_id, &json!(state)).await?;
        tx.commit().await?;

        let started = std::time::Instant::now();
        let automations: Vec<Automation> = {
            let mut c = self.store.read().await?;
            let mut v = c
                .list::<Automation>(
                    &[Cond::Eq("active", Val::Int(1))],
                    &Page::All { limit: 10_000 },
                )
                .await?
                .items;
            v.sort_by_key(|a| (a.position, a.id));
            v
        };
        if !automations.is_empty() {
            self.run_batches(&automations, &mut run, &mut state).await?;
        }
        let finished = self.now().as_second();
        state.run = None;
        state.last_started_at = Some(run.started_at);
        state.last_finished_at = Some(finished);
        state.last_run = Some(run.clone());
        let mut tx = self.store.write().await?;
        tx.save_lease(LEASE, &self.node_id, &json!(state)).await?;
        tx.release_lease(LEASE, &self.node_id).await?;
        tx.commit().await?;
        metrics::counter!("automation_runs_total").increment(1);
        metrics::counter!("automation_tickets_updated_total").increment(run.updated as u64);
        metrics::histogram!("automation_run_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(
            examined = run.examined,
            updated = run.updated,
            ms = started.elapsed().as_millis() as u64,
            "automation run finished"
        );
        Ok(Some(run))
    }

    async fn run_batches(
        &self,
        automations: &[Automation],
        run: &mut RunState,
        state: &mut JobState,
    ) -> Result<()> {
        let rules: Vec<rules::Rule> = automations.iter().map(Automation::rule).collect();
        let max = self.automation.max_per_automation;
        let schedule = {
            let mut c = self.store.read().await?;
            self.schedule(&mut c).await?
        };
        let needs_sla = rules.iter().any(|r| rules::uses_sla(&r.conditions));
        loop {
            // Read a batch and find, in memory, the tickets some automation acts on.
            let (batch, candidates) = {
                let mut c = self.store.read().await?;
                let batch = c
                    .tickets(
                        &[Cond::Ne("status", Val::from("closed"))],
                        &Page::Cursor {
                            size: READ_BATCH,
                            after: Some(run.cursor),
                            before: None,
                            order: Order::Asc,
                        },
                    )
                    .await?
                    .items;
                let ids: Vec<Id> = batch.iter().map(|t| t.id).collect();
                let ms: std::collections::HashMap<Id, TicketMetrics> = c
                    .get_many::<TicketMetrics>(&ids)
                    .await?
                    .into_iter()
                    .map(|m| (m.id, m))
                    .collect();
                let slas: std::collections::HashMap<Id, Option<i64>> = if needs_sla {
                    c.get_many::<opsdesk_core::sla::TicketSla>(&ids)
                        .await?
                        .into_iter()
                        .map(|s| (s.id, s.next_breach_at))
                        .collect()
                } else {
                    Default::default()
                };
                let now = self.now();
                let mut facts = Facts::at_rest(-1, Role::Admin);
                facts.now = Some(now);
                facts.schedule = schedule.clone();
                let mut candidates = vec![];
                for t in &batch {
                    facts.metrics = Some(metrics_of(&ms, t));
                    facts.next_breach_at = slas.get(&t.id).copied().flatten();
                    if rules.iter().any(|r| {
                        run.fired.get(&r.id).copied().unwrap_or(0) < max
                            && rules::evaluate(&r.conditions, t, &facts).is_ok()
                    }) {
                        candidates.push(t.id);
                    }
                }
                (batch, candidates)
            };
            let Some(last) = batch.last().map(|t| t.id) else {
                return Ok(());
            };
            run.examined += batch.len() as i64;
            // Act on them, a chunk per transaction, the cursor saved with each chunk.
            let mut chunks: Vec<&[Id]> = candidates.chunks(WRITE_CHUNK).collect();
            if chunks.is_empty() {
                chunks.push(&[]);
            }
            let n = chunks.len();
            for (i, chunk) in chunks.into_iter().enumerate() {
                let cursor = if i + 1 == n {
                    last
                } else {
                    chunk.last().copied().unwrap_or(run.cursor)
                };
                match self
                    .automate_chunk(chunk, cursor, &rules, schedule.clone(), run, state)
                    .await
                {
                    Ok(()) => {}
                    Err(e @ crate::AppError::Conflict(_)) => return Err(e),
                    Err(e) => {
                        // One ticket must not stop every run for good: go one ticket per
                        // transaction, and step over a ticket that fails on its own.
                        tracing::warn!(error = %e, "automation chunk failed; retrying ticket by ticket");
                        for (j, id) in chunk.iter().enumerate() {
                            let cur = if j + 1 == chunk.len() { cursor } else { *id };
                            if let Err(e) = self
                                .automate_chunk(&[*id], cur, &rules, schedule.clone(), run, state)
                                .await
                            {
                                if matches!(e, crate::AppError::Conflict(_)) {
                                    return Err(e);
                                }
                                tracing::error!(ticket.id = id, error = %e, "automation skipped a ticket it could not update");
                                self.automate_chunk(&[], cur, &rules, schedule.clone(), run, state)
                                    .await?;
                            }
                        }
                    }
                }
            }
        }
    }

    /// One transaction: renew the lease, act on `ids`, save the run with its cursor.
    async fn automate_chunk(
        &self,
        ids: &[Id],
        cursor: Id,
        rules: &[rules::Rule],
        schedule: Option<std::sync::Arc<opsdesk_core::business_hours::Schedule>>,
        run: &mut RunState,
        state: &mut JobState,
    ) -> Result<()> {
        let mut tx = self.store.write().await?;
        // Renew the lease; stop if another node took it over.
        let now = self.now().as_second();
        if tx
            .take_lease(LEASE, &self.node_id, now, LEASE_SECS)
            .await?
            .is_none()
        {
            tracing::warn!("automation lease lost; another node continues the run");
            return Err(crate::AppError::Conflict("automation lease lost".into()));
        }
        let mut fired = run.fired.clone();
        let mut updated = 0;
        for id in ids {
            updated += self
                .automate_ticket(&mut tx, *id, rules, &mut fired, schedule.clone())
                .await? as i64;
        }
        let mut next = run.clone();
        next.fired = fired;
        next.updated += updated;
        next.cursor = cursor;
        state.run = Some(next.clone());
        tx.save_lease(LEASE, &self.node_id, &json!(state)).await?;
        tx.commit().await?;
        *run = next;
        Ok(())
    }

    /// Apply the automations to one ticket (locked, re-checked); returns whether it changed.
    async fn automate_ticket(
        &self,
        tx: &mut opsdesk_store::Conn,
        id: Id,
        rules: &[rules::Rule],
        fired: &mut BTreeMap<Id, i64>,
        schedule: Option<std::sync::Arc<opsdesk_core::business_hours::Schedule>>,
    ) -> Result<bool> {
        let Some(old) = tx.ticket_for_update(id).await? else {
            return Ok(false);
        };
        if old.status == Status::Closed {
            return Ok(false);
        }
        let now = self.now();
        let actor = system_actor(now);
        let m = tx
            .get::<TicketMetrics>(id)
            .await?
            .unwrap_or_else(|| TicketMetrics::from_ticket(&old));
        let mut facts = Facts::at_rest(-1, Role::Admin);
        facts.now = Some(now);
        facts.metrics = Some(m);
        facts.schedule = match old.schedule_id {
            Some(_) => self.schedule_of(tx, &old).await?,
            None => schedule,
        };
        if rules.iter().any(|r| rules::uses_sla(&r.conditions)) {
            facts.next_breach_at = tx.ticket_sla(id).await?.and_then(|s| s.next_breach_at);
        }
        // Automations run in position order; each sees the ticket as the ones before left it.
        let mut t = old.clone();
        let mut firings = vec![];
        let mut fired_rules: Vec<&rules::Rule> = vec![];
        for r in rules {
            if fired.get(&r.id).copied().unwrap_or(0) >= self.automation.max_per_automation {
                continue;
            }
            if rules::evaluate(&r.conditions, &t, &facts).is_ok() {
                firings.push(rules::fire(r, &mut t, &facts));
                fired_rules.push(r);
            }
        }
        if firings.is_empty() {
            return Ok(false);
        }
        // As with triggers: what a rule names may have gone; the ticket stays valid.
        let warnings = self.keep_valid(tx, &old, &mut t).await?;
        if !warnings.is_empty() {
            // An automation whose nullifying change was undone would act again next run:
            // keep its other changes but not its notifications, and do not count it.
            tracing::warn!(ticket.id = id, ?warnings, "automation changes undone");
        }
        for (f, r) in firings.iter_mut().zip(&fired_rules) {
            if !warnings.is_empty() && rules::evaluate(&r.conditions, &t, &facts).is_ok() {
                f.effects.clear();
            } else {
                *fired.entry(r.id).or_default() += 1;
            }
        }
        let first = &firings[0];
        let via_json = rule_via(first.rule_id, &first.title, "automation");
        let via = Via {
            channel: "rule".into(),
            source: via_json["source"].clone(),
        };
        let (events, comments) = self
            .firing_events(tx, &actor, old.clone(), &t, &firings, "automation", None)
            .await?;
        let (_, audit) = self
            .save_with_events(
                tx,
                &actor,
                old,
                t,
                events,
                comments,
                via,
                &Origin::default(),
                None,
            )
            .await?;
        Ok(audit.is_some())
    }

    /// `GET /api/v2/automations/status` (opsdesk): the last run, the one in progress, the next.
    pub async fn automation_status(&self, actor: &Actor) -> Result<Value> {
        actor.require_admin()?;
        let mut c = self.store.read().await?;
        let (holder, expires, data) =
            c.lease_data(LEASE)
                .await?
                .unwrap_or((String::new(), 0, json!({})));
        let state: JobState = serde_json::from_value(data).unwrap_or_default();
        let fmt = |t: Option<i64>| {
            t.map(|s| opsdesk_core::clock::format(opsdesk_core::clock::from_unix(s)))
        };
        let now = self.now().as_second();
        Ok(json!({
            "interval_seconds": self.automation.interval_secs,
            "max_tickets_per_automation": self.automation.max_per_automation,
            "last_started_at": fmt(state.last_started_at),
            "last_finished_at": fmt(state.last_finished_at),
            "next_run_at": fmt(Some(state.last_started_at.map_or(now, |t| t + self.automation.interval_secs))),
            "last_run": state.last_run,
            "running": state.run,
            "requested": c.job_flag(REQUEST_FLAG).await?,
            "lease_holder": if expires > now { Some(holder) } else { None },
        }))
    }

    /// `POST /api/v2/automations/run` (opsdesk): run at the next scheduler tick, whatever the
    /// interval says (a run in progress finishes first; the request then starts another).
    pub async fn request_automation_run(&self, actor: &Actor) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        tx.raise_job_flag(REQUEST_FLAG).await?;
        tx.commit().await?;
        Ok(())
    }
}

fn metrics_of(ms: &std::collections::HashMap<Id, TicketMetrics>, t: &Ticket) -> TicketMetrics {
    ms.get(&t.id)
        .cloned()
        .unwrap_or_else(|| TicketMetrics::from_ticket(t))
}
