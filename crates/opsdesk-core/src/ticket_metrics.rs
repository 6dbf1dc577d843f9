//! Per-ticket timestamps and counters (Zendesk's ticket metrics), kept up to date on every
//! ticket write. Automations' time conditions ("hours since solved") read them; the SLA and KPI
//! work builds on them.
//!
//! Like the ticket row, they are derived from the audits: [`TicketMetrics::observe`] is called
//! with the state before and after each write, so replaying the audits in order rebuilds them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::{ts, ts_opt, Timestamp};
use crate::model::Id;
use crate::ticket::{Status, Ticket};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TicketMetrics {
    /// The ticket's id (one metrics record per ticket).
    pub id: Id,
    pub ticket_id: Id,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
    #[serde(with = "ts_opt", default)]
    pub assigned_at: Option<Timestamp>,
    #[serde(with = "ts_opt", default)]
    pub initially_assigned_at: Option<Timestamp>,
    #[serde(with = "ts_opt", default)]
    pub solved_at: Option<Timestamp>,
    #[serde(with = "ts")]
    pub status_updated_at: Timestamp,
    #[serde(with = "ts_opt", default)]
    pub latest_comment_added_at: Option<Timestamp>,
    #[serde(with = "ts_opt", default)]
    pub requester_updated_at: Option<Timestamp>,
    #[serde(with = "ts_opt", default)]
    pub assignee_updated_at: Option<Timestamp>,
    #[serde(default)]
    pub reopens: i64,
    #[serde(default)]
    pub replies: i64,
    #[serde(default)]
    pub assignee_stations: i64,
    #[serde(default)]
    pub group_stations: i64,
    /// When the ticket last entered each status, in UTC seconds.
    #[serde(default)]
    pub status_entered: BTreeMap<Status, i64>,
    /// The first public reply by staff after the ticket was created.
    #[serde(with = "ts_opt", default)]
    pub first_reply_at: Option<Timestamp>,
    /// The first time the ticket was solved (`solved_at` is the latest).
    #[serde(with = "ts_opt", default)]
    pub first_solved_at: Option<Timestamp>,
    /// Every status the ticket has had, with when it began (UTC seconds), oldest first.
    #[serde(default)]
    pub status_history: Vec<(Status, i64)>,
    /// The latest public comment by staff.
    #[serde(with = "ts_opt", default)]
    pub last_public_staff_comment_at: Option<Timestamp>,
    /// The oldest public requester comment after the first reply that no public staff
    /// comment has answered yet (next reply time counts from it).
    #[serde(with = "ts_opt", default)]
    pub awaiting_reply_since: Option<Timestamp>,
}

/// Time a ticket spent waiting, in seconds: calendar and in the schedule's open hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waits {
    /// New, open or on hold: the requester waits for the agent.
    pub requester: (i64, i64),
    /// Pending: the agent waits for the requester.
    pub agent: (i64, i64),
    /// On hold.
    pub on_hold: (i64, i64),
}

/// What a write did besides changing fields.
#[derive(Debug, Clone, Copy, Default)]
pub struct WriteFacts {
    /// Who wrote (the audit's author).
    pub author_id: Id,
    /// The write added a public comment by staff (a reply).
    pub public_staff_comment: bool,
    /// The write added any comment.
    pub comment: bool,
    /// The write added a public comment by an end-user (the requester or a CC).
    pub public_end_user_comment: bool,
}

impl WriteFacts {
    /// What an audit's events did, written by `author_id` (`staff`: an agent or admin).
    pub fn of(author_id: Id, staff: bool, events: &[serde_json::Value]) -> WriteFacts {
        let comments: Vec<&serde_json::Value> = events
            .iter()
            .filter(|e| e.get("type").and_then(serde_json::Value::as_str) == Some("Comment"))
            .collect();
        let public = comments
            .iter()
            .any(|c| c.get("public").and_then(serde_json::Value::as_bool) == Some(true));
        WriteFacts {
            author_id,
            comment: !comments.is_empty(),
            public_staff_comment: staff && author_id > 0 && public,
            public_end_user_comment: !staff && public,
        }
    }
}

impl TicketMetrics {
    /// Metrics for a ticket written before metrics were kept: what its row tells.
    pub fn from_ticket(t: &Ticket) -> TicketMetrics {
        let mut status_entered = BTreeMap::new();
        status_entered.insert(t.status, t.updated_at.as_second());
        TicketMetrics {
            id: t.id,
            ticket_id: t.id,
            created_at: t.created_at,
            updated_at: t.updated_at,
            assigned_at: t.assignee_id.map(|_| t.updated_at),
            initially_assigned_at: t.assignee_id.map(|_| t.updated_at),
            solved_at: matches!(t.status, Status::Solved | Status::Closed).then_some(t.updated_at),
            status_updated_at: t.updated_at,
            latest_comment_added_at: None,
            requester_updated_at: None,
            assignee_updated_at: None,
            reopens: 0,
            replies: 0,
            assignee_stations: t.assignee_id.map_or(0, |_| 1),
            group_stations: t.group_id.map_or(0, |_| 1),
            status_entered,
            first_reply_at: None,
            first_solved_at: matches!(t.status, Status::Solved | Status::Closed)
                .then_some(t.updated_at),
            status_history: vec![(t.status, t.updated_at.as_second())],
            last_public_staff_comment_at: None,
            awaiting_reply_since: None,
        }
    }

