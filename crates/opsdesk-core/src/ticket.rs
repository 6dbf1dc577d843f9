//! Tickets: the projection, its audit events, comments, and the input a create/update carries.
//!
//! A ticket row is the fold of its audits' events. [`creation_events`] and [`change_events`]
//! produce the events for a new ticket state; [`apply_event`] folds an event onto a ticket.
//! The invariant (tested below): `replay(events(old -> new)) == new`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Value};

use crate::clock::{self, ts, ts_opt, Timestamp};
use crate::model::Id;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    New,
    Open,
    Pending,
    Hold,
    Solved,
    Closed,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::New,
        Status::Open,
        Status::Pending,
        Status::Hold,
        Status::Solved,
        Status::Closed,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::Pending => "pending",
            Status::Hold => "hold",
            Status::Solved => "solved",
            Status::Closed => "closed",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim().to_ascii_lowercase())
    }
    /// Ordinal used for `status<solved` comparisons.
    pub fn rank(self) -> u8 {
        self as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

impl Priority {
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
    pub fn parse(s: &str) -> Option<Priority> {
        Priority::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim().to_ascii_lowercase())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum TicketType {
    Question,
    Incident,
    Problem,
    Task,
}

impl TicketType {
    pub const ALL: [TicketType; 4] = [
        TicketType::Question,
        TicketType::Incident,
        TicketType::Problem,
        TicketType::Task,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            TicketType::Question => "question",
            TicketType::Incident => "incident",
            TicketType::Problem => "problem",
            TicketType::Task => "task",
        }
    }
    pub fn parse(s: &str) -> Option<TicketType> {
        TicketType::ALL
            .into_iter()
            .find(|x| x.as_str() == s.trim().to_ascii_lowercase())
    }
}

/// How a change arrived: `{"channel": "api", "source": {"from": {}, "to": {}, "rel": null}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Via {
    pub channel: String,
    pub source: Value,
}

impl Via {
    pub fn channel(channel: &str) -> Via {
        Via {
            channel: channel.to_string(),
            source: json!({"from": {}, "to": {}, "rel": null}),
        }
    }
    pub fn api() -> Via {
        Via::channel("api")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CustomFieldValue {
    pub id: Id,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: Id,
    pub external_id: Option<String>,
    pub via: Via,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
    #[serde(rename = "type")]
    pub ticket_type: Option<TicketType>,
    pub subject: Option<String>,
    pub raw_subject: Option<String>,
    pub description: String,
    pub priority: Option<Priority>,
    pub status: Status,
    pub recipient: Option<String>,
    pub requester_id: Id,
    pub submitter_id: Id,
    pub assignee_id: Option<Id>,
    pub organization_id: Option<Id>,
    pub group_id: Option<Id>,
    pub collaborator_ids: Vec<Id>,
    pub follower_ids: Vec<Id>,
    pub email_cc_ids: Vec<Id>,
    pub problem_id: Option<Id>,
    pub is_public: bool,
    #[serde(with = "ts_opt", default)]
    pub due_at: Option<Timestamp>,
    pub tags: Vec<String>,
    pub custom_fields: Vec<CustomFieldValue>,
    pub ticket_form_id: Option<Id>,
    pub brand_id: Option<Id>,
    /// The schedule its business hours count in (a trigger's `set_schedule`); None: the
    /// default schedule.
    #[serde(default)]
    pub schedule_id: Option<Id>,
    #[serde(default)]
    pub has_incidents: bool,
}

impl Ticket {
    /// An empty ticket: the state before its first event.
    pub fn blank(id: Id, via: Via, at: Timestamp) -> Ticket {
        Ticket {
            id,
            external_id: None,
            via,
            created_at: at,
            updated_at: at,
            ticket_type: None,
            subject: None,
            raw_subject: None,
            description: String::new(),
            priority: None,
            status: Status::New,
            recipient: None,
            requester_id: 0,
            submitter_id: 0,
            assignee_id: None,
            organization_id: None,
            group_id: None,
            collaborator_ids: vec![],
            follower_ids: vec![],
            email_cc_ids: vec![],
            problem_id: None,
            is_public: true,
            due_at: None,
            tags: vec![],
            custom_fields: vec![],
            ticket_form_id: None,
            brand_id: None,
            schedule_id: None,
            has_incidents: false,
        }
    }

    pub fn custom_field(&self, id: Id) -> Option<&Value> {
        self.custom_fields
            .iter()
            .find(|c| c.id == id)
            .map(|c| &c.value)
    }

    /// Set (or clear, with `Null`) a custom field value, keeping the list sorted by field id.
    pub fn set_custom_field(&mut self, id: Id, value: Value) {
        match self.custom_fields.binary_search_by_key(&id, |c| c.id) {
            Ok(i) => self.custom_fields[i].value = value,
            Err(i) => self.custom_fields.insert(i, CustomFieldValue { id, value }),
        }
    }
}

/// A comment on a ticket: a public reply or an internal note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub id: Id,
    #[serde(rename = "type")]
    pub kind: String,
    pub ticket_id: Id,
    pub audit_id: Id,
    pub author_id: Id,
    pub body: String,
    pub html_body: String,
    pub plain_body: String,
    pub public: bool,
    pub attachments: Vec<Value>,
    pub via: Via,
    pub metadata: Value,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
}

/// One audit: who changed a ticket, when, through what, and the events it made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    pub id: Id,
    pub ticket_id: Id,
    pub author_id: Id,
    pub via: Via,
    pub metadata: Value,
    pub events: Vec<Value>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
}

