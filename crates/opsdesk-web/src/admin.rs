//! Admin screens: every configuration list, activation and deactivation of triggers,
//! automations, macros and views, and their editor with its condition/action builder.
//! Saving goes through the same use cases as the API, so the messages are the API's.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use opsdesk_app::fields::FieldKind;
use opsdesk_app::rules::{RuleRecord, TriggerInput};
use opsdesk_app::Page;
use opsdesk_core::model::Id;
use opsdesk_core::rules::{Automation, Trigger};
use serde_json::{json, Value};

use crate::session::{Form, Session};
use crate::view::{self, Chrome};
use crate::{page, see_other, WebError, WebResult, WebState};

/// The configuration lists, in the order admins look for them.
const KINDS: [(&str, &str); 12] = [
    ("triggers", "Triggers"),
    ("automations", "Automations"),
    ("macros", "Macros"),
    ("views", "Views"),
    ("sla_policies", "SLA policies"),
    ("groups", "Groups"),
    ("users", "Users"),
    ("organizations", "Organizations"),
    ("ticket_fields", "Ticket fields"),
    ("ticket_forms", "Ticket forms"),
    ("schedules", "Schedules"),
    ("webhooks", "Webhooks"),
];

pub struct KindLink {
    pub key: &'static str,
    pub title: &'static str,
    pub current: bool,
}

pub(crate) fn kind_links(current: &str) -> Vec<KindLink> {
    KINDS
        .iter()
        .map(|(k, t)| KindLink {
            key: k,
            title: t,
            current: *k == current,
        })
        .collect()
}

pub async fn home(s: Session) -> WebResult<Response> {
    s.admin()?;
    Ok(see_other("/admin/triggers"))
}

pub struct AdminRow {
    pub id: Id,
    pub title: String,
    pub detail: String,
    /// None: the record has no active flag here.
    pub active: Option<bool>,
    pub edit: Option<String>,
}

#[derive(Template)]
#[template(path = "admin_list.html")]
struct AdminList {
    chrome: Chrome,
    kinds: Vec<KindLink>,
    kind: String,
    title: String,
    rows: Vec<AdminRow>,
    can_toggle: bool,
    can_move: bool,
    new_link: Option<String>,
}

/// A row of a list; every kind's record is edited at `/admin/{kind}/{id}/edit`.
fn row(
    kind: &str,
    id: Id,
    title: impl Into<String>,
    detail: String,
    active: Option<bool>,
) -> AdminRow {
    AdminRow {
        id,
        title: title.into(),
        detail,
        active,
        edit: Some(format!("/admin/{kind}/{id}/edit")),
    }
}

/// Triggers' or automations' rows: position, conditions and actions, active or not.
fn rule_rows<R: RuleRecord>(kind: &str, items: &[R]) -> Vec<AdminRow> {
    items
        .iter()
        .map(|t| {
            let r = t.rule();
            let detail = format!("#{} · {}", r.position, summary(&r));
            row(kind, r.id, r.title, detail, Some(t.active()))
        })
        .collect()
}

fn summary(r: &opsdesk_core::rules::Rule) -> String {
    format!(
        "{} condition(s), {} action(s)",
        r.conditions.all.len() + r.conditions.any.len(),
        r.actions.len()
    )
}

