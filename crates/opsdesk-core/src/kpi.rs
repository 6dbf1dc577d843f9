//! KPIs: the facts each ticket write contributes to the indicators a support organisation is
//! judged by (docs/kpi.md), and the calendar arithmetic the reports bucket them with.
//!
//! A fact is one countable thing that happened to a ticket at an instant: it was created,
//! solved or reopened, an engineer replied publicly or wrote an internal note, the first or a
//! next reply came after so many minutes, an SLA target was met or missed. Facts are derived
//! from what a write did ([`write_facts`], called with the ticket and its metrics before and
//! after) and from the SLA metric events ([`sla_facts`]), so replaying the audits and metric
//! events rebuilds them (`opsdesk kpi rebuild`), and a test can check every report against a
//! brute-force count over the audits.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::business_hours::Schedule;
use crate::model::{Id, Organization};
use crate::ticket::{Status, Ticket};
use crate::ticket_metrics::TicketMetrics;

pub const CREATED: &str = "created";
pub const SOLVED: &str = "solved";
pub const REOPENED: &str = "reopened";
pub const PUBLIC_REPLY: &str = "public_reply";
pub const INTERNAL_NOTE: &str = "internal_note";
pub const FIRST_REPLY: &str = "first_reply";
pub const NEXT_REPLY: &str = "next_reply";
pub const RESOLUTION: &str = "resolution";
pub const REQUESTER_WAIT: &str = "requester_wait";
pub const SLA_MET: &str = "sla_met";
pub const SLA_MISSED: &str = "sla_missed";
/// Satisfaction ratings (written once surveys exist; the reports already read them).
pub const RATED_GOOD: &str = "rated_good";
pub const RATED_BAD: &str = "rated_bad";

/// Flag on a public reply: its author was the ticket's assignee.
pub const ON_ASSIGNED: i64 = 1;
/// Flag on a solve: the ticket had exactly one public reply by staff (one-touch).
pub const ONE_TOUCH: i64 = 2;
/// Flag on a solve: the ticket had been reopened before.
pub const WAS_REOPENED: i64 = 4;

/// One fact. Durations are whole minutes, calendar and in the ticket's schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub ticket_id: Id,
    /// UTC seconds.
    pub time: i64,
    pub kind: &'static str,
    /// Who: a reply's or note's author; for a solve, the assignee who solved it.
    pub agent_id: Option<Id>,
    /// For SLA facts: the target (`first_reply_time`, …).
    pub metric: Option<String>,
    pub calendar: Option<i64>,
    pub business: Option<i64>,
    pub flags: i64,
}

impl Fact {
    fn new(ticket_id: Id, time: i64, kind: &'static str) -> Fact {
        Fact {
            ticket_id,
            time,
            kind,
            agent_id: None,
            metric: None,
            calendar: None,
            business: None,
            flags: 0,
        }
    }

    fn span(mut self, from: i64, to: i64, schedule: Option<&Schedule>) -> Fact {
        let cal = (to - from).max(0);
        let bus = match schedule {
            Some(s) if to > from => s.business_seconds(from, to),
            _ => cal,
        };
        self.calendar = Some(cal / 60);
        self.business = Some(bus / 60);
        self
    }
}

/// The ticket attributes reports group and filter by. Facts carry the ticket's current
/// values: when a ticket's group changes, all its facts move with it (as Zendesk's reports
/// attribute a ticket's history to its current group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims {
    pub assignee_id: Option<Id>,
    pub group_id: Option<Id>,
    pub organization_id: Option<Id>,
    pub form_id: Option<Id>,
    pub priority: Option<String>,
    pub channel: String,
    /// The organisation's plan and region (its fields [`PLAN_FIELD`], [`REGION_FIELD`]).
    pub plan: Option<String>,
    pub region: Option<String>,
}

/// The organisation fields that carry the plan (support level) and the region, as the
/// gitlab-support profile names them.
pub const PLAN_FIELD: &str = "support_level";
pub const REGION_FIELD: &str = "org_region";