/// The id of the n-th (0-based) event of an audit. Comment events use this as the comment id,
/// so comment and event ids share one space, as in Zendesk.
pub fn event_id(audit_id: Id, index: usize) -> Id {
    audit_id
        .saturating_mul(10_000)
        .saturating_add(index as i64 + 1)
}

/// Fields recorded as Create/Change events, in the order events are emitted.
pub const TRACKED_FIELDS: &[&str] = &[
    "subject",
    "requester_id",
    "submitter_id",
    "status",
    "priority",
    "type",
    "assignee_id",
    "group_id",
    "organization_id",
    "tags",
    "collaborator_ids",
    "follower_ids",
    "email_cc_ids",
    "problem_id",
    "due_at",
    "ticket_form_id",
    "external_id",
    "recipient",
    "brand_id",
    "is_public",
    "schedule_id",
];

fn id_str(v: Option<Id>) -> Value {
    v.map(|i| Value::String(i.to_string()))
        .unwrap_or(Value::Null)
}

fn ids(v: &[Id]) -> Value {
    Value::Array(v.iter().map(|i| Value::String(i.to_string())).collect())
}

fn opt_str(v: &Option<String>) -> Value {
    v.clone().map(Value::String).unwrap_or(Value::Null)
}

/// The event encoding of a tracked field (Zendesk writes scalars as strings, lists as arrays).
pub fn encode_field(t: &Ticket, field: &str) -> Value {
    match field {
        "subject" => opt_str(&t.subject),
        "requester_id" => id_str(Some(t.requester_id)),
        "submitter_id" => id_str(Some(t.submitter_id)),
        "status" => Value::String(t.status.as_str().into()),
        "priority" => t
            .priority
            .map(|p| Value::String(p.as_str().into()))
            .unwrap_or(Value::Null),
        "type" => t
            .ticket_type
            .map(|p| Value::String(p.as_str().into()))
            .unwrap_or(Value::Null),
        "assignee_id" => id_str(t.assignee_id),
        "group_id" => id_str(t.group_id),
        "organization_id" => id_str(t.organization_id),
        "tags" => Value::Array(t.tags.iter().cloned().map(Value::String).collect()),
        "collaborator_ids" => ids(&t.collaborator_ids),
        "follower_ids" => ids(&t.follower_ids),
        "email_cc_ids" => ids(&t.email_cc_ids),
        "problem_id" => id_str(t.problem_id),
        "due_at" => t
            .due_at
            .map(|d| Value::String(clock::format(d)))
            .unwrap_or(Value::Null),
        "ticket_form_id" => id_str(t.ticket_form_id),
        "external_id" => opt_str(&t.external_id),
        "recipient" => opt_str(&t.recipient),
        "brand_id" => id_str(t.brand_id),
        "is_public" => Value::Bool(t.is_public),
        "schedule_id" => id_str(t.schedule_id),
        _ => match field.parse::<Id>() {
            Ok(id) => t.custom_field(id).cloned().unwrap_or(Value::Null),
            Err(_) => Value::Null,
        },
    }
}