    /// Fold one write (`previous` → `t` at `at`) into the metrics. `previous` is None on create.
    pub fn observe(
        m: Option<TicketMetrics>,
        previous: Option<&Ticket>,
        t: &Ticket,
        w: WriteFacts,
        at: Timestamp,
    ) -> TicketMetrics {
        let mut m = match (m, previous) {
            (Some(m), _) => m,
            (None, Some(p)) => TicketMetrics::from_ticket(p),
            (None, None) => TicketMetrics {
                status_entered: BTreeMap::new(),
                status_history: vec![],
                first_solved_at: None,
                assignee_stations: 0,
                group_stations: 0,
                assigned_at: None,
                initially_assigned_at: None,
                solved_at: None,
                ..TicketMetrics::from_ticket(t)
            },
        };
        m.id = t.id;
        m.ticket_id = t.id;
        m.updated_at = at;
        let old_status = previous.map(|p| p.status);
        if old_status != Some(t.status) {
            m.status_updated_at = at;
            m.status_entered.insert(t.status, at.as_second());
            m.status_history.push((t.status, at.as_second()));
            if t.status == Status::Solved {
                m.solved_at = Some(at);
                m.first_solved_at.get_or_insert(at);
            }
            if matches!(old_status, Some(Status::Solved)) && t.status < Status::Solved {
                m.reopens += 1;
            }
        }
        if t.assignee_id != previous.and_then(|p| p.assignee_id) && t.assignee_id.is_some() {
            m.assigned_at = Some(at);
            m.initially_assigned_at.get_or_insert(at);
            m.assignee_stations += 1;
        }
        if t.group_id != previous.and_then(|p| p.group_id) && t.group_id.is_some() {
            m.group_stations += 1;
        }
        if w.author_id == t.requester_id {
            m.requester_updated_at = Some(at);
        }
        if Some(w.author_id) == t.assignee_id {
            m.assignee_updated_at = Some(at);
        }
        if w.comment {
            m.latest_comment_added_at = Some(at);
        }
        if w.public_staff_comment {
            m.last_public_staff_comment_at = Some(at);
            m.awaiting_reply_since = None;
        }
        if w.public_staff_comment && previous.is_some() {
            m.replies += 1;
            m.first_reply_at.get_or_insert(at);
        }
        if w.public_end_user_comment && m.first_reply_at.is_some() {
            m.awaiting_reply_since.get_or_insert(at);
        }
        m
    }

    /// How long the ticket waited in each kind of status up to `until` (or, once solved, up
    /// to when it was last solved): calendar seconds, and seconds open in `schedule` (all of
    /// them without one).
    pub fn waits(&self, until: i64, schedule: Option<&crate::business_hours::Schedule>) -> Waits {
        let end = match self.solved_at {
            Some(s)
                if self
                    .status_history
                    .last()
                    .is_some_and(|(st, _)| *st >= Status::Solved) =>
            {
                s.as_second()
            }
            _ => until,
        };
        let mut w = Waits::default();
        let fallback = [(Status::New, self.created_at.as_second())];
        let hist: &[(Status, i64)] = if self.status_history.is_empty() {
            &fallback
        } else {
            &self.status_history
        };
        for (i, (status, from)) in hist.iter().enumerate() {
            let to = hist.get(i + 1).map_or(end, |n| n.1).min(end);
            if to <= *from {
                continue;
            }
            let cal = to - from;
            let bus = schedule.map_or(cal, |s| s.business_seconds(*from, to));
            let add = |x: &mut (i64, i64)| {
                x.0 += cal;
                x.1 += bus;
            };
            match status {
                Status::New | Status::Open => add(&mut w.requester),
                Status::Hold => {
                    add(&mut w.requester);
                    add(&mut w.on_hold);
                }
                Status::Pending => add(&mut w.agent),
                _ => {}
            }
        }
        w
    }

    /// When the ticket last entered `status`.
    pub fn entered(&self, status: Status) -> Option<Timestamp> {
        self.status_entered
            .get(&status)
            .map(|s| crate::clock::from_unix(*s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix;
    use crate::ticket::Via;

    #[test]
    fn observe_tracks_status_times_reopens_and_replies() {
        let mut t = Ticket::blank(7, Via::api(), from_unix(1000));
        t.requester_id = 5;
        let m = TicketMetrics::observe(
            None,
            None,
            &t,
            WriteFacts {
                author_id: 5,
                comment: true,
                ..Default::default()
            },
            from_unix(1000),
        );
        assert_eq!(m.entered(Status::New), Some(from_unix(1000)));
        assert_eq!(m.requester_updated_at, Some(from_unix(1000)));
        assert_eq!(m.replies, 0);
        assert_eq!(m.assignee_stations, 0);

        let before = t.clone();
        t.status = Status::Solved;
        t.assignee_id = Some(9);
        let m = TicketMetrics::observe(
            Some(m),
            Some(&before),
            &t,
            WriteFacts {
                author_id: 9,
                public_staff_comment: true,
                comment: true,
                ..Default::default()
            },
            from_unix(5000),
        );
        assert_eq!(m.solved_at, Some(from_unix(5000)));
        assert_eq!(m.entered(Status::Solved), Some(from_unix(5000)));
        assert_eq!(m.assigned_at, Some(from_unix(5000)));
        assert_eq!(m.assignee_updated_at, Some(from_unix(5000)));
        assert_eq!(m.replies, 1);
        assert_eq!(m.assignee_stations, 1);

        let before = t.clone();
        t.status = Status::Open;
        let m = TicketMetrics::observe(
            Some(m),
            Some(&before),
            &t,
            WriteFacts {
                author_id: 5,
                ..Default::default()
            },
            from_unix(9000),
        );
        assert_eq!(m.reopens, 1);
        assert_eq!(m.entered(Status::Open), Some(from_unix(9000)));
        assert_eq!(m.entered(Status::Solved), Some(from_unix(5000)));
        assert_eq!(m.requester_updated_at, Some(from_unix(9000)));
        assert_eq!(m.status_updated_at, from_unix(9000));
    }
}