/// An organisation field's value as text.
pub fn org_field(o: &Organization, key: &str) -> Option<String> {
    match o.organization_fields.get(key)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

impl Dims {
    /// The fact columns whose values differ from `self` in `new`. A change of organisation
    /// names the plan and region too (they come from the organisation).
    pub fn changed(&self, new: &Dims) -> Vec<&'static str> {
        let mut out = vec![];
        let mut diff = |col: &'static str, differs: bool| {
            if differs {
                out.push(col);
            }
        };
        diff("assignee_id", self.assignee_id != new.assignee_id);
        diff("group_id", self.group_id != new.group_id);
        diff("form_id", self.form_id != new.form_id);
        diff("priority", self.priority != new.priority);
        diff("channel", self.channel != new.channel);
        let org = self.organization_id != new.organization_id;
        diff("organization_id", org);
        diff("plan", org || self.plan != new.plan);
        diff("region", org || self.region != new.region);
        out
    }

    /// A ticket's attributes; `org` is its organisation (for the plan and region).
    pub fn of(t: &Ticket, org: Option<&Organization>) -> Dims {
        let org = org.filter(|o| Some(o.id) == t.organization_id);
        Dims {
            assignee_id: t.assignee_id,
            group_id: t.group_id,
            organization_id: t.organization_id,
            form_id: t.ticket_form_id,
            priority: t.priority.map(|p| p.as_str().to_string()),
            channel: t.via.channel.clone(),
            plan: org.and_then(|o| org_field(o, PLAN_FIELD)),
            region: org.and_then(|o| org_field(o, REGION_FIELD)),
        }
    }
}

/// A comment a write added.
#[derive(Debug, Clone, Copy)]
pub struct Comment {
    pub author_id: Id,
    pub public: bool,
}

/// The comments in an audit's events.
pub fn comments(events: &[Value], default_author: Id) -> Vec<Comment> {
    events
        .iter()
        .filter(|e| e.get("type").and_then(Value::as_str) == Some("Comment"))
        .map(|e| Comment {
            author_id: e
                .get("author_id")
                .and_then(Value::as_i64)
                .unwrap_or(default_author),
            public: e.get("public").and_then(Value::as_bool).unwrap_or(true),
        })
        .collect()
}

/// What one ticket write did.
pub struct Write<'a> {
    pub before: Option<&'a Ticket>,
    pub after: &'a Ticket,
    pub old_metrics: Option<&'a TicketMetrics>,
    pub metrics: &'a TicketMetrics,
    /// The writer is staff (an agent or admin; not the system or a rule).
    pub staff: bool,
    pub author_id: Id,
    pub comments: &'a [Comment],
    pub at: i64,
    pub schedule: Option<&'a Schedule>,
}

fn solved(s: Status) -> bool {
    matches!(s, Status::Solved | Status::Closed)
}

/// The facts a write contributes.
pub fn write_facts(w: &Write) -> Vec<Fact> {
    let t = w.after;
    let id = t.id;
    let created = t.created_at.as_second();
    let mut out = vec![];
    if w.before.is_none() {
        out.push(Fact::new(id, created, CREATED));
    }
    // Replies and notes by staff on an existing ticket (as Zendesk counts replies: the
    // description of a ticket an agent opens is not a reply). A comment an agent adds on
    // someone else's behalf (`comment.author_id`) is not the agent's reply.
    if w.staff && w.author_id > 0 && w.before.is_some() {
        for c in w.comments.iter().filter(|c| c.author_id == w.author_id) {
            let mut f = Fact::new(
                id,
                w.at,
                if c.public {
                    PUBLIC_REPLY
                } else {
                    INTERNAL_NOTE
                },
            );
            f.agent_id = Some(c.author_id);
            if c.public && t.assignee_id == Some(c.author_id) {
                f.flags = ON_ASSIGNED;
            }
            out.push(f);
        }
    }
    let old_first = w.old_metrics.and_then(|m| m.first_reply_at);
    if let (None, Some(fr)) = (old_first, w.metrics.first_reply_at) {
        let mut f =
            Fact::new(id, fr.as_second(), FIRST_REPLY).span(created, fr.as_second(), w.schedule);
        f.agent_id = Some(w.author_id);
        out.push(f);
    }
    let awaited = w.old_metrics.and_then(|m| m.awaiting_reply_since);
    if let (Some(since), None) = (awaited, w.metrics.awaiting_reply_since) {
        let since = since.as_second();
        let mut f = Fact::new(id, w.at, NEXT_REPLY).span(since, w.at, w.schedule);
        f.agent_id = Some(w.author_id);
        out.push(f);
    }
    let was = w.before.map(|b| b.status);
    if solved(t.status) && !was.is_some_and(solved) {
        let mut f = Fact::new(id, w.at, SOLVED);
        f.agent_id = t.assignee_id;
        if w.metrics.replies == 1 {
            f.flags |= ONE_TOUCH;
        }
        if w.metrics.reopens > 0 {
            f.flags |= WAS_REOPENED;
        }
        out.push(f);
        out.push(Fact::new(id, w.at, RESOLUTION).span(created, w.at, w.schedule));
        let wait = w.metrics.waits(w.at, w.schedule).requester;
        let mut f = Fact::new(id, w.at, REQUESTER_WAIT);
        f.calendar = Some(wait.0 / 60);
        f.business = Some(wait.1 / 60);
        out.push(f);
    }
    if was == Some(Status::Solved) && t.status < Status::Solved {
        out.push(Fact::new(id, w.at, REOPENED));
    }
    out
}