fn parse_id(v: &Value) -> Option<Id> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn parse_ids(v: &Value) -> Vec<Id> {
    v.as_array()
        .map(|a| a.iter().filter_map(parse_id).collect())
        .unwrap_or_default()
}

fn parse_str(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

/// Fold one field value onto a ticket (the inverse of [`encode_field`]).
pub fn decode_field(t: &mut Ticket, field: &str, v: &Value) {
    match field {
        "subject" => {
            t.subject = parse_str(v);
            t.raw_subject = t.subject.clone();
        }
        "requester_id" => t.requester_id = parse_id(v).unwrap_or(0),
        "submitter_id" => t.submitter_id = parse_id(v).unwrap_or(0),
        "status" => t.status = v.as_str().and_then(Status::parse).unwrap_or(Status::New),
        "priority" => t.priority = v.as_str().and_then(Priority::parse),
        "type" => t.ticket_type = v.as_str().and_then(TicketType::parse),
        "assignee_id" => t.assignee_id = parse_id(v),
        "group_id" => t.group_id = parse_id(v),
        "organization_id" => t.organization_id = parse_id(v),
        "tags" => {
            t.tags = v
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        }
        "collaborator_ids" => t.collaborator_ids = parse_ids(v),
        "follower_ids" => t.follower_ids = parse_ids(v),
        "email_cc_ids" => t.email_cc_ids = parse_ids(v),
        "problem_id" => t.problem_id = parse_id(v),
        "due_at" => t.due_at = v.as_str().and_then(clock::parse),
        "ticket_form_id" => t.ticket_form_id = parse_id(v),
        "external_id" => t.external_id = parse_str(v),
        "recipient" => t.recipient = parse_str(v),
        "brand_id" => t.brand_id = parse_id(v),
        "is_public" => t.is_public = v.as_bool().unwrap_or(true),
        "schedule_id" => t.schedule_id = parse_id(v),
        _ => {
            if let Ok(id) = field.parse::<Id>() {
                t.set_custom_field(id, v.clone());
            }
        }
    }
}

fn all_fields(a: &Ticket, b: &Ticket) -> Vec<String> {
    let mut f: Vec<String> = TRACKED_FIELDS.iter().map(|s| s.to_string()).collect();
    let mut cf: Vec<Id> = a
        .custom_fields
        .iter()
        .chain(b.custom_fields.iter())
        .map(|c| c.id)
        .collect();
    cf.sort_unstable();
    cf.dedup();
    f.extend(cf.into_iter().map(|i| i.to_string()));
    f
}

fn is_empty_value(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// The Create events of a new ticket (fields with a value), without ids.
pub fn creation_events(t: &Ticket) -> Vec<Value> {
    let blank = Ticket::blank(t.id, t.via.clone(), t.created_at);
    all_fields(&blank, t)
        .into_iter()
        .filter_map(|f| {
            let v = encode_field(t, &f);
            // status and is_public are always recorded; other empty values are not.
            let always = f == "status" || f == "is_public";
            if always || !is_empty_value(&v) {
                Some(json!({"type": "Create", "field_name": f, "value": v}))
            } else {
                None
            }
        })
        .collect()
}

/// The Change events from `old` to `new`, without ids.
pub fn change_events(old: &Ticket, new: &Ticket) -> Vec<Value> {
    all_fields(old, new)
        .into_iter()
        .filter_map(|f| {
            let a = encode_field(old, &f);
            let b = encode_field(new, &f);
            if a == b || (is_empty_value(&a) && is_empty_value(&b)) {
                None
            } else {
                Some(json!({"type": "Change", "field_name": f, "value": b, "previous_value": a}))
            }
        })
        .collect()
}

/// Fold one audit event onto a ticket. Unknown event types change nothing.
pub fn apply_event(t: &mut Ticket, event: &Value) {
    match event.get("type").and_then(Value::as_str) {
        Some("Create") | Some("Change") => {
            if let Some(f) = event.get("field_name").and_then(Value::as_str) {
                decode_field(t, f, event.get("value").unwrap_or(&Value::Null));
            }
        }
        Some("Comment") if t.description.is_empty() => {
            if let Some(b) = event.get("body").and_then(Value::as_str) {
                t.description = b.to_string();
            }
        }
        _ => {}
    }
}

/// Rebuild a ticket from its audits (oldest first).
pub fn replay(id: Id, audits: &[Audit]) -> Option<Ticket> {
    let first = audits.first()?;
    let mut t = Ticket::blank(id, first.via.clone(), first.created_at);
    for a in audits {
        for e in &a.events {
            apply_event(&mut t, e);
        }
        t.updated_at = a.created_at;
    }
    Some(t)
}

/// Distinguish "absent" (`None`) from "null" (`Some(None)`) in JSON input.
pub fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// A comment as posted: `{"body", "html_body", "public", "author_id", "uploads"}`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommentInput {
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub html_body: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub public: Option<bool>,
    #[serde(default)]
    pub author_id: Option<Id>,
    #[serde(default)]
    pub uploads: Option<Vec<String>>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub id: Option<Value>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub via: Option<Value>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub attachments: Option<Value>,
    #[serde(default)]
    pub plain_body: Option<String>,
    #[serde(default)]
    pub audit_id: Option<Value>,
}

/// `{"name", "email", "locale_id"}`: create the requester on the fly.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequesterInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub locale_id: Option<i64>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CustomFieldInput {
    pub id: Id,
    #[serde(default)]
    pub value: Value,
}

