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
];

/// Validate view conditions (no trigger-only fields or change operators; at least one).
pub fn validate_view(conditions: &Conditions, execution: &ViewExecution) -> Result<(), Invalid> {
    let mut inv = Invalid::new();
    if conditions.all.is_empty() && conditions.any.is_empty() {
        inv.blank("conditions", "Conditions");
    }
    for (i, c) in conditions.all.iter().enumerate() {
        check_condition(c, false, &format!("conditions.all[{i}]"), &mut inv);
    }
    for (i, c) in conditions.any.iter().enumerate() {
        check_condition(c, false, &format!("conditions.any[{i}]"), &mut inv);
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
    ]
}

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

fn check_condition(c: &Condition, trigger: bool, at: &str, inv: &mut Invalid) {
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
    let fields = condition_fields();
    let Some((_, ops)) = fields.iter().find(|(f, _)| *f == field) else {
        let hint = match field {
            "in_business_hours" => " (needs business-hours schedules, issue #4)",
            "reopens" | "replies" | "agent_stations" | "group_stations" | "satisfaction_score" => {
                " (needs ticket metrics, not supported yet)"
            }
            "NEW"
            | "OPEN"
            | "PENDING"
            | "SOLVED"
            | "CLOSED"
            | "updated_at"
            | "assigned_at"
            | "requester_updated_at"
            | "assignee_updated_at"
            | "due_date"
            | "until_due_date" => " (time conditions are for automations, not supported yet)",
            _ => "",
        };
        return bad(inv, format!("'{}' is not a condition field{hint}", c.field));
    };
    if trigger_only(field) && !trigger {
        return bad(inv, format!("'{}' is only for triggers", c.field));
    }
    if !ops.contains(&c.operator.as_str()) {
        return bad(
            inv,
            format!("operator '{}' is not one of {}", c.operator, ops.join(", ")),
        );
    }
    check_value(c, field, inv, at)
}

fn trigger_only(field: &str) -> bool {
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
        "update_type" if !matches!(value_str(v).as_str(), "Create" | "Change") => {
            bad(inv, "must be Create or Change".into())
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
            "notification_user"
            | "notification_group"
            | "notification_target"
            | "notification_webhook" => " (notifications need the outbox, not supported yet)",
            "set_schedule" => " (needs business-hours schedules, issue #4)",
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
        _ => {}
    }
}

/// Validate a rule definition. `trigger`: the trigger-only conditions and operators are allowed.
/// Every problem is reported, each naming the condition or action (`conditions.all[1] (status): …`).
pub fn validate(conditions: &Conditions, actions: &[Action], trigger: bool) -> Result<(), Invalid> {
    let mut inv = Invalid::new();
    if conditions.all.is_empty() && conditions.any.is_empty() {
        inv.blank("conditions", "Conditions");
    }
    for (i, c) in conditions.all.iter().enumerate() {
        check_condition(c, trigger, &format!("conditions.all[{i}]"), &mut inv);
    }
    for (i, c) in conditions.any.iter().enumerate() {
        check_condition(c, trigger, &format!("conditions.any[{i}]"), &mut inv);
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
    if inv.is_empty() {
        Ok(())
    } else {
        Err(inv)
    }
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

fn describe(cs: &Conditions, failed: Option<usize>) -> String {
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
                    let before = t.clone();
                    let effects = apply(&r.actions, &mut t, facts);
                    fired_trace.push(json!({"id": r.id, "title": r.title, "pass": pass}));
                    fired.push(r.id);
                    firings.push(Firing {
                        rule_id: r.id,
                        title: r.title.clone(),
                        before,
                        after: t.clone(),
                        effects,
                    });
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
        }
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
                act("notification_user", json!(["requester_id", "s", "b"])),
                act("status", json!("nope")),
            ],
            true,
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
        assert!(validate(&Conditions::default(), &[], true).is_err());
        let ok = Conditions {
            all: vec![c("status", "changed", Value::Null)],
            any: vec![],
        };
        assert!(validate(&ok, &[act("priority", json!("high"))], true).is_ok());
        assert!(
            validate(&ok, &[act("priority", json!("high"))], false).is_err(),
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
