//! Business rules: conditions, actions, and the trigger cycle, with Zendesk's field names and
//! operators. Pure: the app gives the rule engine a ticket, its state before the update and what
//! the update carried; the engine answers with the new ticket, what each trigger did, and a
//! trace of why every trigger did or did not fire.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::Invalid;
use crate::model::{normalize_tags, Id, Role};
use crate::ticket::{Priority, Status, Ticket, TicketType};

/// `{"field", "operator", "value"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub field: String,
    pub operator: String,
    #[serde(default)]
    pub value: Value,
}

/// `{"all": [...], "any": [...]}`: every `all` condition and, when `any` is not empty, at
/// least one `any` condition.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    #[serde(default)]
    pub all: Vec<Condition>,
    #[serde(default)]
    pub any: Vec<Condition>,
}

/// `{"field", "value"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub field: String,
    #[serde(default)]
    pub value: Value,
}

/// A comment that arrived with this update, as conditions see it.
#[derive(Debug, Clone, Default)]
pub struct CommentFacts {
    pub public: bool,
    pub body: String,
}

/// Everything a condition may look at besides the ticket itself.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The ticket before this update (None on create).
    pub previous: Option<Ticket>,
    /// The comment this update added, if any.
    pub comment: Option<CommentFacts>,
    /// Who made the update.
    pub current_user: Id,
    pub current_role: Role,
    /// Custom fields of the requester and of the ticket's organisation (by key).
    pub requester_fields: serde_json::Map<String, Value>,
    pub organization_fields: serde_json::Map<String, Value>,
    /// For time conditions (automations, views): the instant of evaluation and the ticket's
    /// timestamps. Without them, time conditions do not hold.
    pub now: Option<crate::Timestamp>,
    pub metrics: Option<crate::ticket_metrics::TicketMetrics>,
    /// The schedule business-hours conditions count in (None: around the clock).
    pub schedule: Option<std::sync::Arc<crate::business_hours::Schedule>>,
    /// When the ticket's next SLA target will be missed (UTC seconds), for the
    /// `until_sla_next_breach_at` / `sla_next_breach_at` time conditions.
    pub next_breach_at: Option<i64>,
    /// When the SLA scheduler runs the triggers because a target's warning or breach fell
    /// due: `warning` or `breach` (the `sla_event` condition). None on ordinary updates.
    pub sla_event: Option<String>,
}

impl Facts {
    /// Facts for evaluating a ticket outside an update (views, automations).
    pub fn at_rest(current_user: Id, role: Role) -> Facts {
        Facts {
            previous: None,
            comment: None,
            current_user,
            current_role: role,
            requester_fields: Default::default(),
            organization_fields: Default::default(),
            now: None,
            metrics: None,
            schedule: None,
            next_breach_at: None,
            sla_event: None,
        }
    }
}

/// What kind of rule a definition belongs to: each allows different conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Trigger,
    Automation,
    View,
}

impl RuleKind {
    fn name(self) -> &'static str {
        match self {
            RuleKind::Trigger => "triggers",
            RuleKind::Automation => "automations",
            RuleKind::View => "views",
        }
    }
}

/// A ticket trigger, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trigger {
    pub id: Id,
    pub title: String,
    pub raw_title: String,
    pub description: Option<String>,
    pub active: bool,
    pub position: i64,
    pub conditions: Conditions,
    pub actions: Vec<Action>,
    pub category_id: Option<String>,
    pub default: bool,
    #[serde(with = "crate::clock::ts")]
    pub created_at: crate::Timestamp,
    #[serde(with = "crate::clock::ts")]
    pub updated_at: crate::Timestamp,
}

impl Trigger {
    pub fn rule(&self) -> Rule {
        Rule {
            id: self.id,
            title: self.title.clone(),
            position: self.position,
            conditions: self.conditions.clone(),
            actions: self.actions.clone(),
        }
    }
}

/// An automation: a time-based rule checked on a schedule against every ticket that is not
/// closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Automation {
    pub id: Id,
    pub title: String,
    pub raw_title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub active: bool,
    pub position: i64,
    pub conditions: Conditions,
    pub actions: Vec<Action>,
    pub default: bool,
    #[serde(with = "crate::clock::ts")]
    pub created_at: crate::Timestamp,
    #[serde(with = "crate::clock::ts")]
    pub updated_at: crate::Timestamp,
}

impl Automation {
    pub fn rule(&self) -> Rule {
        Rule {
            id: self.id,
            title: self.title.clone(),
            position: self.position,
            conditions: self.conditions.clone(),
            actions: self.actions.clone(),
        }
    }
}

/// A macro: actions an agent applies to a ticket, previewed before saving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Macro {
    pub id: Id,
    pub title: String,
    pub raw_title: String,
    pub description: Option<String>,
    pub active: bool,
    pub position: i64,
    pub actions: Vec<Action>,
    /// `null` (everyone), `{"type": "Group", "id", "ids": [...]}` or `{"type": "User", "id"}`.
    pub restriction: Option<Value>,
    pub default: bool,
    #[serde(with = "crate::clock::ts")]
    pub created_at: crate::Timestamp,
    #[serde(with = "crate::clock::ts")]
    pub updated_at: crate::Timestamp,
}

/// Validate a macro's actions (the trigger actions plus `subject`).
pub fn validate_actions(actions: &[Action]) -> Result<(), Invalid> {
    let mut inv = Invalid::new();
    if actions.is_empty() {
        inv.blank("actions", "Actions");
    }
    if actions.len() > 100 {
        inv.invalid("actions", "Actions", "at most 100");
    }
    for (i, a) in actions.iter().enumerate() {
        if a.field == "subject" {
            if value_str(&a.value).trim().is_empty() {
                inv.add(
                    "actions",
                    "InvalidValue",
                    format!("actions[{i}] (subject): needs the subject"),
                );
            }
            continue;
        }
        if a.field.starts_with("notification_") || a.field == "set_schedule" {
            inv.add(
                "actions",
                "InvalidValue",
                format!(
                    "actions[{i}] ({}): macros cannot send notifications or set schedules; use a trigger",
                    a.field
                ),
            );
            continue;
        }
        check_action(a, &format!("actions[{i}]"), &mut inv);
    }
    if inv.is_empty() {
        Ok(())
    } else {
        Err(inv)
    }
}

/// How a view shows its tickets.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViewExecution {
    /// `[{"id": "subject", "title": "Subject"}, …]`
    #[serde(default)]
    pub columns: Vec<Value>,
    #[serde(default)]
    pub group_by: Option<String>,
    #[serde(default)]
    pub group_order: Option<String>,
    #[serde(default)]
    pub sort_by: Option<String>,
    #[serde(default)]
    pub sort_order: Option<String>,
}

/// A view: a saved ticket filter with columns and an order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub id: Id,
    pub title: String,
    pub raw_title: String,
    pub description: Option<String>,
    pub active: bool,
    pub position: i64,
    pub conditions: Conditions,
    pub execution: ViewExecution,
    pub restriction: Option<Value>,
    pub default: bool,
    #[serde(with = "crate::clock::ts")]
    pub created_at: crate::Timestamp,
    #[serde(with = "crate::clock::ts")]
    pub updated_at: crate::Timestamp,
}

/// View columns and their titles.
pub const VIEW_COLUMNS: &[(&str, &str)] = &[
    ("ticket_id", "ID"),
    ("subject", "Subject"),
    ("status", "Status"),
    ("priority", "Priority"),
    ("type", "Type"),
    ("requester", "Requester"),
    ("assignee", "Assignee"),
    ("group", "Group"),
    ("organization", "Organization"),
    ("created", "Requested"),
    ("updated", "Updated"),
    ("due_date", "Due date"),
    ("sla_next_breach_at", "Next SLA breach"),
];

/// Sort keys a view may use.
pub const VIEW_SORTS: &[&str] = &[
    "id",
    "ticket_id",
    "created",
    "created_at",
    "updated",
    "updated_at",
    "status",
    "priority",
    "subject",
    "due_date",
    "sla_next_breach_at",
];

/// Columns a view may group by (Zendesk: any view column but subject and submitter).
pub const VIEW_GROUPS: &[&str] = &[
    "status",
    "priority",
    "type",
    "assignee",
    "group",
    "requester",
    "organization",
    "created",
    "updated",
    "due_date",
];

/// Validate a filter that is not a trigger's (an SLA policy's): view conditions, including
/// requester and organisation fields. Empty is allowed (it matches every ticket).
pub fn validate_filter(conditions: &Conditions) -> Result<(), Invalid> {
    let mut inv = Invalid::new();
    for (i, c) in conditions.all.iter().enumerate() {
        check_condition(c, RuleKind::View, &format!("filter.all[{i}]"), &mut inv);
    }
    for (i, c) in conditions.any.iter().enumerate() {
        check_condition(c, RuleKind::View, &format!("filter.any[{i}]"), &mut inv);
    }
    if inv.is_empty() {
        Ok(())
    } else {
        Err(inv)
    }
}