/// An email CC change on update: `{"user_id"|"user_email", "action": "put"|"delete"}`.
#[derive(Debug, Clone, Deserialize)]
pub struct CcChange {
    #[serde(default)]
    pub user_id: Option<Id>,
    #[serde(default)]
    pub user_email: Option<String>,
    #[serde(default)]
    pub user_name: Option<String>,
    #[serde(default)]
    pub action: Option<String>,
}

/// What a ticket create or update may carry. Absent fields are left alone; `null` clears.
/// Read-only fields clients echo back (zenpy sends whole objects) are accepted and ignored.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TicketInput {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub raw_subject: Option<String>,
    #[serde(default)]
    pub comment: Option<CommentInput>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub priority: Option<Option<String>>,
    #[serde(default, rename = "type", deserialize_with = "double_option")]
    pub ticket_type: Option<Option<String>>,
    #[serde(default)]
    pub requester_id: Option<Id>,
    #[serde(default)]
    pub requester: Option<RequesterInput>,
    #[serde(default)]
    pub submitter_id: Option<Id>,
    #[serde(default, deserialize_with = "double_option")]
    pub assignee_id: Option<Option<Id>>,
    #[serde(default)]
    pub assignee_email: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub group_id: Option<Option<Id>>,
    #[serde(default, deserialize_with = "double_option")]
    pub organization_id: Option<Option<Id>>,
    #[serde(default)]
    pub collaborator_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub collaborators: Option<Vec<Value>>,
    #[serde(default)]
    pub email_cc_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub email_ccs: Option<Vec<CcChange>>,
    #[serde(default)]
    pub follower_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub followers: Option<Vec<CcChange>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub additional_tags: Option<Vec<String>>,
    #[serde(default)]
    pub remove_tags: Option<Vec<String>>,
    #[serde(default)]
    pub custom_fields: Option<Vec<CustomFieldInput>>,
    #[serde(default)]
    pub fields: Option<Vec<CustomFieldInput>>,
    #[serde(default, deserialize_with = "double_option")]
    pub problem_id: Option<Option<Id>>,
    #[serde(default, deserialize_with = "double_option")]
    pub due_at: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub ticket_form_id: Option<Option<Id>>,
    #[serde(default, deserialize_with = "double_option")]
    pub brand_id: Option<Option<Id>>,
    #[serde(default)]
    pub recipient: Option<String>,
    #[serde(default)]
    pub is_public: Option<bool>,
    #[serde(default)]
    pub safe_update: Option<bool>,
    #[serde(default)]
    pub updated_stamp: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    /// Echoed-back, read-only or unsupported attributes: accepted, ignored.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: i64) -> Timestamp {
        clock::from_unix(1_700_000_000 + s)
    }

    fn arb_ticket() -> impl Strategy<Value = Ticket> {
        (
            (
                proptest::option::of("[a-z ]{0,12}"),
                0usize..6,
                proptest::option::of(0usize..4),
                proptest::option::of(0usize..4),
                1i64..50,
                proptest::option::of(1i64..50),
                proptest::option::of(1i64..5),
            ),
            (
                proptest::collection::vec("[a-z]{1,6}", 0..4),
                proptest::collection::vec(1i64..20, 0..3),
                proptest::option::of(1i64..1000),
                proptest::collection::btree_map(
                    1i64..5,
                    prop_oneof![
                        Just(Value::Null),
                        "[a-z]{1,4}".prop_map(Value::String),
                        any::<bool>().prop_map(Value::Bool)
                    ],
                    0..3,
                ),
                any::<bool>(),
                proptest::option::of(0i64..100_000),
            ),
        )
            .prop_map(
                |((subject, st, pr, ty, req, asg, grp), (tags, ccs, problem, cf, public, due))| {
                    let mut t = Ticket::blank(7, Via::api(), at(0));
                    t.subject = subject.clone();
                    t.raw_subject = subject;
                    t.status = Status::ALL[st];
                    t.priority = pr.map(|i| Priority::ALL[i]);
                    t.ticket_type = ty.map(|i| TicketType::ALL[i]);
                    t.requester_id = req;
                    t.submitter_id = req;
                    t.assignee_id = asg;
                    t.group_id = grp;
                    let mut tags = tags;
                    tags.dedup();
                    t.tags = tags;
                    t.collaborator_ids = ccs;
                    t.problem_id = problem;
                    for (k, v) in cf {
                        if !v.is_null() {
                            t.set_custom_field(k, v);
                        }
                    }
                    t.is_public = public;
                    t.due_at = due.map(at);
                    t
                },
            )
    }

    fn audit(id: Id, events: Vec<Value>, s: i64) -> Audit {
        Audit {
            id,
            ticket_id: 7,
            author_id: 1,
            via: Via::api(),
            metadata: json!({}),
            events,
            created_at: at(s),
        }
    }

    proptest! {
        #[test]
        fn replay_of_create_then_change_is_the_projection(a in arb_ticket(), b in arb_ticket()) {
            let mut first = creation_events(&a);
            first.push(json!({"type": "Comment", "body": "hello", "public": true}));
            let mut a = a;
            a.description = "hello".into();
            let audits = vec![audit(1, first, 0)];
            let rebuilt = replay(7, &audits).unwrap();
            prop_assert_eq!(&rebuilt, &a);

            let mut b = b;
            b.description = "hello".into();
            // b's custom fields that are null are "cleared": compare after normalising.
            let mut audits = audits;
            audits.push(audit(2, change_events(&a, &b), 0));
            let mut rebuilt = replay(7, &audits).unwrap();
            rebuilt.custom_fields.retain(|c| !c.value.is_null());
            prop_assert_eq!(rebuilt, b);
        }
    }

    #[test]
    fn change_event_carries_previous_value() {
        let mut a = Ticket::blank(1, Via::api(), at(0));
        a.requester_id = 3;
        let mut b = a.clone();
        b.status = Status::Open;
        b.assignee_id = Some(9);
        let ev = change_events(&a, &b);
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0],
            json!({"type":"Change","field_name":"status","value":"open","previous_value":"new"})
        );
        assert_eq!(
            ev[1],
            json!({"type":"Change","field_name":"assignee_id","value":"9","previous_value":null})
        );
    }

    #[test]
    fn statuses_parse() {
        assert_eq!(Status::parse("Hold"), Some(Status::Hold));
        assert_eq!(Status::parse("on-hold"), None);
        assert!(Status::Open.rank() < Status::Solved.rank());
    }
}
