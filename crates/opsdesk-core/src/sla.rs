//! SLA policies: which tickets a policy covers (a filter in the rules' condition language,
//! first match by position wins) and its targets per priority.

use serde::{Deserialize, Serialize};

use crate::business_hours::Schedule;
use crate::error::Invalid;
use crate::rules::{validate_filter, Conditions};
use crate::ticket::{Priority, Status};
use crate::ticket_metrics::TicketMetrics;

/// The metrics a policy can target, as Zendesk names them.
pub const SLA_METRICS: &[&str] = &[
    "first_reply_time",
    "next_reply_time",
    "periodic_update_time",
    "pausable_update_time",
    "requester_wait_time",
    "agent_work_time",
    "total_resolution_time",
];

/// `{"priority", "metric", "target" (minutes), "business_hours"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyMetric {
    pub priority: String,
    pub metric: String,
    pub target: i64,
    #[serde(default)]
    pub business_hours: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaPolicy {
    pub id: crate::model::Id,
    pub title: String,
    pub description: Option<String>,
    pub position: i64,
    pub filter: Conditions,
    pub policy_metrics: Vec<PolicyMetric>,
    #[serde(with = "crate::clock::ts")]
    pub created_at: crate::Timestamp,
    #[serde(with = "crate::clock::ts")]
    pub updated_at: crate::Timestamp,
}

/// Check a policy's filter (view conditions: no trigger-only fields) and metrics (known metric
/// and priority, a positive target of at most a year, one target per metric and priority).
pub fn validate_policy(filter: &Conditions, metrics: &[PolicyMetric]) -> Result<(), Invalid> {
    let mut inv = Invalid::new();
    if let Err(e) = validate_filter(filter) {
        for (_, d) in e.details {
            for f in d {
                inv.add("filter", "InvalidValue", f.description);
            }
        }
    }
    if metrics.len() > 100 {
        inv.add(
            "policy_metrics",
            "InvalidValue",
            "at most 100 policy metrics",
        );
    }
    for (i, m) in metrics.iter().enumerate() {
        if Priority::parse(&m.priority).is_none() {
            inv.add(
                "policy_metrics",
                "InvalidValue",
                format!(
                    "policy_metrics[{i}]: '{}' is not a priority (low, normal, high, urgent)",
                    m.priority
                ),
            );
        }
        if !SLA_METRICS.contains(&m.metric.as_str()) {
            inv.add(
                "policy_metrics",
                "InvalidValue",
                format!(
                    "policy_metrics[{i}]: '{}' is not one of {}",
                    m.metric,
                    SLA_METRICS.join(", ")
                ),
            );
        }
        if !(1..=525_600).contains(&m.target) {
            inv.add(
                "policy_metrics",
                "InvalidValue",
                format!("policy_metrics[{i}]: target must be between 1 and 525600 minutes"),
            );
        }
        if metrics[..i]
            .iter()
            .any(|o| o.metric == m.metric && o.priority.eq_ignore_ascii_case(&m.priority))
        {
            inv.add(
                "policy_metrics",
                "InvalidValue",
                format!(
                    "policy_metrics[{i}]: {} for {} is given twice",
                    m.metric, m.priority
                ),
            );
        }
    }
    if inv.is_empty() {
        Ok(())
    } else {
        Err(inv)
    }
}

/// Where one of a ticket's SLA targets stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricState {
    pub metric: String,
    /// `active` (counting), `paused` (not counting now), `achieved` (fulfilled).
    pub stage: String,
    /// When the target is (or was) missed; None while paused before a breach.
    pub breach_at: Option<i64>,
    /// The target was missed (at `breach_at`).
    pub breached: bool,
    pub target_minutes: i64,
    pub business_hours: bool,
    /// The warning lead before `breach_at` has been reached while the target is active. The
    /// scheduler's `warning` event is written when this turns true, unless the target is
    /// already missed by then.
    #[serde(default)]
    pub warned: bool,
    /// For a fulfilled target: how long it took, `{"calendar", "business"}` in whole minutes
    /// (business minutes in the schedule the policy counts in), as Zendesk's `update_status`
    /// events carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured: Option<Measured>,
}

/// A fulfilled metric's duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Measured {
    pub calendar: i64,
    pub business: i64,
}

/// Seconds counted between `from` and `to`: on the clock and in `schedule` (all hours without).
fn span(schedule: Option<&Schedule>, from: i64, to: i64) -> (i64, i64) {
    let cal = (to - from).max(0);
    let bus = match schedule {
        Some(s) if to > from => s.business_seconds(from, to),
        _ => cal,
    };
    (cal, bus)
}