/// Validate view conditions (no trigger-only fields or change operators; at least one).
pub fn validate_view(conditions: &Conditions, execution: &ViewExecution) -> Result<(), Invalid> {
    let mut inv = Invalid::new();
    if conditions.all.is_empty() && conditions.any.is_empty() {
        inv.blank("conditions", "Conditions");
    }
    for (i, c) in conditions.all.iter().enumerate() {
        check_condition(c, RuleKind::View, &format!("conditions.all[{i}]"), &mut inv);
    }
    for (i, c) in conditions.any.iter().enumerate() {
        check_condition(c, RuleKind::View, &format!("conditions.any[{i}]"), &mut inv);
    }
    for (i, c) in conditions.all.iter().chain(&conditions.any).enumerate() {
        if c.field.starts_with("requester.") || c.field.starts_with("organization.") {
            inv.add("conditions", "InvalidValue", format!("condition {i} ({}): requester and organization fields are not supported in views yet", c.field));
        }
    }
    for (i, col) in execution.columns.iter().enumerate() {
        let id = col
            .get("id")
            .map(value_str)
            .unwrap_or_else(|| value_str(col));
        if !VIEW_COLUMNS.iter().any(|(c, _)| *c == id) && id.parse::<Id>().is_err() {
            inv.add(
                "execution",
                "InvalidValue",
                format!("columns[{i}]: '{id}' is not a view column"),
            );
        }
    }
    if let Some(s) = &execution.sort_by {
        if !VIEW_SORTS.contains(&s.as_str()) {
            inv.add(
                "execution",
                "InvalidValue",
                format!("sort_by: '{s}' is not one of {}", VIEW_SORTS.join(", ")),
            );
        }
    }
    if let Some(g) = &execution.group_by {
        if !VIEW_GROUPS.contains(&g.as_str()) {
            inv.add(
                "execution",
                "InvalidValue",
                format!("group_by: '{g}' is not one of {}", VIEW_GROUPS.join(", ")),
            );
        }
    }
    if let Some(o) = &execution.group_order {
        if o != "asc" && o != "desc" {
            inv.add(
                "execution",
                "InvalidValue",
                "group_order: must be asc or desc",
            );
        }
    }
    if let Some(o) = &execution.sort_order {
        if o != "asc" && o != "desc" {
            inv.add(
                "execution",
                "InvalidValue",
                "sort_order: must be asc or desc",
            );
        }
    }
    if inv.is_empty() {
        Ok(())
    } else {
        Err(inv)
    }
}

/// A rule as the engine holds it.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: Id,
    pub title: String,
    pub position: i64,
    pub conditions: Conditions,
    pub actions: Vec<Action>,
}

/// What one trigger firing added besides field changes.
#[derive(Debug, Clone, PartialEq)]
pub enum SideEffect {
    /// A comment written by the rule (`comment_value` / `comment_value_html`).
    Comment {
        body: String,
        html: bool,
        public: bool,
    },
    /// An email notification (`notification_user`, `notification_group`); subject and body
    /// are placeholder templates, rendered by the app.
    Notify {
        to: Recipient,
        subject: String,
        body: String,
    },
    /// A webhook request (`notification_webhook`) with a placeholder-template body.
    Webhook { webhook_id: Id, body: String },
}

/// Who a notification goes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipient {
    User(Id),
    /// The requester and the ticket's CCs.
    RequesterAndCcs,
    AllAgents,
    Group(Id),
}

/// One firing: which rule, and the ticket before and after it.
#[derive(Debug, Clone)]
pub struct Firing {
    pub rule_id: Id,
    pub title: String,
    pub before: Ticket,
    pub after: Ticket,
    pub effects: Vec<SideEffect>,
}

/// The outcome of the trigger cycle for one update.
#[derive(Debug, Clone)]
pub struct CycleResult {
    pub ticket: Ticket,
    pub firings: Vec<Firing>,
    /// Why: `{"passes", "fired": [{"id", "title", "pass"}], "not_fired": "12:0 13:any"}` — for
    /// each trigger that did not fire, the first condition that did not hold in the last pass
    /// (compact; see [`expand_not_fired`]).
    pub trace: Value,
    /// The cycle stopped at the bound instead of settling.
    pub bounded: bool,
}

/// Fields triggers (and views/automations) may test, with their operators.
pub fn condition_fields() -> Vec<(&'static str, &'static [&'static str])> {
    const EQ: &[&str] = &["is", "is_not"];
    const ORD: &[&str] = &["is", "is_not", "less_than", "greater_than"];
    vec![
        ("status", ORD),
        ("priority", ORD),
        ("type", EQ),
        ("group_id", EQ),
        ("assignee_id", EQ),
        ("requester_id", EQ),
        ("organization_id", EQ),
        ("ticket_form_id", EQ),
        ("via_id", EQ),
        ("current_via_id", EQ),
        ("current_tags", &["includes", "not_includes"]),
        ("update_type", &["is"]),
        ("comment_is_public", &["is"]),
        ("ticket_is_public", &["is"]),
        ("role", EQ),
        (
            "subject_includes_word",
            &["includes", "not_includes", "is", "is_not"],
        ),
        (
            "comment_includes_word",
            &["includes", "not_includes", "is", "is_not"],
        ),
        (
            "description_includes_word",
            &["includes", "not_includes", "is", "is_not"],
        ),
        ("recipient", EQ),
        ("in_business_hours", &["is"]),
        ("sla_event", &["is"]),
    ]
}

/// Time conditions (automations and views): hours since an instant of the ticket's life, in
/// whole hours. `NEW` is hours since created; `OPEN` … `CLOSED` since the ticket last entered
/// that status; `until_due_date` counts down to a task's due date.
pub const TIME_FIELDS: &[&str] = &[
    "NEW",
    "OPEN",
    "PENDING",
    "HOLD",
    "SOLVED",
    "CLOSED",
    "assigned_at",
    "updated_at",
    "requester_updated_at",
    "assignee_updated_at",
    "due_date",
    "until_due_date",
    "sla_next_breach_at",
    "until_sla_next_breach_at",
];
/// Operators of time conditions: calendar hours, and business hours in the schedule.
pub const TIME_OPERATORS: &[&str] = &[
    "is",
    "less_than",
    "greater_than",
    "is_business_hours",
    "less_than_business_hours",
    "greater_than_business_hours",
];

/// Operators that compare with the previous value (triggers only).
pub const CHANGE_OPERATORS: &[&str] = &[
    "changed",
    "not_changed",
    "value",
    "not_value",
    "value_previous",
    "not_value_previous",
];
/// Fields whose changes triggers can watch.
const CHANGEABLE: &[&str] = &[
    "status",
    "priority",
    "type",
    "group_id",
    "assignee_id",
    "requester_id",
    "organization_id",
    "ticket_form_id",
];

/// Action fields and what they take.
pub const ACTION_FIELDS: &[&str] = &[
    "status",
    "priority",
    "type",
    "group_id",
    "assignee_id",
    "set_tags",
    "current_tags",
    "remove_tags",
    "ticket_form_id",
    "cc",
    "comment_value",
    "comment_value_html",
    "comment_mode_is_public",
    "notification_user",
    "notification_group",
    "notification_webhook",
    "set_schedule",
];

/// The most evaluation passes one update may take (each pass fires at least one trigger, and a
/// trigger fires at most once, so `triggers + 1` always suffices; this bounds pathological input).
pub const MAX_PASSES: usize = 1000;

/// Via channel names, as `via_id` conditions use them (Zendesk's numeric ids or names).
fn via_name(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(match s.as_str() {
            "0" => "web".into(),
            "4" => "email".into(),
            "5" => "api".into(),
            "8" => "rule".into(),
            other => other.to_lowercase(),
        }),
        Value::Number(n) => via_name(&Value::String(n.to_string())),
        _ => None,
    }
}

fn value_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn id_value(v: &Value) -> Result<Option<Id>, String> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| "must be an id".into()),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s == "current_user" || s == "requester_id" || s == "assignee_id" => {
            Ok(Some(-1))
        }
        Value::String(s) => s
            .parse()
            .map(Some)
            .map_err(|_| format!("'{s}' is not an id")),
        _ => Err("must be an id".into()),
    }
}

