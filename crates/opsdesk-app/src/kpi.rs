//! KPIs (docs/kpi.md): the facts each ticket write records, their rebuild from the audits, and
//! the reports — every metric by period (day, ISO week, month) in the KPI time zone, grouped
//! and filtered by engineer, assignee, group, organisation, plan, region, form, priority and
//! channel — plus the team's weekly baselines and the week in review.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use opsdesk_core::fields::TicketForm;
use opsdesk_core::kpi::{self, bucket_end, bucket_start, label, Dims, Fact, Period};
use opsdesk_core::model::{Group, Id, Organization, Role, User};
use opsdesk_core::ticket::{Audit, Ticket};
use opsdesk_core::ticket_metrics::{TicketMetrics, WriteFacts};
use opsdesk_store::{Cond, Conn, KpiQuery, KpiStat, Page, StatBucket, StatFill, Val};
use serde_json::{json, Value};

use crate::{Actor, App, AppError, Result};

/// The instance value holding the KPI time zone (`opsdesk kpi rebuild --time-zone`).
pub const TIME_ZONE_SETTING: &str = "kpi_time_zone";
pub use opsdesk_core::kpi::{PLAN_FIELD, REGION_FIELD};
/// The user field with an engineer's start date (baselines leave out their first months).
pub const START_DATE_FIELD: &str = "start_date";
/// Set once every ticket's facts exist (a new database, or after `opsdesk kpi rebuild`).
pub const FACTS_COMPLETE_SETTING: &str = "kpi_facts_complete";
/// SLA achievement and satisfaction targets (PRODUCT.md).
pub const SLA_TARGET: f64 = 0.95;
pub const SATISFACTION_TARGET: f64 = 0.95;
/// The share of an engineer's public replies that should be on their own tickets.
pub const ASSIGNED_SHARE_TARGET: (f64, f64) = (0.50, 0.60);
/// Weekly baseline: this share of the team mean.
pub const BASELINE_FACTOR: f64 = 0.85;
/// Engineers are left out of the baselines in their first two months.
pub const BASELINE_GRACE_MONTHS: i8 = 2;
/// The lease one node holds while it keeps the dashboards' durations ready
/// ([`App::keep_kpi_durations`]).
const KEEP_LEASE: &str = "kpi_durations";
/// Seconds the lease lasts: longer than a run, shorter than two ticks of the worker.
const KEEP_LEASE_SECS: i64 = 100;
/// The durations, by report name and fact kind.
const DURATIONS: &[(&str, &str)] = &[
    ("first_reply_time", kpi::FIRST_REPLY),
    ("next_reply_time", kpi::NEXT_REPLY),
    ("full_resolution_time", kpi::RESOLUTION),
    ("requester_wait_time", kpi::REQUESTER_WAIT),
];
/// Whether a report may be grouped by engineer (who acted): the replies are someone's, the
/// other durations are the ticket's (by assignee instead).
fn by_engineer(name: &str) -> bool {
    matches!(name, "first_reply_time" | "next_reply_time")
}
/// The longest range a report covers.
const MAX_DAYS: i64 = 3700;

/// Every report: name and what it measures.
pub const METRICS: &[(&str, &str)] = &[
    ("tickets", "Tickets created, solved and reopened in each period, and the backlog (unsolved tickets) at its end."),
    ("sla_achievement", "Per SLA target: instances met and missed in each period, achievement = met / (met + missed), against the 95 % target."),
    ("first_reply_time", "Minutes from creation to the first public reply by staff, at the reply: count, median and 90th percentile, calendar and business hours."),
    ("next_reply_time", "Minutes from a requester's public comment to the next public reply by staff, at the reply."),
    ("full_resolution_time", "Minutes from creation to the solve, at the solve."),
    ("requester_wait_time", "Minutes the requester waited (new, open, on-hold) until the solve, at the solve."),
    ("resolution_to_wait_ratio", "Median full resolution time divided by median requester wait time, for the tickets solved in each period."),
    ("reopen_rate", "Of the tickets solved in each period, the share that had been reopened."),
    ("one_touch", "Of the tickets solved in each period, the share solved with exactly one public reply by staff."),
    ("satisfaction", "Good ratings / all ratings in each period, against the 95 % target."),
    ("engineer_activity", "Per engineer: tickets solved (as assignee), public replies, internal notes, and the share of public replies on tickets assigned to them (target 50-60 %)."),
    ("baselines", "Per ISO week: each engineer's solved tickets, public replies and internal notes against 0.85 x the team mean (engineers in their first two months are shown but not counted)."),
];

/// Dimensions: the parameter name, the fact column, and whether it is an id.
const DIMENSIONS: &[(&str, &str)] = &[
    ("engineer", "agent_id"),
    ("assignee", "assignee_id"),
    ("group", "group_id"),
    ("organization", "organization_id"),
    ("plan", "plan"),
    ("region", "region"),
    ("form", "form_id"),
    ("priority", "priority"),
    ("channel", "channel"),
];

fn bad(msg: impl Into<String>) -> AppError {
    AppError::BadRequest(msg.into())
}