fn minutes(secs: (i64, i64)) -> Measured {
    Measured {
        calendar: secs.0 / 60,
        business: secs.1 / 60,
    }
}

/// The metrics opsdesk computes.
pub const COMPUTED_METRICS: &[&str] = SLA_METRICS;

/// The state of each of a policy's targets for a ticket of `priority` with metrics `m`, at
/// `now`. Business-hours targets count in `schedule` (all hours without one). A target is
/// `warned` once `now` is within `warning_secs` of its breach (0: no warnings).
pub fn metric_states(
    policy_metrics: &[PolicyMetric],
    priority: Option<Priority>,
    m: &TicketMetrics,
    now: i64,
    schedule: Option<&Schedule>,
    warning_secs: i64,
) -> Vec<MetricState> {
    let Some(priority) = priority else {
        return vec![];
    };
    let created = m.created_at.as_second();
    let solved = m
        .status_history
        .last()
        .is_some_and(|(s, _)| *s >= Status::Solved);
    let mut out = vec![];
    for pm in policy_metrics {
        if Priority::parse(&pm.priority) != Some(priority)
            || !COMPUTED_METRICS.contains(&pm.metric.as_str())
        {
            continue;
        }
        let sched = if pm.business_hours { schedule } else { None };
        let target = pm.target * 60;
        let add = |from: i64, secs: i64| match sched {
            Some(s) => s.add(from, secs),
            None => Some(from + secs),
        };
        let state = |stage: &str, breach_at: Option<i64>, breached: bool| MetricState {
            metric: pm.metric.clone(),
            stage: stage.to_string(),
            breach_at,
            breached,
            target_minutes: pm.target,
            business_hours: pm.business_hours,
            warned: warning_secs > 0
                && stage == "active"
                && breach_at.is_some_and(|b| now >= b - warning_secs),
            measured: None,
        };
        let st = match pm.metric.as_str() {
            "first_reply_time" | "total_resolution_time" => {
                let done = if pm.metric == "first_reply_time" {
                    m.first_reply_at.map(|t| t.as_second())
                } else if solved {
                    m.solved_at.map(|t| t.as_second())
                } else {
                    None
                };
                let breach_at = add(created, target);
                match done {
                    Some(d) => MetricState {
                        measured: Some(minutes(span(schedule, created, d))),
                        ..state("achieved", breach_at, breach_at.is_some_and(|b| d > b))
                    },
                    None => state("active", breach_at, breach_at.is_some_and(|b| now >= b)),
                }
            }
            "next_reply_time" => match m.awaiting_reply_since {
                // From the oldest requester comment not yet answered; shown only while one
                // waits (after it is answered, the next one starts it again).
                Some(a) if !solved => {
                    let breach_at = add(a.as_second(), target);
                    state("active", breach_at, breach_at.is_some_and(|b| now >= b))
                }
                _ => continue,
            },
            "periodic_update_time" => {
                // From the latest public staff comment (or creation) until the next one.
                let start = m
                    .last_public_staff_comment_at
                    .map_or(created, |t| t.as_second());
                let breach_at = add(start, target);
                if solved {
                    state("achieved", breach_at, false)
                } else {
                    state("active", breach_at, breach_at.is_some_and(|b| now >= b))
                }
            }
            _ => {
                // Time counted only in some statuses, paused in the others, from `start`.
                let counts = |s: Status| match pm.metric.as_str() {
                    "requester_wait_time" => matches!(s, Status::New | Status::Open | Status::Hold),
                    _ => matches!(s, Status::New | Status::Open),
                };
                let start = if pm.metric == "pausable_update_time" {
                    m.last_public_staff_comment_at
                        .map_or(created, |t| t.as_second())
                } else {
                    created
                };
                let fallback = [(Status::New, created)];
                let hist: &[(Status, i64)] = if m.status_history.is_empty() {
                    &fallback
                } else {
                    &m.status_history
                };
                let mut left = target;
                let mut breach_at = None;
                let mut counting_now = false;
                // Time counted until solved, for update_status.
                let solved_at = m.solved_at.map(|t| t.as_second()).filter(|_| solved);
                let mut counted = (0, 0);
                if let Some(end_all) = solved_at {
                    for (i, (status, from)) in hist.iter().enumerate() {
                        let to = hist.get(i + 1).map_or(end_all, |n| n.1).min(end_all);
                        let from = (*from).max(start);
                        if counts(*status) && to > from {
                            let (c, b) = span(schedule, from, to);
                            counted = (counted.0 + c, counted.1 + b);
                        }
                    }
                }
                for (i, (status, from)) in hist.iter().enumerate() {
                    let to = hist.get(i + 1).map(|n| n.1);
                    if to.is_none() && counts(*status) {
                        counting_now = true;
                    }
                    if !counts(*status) || to.is_some_and(|t| t <= start) {
                        continue;
                    }
                    let from = &(*from).max(start);
                    let end = to.unwrap_or(i64::MAX);
                    match add(*from, left) {
                        Some(b) if b <= end => {
                            breach_at = Some(b);
                            break;
                        }
                        _ => {
                            let used = match sched {
                                Some(s) => s.business_seconds(*from, end.min(now.max(*from))),
                                None => end.min(now.max(*from)) - from,
                            };
                            left -= used;
                        }
                    }
                }
                let breached = breach_at.is_some_and(|b| b <= now);
                if solved {
                    MetricState {
                        measured: Some(minutes(counted)),
                        ..state("achieved", breach_at, breached)
                    }
                } else if counting_now {
                    state("active", breach_at, breached)
                } else {
                    state("paused", breach_at.filter(|_| breached), breached)
                }
            }
        };
        out.push(st);
    }
    out
}