fn check_condition(c: &Condition, kind: RuleKind, at: &str, inv: &mut Invalid) {
    let trigger = kind == RuleKind::Trigger;
    let bad = |inv: &mut Invalid, why: String| {
        inv.add(
            "conditions",
            "InvalidValue",
            format!("{at} ({}): {why}", c.field),
        )
    };
    let field = c.field.as_str();
    let custom = field
        .strip_prefix("custom_fields_")
        .map(|s| s.parse::<Id>().is_ok());
    let person_field = field.starts_with("requester.custom_fields_")
        || field.starts_with("organization.custom_fields_");
    if CHANGE_OPERATORS.contains(&c.operator.as_str()) {
        if !trigger {
            bad(
                inv,
                format!("operator '{}' is only for triggers", c.operator),
            );
        } else if !(CHANGEABLE.contains(&field) || custom == Some(true)) {
            bad(inv, format!("'{}' cannot be tested for changes", c.field));
        }
        return check_value(c, field, inv, at);
    }
    if custom == Some(true) || person_field {
        if ![
            "is",
            "is_not",
            "present",
            "not_present",
            "includes",
            "not_includes",
        ]
        .contains(&c.operator.as_str())
        {
            bad(inv, format!("operator '{}' is not one of is, is_not, present, not_present, includes, not_includes", c.operator));
        }
        return;
    }
    if custom == Some(false) {
        return bad(
            inv,
            "custom field conditions are custom_fields_<field id>".into(),
        );
    }
    if TIME_FIELDS.contains(&field) {
        if trigger {
            return bad(
                inv,
                "time conditions are for automations and views, not triggers".into(),
            );
        }
        if !TIME_OPERATORS.contains(&c.operator.as_str()) {
            return bad(
                inv,
                format!(
                    "operator '{}' is not one of {}",
                    c.operator,
                    TIME_OPERATORS.join(", ")
                ),
            );
        }
        if hours_value(&c.value).is_none() {
            return bad(inv, "must be a whole number of hours (0 to 100000)".into());
        }
        return;
    }
    let fields = condition_fields();
    let Some((_, ops)) = fields.iter().find(|(f, _)| *f == field) else {
        let hint = match field {
            "reopens" | "replies" | "agent_stations" | "group_stations" | "satisfaction_score" => {
                " (needs ticket metrics, not supported yet)"
            }
            _ => "",
        };
        return bad(inv, format!("'{}' is not a condition field{hint}", c.field));
    };
    if trigger_only(field) && !trigger {
        return bad(
            inv,
            format!("'{}' is only for triggers, not {}", c.field, kind.name()),
        );
    }
    if !ops.contains(&c.operator.as_str()) {
        return bad(
            inv,
            format!("operator '{}' is not one of {}", c.operator, ops.join(", ")),
        );
    }
    check_value(c, field, inv, at)
}