pub async fn list(
    st: State<WebState>,
    s: Session,
    Path(kind): Path<String>,
) -> WebResult<Response> {
    let s = s.admin()?;
    let app = &st.app;
    let a = &s.actor;
    let all = Page::All { limit: 500 };
    let rows: Vec<AdminRow> = match kind.as_str() {
        "triggers" => rule_rows(&kind, &app.list_rules::<Trigger>(a, false).await?),
        "automations" => rule_rows(&kind, &app.list_rules::<Automation>(a, false).await?),
        "macros" => app
            .list_macros(a, false)
            .await?
            .iter()
            .map(|m| {
                row(
                    &kind,
                    m.id,
                    m.title.clone(),
                    format!("{} action(s)", m.actions.len()),
                    Some(m.active),
                )
            })
            .collect(),
        "views" => app
            .list_views(a, false)
            .await?
            .iter()
            .map(|v| {
                row(
                    &kind,
                    v.id,
                    v.title.clone(),
                    format!(
                        "{} condition(s)",
                        v.conditions.all.len() + v.conditions.any.len()
                    ),
                    Some(v.active),
                )
            })
            .collect(),
        "sla_policies" => app
            .list_sla_policies(a)
            .await?
            .iter()
            .map(|p| {
                row(
                    &kind,
                    p.id,
                    p.title.clone(),
                    format!("#{} · {} target(s)", p.position, p.policy_metrics.len()),
                    None,
                )
            })
            .collect(),
        "groups" => app
            .list_groups(a, &all)
            .await?
            .items
            .iter()
            .map(|g| row(&kind, g.id, g.name.clone(), g.description.clone(), None))
            .collect(),
        "users" => app
            .list_users(a, &Default::default(), &all)
            .await?
            .items
            .iter()
            .map(|u| {
                row(
                    &kind,
                    u.id,
                    u.name.clone(),
                    format!(
                        "{} · {}{}",
                        u.email.clone().unwrap_or_default(),
                        u.role.as_str(),
                        if u.suspended { " · suspended" } else { "" }
                    ),
                    None,
                )
            })
            .collect(),
        "organizations" => app
            .list_organizations(a, &all)
            .await?
            .items
            .iter()
            .map(|o| {
                row(
                    &kind,
                    o.id,
                    o.name.clone(),
                    o.organization_fields
                        .get(opsdesk_app::kpi::PLAN_FIELD)
                        .and_then(Value::as_str)
                        .map(|p| format!("plan: {p}"))
                        .unwrap_or_default(),
                    None,
                )
            })
            .collect(),
        "ticket_fields" => app
            .list_ticket_fields(a, &all)
            .await?
            .items
            .iter()
            .map(|f| {
                row(
                    &kind,
                    f.id,
                    f.title.clone(),
                    format!(
                        "{}{}",
                        f.field_type,
                        if f.required { " · required" } else { "" }
                    ),
                    None,
                )
            })
            .collect(),
        "ticket_forms" => app
            .list_ticket_forms(a, &all)
            .await?
            .items
            .iter()
            .map(|f| {
                row(
                    &kind,
                    f.id,
                    f.name.clone(),
                    format!("{} field(s)", f.ticket_field_ids.len()),
                    None,
                )
            })
            .collect(),
        "schedules" => app
            .list_schedules(a)
            .await?
            .iter()
            .map(|x| {
                let detail = format!(
                    "{} · {} interval(s) · {} holiday(s)",
                    x.time_zone,
                    x.intervals.len(),
                    x.holidays.len()
                );
                row(&kind, x.id, x.name.clone(), detail, None)
            })
            .collect(),
        "webhooks" => app
            .list_webhooks(a, None, None, &all)
            .await?
            .items
            .iter()
            .map(|x| {
                let detail = format!("{} {} · {}", x.http_method, x.endpoint, x.status);
                row(&kind, x.id, x.name.clone(), detail, None)
            })
            .collect(),
        _ => return Err(WebError::NotFound),
    };
    let title = KINDS
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, t)| t.to_string())
        .unwrap_or_default();
    page(&AdminList {
        chrome: Chrome::new(&s, "admin", title.clone()),
        kinds: kind_links(&kind),
        can_toggle: matches!(
            kind.as_str(),
            "triggers" | "automations" | "macros" | "views"
        ),
        can_move: matches!(
            kind.as_str(),
            "triggers"
                | "automations"
                | "macros"
                | "views"
                | "sla_policies"
                | "ticket_fields"
                | "ticket_forms"
        ),
        new_link: matches!(
            kind.as_str(),
            "triggers"
                | "automations"
                | "macros"
                | "views"
                | "groups"
                | "organizations"
                | "users"
                | "ticket_fields"
                | "ticket_forms"
                | "sla_policies"
                | "schedules"
                | "webhooks"
        )
        .then(|| format!("/admin/{kind}/new")),
        kind,
        title,
        rows,
    })
}

/// Activate or deactivate a trigger, automation, macro or view.
pub async fn set_active(
    st: State<WebState>,
    s: Session,
    Path((kind, id)): Path<(String, String)>,
    form: Form,
) -> WebResult<Response> {
    let s = s.admin()?;
    s.check(&form)?;
    let id: Id = id.parse().map_err(|_| WebError::NotFound)?;
    let body = json!({"active": form.get("active") == Some("true")});
    let app = &st.app;
    match kind.as_str() {
        "triggers" => {
            app.save_rule::<Trigger>(&s.actor, Some(id), view::decode(body)?)
                .await?;
        }
        "automations" => {
            app.save_rule::<Automation>(&s.actor, Some(id), view::decode(body)?)
                .await?;
        }
        "macros" => {
            app.save_macro(&s.actor, Some(id), view::decode(body)?)
                .await?;
        }
        "views" => {
            app.save_view(&s.actor, Some(id), view::decode(body)?)
                .await?;
        }
        _ => return Err(WebError::NotFound),
    }
    Ok(see_other(&format!("/admin/{kind}")))
}