/// A report: its rows are objects with the same keys, in `columns` order.
#[derive(Debug, Clone)]
pub struct KpiReport {
    pub metric: String,
    pub period: &'static str,
    pub time_zone: String,
    pub from: String,
    pub to: String,
    pub by: Option<String>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl KpiReport {
    pub fn to_json(&self) -> Value {
        let rows: Vec<Value> = self
            .rows
            .iter()
            .map(|r| {
                let m: serde_json::Map<String, Value> = self
                    .columns
                    .iter()
                    .cloned()
                    .zip(r.iter().cloned())
                    .collect();
                Value::Object(m)
            })
            .collect();
        json!({"kpi": {
            "metric": self.metric,
            "period": self.period,
            "time_zone": self.time_zone,
            "from": self.from,
            "to": self.to,
            "by": self.by,
            "columns": self.columns,
            "rows": rows,
        }})
    }

    /// RFC 4180 CSV with a header row.
    pub fn to_csv(&self) -> String {
        let cell = |v: &Value| -> String {
            let s = match v {
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if s.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", s.replace('"', "\"\""))
            } else {
                s
            }
        };
        let mut out = String::new();
        let header: Vec<Value> = self.columns.iter().map(|c| json!(c)).collect();
        for r in std::iter::once(&header).chain(&self.rows) {
            out.push_str(&r.iter().map(cell).collect::<Vec<_>>().join(","));
            out.push_str("\r\n");
        }
        out
    }
}

/// What a report was asked for.
struct Request {
    from: i64,
    /// Excluded.
    to: i64,
    period: Period,
    /// The dimension's parameter name and column.
    by: Option<(&'static str, &'static str)>,
    conds: Vec<Cond>,
    tz: jiff::tz::TimeZone,
    /// Today, in the KPI time zone: buckets that ended before it are closed.
    today: i64,
    /// Closed buckets' figures computed while answering, kept once the read connection is
    /// given back ([`App::keep_stats`]).
    fills: std::sync::Mutex<Vec<StatFill>>,
}

impl Request {
    /// The facts of `kinds` in the range, by bucket (`by_period`) and the `by` dimension.
    fn query(&self, kinds: &[&'static str], by_period: bool) -> KpiQuery {
        KpiQuery {
            kinds: kinds.to_vec(),
            from_day: Some(self.from),
            to_day: Some(self.to),
            conds: self.conds.clone(),
            by: self.by.map(|b| b.1),
            bucket: by_period.then(|| self.bucket_sql()).flatten(),
        }
    }

    /// The bucket's first day as SQL over `day`: ISO weeks by arithmetic (1970-01-01 was a
    /// Thursday), months by the range's month boundaries.
    fn bucket_sql(&self) -> Option<String> {
        match self.period {
            Period::Day => Some("day".into()),
            // SQL's % keeps the sign: made non-negative for days before 1970.
            Period::Week => Some("(day - (((day + 3) % 7 + 7) % 7))".into()),
            Period::Month => {
                let mut arms = String::new();
                let mut last = self.from;
                for b in self.buckets() {
                    let end = bucket_end(b, Period::Month, self.to);
                    arms.push_str(&format!(" WHEN day < {end} THEN {b}"));
                    last = b;
                }
                // Typed: PostgreSQL reads bare literals as 4-byte integers.
                Some(format!("CAST(CASE{arms} ELSE {last} END AS BIGINT)"))
            }
            Period::All => None,
        }
    }

    fn bucket(&self, day: i64) -> i64 {
        bucket_start(day, self.period, self.from)
    }

    /// Every bucket of the range, in order.
    fn buckets(&self) -> Vec<i64> {
        let mut out = vec![];
        let mut b = self.bucket(self.from);
        while b < self.to {
            out.push(b);
            b = bucket_end(b, self.period, self.to);
        }
        out
    }

    /// The buckets as durations are computed ([`Conn::kpi_stats_cached`]): the days of
    /// each inside the range, and whether its figures may be kept — a whole day, week or
    /// month that has ended (one row over a range that is exactly one of those, too).
    fn stat_buckets(&self) -> Vec<StatBucket> {
        if self.period == Period::All {
            let natural = [Period::Day, Period::Week, Period::Month]
                .into_iter()
                .any(|p| {
                    bucket_start(self.from, p, self.from) == self.from
                        && bucket_end(self.from, p, self.to) == self.to
                });
            return vec![StatBucket {
                first: self.from,
                end: self.to,
                cache: natural && self.to <= self.today,
            }];
        }
        self.buckets()
            .into_iter()
            .map(|b| {
                let end = bucket_end(b, self.period, self.to);
                StatBucket {
                    first: b.max(self.from),
                    end: end.min(self.to),
                    cache: b >= self.from && end <= self.to && end <= self.today,
                }
            })
            .collect()
    }

    fn period_name(&self) -> &'static str {
        match self.period {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::All => "all",
        }
    }
}

fn ratio(num: i64, den: i64) -> Value {
    if den == 0 {
        Value::Null
    } else {
        json!(((num as f64 / den as f64) * 10000.0).round() / 10000.0)
    }
}

fn ratio_f(num: Option<i64>, den: Option<i64>) -> Value {
    match (num, den) {
        (Some(n), Some(d)) if d > 0 => json!(((n as f64 / d as f64) * 100.0).round() / 100.0),
        _ => Value::Null,
    }
}

/// The day an engineer started: the user field `start_date` (YYYY-MM-DD) when set, else the
/// day their user was created.
fn start_day(u: &User, tz: &jiff::tz::TimeZone) -> i64 {
    u.user_fields
        .get(START_DATE_FIELD)
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<jiff::civil::Date>().ok())
        .map_or_else(
            || kpi::local_day(u.created_at.as_second(), tz),
            kpi::day_number,
        )
}

/// Counts by (bucket, dimension value), then kind: how many, and how many with each flag.
type Counts = BTreeMap<(i64, Option<String>), HashMap<String, (i64, [i64; 3])>>;

/// Calendar and business figures by (bucket, dimension value).
type Samples = BTreeMap<(i64, Option<String>), (KpiStat, KpiStat)>;

fn mean(st: &KpiStat) -> Value {
    if st.n == 0 {
        Value::Null
    } else {
        json!(((st.sum as f64 / st.n as f64) * 10.0).round() / 10.0)
    }
}

impl App {
    /// The KPI time zone (UTC unless `opsdesk kpi rebuild --time-zone` set one).
    pub(crate) async fn kpi_time_zone(&self, c: &mut Conn) -> Result<jiff::tz::TimeZone> {
        Ok(self.sla_config(c).await?.kpi_tz.clone())
    }