/// A time condition's value: whole hours.
fn hours_value(v: &Value) -> Option<i64> {
    let h = match v {
        Value::Number(n) => n.as_i64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (0..=100_000).contains(&h).then_some(h)
}

/// Conditions only triggers may use (they describe the update in progress).
pub fn trigger_only(field: &str) -> bool {
    matches!(
        field,
        "update_type"
            | "comment_is_public"
            | "ticket_is_public"
            | "role"
            | "subject_includes_word"
            | "comment_includes_word"
            | "current_via_id"
            | "recipient"
            | "sla_event"
    )
}

fn check_value(c: &Condition, field: &str, inv: &mut Invalid, at: &str) {
    let bad = |inv: &mut Invalid, why: String| {
        inv.add(
            "conditions",
            "InvalidValue",
            format!("{at} ({}): {why}", c.field),
        )
    };
    if matches!(
        c.operator.as_str(),
        "changed" | "not_changed" | "present" | "not_present"
    ) {
        return;
    }
    let v = &c.value;
    match field {
        "status" if Status::parse(&value_str(v)).is_none() => {
            bad(inv, format!("'{}' is not a status", value_str(v)))
        }
        "priority" if !value_str(v).is_empty() && Priority::parse(&value_str(v)).is_none() => {
            bad(inv, format!("'{}' is not a priority", value_str(v)))
        }
        "type" if !value_str(v).is_empty() && TicketType::parse(&value_str(v)).is_none() => {
            bad(inv, format!("'{}' is not a ticket type", value_str(v)))
        }
        "group_id" | "assignee_id" | "requester_id" | "organization_id" | "ticket_form_id" => {
            if let Err(e) = id_value(v) {
                bad(inv, e)
            }
        }
        "in_business_hours" if !matches!(value_str(v).as_str(), "true" | "false") => {
            bad(inv, "must be true or false".into())
        }
        "update_type" if !matches!(value_str(v).as_str(), "Create" | "Change") => {
            bad(inv, "must be Create or Change".into())
        }
        "sla_event" if !matches!(value_str(v).as_str(), "warning" | "breach") => {
            bad(inv, "must be warning or breach".into())
        }
        "comment_is_public"
            if !matches!(value_str(v).as_str(), "true" | "false" | "not_relevant") =>
        {
            bad(inv, "must be true, false or not_relevant".into())
        }
        "ticket_is_public"
            if !matches!(
                value_str(v).as_str(),
                "public" | "private" | "true" | "false"
            ) =>
        {
            bad(inv, "must be public or private".into())
        }
        "role" if !matches!(value_str(v).as_str(), "end_user" | "agent" | "admin") => {
            bad(inv, "must be end_user, agent or admin".into())
        }
        "current_tags"
        | "subject_includes_word"
        | "comment_includes_word"
        | "description_includes_word"
            if value_str(v).trim().is_empty() =>
        {
            bad(inv, "needs a value".into())
        }
        "via_id" | "current_via_id" if via_name(v).is_none() => {
            bad(inv, "must be a channel".into())
        }
        _ => {}
    }
}

fn check_action(a: &Action, at: &str, inv: &mut Invalid) {
    let bad = |inv: &mut Invalid, why: String| {
        inv.add(
            "actions",
            "InvalidValue",
            format!("{at} ({}): {why}", a.field),
        )
    };
    let v = &a.value;
    let field = a.field.as_str();
    if let Some(id) = field.strip_prefix("custom_fields_") {
        if id.parse::<Id>().is_err() {
            bad(
                inv,
                "custom field actions are custom_fields_<field id>".into(),
            );
        }
        return;
    }
    if !ACTION_FIELDS.contains(&field) {
        let hint = match field {
            "notification_target" => " (targets are retired in Zendesk; use notification_webhook)",
            "satisfaction_score" => " (needs satisfaction surveys)",
            _ => "",
        };
        return bad(inv, format!("'{}' is not an action field{hint}", a.field));
    }
    match field {
        "status" if Status::parse(&value_str(v)).is_none() => {
            bad(inv, format!("'{}' is not a status", value_str(v)))
        }
        "priority" if !value_str(v).is_empty() && Priority::parse(&value_str(v)).is_none() => {
            bad(inv, format!("'{}' is not a priority", value_str(v)))
        }
        "type" if !value_str(v).is_empty() && TicketType::parse(&value_str(v)).is_none() => {
            bad(inv, format!("'{}' is not a ticket type", value_str(v)))
        }
        "group_id" | "assignee_id" | "ticket_form_id" | "cc" => {
            if let Err(e) = id_value(v) {
                bad(inv, e)
            }
        }
        "set_schedule" => match id_value(v) {
            Ok(Some(id)) if id > 0 => {}
            _ => bad(inv, "needs a schedule id".into()),
        },
        "set_tags" | "current_tags" | "remove_tags"
            if normalize_tags([value_str(v)]).is_empty() && !matches!(v, Value::Array(_)) =>
        {
            bad(inv, "needs tags".into())
        }
        "comment_value" | "comment_value_html" => {
            let text = match v {
                Value::Array(a) => a.last().map(value_str).unwrap_or_default(),
                other => value_str(other),
            };
            if text.trim().is_empty() {
                bad(inv, "needs the comment text".into());
            } else if text.len() > 65_536 {
                bad(inv, "is too long (64 KiB)".into());
            }
        }
        "comment_mode_is_public" if !matches!(value_str(v).as_str(), "true" | "false") => {
            bad(inv, "must be true or false".into())
        }
        "notification_user" | "notification_group" => match notification(field, v) {
            Ok(_) => {}
            Err(e) => bad(inv, e),
        },
        "notification_webhook" => match webhook_call(v) {
            Ok(_) => {}
            Err(e) => bad(inv, e),
        },
        _ => {}
    }
}

fn text_item(a: &[Value], i: usize) -> String {
    a.get(i).map(value_str).unwrap_or_default()
}

/// `notification_user`: `[who, subject, body]` — who is `requester_id`, `assignee_id`,
/// `current_user`, `all_agents` or a user id. `notification_group`: `[group, subject, body]` —
/// `group_id` (the ticket's group) or a group id. Returns (who, subject, body).
fn notification(field: &str, v: &Value) -> Result<(String, String, String), String> {
    let Value::Array(a) = v else {
        return Err("must be [recipient, subject, body]".into());
    };
    if a.len() != 3 {
        return Err("must be [recipient, subject, body]".into());
    }
    let who = text_item(a, 0);
    let ok = if field == "notification_user" {
        matches!(
            who.as_str(),
            "requester_id" | "assignee_id" | "current_user" | "all_agents" | "requester_and_ccs"
        ) || who.parse::<Id>().is_ok_and(|i| i > 0)
    } else {
        who == "group_id" || who.parse::<Id>().is_ok_and(|i| i > 0)
    };
    if !ok {
        return Err(if field == "notification_user" {
            format!(
                "'{who}' is not requester_id, assignee_id, current_user, all_agents or a user id"
            )
        } else {
            format!("'{who}' is not group_id or a group id")
        });
    }
    let (subject, body) = (text_item(a, 1), text_item(a, 2));
    if subject.trim().is_empty() {
        return Err("needs a subject".into());
    }
    if body.trim().is_empty() {
        return Err("needs a body".into());
    }
    if subject.len() > 1000 || body.len() > 65_536 {
        return Err("subject or body is too long (1,000 characters / 64 KiB)".into());
    }
    Ok((who, subject, body))
}

/// `notification_webhook`: `[webhook id, body]`.
fn webhook_call(v: &Value) -> Result<(Id, String), String> {
    let Value::Array(a) = v else {
        return Err("must be [webhook id, body]".into());
    };
    let id = a
        .first()
        .and_then(|x| id_value(x).ok().flatten())
        .filter(|i| *i > 0)
        .ok_or_else(|| "must be [webhook id, body] with the id of a webhook".to_string())?;
    let body = text_item(a, 1);
    if body.len() > 65_536 {
        return Err("body is too long (64 KiB)".into());
    }
    Ok((id, body))
}

/// The webhooks a rule's actions call (so the app can check they exist).
/// The schedules `set_schedule` actions name (to check they exist).
pub fn schedule_ids(actions: &[Action]) -> Vec<Id> {
    actions
        .iter()
        .filter(|a| a.field == "set_schedule")
        .filter_map(|a| id_value(&a.value).ok().flatten())
        .collect()
}

pub fn webhook_ids(actions: &[Action]) -> Vec<Id> {
    actions
        .iter()
        .filter(|a| a.field == "notification_webhook")
        .filter_map(|a| webhook_call(&a.value).ok().map(|(id, _)| id))
        .collect()
}

/// Validate a rule definition. `trigger`: the trigger-only conditions and operators are allowed.
/// Every problem is reported, each naming the condition or action (`conditions.all[1] (status): …`).
pub fn validate(
    conditions: &Conditions,
    actions: &[Action],
    kind: RuleKind,
) -> Result<(), Invalid> {
    let mut inv = Invalid::new();
    if conditions.all.is_empty() && conditions.any.is_empty() {
        inv.blank("conditions", "Conditions");
    }
    for (i, c) in conditions.all.iter().enumerate() {
        check_condition(c, kind, &format!("conditions.all[{i}]"), &mut inv);
    }
    for (i, c) in conditions.any.iter().enumerate() {
        check_condition(c, kind, &format!("conditions.any[{i}]"), &mut inv);
    }
    if actions.is_empty() {
        inv.blank("actions", "Actions");
    }
    if actions.len() > 100 || conditions.all.len() + conditions.any.len() > 100 {
        inv.invalid("base", "Rule", "at most 100 conditions and 100 actions");
    }
    for (i, a) in actions.iter().enumerate() {
        check_action(a, &format!("actions[{i}]"), &mut inv);
    }
    if kind == RuleKind::Automation {
        // Zendesk's rules for automations: a time condition and a ticket property in `all`.
        if conditions
            .any
            .iter()
            .any(|c| TIME_FIELDS.contains(&c.field.as_str()))
        {
            inv.add(
                "conditions",
                "InvalidValue",
                "time conditions belong in conditions.all, not conditions.any",
            );
        }
        if !conditions
            .all
            .iter()
            .any(|c| TIME_FIELDS.contains(&c.field.as_str()))
        {
            inv.add(
                "conditions",
                "InvalidValue",
                "an automation needs at least one time condition (hours since …) in conditions.all",
            );
        }
        if !conditions.all.iter().any(|c| {
            matches!(
                c.field.as_str(),
                "status" | "type" | "group_id" | "assignee_id" | "requester_id"
            )
        }) {
            inv.add("conditions", "InvalidValue", "an automation needs a condition on status, type, group_id, assignee_id or requester_id in conditions.all");
        }
    }
    if kind == RuleKind::Automation && inv.is_empty() {
        let all = conditions.all.iter().any(|c| nullified(c, actions));
        let any =
            !conditions.any.is_empty() && conditions.any.iter().all(|c| nullified(c, actions));
        if !all && !any {
            inv.add(
                "base",
                "InvalidValue",
                "Automations must nullify one of their conditions, or they act on the same tickets every hour: add an action that makes a condition false once it has run (for example a tag the conditions exclude, or a status the conditions do not allow), or use a time condition with 'is'",
            );
        }
    }
    if inv.is_empty() {
        Ok(())
    } else {
        Err(inv)
    }
}

/// The condition field an action sets, if any.
fn action_target(a: &Action) -> Option<&str> {
    match a.field.as_str() {
        "set_tags" | "current_tags" | "remove_tags" => Some("current_tags"),
        f @ ("status" | "priority" | "type" | "group_id" | "assignee_id" | "ticket_form_id") => {
            Some(f)
        }
        f if f.starts_with("custom_fields_") => Some(f),
        _ => None,
    }
}

/// Do `actions` make condition `c` false on any ticket it held on? Time conditions with `is`
/// hold for one hour only, and `updated_at` is reset by the automation's own update.
fn nullified(c: &Condition, actions: &[Action]) -> bool {
    if TIME_FIELDS.contains(&c.field.as_str()) {
        let op = c
            .operator
            .strip_suffix("_business_hours")
            .unwrap_or(c.operator.as_str());
        if c.field == "updated_at" {
            // The automation's own update makes "hours since update" 0: that ends
            // `greater_than N` and `is N` (N ≥ 1), not `less_than` or `is 0`.
            return op == "greater_than"
                || (op == "is" && hours_value(&c.value).is_some_and(|h| h >= 1));
        }
        return op == "is";
    }
    if !actions
        .iter()
        .any(|a| action_target(a) == Some(c.field.as_str()))
    {
        return false;
    }
    // A ticket on which the condition holds as far as the actions' fields go: the fields
    // actions set end up the same whatever they were, so testing after the actions decides.
    let mut t = Ticket::blank(1, crate::ticket::Via::api(), crate::clock::from_unix(0));
    if c.field == "current_tags" && c.operator == "includes" {
        t.tags = normalize_tags([value_str(&c.value)]);
    }
    let f = Facts::at_rest(0, Role::Admin);
    apply(actions, &mut t, &f);
    !holds(c, &t, &f)
}

// ---- evaluation ------------------------------------------------------------------------

/// The comparable value of a field on a ticket (None: no value).
fn field_value(t: &Ticket, field: &str) -> Option<String> {
    match field {
        "status" => Some(t.status.as_str().into()),
        "priority" => t.priority.map(|p| p.as_str().into()),
        "type" => t.ticket_type.map(|p| p.as_str().into()),
        "group_id" => t.group_id.map(|i| i.to_string()),
        "assignee_id" => t.assignee_id.map(|i| i.to_string()),
        "requester_id" => Some(t.requester_id.to_string()),
        "organization_id" => t.organization_id.map(|i| i.to_string()),
        "ticket_form_id" => t.ticket_form_id.map(|i| i.to_string()),
        "recipient" => t.recipient.clone(),
        f => f
            .strip_prefix("custom_fields_")
            .and_then(|i| i.parse::<Id>().ok())
            .and_then(|i| t.custom_field(i))
            .filter(|v| !v.is_null())
            .map(value_str),
    }
}

/// The value a condition names, with `current_user` and friends resolved.
fn wanted(field: &str, v: &Value, t: &Ticket, f: &Facts) -> Option<String> {
    match v {
        Value::String(s) if s == "current_user" => Some(f.current_user.to_string()),
        Value::String(s) if s == "requester_id" && field != "requester_id" => {
            Some(t.requester_id.to_string())
        }
        Value::String(s) if s == "assignee_id" && field != "assignee_id" => {
            t.assignee_id.map(|i| i.to_string())
        }
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::Bool(b) => Some(b.to_string()),
        other => Some(value_str(other).to_lowercase()).map(|s| {
            if field.starts_with("custom_fields_") {
                value_str(other)
            } else {
                s
            }
        }),
    }
}

fn rank(field: &str, v: &str) -> Option<u8> {
    match field {
        "status" => Status::parse(v).map(Status::rank),
        "priority" => Priority::parse(v).map(|p| p as u8),
        _ => None,
    }
}

fn words(s: &str) -> Vec<String> {
    s.split(|c: char| !c.is_alphanumeric() && c != '_' && c != '-')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn text_condition(text: &str, op: &str, value: &Value) -> bool {
    let v = value_str(value);
    let have = words(text);
    match op {
        "includes" => words(&v).iter().any(|w| have.contains(w)),
        "not_includes" => !words(&v).iter().any(|w| have.contains(w)),
        "is" => text.to_lowercase().contains(&v.to_lowercase()),
        "is_not" => !text.to_lowercase().contains(&v.to_lowercase()),
        _ => false,
    }
}

/// Does one condition hold?
pub fn holds(c: &Condition, t: &Ticket, f: &Facts) -> bool {
    let op = c.operator.as_str();
    let field = c.field.as_str();
    // Changes against the state before the update.
    if CHANGE_OPERATORS.contains(&op) {
        let now = field_value(t, field);
        let before = f.previous.as_ref().and_then(|p| field_value(p, field));
        let changed = match &f.previous {
            None => now.is_some(),
            Some(_) => now != before,
        };
        let want = wanted(field, &c.value, t, f);
        return match op {
            "changed" => changed,
            "not_changed" => !changed,
            "value" => changed && now == want,
            "not_value" => changed && now != want,
            "value_previous" => changed && before == want,
            "not_value_previous" => changed && before != want,
            _ => false,
        };
    }
    if TIME_FIELDS.contains(&field) {
        return time_holds(c, t, f);
    }
    match field {
        "current_tags" => {
            let tags = normalize_tags([value_str(&c.value)]);
            let any = tags.iter().any(|x| t.tags.contains(x));
            if op == "includes" {
                any
            } else {
                !any
            }
        }
        "update_type" => (value_str(&c.value) == "Create") == f.previous.is_none(),
        "sla_event" => f.sla_event.as_deref() == Some(value_str(&c.value).as_str()),
        "in_business_hours" => {
            let open = match (&f.schedule, f.now) {
                (Some(s), Some(now)) => s.is_open(now.as_second()),
                (None, Some(_)) => true,
                _ => false,
            };
            open == (value_str(&c.value) == "true")
        }
        "comment_is_public" => match value_str(&c.value).as_str() {
            "not_relevant" => true,
            "true" => f.comment.as_ref().is_some_and(|c| c.public),
            _ => f.comment.as_ref().is_none_or(|c| !c.public),
        },
        "ticket_is_public" => {
            matches!(value_str(&c.value).as_str(), "public" | "true") == t.is_public
        }
        "role" => {
            let r = match f.current_role {
                Role::EndUser => "end_user",
                Role::Agent => "agent",
                Role::Admin => "admin",
            };
            (value_str(&c.value) == r) == (op == "is")
        }
        "subject_includes_word" => text_condition(t.subject.as_deref().unwrap_or(""), op, &c.value),
        "comment_includes_word" => text_condition(
            f.comment.as_ref().map(|c| c.body.as_str()).unwrap_or(""),
            op,
            &c.value,
        ),
        "description_includes_word" => text_condition(&t.description, op, &c.value),
        "via_id" | "current_via_id" => {
            let is = via_name(&c.value).as_deref() == Some(t.via.channel.as_str());
            is == (op == "is")
        }
        _ => {
            let (have, person) = if let Some(k) = field.strip_prefix("requester.custom_fields_") {
                (
                    f.requester_fields
                        .get(k)
                        .filter(|v| !v.is_null())
                        .map(value_str),
                    true,
                )
            } else if let Some(k) = field.strip_prefix("organization.custom_fields_") {
                (
                    f.organization_fields
                        .get(k)
                        .filter(|v| !v.is_null())
                        .map(value_str),
                    true,
                )
            } else {
                (field_value(t, field), false)
            };
            let want = wanted(field, &c.value, t, f);
            let want = if person {
                c.value.as_str().map(str::to_string).or(want)
            } else {
                want
            };
            match op {
                "present" => have.is_some(),
                "not_present" => have.is_none(),
                "is" => have == want,
                "is_not" => have != want,
                "includes" | "not_includes" => {
                    let w = value_str(&c.value);
                    let found = have.as_deref().is_some_and(|h| h.contains(&w));
                    found == (op == "includes")
                }
                "less_than" | "greater_than" => match (
                    have.as_deref().and_then(|h| rank(field, h)),
                    want.as_deref().and_then(|w| rank(field, w)),
                ) {
                    (Some(a), Some(b)) => {
                        if op == "less_than" {
                            a < b
                        } else {
                            a > b
                        }
                    }
                    _ => false,
                },
                _ => false,
            }
        }
    }
}

/// The instant a time condition measures from (or, for `until_due_date`, to).
fn time_instant(
    field: &str,
    t: &Ticket,
    m: &crate::ticket_metrics::TicketMetrics,
    next_breach_at: Option<i64>,
) -> Option<crate::Timestamp> {
    match field {
        "sla_next_breach_at" | "until_sla_next_breach_at" => {
            next_breach_at.map(crate::clock::from_unix)
        }
        "NEW" => Some(t.created_at),
        "OPEN" => m.entered(Status::Open),
        "PENDING" => m.entered(Status::Pending),
        "HOLD" => m.entered(Status::Hold),
        "SOLVED" => m.entered(Status::Solved),
        "CLOSED" => m.entered(Status::Closed),
        "assigned_at" => m.assigned_at,
        "updated_at" => Some(t.updated_at),
        "requester_updated_at" => m.requester_updated_at,
        "assignee_updated_at" => m.assignee_updated_at,
        "due_date" | "until_due_date" => t.due_at,
        _ => None,
    }
}

/// Whole hours since (or until) the instant — calendar hours, or with the `_business_hours`
/// operators, open hours of the schedule; `is 24` holds from 24:00:00 to 24:59:59.
fn time_holds(c: &Condition, t: &Ticket, f: &Facts) -> bool {
    let (Some(now), Some(m)) = (f.now, f.metrics.as_ref()) else {
        return false;
    };
    let Some(at) = time_instant(&c.field, t, m, f.next_breach_at) else {
        return false;
    };
    let Some(want) = hours_value(&c.value) else {
        return false;
    };
    let (from, to) = if c.field.starts_with("until_") {
        (now.as_second(), at.as_second())
    } else {
        (at.as_second(), now.as_second())
    };
    if to < from {
        return false;
    }
    let (op, business) = match c.operator.strip_suffix("_business_hours") {
        Some(op) => (op, true),
        None => (c.operator.as_str(), false),
    };
    // Beyond twenty years every comparison is decided; do not count further.
    let to = to.min(from.saturating_add(20 * 366 * 86_400));
    let secs = match (&f.schedule, business) {
        (Some(s), true) => s.business_seconds(from, to),
        _ => to - from,
    };
    let hours = secs / 3600;
    match op {
        "is" => hours == want,
        "less_than" => hours < want,
        "greater_than" => hours > want,
        _ => false,
    }
}

/// Does any condition count in a schedule (business-hours operators, `in_business_hours`)?
pub fn uses_schedule(cs: &Conditions) -> bool {
    cs.all
        .iter()
        .chain(&cs.any)
        .any(|c| c.field == "in_business_hours" || c.operator.ends_with("_business_hours"))
}

/// Does any condition look at the ticket's next SLA breach?
pub fn uses_sla(cs: &Conditions) -> bool {
    cs.all
        .iter()
        .chain(&cs.any)
        .any(|c| c.field.ends_with("sla_next_breach_at"))
}

/// Does any condition react to the SLA scheduler's events (`sla_event`)?
pub fn uses_sla_event(cs: &Conditions) -> bool {
    cs.all.iter().chain(&cs.any).any(|c| c.field == "sla_event")
}

/// Does any condition need the ticket's timestamps?
pub fn uses_time(cs: &Conditions) -> bool {
    cs.all
        .iter()
        .chain(&cs.any)
        .any(|c| TIME_FIELDS.contains(&c.field.as_str()))
}

/// Evaluate conditions; on failure, which condition did not hold: `Some(i)` for `all[i]`, or
/// `None` when none of the `any` conditions held.
pub fn evaluate(cs: &Conditions, t: &Ticket, f: &Facts) -> Result<(), Option<usize>> {
    for (i, c) in cs.all.iter().enumerate() {
        if !holds(c, t, f) {
            return Err(Some(i));
        }
    }
    if !cs.any.is_empty() && !cs.any.iter().any(|c| holds(c, t, f)) {
        return Err(None);
    }
    Ok(())
}

fn apply_action(
    a: &Action,
    t: &mut Ticket,
    f: &Facts,
    effects: &mut Vec<SideEffect>,
    public: &mut bool,
) {
    let v = &a.value;
    let resolve = |v: &Value| -> Option<Id> {
        match v {
            Value::String(s) if s == "current_user" => Some(f.current_user),
            Value::String(s) if s == "requester_id" => Some(t.requester_id),
            Value::String(s) if s == "assignee_id" => t.assignee_id,
            other => id_value(other).ok().flatten().filter(|id| *id > 0),
        }
    };
    match a.field.as_str() {
        "status" => {
            if let Some(s) = Status::parse(&value_str(v)) {
                t.status = s;
            }
        }
        "priority" => t.priority = Priority::parse(&value_str(v)),
        "type" => t.ticket_type = TicketType::parse(&value_str(v)),
        "group_id" => t.group_id = resolve(v),
        "assignee_id" => t.assignee_id = resolve(v),
        "ticket_form_id" => t.ticket_form_id = resolve(v),
        "set_schedule" => {
            if let Ok(Some(id)) = id_value(v) {
                t.schedule_id = Some(id);
            }
        }
        "set_tags" => t.tags = normalize_tags(tag_list(v)),
        "current_tags" => {
            for tag in normalize_tags(tag_list(v)) {
                if !t.tags.contains(&tag) {
                    t.tags.push(tag);
                }
            }
        }
        "remove_tags" => {
            let rm = normalize_tags(tag_list(v));
            t.tags.retain(|x| !rm.contains(x));
        }
        "cc" => {
            if let Some(u) = resolve(v) {
                if !t.collaborator_ids.contains(&u) {
                    t.collaborator_ids.push(u);
                }
            }
        }
        "comment_mode_is_public" => *public = value_str(v) == "true",
        "notification_user" | "notification_group" => {
            if let Ok((who, subject, body)) = notification(&a.field, v) {
                let to = match who.as_str() {
                    "all_agents" => Some(Recipient::AllAgents),
                    "current_user" => Some(Recipient::User(f.current_user)),
                    "requester_id" => Some(Recipient::User(t.requester_id)),
                    "requester_and_ccs" => Some(Recipient::RequesterAndCcs),
                    "assignee_id" => t.assignee_id.map(Recipient::User),
                    "group_id" => t.group_id.map(Recipient::Group),
                    id if a.field == "notification_group" => id.parse().ok().map(Recipient::Group),
                    id => id.parse().ok().map(Recipient::User),
                };
                if let Some(to) = to {
                    effects.push(SideEffect::Notify { to, subject, body });
                }
            }
        }
        "notification_webhook" => {
            if let Ok((webhook_id, body)) = webhook_call(v) {
                effects.push(SideEffect::Webhook { webhook_id, body });
            }
        }
        "subject" => {
            let s = value_str(v);
            t.subject = Some(s.clone()).filter(|s| !s.trim().is_empty());
            t.raw_subject = t.subject.clone();
        }
        "comment_value" | "comment_value_html" => {
            // Zendesk accepts "text" or ["channel:all", "text"].
            let text = match v {
                Value::Array(a) => a.last().map(value_str).unwrap_or_default(),
                other => value_str(other),
            };
            effects.push(SideEffect::Comment {
                body: text,
                html: a.field == "comment_value_html",
                public: *public,
            });
        }
        field => {
            if let Some(id) = field
                .strip_prefix("custom_fields_")
                .and_then(|i| i.parse::<Id>().ok())
            {
                t.set_custom_field(
                    id,
                    if v.is_null() || v == &json!("") {
                        Value::Null
                    } else {
                        v.clone()
                    },
                );
                t.custom_fields.retain(|c| !c.value.is_null());
            }
        }
    }
}

fn tag_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a.iter().map(value_str).collect(),
        other => vec![value_str(other)],
    }
}