/// SLA outcomes from a ticket's metric events (in the order they were written): a target
/// instance is met when it is fulfilled before it was breached, missed when it is breached.
/// `breached(metric)` tells whether the instance running before these events was already
/// missed. Events are taken in time order (a breach recorded together with a late
/// fulfilment happened first).
pub fn sla_facts(ticket_id: Id, breached: &dyn Fn(&str) -> bool, events: &[Value]) -> Vec<Fact> {
    let rank = |k: &str| match k {
        "apply_sla" => 0,
        "activate" => 1,
        "breach" => 2,
        "pause" => 3,
        "fulfill" => 4,
        _ => 5,
    };
    let mut evs: Vec<(i64, i32, &str, &str)> = events
        .iter()
        .filter_map(|e| {
            let kind = e.get("type")?.as_str()?;
            let time = e
                .get("time")
                .and_then(Value::as_str)
                .and_then(crate::clock::parse)?
                .as_second();
            let metric = e.get("metric").and_then(Value::as_str).unwrap_or("");
            Some((time, rank(kind), kind, metric))
        })
        .collect();
    evs.sort_by_key(|e| (e.0, e.1));
    let mut state: BTreeMap<&str, bool> = BTreeMap::new();
    let mut reset = false;
    let mut out = vec![];
    for (time, _, kind, metric) in evs {
        let missed = match state.get(metric) {
            Some(b) => *b,
            None => !reset && breached(metric),
        };
        match kind {
            "apply_sla" => {
                state.clear();
                reset = true;
            }
            "activate" => {
                state.insert(metric, false);
            }
            "breach" if !missed => {
                state.insert(metric, true);
                let mut f = Fact::new(ticket_id, time, SLA_MISSED);
                f.metric = Some(metric.to_string());
                out.push(f);
            }
            "fulfill" if !missed => {
                state.insert(metric, false);
                let mut f = Fact::new(ticket_id, time, SLA_MET);
                f.metric = Some(metric.to_string());
                out.push(f);
            }
            _ => {}
        }
    }
    out
}

/// How reports bucket time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    /// ISO weeks, Monday to Sunday.
    Week,
    Month,
    /// The whole range as one bucket.
    All,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        Some(match s {
            "day" => Period::Day,
            "week" => Period::Week,
            "month" => Period::Month,
            "all" => Period::All,
            _ => return None,
        })
    }
}

const EPOCH: Date = Date::constant(1970, 1, 1);

/// Days since 1970-01-01 of a civil date.
pub fn day_number(d: Date) -> i64 {
    i64::from(EPOCH.until(d).map_or(0, |s| s.get_days()))
}

/// The civil date of a day number.
pub fn date_of(day: i64) -> Date {
    let days = i32::try_from(day).unwrap_or(0);
    EPOCH
        .checked_add(jiff::Span::new().days(days))
        .unwrap_or(EPOCH)
}

/// The local day (in `tz`) an instant falls on.
pub fn local_day(time: i64, tz: &TimeZone) -> i64 {
    let at = crate::clock::from_unix(time);
    day_number(at.to_zoned(tz.clone()).date())
}

/// The first day of the bucket `day` falls in (`range_start` for [`Period::All`]).
pub fn bucket_start(day: i64, period: Period, range_start: i64) -> i64 {
    match period {
        Period::Day => day,
        // 1970-01-01 was a Thursday.
        Period::Week => day - (day + 3).rem_euclid(7),
        Period::Month => {
            let d = date_of(day);
            day_number(d.first_of_month())
        }
        Period::All => range_start,
    }
}

/// The first day after the bucket starting on `start` (`range_end` for [`Period::All`]).
pub fn bucket_end(start: i64, period: Period, range_end: i64) -> i64 {
    match period {
        Period::Day => start + 1,
        Period::Week => start + 7,
        Period::Month => {
            let d = date_of(start);
            day_number(d.last_of_month()) + 1
        }
        Period::All => range_end,
    }
}

/// A bucket's name: `2026-11-23`, `2026-W48`, `2026-11`, or `all`.
pub fn label(start: i64, period: Period) -> String {
    let d = date_of(start);
    match period {
        Period::Day => d.to_string(),
        Period::Week => {
            let w = d.iso_week_date();
            format!("{:04}-W{:02}", w.year(), w.week())
        }
        Period::Month => format!("{:04}-{:02}", d.year(), d.month()),
        Period::All => "all".into(),
    }
}

/// The Monday of an ISO week written `2026-W48`.
pub fn parse_week(s: &str) -> Option<i64> {
    let (y, w) = s.split_once("-W")?;
    let wd = jiff::civil::ISOWeekDate::new(
        y.parse().ok()?,
        w.parse().ok()?,
        jiff::civil::Weekday::Monday,
    )
    .ok()?;
    Some(day_number(wd.date()))
}