    /// Record what a ticket write did as KPI facts, and move the ticket's earlier facts to
    /// its current attributes. Runs in the write's transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_kpi_facts(
        &self,
        tx: &mut Conn,
        previous: Option<&Ticket>,
        t: &Ticket,
        old: Option<&TicketMetrics>,
        m: &TicketMetrics,
        audit: &Audit,
        staff: bool,
    ) -> Result<()> {
        let cfg = self.sla_config(tx).await?;
        let schedule = cfg.schedule_for(t);
        let comments = kpi::comments(&audit.events, audit.author_id);
        let facts = kpi::write_facts(&kpi::Write {
            before: previous,
            after: t,
            old_metrics: old,
            metrics: m,
            staff,
            author_id: audit.author_id,
            comments: &comments,
            at: audit.created_at.as_second(),
            schedule: schedule.as_deref(),
        });
        let dims = self.kpi_dims(tx, t).await?;
        // The plan and region change with the organisation (see `update_organization`), so
        // only the ticket's own attributes are compared.
        if let Some(p) = previous {
            let moved = Dims::of(p, None).changed(&Dims::of(t, None));
            if !moved.is_empty() {
                tx.set_kpi_dims(t.id, &dims, &moved).await?;
            }
        }
        self.insert_facts(tx, &cfg.kpi_tz, &facts, &dims).await
    }

    /// A ticket's attributes, with its organisation's plan and region.
    async fn kpi_dims(&self, tx: &mut Conn, t: &Ticket) -> Result<Dims> {
        let org = match t.organization_id {
            Some(o) => {
                // Shared: an organisation's plan cannot change under this write.
                tx.lock_organization(o, false).await?;
                tx.get_shared::<Organization>(o).await?
            }
            None => None,
        };
        Ok(Dims::of(t, org.as_ref()))
    }

    /// An organisation was written: when its plan or region changed, its tickets' facts
    /// follow.
    pub(crate) async fn kpi_organization_changed(
        &self,
        tx: &mut Conn,
        before: &Organization,
        after: &Organization,
    ) -> Result<()> {
        let attrs = |o: &Organization| {
            (
                kpi::org_field(o, PLAN_FIELD),
                kpi::org_field(o, REGION_FIELD),
            )
        };
        let (plan, region) = attrs(after);
        if attrs(before) != (plan.clone(), region.clone()) {
            tx.set_kpi_org(after.id, plan, region).await?;
        }
        Ok(())
    }

    async fn insert_facts(
        &self,
        tx: &mut Conn,
        tz: &jiff::tz::TimeZone,
        facts: &[Fact],
        dims: &Dims,
    ) -> Result<()> {
        if facts.is_empty() {
            return Ok(());
        }
        let rows: Vec<(Fact, i64)> = facts
            .iter()
            .map(|f| (f.clone(), kpi::local_day(f.time, tz)))
            .collect();
        tx.insert_kpi_facts(&rows, dims).await?;
        Ok(())
    }

    /// Record the SLA outcomes among a ticket's new metric events.
    pub(crate) async fn record_sla_facts(
        &self,
        tx: &mut Conn,
        t: &Ticket,
        old: Option<&opsdesk_core::sla::TicketSla>,
        events: &[Value],
    ) -> Result<()> {
        let breached = |metric: &str| {
            old.and_then(|o| o.metrics.iter().find(|m| m.metric == metric))
                .is_some_and(|m| m.breached)
        };
        let facts = kpi::sla_facts(t.id, &breached, events);
        // Most SLA refreshes meet or miss nothing: no organisation read for them.
        if facts.is_empty() {
            return Ok(());
        }
        let tz = self.kpi_time_zone(tx).await?;
        let dims = self.kpi_dims(tx, t).await?;
        self.insert_facts(tx, &tz, &facts, &dims).await
    }

    /// Derive a ticket's facts again from its audits and metric events (a deleted ticket has
    /// none).
    pub(crate) async fn rebuild_ticket_kpis(
        &self,
        tx: &mut Conn,
        id: Id,
        staff: &mut HashMap<Id, bool>,
    ) -> Result<()> {
        // Locked first (PostgreSQL), so a write to the ticket waits for its rebuild.
        let current = tx.ticket_for_update(id).await?;
        tx.delete_kpi_facts(id).await?;
        let Some(current) = current else {
            return Ok(());
        };
        let cfg = self.sla_config(tx).await?;
        let schedule = cfg.schedule_for(&current);
        let audits = tx.all_audits(id).await?;
        let mut before: Option<Ticket> = None;
        let mut metrics: Option<TicketMetrics> = None;
        let mut facts = vec![];
        for a in &audits {
            let mut after = before
                .clone()
                .unwrap_or_else(|| Ticket::blank(id, a.via.clone(), a.created_at));
            for e in &a.events {
                opsdesk_core::ticket::apply_event(&mut after, e);
            }
            after.updated_at = a.created_at;
            // The author's role when they wrote, kept in the audit; audits from before it
            // was kept fall back to the author's role now.
            let then = a.metadata[crate::tickets::AUTHOR_ROLE]
                .as_str()
                .and_then(Role::parse);
            let is_staff = match (then, staff.get(&a.author_id)) {
                (Some(role), _) => role.is_staff(),
                (None, Some(s)) => *s,
                (None, None) => {
                    let s = match tx.get_shared::<User>(a.author_id).await? {
                        Some(u) => u.role.is_staff(),
                        None => false,
                    };
                    staff.insert(a.author_id, s);
                    s
                }
            };
            let w = WriteFacts::of(a.author_id, is_staff, &a.events);
            let m =
                TicketMetrics::observe(metrics.clone(), before.as_ref(), &after, w, a.created_at);
            let comments = kpi::comments(&a.events, a.author_id);
            facts.extend(kpi::write_facts(&kpi::Write {
                before: before.as_ref(),
                after: &after,
                old_metrics: metrics.as_ref(),
                metrics: &m,
                staff: is_staff,
                author_id: a.author_id,
                comments: &comments,
                at: a.created_at.as_second(),
                schedule: schedule.as_deref(),
            }));
            metrics = Some(m);
            before = Some(after);
        }
        let events = tx.metric_events_of(id).await?;
        facts.extend(kpi::sla_facts(id, &|_| false, &events));
        let dims = self.kpi_dims(tx, &current).await?;
        self.insert_facts(tx, &cfg.kpi_tz, &facts, &dims).await
    }

    /// Set the KPI time zone (when given) and derive every ticket's facts again, a batch at a
    /// time; returns how many tickets were rebuilt. `opsdesk kpi rebuild`.
    pub async fn rebuild_kpis(
        &self,
        time_zone: Option<&str>,
        mut progress: impl FnMut(usize),
    ) -> Result<usize> {
        if let Some(z) = time_zone {
            jiff::tz::TimeZone::get(z).map_err(|_| {
                bad(format!(
                    "unknown time zone {z:?} (an IANA name such as Europe/Amsterdam)"
                ))
            })?;
            let mut tx = self.store.write().await?;
            tx.set_instance_value(TIME_ZONE_SETTING, z).await?;
            tx.bump_rules_version().await?;
            tx.commit().await?;
            self.sla_cache.clear();
        }
        // Start from nothing, so the daily counts are exact again; reports are partial until
        // the walk is done.
        let mut tx = self.store.write().await?;
        tx.clear_kpi().await?;
        tx.commit().await?;
        let mut after = 0;
        let mut n = 0;
        let mut staff = HashMap::new();
        loop {
            let ids = {
                let mut c = self.store.read().await?;
                c.ticket_ids_after(after, 500).await?
            };
            let Some(last) = ids.last() else { break };
            after = *last;
            let mut tx = self.store.write().await?;
            for id in &ids {
                self.rebuild_ticket_kpis(&mut tx, *id, &mut staff).await?;
            }
            tx.commit().await?;
            n += ids.len();
            progress(n);
        }
        let mut tx = self.store.write().await?;
        tx.set_instance_value(FACTS_COMPLETE_SETTING, "1").await?;
        tx.commit().await?;
        Ok(n)
    }

    /// On start: a new database has every ticket's facts from the first write; one upgraded
    /// from before KPIs needs `opsdesk kpi rebuild` once, which the log and the catalogue say.
    pub(crate) async fn check_kpi_facts(&self) -> Result<bool> {
        let mut tx = self.store.write().await?;
        if tx.instance_value(FACTS_COMPLETE_SETTING).await?.is_some() {
            return Ok(true);
        }
        let complete = tx.ticket_ids_after(0, 1).await?.is_empty();
        if complete {
            tx.set_instance_value(FACTS_COMPLETE_SETTING, "1").await?;
            tx.commit().await?;
        } else {
            tracing::warn!(
                "tickets written before KPIs have no KPI facts yet: run `opsdesk kpi rebuild` once"
            );
        }
        Ok(complete)
    }

    /// The catalogue: every report, its dimensions and the time zone.
    pub async fn kpi_catalogue(&self, actor: &Actor) -> Result<Value> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let tz = self.kpi_time_zone(&mut c).await?;
        Ok(json!({
            "kpis": METRICS.iter().map(|(n, d)| json!({"name": n, "description": d})).collect::<Vec<_>>(),
            "dimensions": DIMENSIONS.iter().map(|d| d.0).collect::<Vec<_>>(),
            "periods": ["day", "week", "month", "all"],
            "time_zone": tz.iana_name().unwrap_or("UTC"),
            // False until `opsdesk kpi rebuild` has run on a database upgraded from before KPIs.
            "facts_complete": c.instance_value(FACTS_COMPLETE_SETTING).await?.is_some(),
        }))
    }

    async fn kpi_request(
        &self,
        c: &mut Conn,
        params: &BTreeMap<String, String>,
        default_period: Period,
    ) -> Result<Request> {
        let tz = self.kpi_time_zone(c).await?;
        let today = kpi::local_day(self.now().as_second(), &tz);
        let date = |k: &str| -> Result<Option<i64>> {
            match params.get(k) {
                None => Ok(None),
                Some(s) => s
                    .parse::<jiff::civil::Date>()
                    .map(|d| Some(kpi::day_number(d)))
                    .map_err(|_| bad(format!("{k} must be a date such as 2026-11-23"))),
            }
        };
        let period = match params.get("period") {
            Some(p) => Period::parse(p)
                .ok_or_else(|| bad("period must be one of day, week, month, all"))?,
            None => default_period,
        };
        let (from, to) = if let Some(w) = params.get("week") {
            let monday = kpi::parse_week(w)
                .ok_or_else(|| bad("week must be an ISO week such as 2026-W48"))?;
            (monday, monday + 7)
        } else {
            let to = date("to")?.unwrap_or(today) + 1;
            let from = match date("from")? {
                Some(f) => f,
                // Twelve whole periods up to today.
                None => {
                    let mut b = bucket_start(to - 1, period, to - 84);
                    for _ in 0..11 {
                        b = bucket_start(b - 1, period, to - 84);
                    }
                    b
                }
            };
            (from, to)
        };
        if from >= to {
            return Err(bad("from must not be after to"));
        }
        if to - from > MAX_DAYS {
            return Err(bad(format!("a report covers at most {MAX_DAYS} days")));
        }
        let by =
            match params.get("by") {
                Some(b) => Some(DIMENSIONS.iter().find(|d| d.0 == b).copied().ok_or_else(
                    || {
                        bad(format!(
                            "by must be one of {}",
                            DIMENSIONS
                                .iter()
                                .map(|d| d.0)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ))
                    },
                )?),
                None => None,
            };
        let mut conds = vec![];
        for (name, col) in DIMENSIONS {
            let key = match *name {
                "plan" | "region" | "priority" | "channel" => name.to_string(),
                _ => format!("{name}_id"),
            };
            let Some(v) = params.get(&key) else { continue };
            match *name {
                "plan" | "region" | "priority" | "channel" => {
                    if v == "none" {
                        conds.push(Cond::IsNull(col));
                    } else {
                        conds.push(Cond::Eq(col, Val::from(v.as_str())));
                    }
                }
                _ => {
                    if v == "none" {
                        conds.push(Cond::IsNull(col));
                    } else {
                        let id: Id = v
                            .parse()
                            .map_err(|_| bad(format!("{key} must be an id or none")))?;
                        conds.push(Cond::Eq(col, Val::Int(id)));
                    }
                }
            }
        }
        Ok(Request {
            from,
            to,
            period,
            by,
            conds,
            tz,
            today,
            fills: Default::default(),
        })
    }

    /// Keep the figures the dashboards read ready before anyone asks: every duration over
    /// the last 53 weeks by week and the last 13 months by month, in total and by engineer
    /// (replies) — the closed buckets whose facts changed are computed and kept
    /// ([`Conn::kpi_stats_cached`]); when nothing changed this only compares versions. One
    /// node at a time (a lease). Returns whether this node ran it. The workers call it
    /// every minute.
    pub async fn keep_kpi_durations(&self) -> Result<bool> {
        let mut tx = self.store.write().await?;
        let now = self.now().as_second();
        if tx
            .take_lease(KEEP_LEASE, &self.node_id, now, KEEP_LEASE_SECS)
            .await?
            .is_none()
        {
            return Ok(false);
        }
        tx.commit().await?;
        let mut c = self.store.read().await?;
        let mut r = self
            .kpi_request(&mut c, &BTreeMap::new(), Period::Week)
            .await?;
        let to = r.to;
        for (period, from) in [
            (Period::Week, bucket_start(to - 1 - 7 * 52, Period::Week, 0)),
            (
                Period::Month,
                kpi::day_number(
                    kpi::date_of(to - 1)
                        .first_of_month()
                        .saturating_sub(jiff::Span::new().months(12)),
                ),
            ),
        ] {
            r.period = period;
            r.from = from;
            for by in [None, DIMENSIONS.first().copied()] {
                r.by = by;
                for (name, kind) in DURATIONS {
                    if by.is_some() && !by_engineer(name) {
                        continue;
                    }
                    self.samples(&mut c, &r, kind).await?;
                }
            }
        }
        drop(c);
        self.keep_stats(&r).await;
        Ok(true)
    }

    /// `GET /api/v2/kpis/{name}`: one report.
    pub async fn kpi_report(
        &self,
        actor: &Actor,
        name: &str,
        params: &BTreeMap<String, String>,
    ) -> Result<KpiReport> {
        actor.require_staff()?;
        if !METRICS.iter().any(|m| m.0 == name) {
            return Err(AppError::NotFound);
        }
        let mut c = self.store.read().await?;
        let mut r = self.kpi_request(&mut c, params, Period::Week).await?;
        let agent_only = matches!(name, "engineer_activity" | "baselines");
        if agent_only {
            match r.by {
                None => r.by = DIMENSIONS.first().copied(),
                Some(("engineer", _)) => {}
                Some(_) => return Err(bad(format!("{name} is by engineer"))),
            }
        } else if r.by.is_some_and(|b| b.0 == "engineer") && !by_engineer(name) {
            return Err(bad(format!(
                "{name} cannot be grouped by engineer (the one who acted); use by=assignee"
            )));
        }
        if name == "baselines" && r.period != Period::Week {
            return Err(bad("baselines are weekly (period=week)"));
        }
        let duration = DURATIONS.iter().find(|d| d.0 == name);
        let (columns, rows) = if let Some(&(_, kind)) = duration {
            self.duration_report(&mut c, &r, kind).await?
        } else {
            match name {
                "tickets" => self.tickets_report(&mut c, &r).await?,
                "sla_achievement" => {
                    self.sla_report(&mut c, &r, params.get("sla_metric"))
                        .await?
                }
                "resolution_to_wait_ratio" => self.ratio_report(&mut c, &r).await?,
                "reopen_rate" => self.solve_share_report(&mut c, &r, 2, "reopened").await?,
                "one_touch" => self.solve_share_report(&mut c, &r, 1, "one_touch").await?,
                "satisfaction" => self.satisfaction_report(&mut c, &r).await?,
                "engineer_activity" => self.activity_report(&mut c, &r).await?,
                _ => self.baselines_report(&mut c, &r).await?,
            }
        };
        let mut columns: Vec<String> = columns.into_iter().map(String::from).collect();
        let mut rows = rows;
        if let Some((dim, _)) = r.by {
            self.name_dimension(&mut c, dim, &mut columns, &mut rows)
                .await?;
        }
        drop(c);
        self.keep_stats(&r).await;
        Ok(KpiReport {
            metric: name.to_string(),
            period: r.period_name(),
            time_zone: r.tz.iana_name().unwrap_or("UTC").to_string(),
            from: kpi::date_of(r.from).to_string(),
            to: kpi::date_of(r.to - 1).to_string(),
            by: r.by.map(|b| b.0.to_string()),
            columns,
            rows,
        })
    }

    /// Group rows by plan or region (their organisation's field), and name the dimension's
    /// ids. Rows come in with `period`, `start`, then the dimension's raw value (column 2).
    async fn name_dimension(
        &self,
        c: &mut Conn,
        dim: &str,
        columns: &mut Vec<String>,
        rows: &mut [Vec<Value>],
    ) -> Result<()> {
        let ids: Vec<Id> = rows
            .iter()
            .filter_map(|r| {
                r.get(2)
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
            })
            .collect::<BTreeSet<Id>>()
            .into_iter()
            .collect();
        if matches!(dim, "plan" | "region" | "priority" | "channel") {
            columns[2] = dim.to_string();
            return Ok(());
        }
        let mut names: HashMap<Id, String> = HashMap::new();
        for chunk in ids.chunks(500) {
            let named: Vec<(Id, String)> = match dim {
                "engineer" | "assignee" => c
                    .get_many::<User>(chunk)
                    .await?
                    .into_iter()
                    .map(|u| (u.id, u.name))
                    .collect(),
                "group" => c
                    .get_many::<Group>(chunk)
                    .await?
                    .into_iter()
                    .map(|g| (g.id, g.name))
                    .collect(),
                "organization" => c
                    .get_many::<Organization>(chunk)
                    .await?
                    .into_iter()
                    .map(|o| (o.id, o.name))
                    .collect(),
                "form" => c
                    .get_many::<TicketForm>(chunk)
                    .await?
                    .into_iter()
                    .map(|f| (f.id, f.name))
                    .collect(),
                _ => vec![],
            };
            names.extend(named);
        }
        let id_of = |r: &Vec<Value>| {
            r.get(2)
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Id>().ok())
        };
        columns[2] = format!("{dim}_id");
        columns.insert(3, format!("{dim}_name"));
        for r in rows.iter_mut() {
            let id = id_of(r);
            r[2] = id.map_or(Value::Null, |i| json!(i));
            r.insert(
                3,
                id.and_then(|i| names.get(&i))
                    .map_or(Value::Null, |n| json!(n)),
            );
        }
        Ok(())
    }
    /// Rows for every (bucket, dimension value) with a count; `dense` also gives every bucket
    /// to every value seen.
    fn keys(
        &self,
        r: &Request,
        seen: impl Iterator<Item = (i64, Option<String>)>,
        dense: bool,
    ) -> Vec<(i64, Option<String>)> {
        let seen: BTreeSet<(i64, Option<String>)> = seen.collect();
        if r.by.is_none() {
            return r.buckets().into_iter().map(|b| (b, None)).collect();
        }
        if !dense {
            return seen.into_iter().collect();
        }
        let dims: BTreeSet<Option<String>> = seen.into_iter().map(|k| k.1).collect();
        let mut out = vec![];
        for d in dims {
            for b in r.buckets() {
                out.push((b, d.clone()));
            }
        }
        out
    }

    fn lead(&self, r: &Request, b: i64, d: &Option<String>) -> Vec<Value> {
        let mut row = vec![
            json!(label(b, r.period)),
            json!(kpi::date_of(b).to_string()),
        ];
        if r.by.is_some() {
            row.push(d.as_ref().map_or(Value::Null, |s| json!(s)));
        }
        row
    }

    fn lead_columns(&self, r: &Request, rest: &[&'static str]) -> Vec<&'static str> {
        let mut cols = vec!["period", "start"];
        if r.by.is_some() {
            cols.push("dimension");
        }
        cols.extend_from_slice(rest);
        cols
    }

    async fn counts(&self, c: &mut Conn, r: &Request, kinds: &[&'static str]) -> Result<Counts> {
        let rows = c.kpi_counts(&r.query(kinds, true)).await?;
        let mut out: Counts = BTreeMap::new();
        for x in rows {
            let b = r.bucket(x.bucket.unwrap_or(r.from));
            let e = out
                .entry((b, x.dim))
                .or_default()
                .entry(x.kind)
                .or_default();
            e.0 += x.n;
            for i in 0..3 {
                e.1[i] += x.flagged[i];
            }
        }
        Ok(out)
    }

    async fn tickets_report(
        &self,
        c: &mut Conn,
        r: &Request,
    ) -> Result<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let kinds = [kpi::CREATED, kpi::SOLVED, kpi::REOPENED];
        let counts = self.counts(c, r, &kinds).await?;
        // The backlog when the range starts: the tickets unsolved now, less what changed
        // since (so the cost follows the range, not the whole history).
        let q = r.query(&kinds, false);
        let mut open: HashMap<Option<String>, i64> =
            c.kpi_open_tickets(&q).await?.into_iter().collect();
        let mut since = q;
        since.to_day = None;
        for x in c.kpi_counts(&since).await? {
            let sign = if x.kind == kpi::SOLVED { 1 } else { -1 };
            *open.entry(x.dim).or_default() += sign * x.n;
        }
        let seen = counts
            .keys()
            .cloned()
            .chain(open.keys().map(|d| (r.from, d.clone())));
        let mut rows = vec![];
        for (b, d) in self.keys(r, seen, true) {
            let get = |k: &str| {
                counts
                    .get(&(b, d.clone()))
                    .and_then(|m| m.get(k))
                    .map_or(0, |v| v.0)
            };
            let (cr, so, re) = (get(kpi::CREATED), get(kpi::SOLVED), get(kpi::REOPENED));
            let backlog = open.entry(d.clone()).or_default();
            *backlog += cr - so + re;
            let mut row = self.lead(r, b, &d);
            row.extend([json!(cr), json!(so), json!(re), json!(*backlog)]);
            rows.push(row);
        }
        Ok((
            self.lead_columns(r, &["created", "solved", "reopened", "backlog"]),
            rows,
        ))
    }

    async fn sla_report(
        &self,
        c: &mut Conn,
        r: &Request,
        only: Option<&String>,
    ) -> Result<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let mut q = r.query(&[kpi::SLA_MET, kpi::SLA_MISSED], true);
        if let Some(m) = only {
            q.conds.push(Cond::Eq("metric", Val::from(m.as_str())));
        }
        // Grouped by the target first; the dimension (if any) is kept apart.
        let by = q.by;
        let mut rows_by: BTreeMap<(i64, Option<String>, String), (i64, i64)> = BTreeMap::new();
        let mut metrics = BTreeSet::new();
        // The targets first, then one query per target, so the single dimension column
        // serves both.
        q.by = Some("metric");
        q.bucket = None;
        let per_metric = c.kpi_counts(&q).await?;
        for x in &per_metric {
            if let Some(m) = &x.dim {
                metrics.insert(m.clone());
            }
        }
        for m in &metrics {
            let mut qm = r.query(&[kpi::SLA_MET, kpi::SLA_MISSED], true);
            qm.by = by;
            qm.conds.push(Cond::Eq("metric", Val::from(m.as_str())));
            for x in c.kpi_counts(&qm).await? {
                let b = r.bucket(x.bucket.unwrap_or(r.from));
                let e = rows_by.entry((b, x.dim, m.clone())).or_default();
                if x.kind == kpi::SLA_MET {
                    e.0 += x.n;
                } else {
                    e.1 += x.n;
                }
            }
        }
        let mut rows = vec![];
        let seen = rows_by.keys().map(|k| (k.0, k.1.clone()));
        for (b, d) in self.keys(r, seen, false) {
            for m in &metrics {
                let (met, missed) = rows_by
                    .get(&(b, d.clone(), m.clone()))
                    .copied()
                    .unwrap_or((0, 0));
                if r.by.is_some() && met + missed == 0 {
                    continue;
                }
                let mut row = self.lead(r, b, &d);
                let rate = ratio(met, met + missed);
                let meets = rate.as_f64().map(|x| x >= SLA_TARGET);
                row.extend([
                    json!(m),
                    json!(met),
                    json!(missed),
                    rate,
                    json!(SLA_TARGET),
                    json!(meets),
                ]);
                rows.push(row);
            }
        }
        Ok((
            self.lead_columns(
                r,
                &[
                    "sla_metric",
                    "met",
                    "missed",
                    "achievement",
                    "target",
                    "meets_target",
                ],
            ),
            rows,
        ))
    }

    async fn samples(&self, c: &mut Conn, r: &Request, kind: &'static str) -> Result<Samples> {
        let q = r.query(&[kind], true);
        let (stats, fills) = c.kpi_stats_cached(&q, &r.stat_buckets()).await?;
        if let Ok(mut f) = r.fills.lock() {
            f.extend(fills);
        }
        Ok(stats
            .into_iter()
            .map(|(cal, bus)| {
                let key = (r.bucket(cal.bucket.unwrap_or(r.from)), cal.dim.clone());
                (key, (cal, bus))
            })
            .collect())
    }

    /// Keep the closed buckets' figures a request computed. Called after its read
    /// connection is given back, so a burst of reports cannot hold every pooled connection
    /// while each waits for one to write. A failure to keep them costs only time.
    async fn keep_stats(&self, r: &Request) {
        let fills = r
            .fills
            .lock()
            .map(|mut f| std::mem::take(&mut *f))
            .unwrap_or_default();
        if fills.is_empty() {
            return;
        }
        let keep = async {
            let mut tx = self.store.write().await?;
            tx.save_kpi_stats(&fills).await?;
            tx.commit().await
        };
        if let Err(e) = keep.await {
            tracing::warn!(error = %e, "keeping KPI duration figures");
        }
    }

    async fn duration_report(
        &self,
        c: &mut Conn,
        r: &Request,
        kind: &'static str,
    ) -> Result<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let s = self.samples(c, r, kind).await?;
        let mut rows = vec![];
        for (b, d) in self.keys(r, s.keys().cloned(), false) {
            let empty = (KpiStat::empty(), KpiStat::empty());
            let (cal, bus) = s.get(&(b, d.clone())).unwrap_or(&empty);
            let mut row = self.lead(r, b, &d);
            row.extend([
                json!(cal.n),
                json!(cal.median),
                json!(cal.p90),
                mean(cal),
                json!(bus.median),
                json!(bus.p90),
                mean(bus),
            ]);
            rows.push(row);
        }
        Ok((
            self.lead_columns(
                r,
                &[
                    "count",
                    "median_calendar",
                    "p90_calendar",
                    "mean_calendar",
                    "median_business",
                    "p90_business",
                    "mean_business",
                ],
            ),
            rows,
        ))
    }

    async fn ratio_report(
        &self,
        c: &mut Conn,
        r: &Request,
    ) -> Result<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let res = self.samples(c, r, kpi::RESOLUTION).await?;
        let wait = self.samples(c, r, kpi::REQUESTER_WAIT).await?;
        let mut rows = vec![];
        for (b, d) in self.keys(r, res.keys().cloned(), false) {
            let empty = (KpiStat::empty(), KpiStat::empty());
            let (rc, rb) = res.get(&(b, d.clone())).unwrap_or(&empty);
            let (wc, wb) = wait.get(&(b, d.clone())).unwrap_or(&empty);
            let mut row = self.lead(r, b, &d);
            let (mrc, mwc) = (rc.median, wc.median);
            let (mrb, mwb) = (rb.median, wb.median);
            row.extend([
                json!(rc.n),
                json!(mrc),
                json!(mwc),
                ratio_f(mrc, mwc),
                json!(mrb),
                json!(mwb),
                ratio_f(mrb, mwb),
            ]);
            rows.push(row);
        }
        Ok((
            self.lead_columns(
                r,
                &[
                    "solved",
                    "median_resolution_calendar",
                    "median_wait_calendar",
                    "ratio_calendar",
                    "median_resolution_business",
                    "median_wait_business",
                    "ratio_business",
                ],
            ),
            rows,
        ))
    }

    /// Of the solves in each period, how many carry a flag (1: one-touch, 2: was reopened).
    async fn solve_share_report(
        &self,
        c: &mut Conn,
        r: &Request,
        flag: usize,
        name: &'static str,
    ) -> Result<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let counts = self.counts(c, r, &[kpi::SOLVED]).await?;
        let mut rows = vec![];
        for (b, d) in self.keys(r, counts.keys().cloned(), false) {
            let (n, f) = counts
                .get(&(b, d.clone()))
                .and_then(|m| m.get(kpi::SOLVED))
                .map_or((0, 0), |v| (v.0, v.1[flag]));
            let mut row = self.lead(r, b, &d);
            row.extend([json!(n), json!(f), ratio(f, n)]);
            rows.push(row);
        }
        Ok((self.lead_columns(r, &["solved", name, "rate"]), rows))
    }

    async fn satisfaction_report(
        &self,
        c: &mut Conn,
        r: &Request,
    ) -> Result<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let counts = self
            .counts(c, r, &[kpi::RATED_GOOD, kpi::RATED_BAD])
            .await?;
        let mut rows = vec![];
        for (b, d) in self.keys(r, counts.keys().cloned(), false) {
            let get = |k: &str| {
                counts
                    .get(&(b, d.clone()))
                    .and_then(|m| m.get(k))
                    .map_or(0, |v| v.0)
            };
            let (good, badr) = (get(kpi::RATED_GOOD), get(kpi::RATED_BAD));
            let mut row = self.lead(r, b, &d);
            let rate = ratio(good, good + badr);
            let meets = rate.as_f64().map(|x| x >= SATISFACTION_TARGET);
            row.extend([
                json!(good + badr),
                json!(good),
                json!(badr),
                rate,
                json!(SATISFACTION_TARGET),
                json!(meets),
            ]);
            rows.push(row);
        }
        Ok((
            self.lead_columns(
                r,
                &[
                    "rated",
                    "good",
                    "bad",
                    "satisfaction",
                    "target",
                    "meets_target",
                ],
            ),
            rows,
        ))
    }

    /// Per (bucket, engineer): solved, public replies, internal notes, replies on own tickets.
    async fn activity(
        &self,
        c: &mut Conn,
        r: &Request,
    ) -> Result<BTreeMap<(i64, Option<String>), [i64; 4]>> {
        let counts = self
            .counts(c, r, &[kpi::SOLVED, kpi::PUBLIC_REPLY, kpi::INTERNAL_NOTE])
            .await?;
        Ok(counts
            .into_iter()
            .filter(|(k, _)| k.1.is_some())
            .map(|(k, m)| {
                let get = |kind: &str| m.get(kind).copied().unwrap_or_default();
                let p = get(kpi::PUBLIC_REPLY);
                (
                    k,
                    [get(kpi::SOLVED).0, p.0, get(kpi::INTERNAL_NOTE).0, p.1[0]],
                )
            })
            .collect())
    }

    async fn activity_report(
        &self,
        c: &mut Conn,
        r: &Request,
    ) -> Result<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let a = self.activity(c, r).await?;
        let mut rows = vec![];
        for ((b, d), v) in &a {
            let mut row = self.lead(r, *b, d);
            let share = ratio(v[3], v[1]);
            let in_target = share
                .as_f64()
                .map(|s| s >= ASSIGNED_SHARE_TARGET.0 && s <= ASSIGNED_SHARE_TARGET.1);
            row.extend([
                json!(v[0]),
                json!(v[1]),
                json!(v[2]),
                json!(v[3]),
                share,
                json!(in_target),
            ]);
            rows.push(row);
        }
        Ok((
            self.lead_columns(
                r,
                &[
                    "solved",
                    "public_replies",
                    "internal_notes",
                    "public_replies_on_assigned",
                    "assigned_share",
                    "assigned_share_in_target",
                ],
            ),
            rows,
        ))
    }

    /// The weekly baselines: every agent (and anyone else with activity) each week, against
    /// 0.85 x the mean of the engineers past their first two months.
    async fn baselines_report(
        &self,
        c: &mut Conn,
        r: &Request,
    ) -> Result<(Vec<&'static str>, Vec<Vec<Value>>)> {
        let a = self.activity(c, r).await?;
        let agents: Vec<User> = c
            .list(
                &[Cond::Eq("role", Val::from("agent"))],
                &Page::All { limit: 100_000 },
            )
            .await?
            .items;
        let mut people: BTreeMap<Id, i64> = agents
            .iter()
            .filter(|u| u.active && !u.suspended && u.role == Role::Agent)
            .map(|u| (u.id, start_day(u, &r.tz)))
            .collect();
        let others: Vec<Id> = a
            .keys()
            .filter_map(|k| k.1.as_ref().and_then(|s| s.parse::<Id>().ok()))
            .filter(|id| !people.contains_key(id))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for u in c.get_many::<User>(&others).await? {
            people.insert(u.id, start_day(&u, &r.tz));
        }
        let mut rows = vec![];
        for b in r.buckets() {
            // Eligible: started at least two months before the week began.
            let week_start = kpi::date_of(b);
            let cutoff = week_start
                .checked_sub(jiff::Span::new().months(BASELINE_GRACE_MONTHS))
                .unwrap_or(week_start);
            let cutoff_day = kpi::day_number(cutoff);
            let vals = |id: Id| {
                a.get(&(b, Some(id.to_string())))
                    .copied()
                    .unwrap_or_default()
            };
            let eligible: Vec<Id> = people
                .iter()
                .filter(|(_, started)| **started <= cutoff_day)
                .map(|(id, _)| *id)
                .collect();
            let mut base = [None; 3];
            if !eligible.is_empty() {
                for (i, slot) in base.iter_mut().enumerate() {
                    let sum: i64 = eligible.iter().map(|id| vals(*id)[i]).sum();
                    let mean = sum as f64 / eligible.len() as f64;
                    *slot = Some((BASELINE_FACTOR * mean * 100.0).round() / 100.0);
                }
            }
            for id in people.keys() {
                let v = vals(*id);
                let is_eligible = eligible.contains(id);
                let mut row = self.lead(r, b, &Some(id.to_string()));
                row.push(json!(is_eligible));
                for (i, bl) in base.iter().enumerate() {
                    row.push(json!(v[i]));
                    row.push(json!(bl));
                    row.push(json!(is_eligible && bl.is_some_and(|x| (v[i] as f64) < x)));
                }
                rows.push(row);
            }
        }
        Ok((
            self.lead_columns(
                r,
                &[
                    "counted",
                    "solved",
                    "baseline_solved",
                    "under_solved",
                    "public_replies",
                    "baseline_public_replies",
                    "under_public_replies",
                    "internal_notes",
                    "baseline_internal_notes",
                    "under_internal_notes",
                ],
            ),
            rows,
        ))
    }

    /// The dashboards' calendar in the KPI time zone: the Monday `weeks_back` whole weeks
    /// before this week's (YYYY-MM-DD), today (YYYY-MM-DD), and last week's label (YYYY-Www).
    pub async fn kpi_recent_weeks(&self, weeks_back: i64) -> Result<(String, String, String)> {
        let mut c = self.store.read().await?;
        let tz = self.kpi_time_zone(&mut c).await?;
        let today = kpi::local_day(self.now().as_second(), &tz);
        let monday = bucket_start(today, Period::Week, today);
        Ok((
            label(monday - 7 * weeks_back, Period::Day),
            label(today, Period::Day),
            label(monday - 7, Period::Week),
        ))
    }

    /// The support week in review (`GET /api/v2/kpis/week_in_review?week=2026-W48`): the
    /// week's numbers in one object, and as Markdown.
    pub async fn week_in_review(
        &self,
        actor: &Actor,
        params: &BTreeMap<String, String>,
    ) -> Result<(Value, String)> {
        actor.require_staff()?;
        let mut p = params.clone();
        if !p.contains_key("week") {
            let mut c = self.store.read().await?;
            let tz = self.kpi_time_zone(&mut c).await?;
            // The last whole week.
            let today = kpi::local_day(self.now().as_second(), &tz);
            let monday = bucket_start(today, Period::Week, today) - 7;
            p.insert("week".into(), label(monday, Period::Week));
        }
        p.insert("period".into(), "all".into());
        p.remove("by");
        let week = p.get("week").cloned().unwrap_or_default();
        let one = |rep: &KpiReport, col: &str| -> Value {
            let i = rep.columns.iter().position(|c| c == col);
            rep.rows
                .first()
                .and_then(|r| i.and_then(|i| r.get(i).cloned()))
                .unwrap_or(Value::Null)
        };
        let tickets = self.kpi_report(actor, "tickets", &p).await?;
        let sla = self.kpi_report(actor, "sla_achievement", &p).await?;
        let frt = self.kpi_report(actor, "first_reply_time", &p).await?;
        let nrt = self.kpi_report(actor, "next_reply_time", &p).await?;
        let res = self.kpi_report(actor, "full_resolution_time", &p).await?;
        let ratio = self
            .kpi_report(actor, "resolution_to_wait_ratio", &p)
            .await?;
        let reopen = self.kpi_report(actor, "reopen_rate", &p).await?;
        let touch = self.kpi_report(actor, "one_touch", &p).await?;
        let csat = self.kpi_report(actor, "satisfaction", &p).await?;
        let mut pw = p.clone();
        pw.insert("period".into(), "week".into());
        let base = self.kpi_report(actor, "baselines", &pw).await?;
        let col = |rep: &KpiReport, name: &str| rep.columns.iter().position(|c| c == name);
        let sla_rows: Vec<Value> = sla.to_json()["kpi"]["rows"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| json!({"sla_metric": r["sla_metric"], "met": r["met"], "missed": r["missed"], "achievement": r["achievement"]}))
            .collect();
        let mut under = vec![];
        if let (Some(ni), Some(ci)) = (col(&base, "engineer_name"), col(&base, "counted")) {
            for r in &base.rows {
                let flags: Vec<&str> = [
                    ("under_solved", "solved"),
                    ("under_public_replies", "public replies"),
                    ("under_internal_notes", "internal notes"),
                ]
                .iter()
                .filter(|(k, _)| {
                    col(&base, k)
                        .and_then(|i| r.get(i))
                        .and_then(Value::as_bool)
                        == Some(true)
                })
                .map(|(_, n)| *n)
                .collect();
                if r.get(ci).and_then(Value::as_bool) == Some(true) && !flags.is_empty() {
                    under.push(json!({"engineer_id": r[2], "name": r[ni], "under": flags}));
                }
            }
        }
        let summary = json!({"week_in_review": {
            "week": week,
            "from": tickets.from,
            "to": tickets.to,
            "time_zone": tickets.time_zone,
            "tickets": {"created": one(&tickets, "created"), "solved": one(&tickets, "solved"), "reopened": one(&tickets, "reopened"), "backlog": one(&tickets, "backlog")},
            "sla_achievement": sla_rows,
            "first_reply_time": {"count": one(&frt, "count"), "median_calendar": one(&frt, "median_calendar"), "p90_calendar": one(&frt, "p90_calendar"), "median_business": one(&frt, "median_business")},
            "next_reply_time": {"count": one(&nrt, "count"), "median_calendar": one(&nrt, "median_calendar"), "p90_calendar": one(&nrt, "p90_calendar")},
            "full_resolution_time": {"count": one(&res, "count"), "median_calendar": one(&res, "median_calendar"), "p90_calendar": one(&res, "p90_calendar")},
            "resolution_to_wait_ratio": one(&ratio, "ratio_calendar"),
            "reopen_rate": one(&reopen, "rate"),
            "one_touch_rate": one(&touch, "rate"),
            "satisfaction": {"rated": one(&csat, "rated"), "rate": one(&csat, "satisfaction")},
            "under_baseline": under,
        }});
        let s = &summary["week_in_review"];
        let v = |x: &Value| match x {
            Value::Null => "–".to_string(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let pct = |x: &Value| {
            x.as_f64()
                .map_or("–".to_string(), |f| format!("{:.1} %", f * 100.0))
        };
        let mut md = format!(
            "# Support week in review: {week} ({} to {}, {})\n\n## Tickets\n\n| created | solved | reopened | backlog at the end |\n|---:|---:|---:|---:|\n| {} | {} | {} | {} |\n\n## SLA achievement (target 95 %)\n\n",
            s["from"].as_str().unwrap_or(""),
            s["to"].as_str().unwrap_or(""),
            s["time_zone"].as_str().unwrap_or(""),
            v(&s["tickets"]["created"]),
            v(&s["tickets"]["solved"]),
            v(&s["tickets"]["reopened"]),
            v(&s["tickets"]["backlog"]),
        );
        if sla_rows.is_empty() {
            md.push_str("No SLA target was met or missed this week.\n");
        } else {
            md.push_str("| target | met | missed | achievement |\n|---|---:|---:|---:|\n");
            for r in &sla_rows {
                md.push_str(&format!(
                    "| {} | {} | {} | {} |\n",
                    v(&r["sla_metric"]),
                    v(&r["met"]),
                    v(&r["missed"]),
                    pct(&r["achievement"])
                ));
            }
        }
        md.push_str(&format!(
            "\n## Replies and resolution (minutes, calendar)\n\n| | count | median | 90th percentile |\n|---|---:|---:|---:|\n| first reply | {} | {} | {} |\n| next reply | {} | {} | {} |\n| full resolution | {} | {} | {} |\n\nResolution / customer wait (medians): {}. Reopen rate: {}. One-touch: {}. Satisfaction: {} of {} rated.\n\n## Under the weekly baseline (0.85 x team mean)\n\n",
            v(&s["first_reply_time"]["count"]), v(&s["first_reply_time"]["median_calendar"]), v(&s["first_reply_time"]["p90_calendar"]),
            v(&s["next_reply_time"]["count"]), v(&s["next_reply_time"]["median_calendar"]), v(&s["next_reply_time"]["p90_calendar"]),
            v(&s["full_resolution_time"]["count"]), v(&s["full_resolution_time"]["median_calendar"]), v(&s["full_resolution_time"]["p90_calendar"]),
            v(&s["resolution_to_wait_ratio"]), pct(&s["reopen_rate"]), pct(&s["one_touch_rate"]), pct(&s["satisfaction"]["rate"]), v(&s["satisfaction"]["rated"]),
        ));
        if under.is_empty() {
            md.push_str("Nobody.\n");
        } else {
            for u in &under {
                let what: Vec<String> = u["under"]
                    .as_array()
                    .map(|a| a.iter().map(v).collect())
                    .unwrap_or_default();
                md.push_str(&format!("- {}: {}\n", v(&u["name"]), what.join(", ")));
            }
        }
        Ok((summary, md))
    }
}