/// Apply a rule's actions to a ticket; returns the comments it adds.
pub fn apply(actions: &[Action], t: &mut Ticket, f: &Facts) -> Vec<SideEffect> {
    let mut effects = vec![];
    let mut public = true;
    for a in actions {
        apply_action(a, t, f, &mut effects, &mut public);
    }
    effects
}

/// Apply a rule whose conditions held: the ticket changes in place; the firing records it.
pub fn fire(r: &Rule, t: &mut Ticket, f: &Facts) -> Firing {
    let before = t.clone();
    let effects = apply(&r.actions, t, f);
    Firing {
        rule_id: r.id,
        title: r.title.clone(),
        before,
        after: t.clone(),
        effects,
    }
}

/// A readable description of the condition that failed (`all[1]: SOLVED greater_than "96"`).
pub fn describe(cs: &Conditions, failed: Option<usize>) -> String {
    let Some(i) = failed else {
        return "any: none of the any-conditions held".into();
    };
    let Some(c) = cs.all.get(i) else {
        return String::new();
    };
    let v = match &c.value {
        Value::Null => String::new(),
        other => format!(" {other}"),
    };
    format!("all[{i}]: {} {}{v}", c.field, c.operator)
}

/// Expand a trace's compact `not_fired` ("12:0 13:any") with the triggers' definitions:
/// `[{"id", "title", "failed": "all[0]: status is \"solved\""}]`. Unknown ids (deleted triggers)
/// keep their id with `"deleted": true`.
pub fn expand_not_fired(compact: &str, triggers: &[Rule]) -> Vec<Value> {
    compact
        .split_whitespace()
        .filter_map(|item| {
            let (id, idx) = item.split_once(':')?;
            let id: Id = id.parse().ok()?;
            let failed = match idx {
                "any" => Some(None),
                n => n.parse::<usize>().ok().map(Some),
            };
            Some(match triggers.iter().find(|r| r.id == id) {
                Some(r) => json!({"id": id, "title": r.title, "failed": failed.map(|f| describe(&r.conditions, f))}),
                None => json!({"id": id, "deleted": true, "failed": idx}),
            })
        })
        .collect()
}