// ---- the rule editor: triggers, automations, macros, views ---------------------------------

pub struct CondRow {
    pub field: String,
    pub operator: String,
    pub value: String,
}

/// What the editor edits: the list's path key, and which parts it has.
#[derive(Clone, Copy, PartialEq)]
enum RuleKind {
    Triggers,
    Automations,
    Macros,
    Views,
    SlaPolicies,
}

impl RuleKind {
    fn of(path: &str) -> WebResult<RuleKind> {
        Ok(match path {
            "triggers" => RuleKind::Triggers,
            "automations" => RuleKind::Automations,
            "macros" => RuleKind::Macros,
            "views" => RuleKind::Views,
            "sla_policies" => RuleKind::SlaPolicies,
            _ => return Err(WebError::NotFound),
        })
    }
    fn key(self) -> &'static str {
        match self {
            RuleKind::Triggers => "triggers",
            RuleKind::Automations => "automations",
            RuleKind::Macros => "macros",
            RuleKind::Views => "views",
            RuleKind::SlaPolicies => "sla_policies",
        }
    }
    fn noun(self) -> &'static str {
        match self {
            RuleKind::Triggers => "trigger",
            RuleKind::Automations => "automation",
            RuleKind::Macros => "macro",
            RuleKind::Views => "view",
            RuleKind::SlaPolicies => "SLA policy",
        }
    }
    /// Whose condition and action definitions the builder offers.
    fn definitions(self) -> opsdesk_core::rules::RuleKind {
        match self {
            RuleKind::Triggers | RuleKind::Macros => opsdesk_core::rules::RuleKind::Trigger,
            RuleKind::Automations => opsdesk_core::rules::RuleKind::Automation,
            RuleKind::Views | RuleKind::SlaPolicies => opsdesk_core::rules::RuleKind::View,
        }
    }
}

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];