/// A ticket's SLA as last computed: its policy, each target's state, and the next instant a
/// target will be missed (what the breach scheduler waits for).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketSla {
    /// The ticket's id.
    pub id: crate::model::Id,
    pub policy_id: Option<crate::model::Id>,
    pub policy_title: Option<String>,
    pub metrics: Vec<MetricState>,
    pub next_breach_at: Option<i64>,
    /// When the scheduler must next look at the ticket: the earlier of the next warning and
    /// the next breach.
    #[serde(default)]
    pub next_due_at: Option<i64>,
    pub updated_at: i64,
}

impl TicketSla {
    pub fn new(
        ticket_id: crate::model::Id,
        policy: Option<&SlaPolicy>,
        metrics: Vec<MetricState>,
        now: i64,
        warning_secs: i64,
    ) -> TicketSla {
        let open = || {
            metrics
                .iter()
                .filter(|m| m.stage == "active" && !m.breached)
        };
        let next_breach_at = open().filter_map(|m| m.breach_at).min();
        let next_warning_at = open()
            .filter(|m| warning_secs > 0 && !m.warned)
            .filter_map(|m| m.breach_at.map(|b| b - warning_secs))
            .min();
        let next_due_at = match (next_warning_at, next_breach_at) {
            (Some(w), Some(b)) => Some(w.min(b)),
            (w, b) => w.or(b),
        };
        TicketSla {
            id: ticket_id,
            policy_id: policy.map(|p| p.id),
            policy_title: policy.map(|p| p.title.clone()),
            metrics,
            next_breach_at,
            next_due_at,
            updated_at: now,
        }
    }
}