/// Zendesk's trigger cycle: check active triggers in position order; when one fires (its
/// conditions hold) apply its actions and start again from the top; a trigger fires at most
/// once per update; stop when a whole pass fires nothing. Conditions that compare with the
/// previous value compare with the ticket as it was before this update.
pub fn run_cycle(triggers: &[Rule], ticket: Ticket, facts: &Facts) -> CycleResult {
    let mut t = ticket;
    let mut fired: Vec<Id> = vec![];
    let mut firings = vec![];
    let mut fired_trace = vec![];
    // Per trigger (by index), the condition that failed last; formatted once at the end.
    let mut last_failure: Vec<Option<Option<usize>>> = vec![None; triggers.len()];
    let mut pass = 0;
    let mut bounded = false;
    loop {
        pass += 1;
        if pass > MAX_PASSES {
            bounded = true;
            break;
        }
        let mut fired_this_pass = false;
        for (ri, r) in triggers.iter().enumerate() {
            if fired.contains(&r.id) {
                continue;
            }
            match evaluate(&r.conditions, &t, facts) {
                Ok(()) => {
                    fired_trace.push(json!({"id": r.id, "title": r.title, "pass": pass}));
                    fired.push(r.id);
                    firings.push(fire(r, &mut t, facts));
                    fired_this_pass = true;
                    // Start again from the first trigger.
                    break;
                }
                Err(failed) => last_failure[ri] = Some(failed),
            }
        }
        if !fired_this_pass {
            break;
        }
    }
    // Compact, one string: "id:index" per trigger that did not fire (index of the failing
    // `all` condition, or "any"). `expand_not_fired` turns it into readable entries on demand.
    let mut not_fired = String::new();
    for (i, r) in triggers.iter().enumerate() {
        if fired.contains(&r.id) {
            continue;
        }
        if !not_fired.is_empty() {
            not_fired.push(' ');
        }
        match last_failure[i] {
            Some(Some(n)) => not_fired.push_str(&format!("{}:{n}", r.id)),
            Some(None) => not_fired.push_str(&format!("{}:any", r.id)),
            None => not_fired.push_str(&format!("{}:?", r.id)),
        }
    }
    let trace =
        json!({"passes": pass, "fired": fired_trace, "not_fired": not_fired, "bounded": bounded});
    CycleResult {
        ticket: t,
        firings,
        trace,
        bounded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::from_unix;
    use crate::ticket::Via;
    use proptest::prelude::*;

    fn ticket() -> Ticket {
        let mut t = Ticket::blank(1, Via::api(), from_unix(1_700_000_000));
        t.requester_id = 10;
        t.submitter_id = 10;
        t.subject = Some("Printer on fire".into());
        t.description = "The printer in room 4 is on fire".into();
        t.tags = vec!["vip".into(), "hardware".into()];
        t.priority = Some(Priority::Normal);
        t
    }

    fn facts(previous: Option<Ticket>) -> Facts {
        Facts {
            previous,
            comment: Some(CommentFacts {
                public: true,
                body: "Please hurry, it is URGENT".into(),
            }),
            current_user: 7,
            current_role: Role::Agent,
            requester_fields: serde_json::Map::new(),
            organization_fields: [("support_level".to_string(), json!("priority"))]
                .into_iter()
                .collect(),
            now: None,
            metrics: None,
            schedule: None,
            next_breach_at: None,
            sla_event: None,
        }
    }

    #[test]
    fn time_conditions_count_whole_hours() {
        use crate::ticket_metrics::{TicketMetrics, WriteFacts};
        let mut t = ticket();
        let before = t.clone();
        t.status = Status::Solved;
        t.assignee_id = Some(7);
        let solved_at = from_unix(1_700_000_000 + 3600);
        let m = TicketMetrics::observe(
            None,
            Some(&before),
            &t,
            WriteFacts {
                author_id: 7,
                ..Default::default()
            },
            solved_at,
        );
        let mut f = Facts::at_rest(7, Role::Agent);
        f.metrics = Some(m);
        let at = |h: i64, extra: i64| Some(from_unix(solved_at.as_second() + h * 3600 + extra));
        f.now = at(96, 0);
        assert!(holds(&c("SOLVED", "is", json!("96")), &t, &f));
        assert!(!holds(&c("SOLVED", "greater_than", json!("96")), &t, &f));
        f.now = at(96, 3599);
        assert!(
            holds(&c("SOLVED", "is", json!(96)), &t, &f),
            "is 96 holds for the whole 96th hour"
        );
        f.now = at(97, 0);
        assert!(holds(&c("SOLVED", "greater_than", json!("96")), &t, &f));
        assert!(!holds(&c("SOLVED", "less_than", json!("96")), &t, &f));
        assert!(holds(
            &c("assigned_at", "greater_than", json!("96")),
            &t,
            &f
        ));
        // Never entered: the condition does not hold.
        assert!(!holds(&c("PENDING", "greater_than", json!("0")), &t, &f));
        assert!(!holds(
            &c("requester_updated_at", "less_than", json!("1000")),
            &t,
            &f
        ));
        // Without a clock, time conditions never hold.
        f.now = None;
        assert!(!holds(&c("SOLVED", "greater_than", json!("1")), &t, &f));
        // Until due: counts down.
        t.due_at = Some(from_unix(solved_at.as_second() + 10 * 3600));
        f.now = Some(solved_at);
        assert!(holds(&c("until_due_date", "is", json!("10")), &t, &f));
        assert!(holds(
            &c("until_due_date", "less_than", json!("11")),
            &t,
            &f
        ));
        // Business hours: Mon–Fri 09–17 UTC. Solved at 2023-11-14T23:13:20Z (a Tuesday night);
        // 96 calendar hours later (Saturday night) only Wed, Thu, Fri count: 24 business hours.
        let office: Vec<(u32, u32)> = (1..=5).map(|d| (d * 1440 + 540, d * 1440 + 1020)).collect();
        f.schedule = Some(std::sync::Arc::new(
            crate::business_hours::Schedule::new("UTC", &office, &[]).unwrap(),
        ));
        f.now = Some(from_unix(solved_at.as_second() + 96 * 3600));
        assert!(holds(
            &c("SOLVED", "is_business_hours", json!("24")),
            &t,
            &f
        ));
        assert!(holds(&c("SOLVED", "greater_than", json!("95")), &t, &f));
        assert!(!holds(
            &c("SOLVED", "greater_than_business_hours", json!("24")),
            &t,
            &f
        ));
        // Saturday: outside business hours.
        assert!(holds(&c("in_business_hours", "is", json!("false")), &t, &f));
        f.now = Some(from_unix(solved_at.as_second() + 10 * 3600)); // Wednesday 09:13
        assert!(holds(&c("in_business_hours", "is", json!("true")), &t, &f));
    }

    #[test]
    fn automations_must_nullify_a_condition() {
        let solved = c("status", "is", json!("solved"));
        let old = c("SOLVED", "greater_than", json!("96"));
        let close = act("status", json!("closed"));
        let cs = |all: Vec<Condition>| Conditions { all, any: vec![] };
        assert!(validate(
            &cs(vec![solved.clone(), old.clone()]),
            std::slice::from_ref(&close),
            RuleKind::Automation
        )
        .is_ok());
        // Nothing makes a condition false: it would act every hour.
        let e = validate(
            &cs(vec![solved.clone(), old.clone()]),
            &[act("priority", json!("high"))],
            RuleKind::Automation,
        )
        .unwrap_err();
        assert!(e.to_string().contains("nullify"), "{e}");
        // A tag the conditions exclude, added by the action.
        let untagged = c("current_tags", "not_includes", json!("reminded"));
        assert!(validate(
            &cs(vec![old.clone(), solved.clone(), untagged]),
            &[act("current_tags", json!("reminded"))],
            RuleKind::Automation
        )
        .is_ok());
        // A tag the conditions require, removed by the action.
        let tagged = c("current_tags", "includes", json!("chase"));
        assert!(validate(
            &cs(vec![old.clone(), solved.clone(), tagged.clone()]),
            &[act("remove_tags", json!("chase"))],
            RuleKind::Automation
        )
        .is_ok());
        assert!(validate(
            &cs(vec![old.clone(), solved.clone(), tagged]),
            &[act("current_tags", json!("other"))],
            RuleKind::Automation
        )
        .is_err());
        // `is` time conditions hold for one hour; hours since update resets with the update.
        assert!(validate(
            &cs(vec![
                c("status", "is", json!("pending")),
                c("PENDING", "is", json!("48"))
            ]),
            &[act(
                "notification_user",
                json!(["requester_id", "Still there?", "Hi"])
            )],
            RuleKind::Automation
        )
        .is_ok());
        assert!(validate(
            &cs(vec![
                c("status", "is", json!("open")),
                c("updated_at", "greater_than", json!("48"))
            ]),
            &[act("priority", json!("high"))],
            RuleKind::Automation
        )
        .is_ok());
        // "Less than 24 hours since update" holds again right after the automation's update.
        for (op, v) in [("less_than", "24"), ("is", "0")] {
            assert!(validate(
                &cs(vec![
                    c("status", "is", json!("open")),
                    c("updated_at", op, json!(v))
                ]),
                &[act("priority", json!("high"))],
                RuleKind::Automation
            )
            .is_err());
        }
        // Zendesk's shape rules: a time condition and a ticket property, both in `all`.
        let e = validate(
            &cs(vec![c("status", "is", json!("solved"))]),
            std::slice::from_ref(&close),
            RuleKind::Automation,
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least one time condition"), "{e}");
        let e = validate(
            &cs(vec![c("current_tags", "includes", json!("x")), old.clone()]),
            &[act("remove_tags", json!("x"))],
            RuleKind::Automation,
        )
        .unwrap_err();
        assert!(e.to_string().contains("a condition on status"), "{e}");
        let e = validate(
            &Conditions {
                all: vec![solved.clone()],
                any: vec![old.clone()],
            },
            std::slice::from_ref(&close),
            RuleKind::Automation,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not conditions.any"), "{e}");
        // Status less than solved, action solves: nullified.
        assert!(validate(
            &cs(vec![c("status", "less_than", json!("solved")), old.clone()]),
            &[act("status", json!("solved"))],
            RuleKind::Automation
        )
        .is_ok());
        // Time conditions are refused in triggers, business-hours forms until schedules exist.
        let e = validate(
            &cs(vec![old.clone()]),
            std::slice::from_ref(&close),
            RuleKind::Trigger,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not triggers"), "{e}");
        assert!(validate(
            &cs(vec![
                solved.clone(),
                c("SOLVED", "greater_than_business_hours", json!("9")),
            ]),
            std::slice::from_ref(&close),
            RuleKind::Automation,
        )
        .is_ok());
        let e = validate(
            &cs(vec![
                solved.clone(),
                c("SOLVED", "greater_than", json!("soon")),
            ]),
            &[close],
            RuleKind::Automation,
        )
        .unwrap_err();
        assert!(e.to_string().contains("whole number of hours"), "{e}");
    }

    #[test]
    fn notification_actions_become_side_effects() {
        let mut t = ticket();
        t.assignee_id = Some(7);
        t.group_id = Some(3);
        let f = facts(None);
        let fx = apply(
            &[
                act(
                    "notification_user",
                    json!(["requester_id", "Re: {{ticket.title}}", "Hello"]),
                ),
                act("notification_user", json!(["assignee_id", "s", "b"])),
                act("notification_group", json!(["group_id", "s", "b"])),
                act("notification_user", json!(["all_agents", "s", "b"])),
                act(
                    "notification_webhook",
                    json!(["12", "{\"id\": \"{{ticket.id}}\"}"]),
                ),
            ],
            &mut t,
            &f,
        );
        assert_eq!(fx.len(), 5);
        assert_eq!(
            fx[0],
            SideEffect::Notify {
                to: Recipient::User(10),
                subject: "Re: {{ticket.title}}".into(),
                body: "Hello".into()
            }
        );
        assert_eq!(
            fx[1],
            SideEffect::Notify {
                to: Recipient::User(7),
                subject: "s".into(),
                body: "b".into()
            }
        );
        assert_eq!(
            fx[2],
            SideEffect::Notify {
                to: Recipient::Group(3),
                subject: "s".into(),
                body: "b".into()
            }
        );
        assert_eq!(
            fx[3],
            SideEffect::Notify {
                to: Recipient::AllAgents,
                subject: "s".into(),
                body: "b".into()
            }
        );
        assert_eq!(
            fx[4],
            SideEffect::Webhook {
                webhook_id: 12,
                body: "{\"id\": \"{{ticket.id}}\"}".into()
            }
        );
        assert_eq!(
            webhook_ids(&[act("notification_webhook", json!(["12", "{}"]))]),
            vec![12]
        );
        let e = validate(
            &Conditions {
                all: vec![c("status", "is", json!("new"))],
                any: vec![],
            },
            &[act("notification_webhook", json!("12"))],
            RuleKind::Trigger,
        )
        .unwrap_err();
        assert!(e.to_string().contains("[webhook id, body]"), "{e}");
    }

    fn c(field: &str, op: &str, v: Value) -> Condition {
        Condition {
            field: field.into(),
            operator: op.into(),
            value: v,
        }
    }

    #[test]
    fn every_operator() {
        let t = ticket();
        let f = facts(None);
        let cases = [
            (c("status", "is", json!("new")), true),
            (c("status", "is_not", json!("new")), false),
            (c("status", "less_than", json!("solved")), true),
            (c("status", "greater_than", json!("open")), false),
            (c("priority", "less_than", json!("high")), true),
            (c("priority", "greater_than", json!("low")), true),
            (c("assignee_id", "is", json!("")), true),
            (c("assignee_id", "not_present", Value::Null), true),
            (c("assignee_id", "present", Value::Null), false),
            (c("requester_id", "is", json!(10)), true),
            (c("requester_id", "is", json!("10")), true),
            (c("current_tags", "includes", json!("vip other")), true),
            (c("current_tags", "not_includes", json!("vip")), false),
            (c("update_type", "is", json!("Create")), true),
            (c("update_type", "is", json!("Change")), false),
            (c("comment_is_public", "is", json!("true")), true),
            (
                c("comment_includes_word", "includes", json!("urgent asap")),
                true,
            ),
            (
                c("comment_includes_word", "not_includes", json!("urgent")),
                false,
            ),
            (c("subject_includes_word", "is", json!("on fire")), true),
            (
                c("description_includes_word", "includes", json!("room")),
                true,
            ),
            (c("role", "is", json!("agent")), true),
            (c("role", "is_not", json!("agent")), false),
            (c("via_id", "is", json!("api")), true),
            (c("via_id", "is", json!(5)), true),
            (c("ticket_is_public", "is", json!("public")), true),
            (
                c(
                    "organization.custom_fields_support_level",
                    "is",
                    json!("priority"),
                ),
                true,
            ),
            (
                c(
                    "organization.custom_fields_support_level",
                    "is_not",
                    json!("priority"),
                ),
                false,
            ),
            (
                c("requester.custom_fields_plan", "not_present", Value::Null),
                true,
            ),
            (c("status", "changed", Value::Null), true),
        ];
        for (cond, want) in cases {
            assert_eq!(holds(&cond, &t, &f), want, "{cond:?}");
        }
    }

    #[test]
    fn change_operators_compare_with_the_previous_state() {
        let before = ticket();
        let mut t = before.clone();
        t.status = Status::Open;
        let f = facts(Some(before));
        assert!(holds(&c("status", "changed", Value::Null), &t, &f));
        assert!(!holds(&c("priority", "changed", Value::Null), &t, &f));
        assert!(holds(&c("priority", "not_changed", Value::Null), &t, &f));
        assert!(holds(&c("status", "value", json!("open")), &t, &f));
        assert!(!holds(&c("status", "not_value", json!("open")), &t, &f));
        assert!(holds(&c("status", "value_previous", json!("new")), &t, &f));
        assert!(holds(
            &c("status", "not_value_previous", json!("pending")),
            &t,
            &f
        ));
    }

    #[test]
    fn all_and_any() {
        let t = ticket();
        let f = facts(None);
        let cs = Conditions {
            all: vec![c("status", "is", json!("new"))],
            any: vec![
                c("priority", "is", json!("urgent")),
                c("current_tags", "includes", json!("vip")),
            ],
        };
        assert!(evaluate(&cs, &t, &f).is_ok());
        let cs = Conditions {
            all: vec![c("status", "is", json!("new"))],
            any: vec![c("priority", "is", json!("urgent"))],
        };
        assert_eq!(evaluate(&cs, &t, &f).unwrap_err(), None);
    }

    fn rule(id: Id, all: Vec<Condition>, actions: Vec<Action>) -> Rule {
        Rule {
            id,
            title: format!("T{id}"),
            position: id,
            conditions: Conditions { all, any: vec![] },
            actions,
        }
    }

    fn act(field: &str, v: Value) -> Action {
        Action {
            field: field.into(),
            value: v,
        }
    }

    #[test]
    fn cycle_restarts_and_fires_each_trigger_once() {
        // T1 waits for a tag T2 adds: the cycle restarts after T2 and T1 fires on pass 2.
        let t1 = rule(
            1,
            vec![c("current_tags", "includes", json!("escalated"))],
            vec![act("priority", json!("urgent"))],
        );
        let t2 = rule(
            2,
            vec![c("current_tags", "includes", json!("vip"))],
            vec![act("current_tags", json!("escalated"))],
        );
        // T3 would loop forever without the once-per-update rule.
        let t3 = rule(
            3,
            vec![c("status", "is", json!("new"))],
            vec![act("current_tags", json!("seen"))],
        );
        let r = run_cycle(&[t1, t2, t3], ticket(), &facts(None));
        assert_eq!(
            r.firings.iter().map(|f| f.rule_id).collect::<Vec<_>>(),
            vec![2, 1, 3]
        );
        assert_eq!(r.ticket.priority, Some(Priority::Urgent));
        assert!(r.ticket.tags.contains(&"seen".to_string()));
        assert!(!r.bounded);
        assert_eq!(r.trace["fired"][0]["id"], 2);
        assert_eq!(
            r.trace["fired"][1]["pass"], 2,
            "T1 fired on the second pass"
        );
        let t4 = rule(
            4,
            vec![
                c("status", "is", json!("new")),
                c("priority", "is", json!("low")),
            ],
            vec![act("status", json!("open"))],
        );
        let r = run_cycle(std::slice::from_ref(&t4), ticket(), &facts(None));
        assert_eq!(r.trace["not_fired"], "4:1");
        let expanded = expand_not_fired(r.trace["not_fired"].as_str().unwrap(), &[t4]);
        assert_eq!(
            expanded[0]["failed"], "all[1]: priority is \"low\"",
            "the trace names the failing condition"
        );
    }

    #[test]
    fn actions_apply() {
        let mut t = ticket();
        let f = facts(None);
        let fx = apply(
            &[
                act("status", json!("pending")),
                act("assignee_id", json!("current_user")),
                act("group_id", json!(3)),
                act("set_tags", json!("a b")),
                act("remove_tags", json!("a")),
                act("current_tags", json!(["c"])),
                act("comment_mode_is_public", json!("false")),
                act("comment_value", json!(["channel:all", "We are on it"])),
                act("custom_fields_99", json!("gold")),
                act("cc", json!(42)),
            ],
            &mut t,
            &f,
        );
        assert_eq!(t.status, Status::Pending);
        assert_eq!(t.assignee_id, Some(7));
        assert_eq!(t.group_id, Some(3));
        assert_eq!(t.tags, vec!["b", "c"]);
        assert_eq!(t.custom_field(99), Some(&json!("gold")));
        assert_eq!(t.collaborator_ids, vec![42]);
        assert_eq!(
            fx,
            vec![SideEffect::Comment {
                body: "We are on it".into(),
                html: false,
                public: false
            }]
        );
    }

    #[test]
    fn validation_names_the_bad_part() {
        let cs = Conditions {
            all: vec![
                c("priorty", "is", json!("high")),
                c("status", "is", json!("closedish")),
            ],
            any: vec![c("status", "frobs", json!("open"))],
        };
        let e = validate(
            &cs,
            &[
                act("notification_user", json!(["nobody", "s", "b"])),
                act("status", json!("nope")),
            ],
            RuleKind::Trigger,
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("conditions.all[0] (priorty): 'priorty' is not a condition field"),
            "{text}"
        );
        assert!(
            text.contains("conditions.all[1] (status): 'closedish' is not a status"),
            "{text}"
        );
        assert!(
            text.contains("conditions.any[0] (status): operator 'frobs'"),
            "{text}"
        );
        assert!(text.contains("actions[0] (notification_user)"), "{text}");
        assert!(text.contains("actions[1] (status)"), "{text}");
        assert!(validate(&Conditions::default(), &[], RuleKind::Trigger).is_err());
        let ok = Conditions {
            all: vec![c("status", "changed", Value::Null)],
            any: vec![],
        };
        assert!(validate(&ok, &[act("priority", json!("high"))], RuleKind::Trigger).is_ok());
        assert!(
            validate(&ok, &[act("priority", json!("high"))], RuleKind::Automation).is_err(),
            "change operators are trigger-only"
        );
    }

    fn arb_rule(id: Id) -> impl Strategy<Value = Rule> {
        let tags = prop_oneof![Just("a"), Just("b"), Just("c")];
        let cond = (tags.clone(), any::<bool>()).prop_map(|(t, inc)| {
            c(
                "current_tags",
                if inc { "includes" } else { "not_includes" },
                json!(t),
            )
        });
        let action = (tags, 0..3u8).prop_map(|(t, k)| match k {
            0 => act("current_tags", json!(t)),
            1 => act("remove_tags", json!(t)),
            _ => act("set_tags", json!(t)),
        });
        (
            proptest::collection::vec(cond, 0..3),
            proptest::collection::vec(action, 1..3),
        )
            .prop_map(move |(all, actions)| rule(id, all, actions))
    }

    proptest! {
        #[test]
        fn the_cycle_always_terminates(rules in (1i64..12).prop_flat_map(|n| (1..=n).map(arb_rule).collect::<Vec<_>>())) {
            let r = run_cycle(&rules, ticket(), &facts(None));
            prop_assert!(!r.bounded);
            prop_assert!(r.firings.len() <= rules.len());
            let mut ids: Vec<Id> = r.firings.iter().map(|f| f.rule_id).collect();
            ids.sort_unstable();
            ids.dedup();
            prop_assert_eq!(ids.len(), r.firings.len(), "each trigger fires at most once");
        }
    }
}