pub struct SlaRow {
    pub metric: &'static str,
    pub label: String,
    /// Per priority: the priority, the target minutes (empty: none), in business hours.
    pub targets: Vec<(&'static str, String, bool)>,
}

/// The SLA grid of a submitted form: `target_{metric}_{priority}` minutes (empty: no target)
/// and `bh_{metric}_{priority}` for business hours; the targets it could read, and a message
/// for each it could not.
fn targets_from(form: &Form) -> (Vec<opsdesk_core::sla::PolicyMetric>, Vec<String>) {
    let mut out = vec![];
    let mut errors = vec![];
    for m in opsdesk_core::sla::SLA_METRICS {
        for p in PRIORITIES {
            let Some(v) = form.text(&format!("target_{m}_{p}")) else {
                continue;
            };
            match v.parse::<i64>() {
                Ok(target) => out.push(opsdesk_core::sla::PolicyMetric {
                    priority: p.into(),
                    metric: (*m).into(),
                    target,
                    business_hours: form.get(&format!("bh_{m}_{p}")) == Some("true"),
                }),
                Err(_) => errors.push(format!(
                    "{} for {p} priority: \"{v}\" is not a whole number of minutes",
                    view::capitalize(&m.replace('_', " "))
                )),
            }
        }
    }
    (out, errors)
}

/// What the form holds (from the record, or as submitted).
struct Draft {
    id: Option<Id>,
    title: String,
    description: String,
    active: bool,
    all: Vec<CondRow>,
    any: Vec<CondRow>,
    actions: Vec<CondRow>,
    /// Views: the columns (space separated) and the order.
    columns: String,
    sort_by: String,
    sort_order: String,
    group_by: String,
    group_order: String,
    /// SLA policies: the targets (minutes) per metric and priority, and business hours per
    /// metric.
    targets: Vec<opsdesk_core::sla::PolicyMetric>,
}

#[derive(Template)]
#[template(path = "admin_rule.html")]
struct RuleEditor {
    chrome: Chrome,
    kinds: Vec<KindLink>,
    kind: &'static str,
    noun: &'static str,
    has_conditions: bool,
    has_actions: bool,
    is_view: bool,
    id: Option<Id>,
    title: String,
    description: String,
    active: bool,
    all: Vec<CondRow>,
    any: Vec<CondRow>,
    actions: Vec<CondRow>,
    columns: String,
    sort_by: String,
    sort_desc: bool,
    group_by: String,
    group_desc: bool,
    is_sla: bool,
    /// One row per SLA metric: its name, label, whether in business hours, and the target
    /// minutes per priority (low, normal, high, urgent; empty: none).
    sla_rows: Vec<SlaRow>,
    /// (value, label) of every condition field, custom ticket fields included.
    fields: Vec<(String, String)>,
    action_fields: Vec<(String, String)>,
    /// Every condition field with its operators and values, for the builder's script.
    definitions: String,
    errors: Vec<String>,
}

async fn editor(
    st: &WebState,
    s: &Session,
    kind: RuleKind,
    d: Draft,
    errors: Vec<String>,
) -> WebResult<RuleEditor> {
    let defs = st
        .app
        .rule_definitions(kind.definitions())
        .get("definitions")
        .cloned()
        .unwrap_or(Value::Null);
    let custom: Vec<(String, String)> = st
        .app
        .all_ticket_fields()
        .await?
        .into_iter()
        .filter(|f| f.active && !f.is_system())
        .map(|f| {
            (
                format!("custom_fields_{}", f.id),
                format!("Ticket field: {}", f.title),
            )
        })
        .collect();
    let subjects = |key: &str| -> Vec<(String, String)> {
        defs.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.get("subject").and_then(Value::as_str))
                    .filter(|f| !f.contains('<'))
                    .map(|f| (f.to_string(), view::capitalize(&f.replace('_', " "))))
                    .chain(custom.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut fields = subjects("conditions_all");
    let mut action_fields = subjects("actions");
    if kind != RuleKind::Macros {
        for (prefix, label, fk) in [
            ("organization", "Organization", FieldKind::Organization),
            ("requester", "Requester", FieldKind::User),
        ] {
            for f in st.app.list_custom_fields(&s.actor, fk).await? {
                fields.push((
                    format!("{prefix}.custom_fields_{}", f.key),
                    format!("{label} field: {}", f.title),
                ));
            }
        }
    }
    // A saved row's field is always a choice, even one this list does not offer (an inactive
    // custom field, an action the API takes but the definitions do not list), so opening and
    // saving a rule never drops a row.
    for (list, rows) in [
        (&mut fields, [&d.all, &d.any]),
        (&mut action_fields, [&d.actions, &d.actions]),
    ] {
        for r in rows.into_iter().flatten() {
            if !list.iter().any(|(v, _)| *v == r.field) {
                list.push((r.field.clone(), r.field.clone()));
            }
        }
    }
    let verb = if d.id.is_some() { "Edit" } else { "New" };
    Ok(RuleEditor {
        chrome: Chrome::new(s, "admin", format!("{verb} {}", kind.noun())),
        kinds: kind_links(kind.key()),
        kind: kind.key(),
        noun: kind.noun(),
        has_conditions: kind != RuleKind::Macros,
        has_actions: !matches!(kind, RuleKind::Views | RuleKind::SlaPolicies),
        is_view: kind == RuleKind::Views,
        fields,
        action_fields,
        // Inside a <script type="application/json">: no `<` at all, so nothing can close it.
        definitions: defs.to_string().replace('<', "\\u003c"),
        errors,
        id: d.id,
        title: d.title,
        description: d.description,
        active: d.active,
        all: d.all,
        any: d.any,
        actions: d.actions,
        columns: d.columns,
        sort_by: d.sort_by,
        sort_desc: d.sort_order.eq_ignore_ascii_case("desc"),
        group_by: d.group_by,
        group_desc: d.group_order.eq_ignore_ascii_case("desc"),
        is_sla: kind == RuleKind::SlaPolicies,
        sla_rows: opsdesk_core::sla::SLA_METRICS
            .iter()
            .map(|m| SlaRow {
                metric: m,
                label: view::capitalize(&m.replace('_', " ")),
                targets: PRIORITIES
                    .iter()
                    .map(|p| {
                        let t = d
                            .targets
                            .iter()
                            .find(|t| t.metric == *m && t.priority == *p);
                        (
                            *p,
                            t.map(|t| t.target.to_string()).unwrap_or_default(),
                            t.is_some_and(|t| t.business_hours),
                        )
                    })
                    .collect(),
            })
            .collect(),
    })
}

fn rows_of(conds: &[opsdesk_core::rules::Condition]) -> Vec<CondRow> {
    conds
        .iter()
        .map(|c| CondRow {
            field: c.field.clone(),
            operator: c.operator.clone(),
            value: view::value_text(&c.value),
        })
        .collect()
}

/// Actions whose value is a list of tags, edited as words.
const TAG_ACTIONS: [&str; 3] = ["set_tags", "current_tags", "remove_tags"];

fn action_rows(actions: &[opsdesk_core::rules::Action]) -> Vec<CondRow> {
    actions
        .iter()
        .map(|a| CondRow {
            field: a.field.clone(),
            operator: String::new(),
            // Other lists (a notification's [recipient, subject, body]) are edited as JSON.
            value: match &a.value {
                Value::Array(_) if !TAG_ACTIONS.contains(&a.field.as_str()) => a.value.to_string(),
                v => view::value_text(v),
            },
        })
        .collect()
}

fn blank(kind: RuleKind) -> Draft {
    let row = |f: &str, o: &str, v: &str| CondRow {
        field: f.into(),
        operator: o.into(),
        value: v.into(),
    };
    Draft {
        id: None,
        title: String::new(),
        description: String::new(),
        active: true,
        all: match kind {
            RuleKind::Triggers => vec![row("update_type", "is", "Create")],
            RuleKind::Automations => vec![row("status", "is", "solved")],
            RuleKind::Views => vec![row("status", "less_than", "solved")],
            RuleKind::SlaPolicies => vec![row("priority", "greater_than", "low")],
            RuleKind::Macros => vec![],
        },
        any: vec![],
        actions: vec![],
        columns: "subject requester status updated".into(),
        sort_by: "updated_at".into(),
        sort_order: "desc".into(),
        group_by: String::new(),
        group_order: String::new(),
        targets: vec![],
    }
}

pub async fn new_rule(
    st: State<WebState>,
    s: Session,
    Path(kind): Path<String>,
) -> WebResult<Response> {
    let s = s.admin()?;
    if crate::records::KINDS.contains(&kind.as_str()) {
        return crate::records::new(&st, &s, &kind).await;
    }
    let kind = RuleKind::of(&kind)?;
    page(&editor(&st, &s, kind, blank(kind), vec![]).await?)
}

pub async fn edit_rule(
    st: State<WebState>,
    s: Session,
    Path((kind, id)): Path<(String, String)>,
) -> WebResult<Response> {
    let s = s.admin()?;
    let id: Id = id.parse().map_err(|_| WebError::NotFound)?;
    if crate::records::KINDS.contains(&kind.as_str()) {
        return crate::records::edit(&st, &s, &kind, id).await;
    }
    let kind = RuleKind::of(&kind)?;
    let (app, a) = (&st.app, &s.actor);
    let mut d = blank(kind);
    d.id = Some(id);
    match kind {
        RuleKind::Triggers | RuleKind::Automations => {
            let (title, description, active, r) = if kind == RuleKind::Triggers {
                let t: Trigger = app.get_rule(a, id).await?;
                (t.title.clone(), t.description.clone(), t.active, t.rule())
            } else {
                let t: Automation = app.get_rule(a, id).await?;
                (t.title.clone(), t.description.clone(), t.active, t.rule())
            };
            d.title = title;
            d.description = description.unwrap_or_default();
            d.active = active;
            d.all = rows_of(&r.conditions.all);
            d.any = rows_of(&r.conditions.any);
            d.actions = action_rows(&r.actions);
        }
        RuleKind::Macros => {
            let m = app.get_macro(a, id).await?;
            d.title = m.title;
            d.description = m.description.unwrap_or_default();
            d.active = m.active;
            d.actions = action_rows(&m.actions);
        }
        RuleKind::SlaPolicies => {
            let p = app.get_sla_policy(a, id).await?;
            d.title = p.title;
            d.description = p.description.unwrap_or_default();
            d.all = rows_of(&p.filter.all);
            d.any = rows_of(&p.filter.any);
            d.targets = p.policy_metrics;
        }
        RuleKind::Views => {
            let v = app.get_view(a, id).await?;
            d.title = v.title;
            d.description = v.description.unwrap_or_default();
            d.active = v.active;
            d.all = rows_of(&v.conditions.all);
            d.any = rows_of(&v.conditions.any);
            d.columns = v
                .execution
                .columns
                .iter()
                .filter_map(|c| c.get("id"))
                .map(view::value_text)
                .collect::<Vec<_>>()
                .join(" ");
            d.sort_by = v.execution.sort_by.unwrap_or_default();
            d.sort_order = v.execution.sort_order.unwrap_or_default();
            d.group_by = v.execution.group_by.unwrap_or_default();
            d.group_order = v.execution.group_order.unwrap_or_default();
        }
    }
    page(&editor(&st, &s, kind, d, vec![]).await?)
}

/// The builder's rows: `{prefix}_field`, `{prefix}_operator`, `{prefix}_value`, in order;
/// rows without a field are blank ones the form offered and are skipped.
fn form_rows(form: &Form, prefix: &str) -> Vec<CondRow> {
    let f = form.all(&format!("{prefix}_field"));
    let o = form.all(&format!("{prefix}_operator"));
    let v = form.all(&format!("{prefix}_value"));
    f.iter()
        .enumerate()
        .filter(|(_, f)| !f.trim().is_empty())
        .map(|(i, f)| CondRow {
            field: f.trim().to_string(),
            operator: o.get(i).map(|x| x.trim().to_string()).unwrap_or_default(),
            value: v.get(i).map(|x| x.trim().to_string()).unwrap_or_default(),
        })
        .collect()
}

fn cond_json(r: &CondRow) -> Value {
    json!({"field": r.field, "operator": r.operator, "value": r.value})
}

/// An action's value as the API takes it: tag lists split on spaces, a JSON list (a
/// notification's `["requester_id", "subject", "body"]`) as that list, the rest text.
fn action_json(r: &CondRow) -> Value {
    let value = if TAG_ACTIONS.contains(&r.field.as_str()) {
        json!(r.value.split_whitespace().collect::<Vec<_>>())
    } else if r.value.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<Value>>(&r.value).map_or_else(|_| json!(r.value), Value::from)
    } else {
        json!(r.value)
    };
    json!({"field": r.field, "value": value})
}

pub async fn save_rule(
    st: State<WebState>,
    s: Session,
    Path(kind): Path<String>,
    form: Form,
) -> WebResult<Response> {
    let s = s.admin()?;
    s.check(&form)?;
    if crate::records::KINDS.contains(&kind.as_str()) {
        return crate::records::save(&st, &s, &kind, &form).await;
    }
    let kind = RuleKind::of(&kind)?;
    let (targets, target_errors) = targets_from(&form);
    let d = Draft {
        id: match form.text("id") {
            None => None,
            Some(v) => Some(v.parse().map_err(|_| WebError::NotFound)?),
        },
        title: form.get("title").unwrap_or("").trim().to_string(),
        description: form.get("description").unwrap_or("").trim().to_string(),
        active: form.get("active") == Some("true"),
        all: form_rows(&form, "all"),
        any: form_rows(&form, "any"),
        actions: form_rows(&form, "action"),
        columns: form.get("columns").unwrap_or("").trim().to_string(),
        sort_by: form.get("sort_by").unwrap_or("").trim().to_string(),
        sort_order: form.get("sort_order").unwrap_or("").trim().to_string(),
        group_by: form.get("group_by").unwrap_or("").trim().to_string(),
        group_order: form.get("group_order").unwrap_or("").trim().to_string(),
        targets,
    };
    if !target_errors.is_empty() {
        let e = editor(&st, &s, kind, d, target_errors).await?;
        let mut r = page(&e)?;
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(r);
    }
    let conditions = json!({
        "all": d.all.iter().map(cond_json).collect::<Vec<_>>(),
        "any": d.any.iter().map(cond_json).collect::<Vec<_>>(),
    });
    let actions: Vec<Value> = d.actions.iter().map(action_json).collect();
    let mut body = json!({"title": d.title, "description": d.description, "active": d.active});
    let (app, a) = (&st.app, &s.actor);
    let saved = match kind {
        RuleKind::Triggers | RuleKind::Automations => {
            body["conditions"] = conditions;
            body["actions"] = json!(actions);
            let input: TriggerInput = view::decode(body)?;
            if kind == RuleKind::Triggers {
                app.save_rule::<Trigger>(a, d.id, input).await.map(|_| ())
            } else {
                app.save_rule::<Automation>(a, d.id, input)
                    .await
                    .map(|_| ())
            }
        }
        RuleKind::Macros => {
            body["actions"] = json!(actions);
            app.save_macro(a, d.id, view::decode(body)?)
                .await
                .map(|_| ())
        }
        RuleKind::SlaPolicies => {
            body.as_object_mut().map(|o| o.remove("active"));
            body["filter"] = conditions;
            body["policy_metrics"] = json!(d.targets);
            app.save_sla_policy(a, d.id, view::decode(body)?)
                .await
                .map(|_| ())
        }
        RuleKind::Views => {
            body["conditions"] = conditions;
            let mut output = json!({"columns": d.columns.split(|c: char| c == ',' || c.is_whitespace()).filter(|c| !c.is_empty()).collect::<Vec<_>>()});
            if !d.sort_by.is_empty() {
                output["sort_by"] = json!(d.sort_by);
                output["sort_order"] = json!(if d.sort_order == "desc" {
                    "desc"
                } else {
                    "asc"
                });
            }
            if !d.group_by.is_empty() {
                output["group_by"] = json!(d.group_by);
                output["group_order"] = json!(if d.group_order == "desc" {
                    "desc"
                } else {
                    "asc"
                });
            }
            body["output"] = output;
            app.save_view(a, d.id, view::decode(body)?)
                .await
                .map(|_| ())
        }
    };
    match saved {
        Ok(()) => Ok(see_other(&format!("/admin/{}", kind.key()))),
        Err(opsdesk_app::AppError::Invalid(i)) => {
            let e = editor(&st, &s, kind, d, view::invalid_messages(&i)).await?;
            let mut r = page(&e)?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

/// Move a trigger, automation, macro, view or SLA policy one place up or down. Triggers,
/// automations and SLA policies run in this order; macros and views are listed in it.
pub async fn move_item(
    st: State<WebState>,
    s: Session,
    Path((kind, id)): Path<(String, String)>,
    form: Form,
) -> WebResult<Response> {
    let s = s.admin()?;
    s.check(&form)?;
    let id: Id = id.parse().map_err(|_| WebError::NotFound)?;
    let up = form.get("direction") == Some("up");
    let (app, a) = (&st.app, &s.actor);
    let mut ids: Vec<Id> = match kind.as_str() {
        "triggers" => app
            .list_rules::<Trigger>(a, false)
            .await?
            .iter()
            .map(|t| t.id)
            .collect(),
        "automations" => app
            .list_rules::<Automation>(a, false)
            .await?
            .iter()
            .map(|t| t.id)
            .collect(),
        "macros" => app
            .list_macros(a, false)
            .await?
            .iter()
            .map(|m| m.id)
            .collect(),
        "views" => app
            .list_views(a, false)
            .await?
            .iter()
            .map(|v| v.id)
            .collect(),
        "sla_policies" => app
            .list_sla_policies(a)
            .await?
            .iter()
            .map(|p| p.id)
            .collect(),
        "ticket_fields" => app
            .list_ticket_fields(a, &Page::All { limit: 10_000 })
            .await?
            .items
            .iter()
            .map(|f| f.id)
            .collect(),
        "ticket_forms" => app
            .list_ticket_forms(a, &Page::All { limit: 10_000 })
            .await?
            .items
            .iter()
            .map(|f| f.id)
            .collect(),
        _ => return Err(WebError::NotFound),
    };
    let i = ids
        .iter()
        .position(|x| *x == id)
        .ok_or(WebError::NotFound)?;
    let j = if up {
        i.checked_sub(1)
    } else {
        (i + 1 < ids.len()).then_some(i + 1)
    };
    if let Some(j) = j {
        ids.swap(i, j);
        match kind.as_str() {
            "triggers" => {
                app.reorder_rules::<Trigger>(a, &ids).await?;
            }
            "automations" => {
                app.reorder_rules::<Automation>(a, &ids).await?;
            }
            "sla_policies" => {
                app.reorder_sla_policies(a, &ids).await?;
            }
            "macros" => {
                app.reorder_macros(a, &ids).await?;
            }
            "ticket_fields" => {
                app.reorder_ticket_fields(a, &ids).await?;
            }
            "ticket_forms" => {
                app.reorder_ticket_forms(a, &ids).await?;
            }
            _ => {
                app.reorder_views(a, &ids).await?;
            }
        }
    }
    Ok(see_other(&format!("/admin/{kind}")))
}