/// The nearest-rank percentile (`p` in 0..=1) of sorted values: the smallest value with at
/// least `p` of the values at or below it. The median is `percentile(v, 0.5)`.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_names_the_columns_that_move() {
        let a = Dims {
            assignee_id: Some(1),
            group_id: Some(2),
            organization_id: Some(3),
            form_id: None,
            priority: Some("normal".into()),
            channel: "email".into(),
            plan: None,
            region: None,
        };
        assert!(a.changed(&a).is_empty());
        let b = Dims {
            assignee_id: Some(9),
            priority: Some("high".into()),
            ..a.clone()
        };
        assert_eq!(a.changed(&b), ["assignee_id", "priority"]);
        // Another organisation brings its own plan and region.
        let c = Dims {
            organization_id: None,
            ..a.clone()
        };
        assert_eq!(a.changed(&c), ["organization_id", "plan", "region"]);
    }

    #[test]
    fn weeks_months_and_labels() {
        let d = day_number(Date::constant(2026, 11, 25)); // a Wednesday
        let monday = day_number(Date::constant(2026, 11, 23));
        assert_eq!(bucket_start(d, Period::Week, 0), monday);
        assert_eq!(label(monday, Period::Week), "2026-W48");
        assert_eq!(bucket_end(monday, Period::Week, 0), monday + 7);
        assert_eq!(parse_week("2026-W48"), Some(monday));
        assert_eq!(parse_week("2026-W54"), None);
        // ISO week 1 of 2027 starts on 2027-01-04; 2027-01-01 is in 2026-W53.
        let jan1 = day_number(Date::constant(2027, 1, 1));
        assert_eq!(
            label(bucket_start(jan1, Period::Week, 0), Period::Week),
            "2026-W53"
        );
        let m = bucket_start(d, Period::Month, 0);
        assert_eq!(date_of(m), Date::constant(2026, 11, 1));
        assert_eq!(
            date_of(bucket_end(m, Period::Month, 0)),
            Date::constant(2026, 12, 1)
        );
        assert_eq!(label(m, Period::Month), "2026-11");
        assert_eq!(
            date_of(day_number(Date::constant(1969, 12, 31))),
            Date::constant(1969, 12, 31)
        );
    }

    #[test]
    fn local_days_follow_the_zone() -> Result<(), jiff::Error> {
        let tz = TimeZone::get("America/Los_Angeles")?;
        // 2026-11-23T05:00:00Z is still the 22nd in Los Angeles.
        let t = crate::clock::parse("2026-11-23T05:00:00Z").map_or(0, |t| t.as_second());
        assert_eq!(date_of(local_day(t, &tz)), Date::constant(2026, 11, 22));
        assert_eq!(
            date_of(local_day(t, &TimeZone::UTC)),
            Date::constant(2026, 11, 23)
        );
        Ok(())
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.9), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 0.5), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4, 5], 0.5), Some(3));
        let v: Vec<i64> = (1..=10).collect();
        assert_eq!(percentile(&v, 0.9), Some(9));
        assert_eq!(percentile(&v, 1.0), Some(10));
    }

    #[test]
    fn sla_instances_are_met_or_missed_once() {
        let ev = |kind: &str, metric: &str, time: &str| json!({"type": kind, "metric": metric, "time": time});
        let events = vec![
            json!({"type": "apply_sla", "time": "2026-11-23T10:00:00Z"}),
            ev("activate", "first_reply_time", "2026-11-23T10:00:00Z"),
            // Fulfilled late: the breach (at its own earlier time) is written in the same
            // computation, after the fulfilment.
            ev("fulfill", "first_reply_time", "2026-11-23T12:00:00Z"),
            ev("breach", "first_reply_time", "2026-11-23T11:00:00Z"),
            ev("activate", "next_reply_time", "2026-11-23T13:00:00Z"),
            ev("fulfill", "next_reply_time", "2026-11-23T13:30:00Z"),
            ev("activate", "next_reply_time", "2026-11-23T14:00:00Z"),
            ev("breach", "next_reply_time", "2026-11-23T15:00:00Z"),
        ];
        let f = sla_facts(1, &|_| false, &events);
        let got: Vec<(&str, &str)> = f
            .iter()
            .map(|f| (f.kind, f.metric.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            vec![
                (SLA_MISSED, "first_reply_time"),
                (SLA_MET, "next_reply_time"),
                (SLA_MISSED, "next_reply_time"),
            ]
        );
        // The fulfilment of an instance missed in an earlier write counts nothing.
        let later = vec![ev("fulfill", "next_reply_time", "2026-11-23T16:00:00Z")];
        assert!(sla_facts(1, &|m| m == "next_reply_time", &later).is_empty());
        assert_eq!(sla_facts(1, &|_| false, &later).len(), 1);
    }
}