/// The metric events (Zendesk's `ticket_metric_events`) between two computations of a
/// ticket's SLA at `at`: `apply_sla` when the policy changes, and per metric `activate`,
/// `pause`, `fulfill` (with `update_status` carrying the time it took), `warning` (opsdesk,
/// `warning_secs` ahead of a breach) and `breach` as its state moves.
pub fn sla_events(
    old: Option<&TicketSla>,
    new: &TicketSla,
    at: i64,
    warning_secs: i64,
) -> Vec<serde_json::Value> {
    use serde_json::json;
    let mut out = vec![];
    let time = crate::clock::format(crate::clock::from_unix(at));
    let ev = |metric: &str, kind: &str| json!({"ticket_id": new.id, "metric": metric, "instance_id": 1, "type": kind, "time": time});
    let old_policy = old.and_then(|o| o.policy_id);
    if new.policy_id != old_policy {
        if let Some(pid) = new.policy_id {
            let mut e = ev("", "apply_sla");
            e.as_object_mut().map(|m| m.remove("metric"));
            e["sla"] = json!({"policy": {"id": pid, "title": new.policy_title}, "targets": new.metrics.iter().map(|m| json!({"metric": m.metric, "target": m.target_minutes, "business_hours": m.business_hours})).collect::<Vec<_>>()});
            out.push(e);
        }
    }
    let same_policy = new.policy_id == old_policy;
    for m in &new.metrics {
        let before = old
            .filter(|_| same_policy)
            .and_then(|o| o.metrics.iter().find(|x| x.metric == m.metric));
        let was = before.map(|b| b.stage.as_str());
        if was != Some(m.stage.as_str()) {
            let kind = match m.stage.as_str() {
                "active" => "activate",
                "paused" => "pause",
                _ => "fulfill",
            };
            out.push(ev(&m.metric, kind));
        }
        if m.stage == "achieved" && was != Some("achieved") {
            if let Some(ms) = m.measured {
                let mut e = ev(&m.metric, "update_status");
                e["status"] = json!({"calendar": ms.calendar, "business": ms.business});
                out.push(e);
            }
        }
        // opsdesk: a warning ahead of the breach (`--sla-warning-minutes`), at the instant it
        // fell due, unless the target is already missed.
        if m.warned && !m.breached && !before.is_some_and(|b| b.warned || b.breached) {
            let mut e = ev(&m.metric, "warning");
            if let Some(b) = m.breach_at {
                // When it fell due: not before the last computation (it was not due then).
                let due = (b - warning_secs)
                    .max(old.map_or(at, |o| o.updated_at))
                    .min(at);
                e["time"] = json!(crate::clock::format(crate::clock::from_unix(due)));
                e["breach_at"] = json!(crate::clock::format(crate::clock::from_unix(b)));
            }
            out.push(e);
        }
        if m.breached && !before.is_some_and(|b| b.breached) {
            let mut e = ev(&m.metric, "breach");
            if let Some(b) = m.breach_at {
                e["time"] = json!(crate::clock::format(crate::clock::from_unix(b)));
            }
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pm(p: &str, m: &str, t: i64) -> PolicyMetric {
        PolicyMetric {
            priority: p.into(),
            metric: m.into(),
            target: t,
            business_hours: true,
        }
    }

    /// Every metric on one scripted ticket (calendar time, targets of an hour, a 30-minute
    /// warning lead), read at two instants: while it is open and after it is solved.
    #[test]
    fn each_metric_follows_a_scripted_ticket() {
        use crate::clock::from_unix;
        use crate::ticket::{Ticket, Via};
        use crate::ticket_metrics::{TicketMetrics, WriteFacts};
        let h = |hh: i64, mm: i64| 1_772_352_000 + hh * 3600 + mm * 60; // 2026-03-01 00:00Z
        let (customer, agent) = (5, 9);
        let mut t = Ticket::blank(1, Via::api(), from_unix(h(9, 0)));
        t.requester_id = customer;
        t.priority = Some(Priority::High);
        let customer_writes = WriteFacts {
            author_id: customer,
            comment: true,
            public_end_user_comment: true,
            ..Default::default()
        };
        let agent_replies = WriteFacts {
            author_id: agent,
            comment: true,
            public_staff_comment: true,
            ..Default::default()
        };
        let mut step = |m: Option<TicketMetrics>, status: Status, w: WriteFacts, at: i64| {
            let before = t.clone();
            t.status = status;
            TicketMetrics::observe(m.clone(), m.as_ref().map(|_| &before), &t, w, from_unix(at))
        };
        // 09:00 the customer writes in; 09:20 the agent asks a question (pending); 10:00 the
        // customer answers (open); 10:30 on hold; 11:00 the agent replies and solves.
        let m = step(None, Status::New, customer_writes, h(9, 0));
        let m = step(Some(m), Status::Pending, agent_replies, h(9, 20));
        let m = step(Some(m), Status::Open, customer_writes, h(10, 0));
        let open = m.clone();
        let m = step(
            Some(m),
            Status::Hold,
            WriteFacts {
                author_id: agent,
                ..Default::default()
            },
            h(10, 30),
        );
        let solved = step(Some(m), Status::Solved, agent_replies, h(11, 0));
        let policy: Vec<PolicyMetric> = SLA_METRICS
            .iter()
            .map(|m| PolicyMetric {
                priority: "high".into(),
                metric: m.to_string(),
                target: 60,
                business_hours: false,
            })
            .collect();
        type Row = (String, String, Option<i64>, bool, bool, Option<Measured>);
        let show = |m: &TicketMetrics, now: i64| -> Vec<Row> {
            metric_states(&policy, Some(Priority::High), m, now, None, 1800)
                .into_iter()
                .map(|s| {
                    (
                        s.metric,
                        s.stage,
                        s.breach_at,
                        s.breached,
                        s.warned,
                        s.measured,
                    )
                })
                .collect()
        };
        let row = |m: &str, st: &str, b: Option<i64>, br: bool, w: bool, me: Option<(i64, i64)>| {
            (
                m.to_string(),
                st.to_string(),
                b,
                br,
                w,
                me.map(|(c, b)| Measured {
                    calendar: c,
                    business: b,
                }),
            )
        };
        // 10:15, open since 10:00.
        assert_eq!(
            show(&open, h(10, 15)),
            vec![
                row(
                    "first_reply_time",
                    "achieved",
                    Some(h(10, 0)),
                    false,
                    false,
                    Some((20, 20))
                ),
                // From the customer's answer at 10:00: due 11:00, warned from 10:30.
                row(
                    "next_reply_time",
                    "active",
                    Some(h(11, 0)),
                    false,
                    false,
                    None
                ),
                // From the agent's reply at 09:20.
                row(
                    "periodic_update_time",
                    "active",
                    Some(h(10, 20)),
                    false,
                    true,
                    None
                ),
                // New and open only, from the agent's reply: 09:20-10:00 was pending.
                row(
                    "pausable_update_time",
                    "active",
                    Some(h(11, 0)),
                    false,
                    false,
                    None
                ),
                // New 09:00-09:20 (20 min), then open from 10:00: 40 more, 10:40.
                row(
                    "requester_wait_time",
                    "active",
                    Some(h(10, 40)),
                    false,
                    true,
                    None
                ),
                row(
                    "agent_work_time",
                    "active",
                    Some(h(10, 40)),
                    false,
                    true,
                    None
                ),
                // Missed at 10:00 (the warning point passed too; no warning event is written
                // for a target already missed).
                row(
                    "total_resolution_time",
                    "active",
                    Some(h(10, 0)),
                    true,
                    true,
                    None
                ),
            ]
        );
        // 11:30, solved at 11:00.
        assert_eq!(
            show(&solved, h(11, 30)),
            vec![
                row(
                    "first_reply_time",
                    "achieved",
                    Some(h(10, 0)),
                    false,
                    false,
                    Some((20, 20))
                ),
                row(
                    "periodic_update_time",
                    "achieved",
                    Some(h(12, 0)),
                    false,
                    false,
                    None
                ),
                // Counted from the last public reply (11:00), which solved it: nothing counted,
                // no breach ahead.
                row(
                    "pausable_update_time",
                    "achieved",
                    None,
                    false,
                    false,
                    Some((0, 0))
                ),
                // New 20 + open 30 + on hold 30 = 80 minutes: missed at 10:40.
                row(
                    "requester_wait_time",
                    "achieved",
                    Some(h(10, 40)),
                    true,
                    false,
                    Some((80, 80))
                ),
                // New 20 + open 30 = 50 minutes (on hold does not count): met.
                row(
                    "agent_work_time",
                    "achieved",
                    None,
                    false,
                    false,
                    Some((50, 50))
                ),
                row(
                    "total_resolution_time",
                    "achieved",
                    Some(h(10, 0)),
                    true,
                    false,
                    Some((120, 120))
                ),
            ]
        );
    }

    #[test]
    fn validation_names_each_problem() {
        let ok: Conditions = serde_json::from_value(json!({"all": [{"field": "organization.custom_fields_support_level", "operator": "is", "value": "priority"}], "any": []})).unwrap();
        assert!(validate_policy(&ok, &[pm("urgent", "first_reply_time", 30)]).is_ok());
        assert!(validate_policy(&Conditions::default(), &[]).is_ok());
        let e = validate_policy(
            &ok,
            &[
                pm("urgentish", "first_reply_time", 30),
                pm("high", "reply_time", 0),
                pm("low", "agent_work_time", 60),
                pm("LOW", "agent_work_time", 90),
            ],
        )
        .unwrap_err();
        let t = e.to_string();
        assert!(t.contains("'urgentish' is not a priority"), "{t}");
        assert!(t.contains("'reply_time' is not one of"), "{t}");
        assert!(t.contains("between 1 and 525600"), "{t}");
        assert!(t.contains("given twice"), "{t}");
        let bad: Conditions = serde_json::from_value(json!({"all": [{"field": "update_type", "operator": "is", "value": "Create"}], "any": []})).unwrap();
        assert!(validate_policy(&bad, &[])
            .unwrap_err()
            .to_string()
            .contains("only for triggers"));
    }
}
