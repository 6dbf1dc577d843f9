//! Admin screens: every configuration list, activation and deactivation of triggers,
//! automations, macros and views, and the trigger editor with its condition/action builder.
//! Saving goes through the same use cases as the API, so the messages are the API's.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use opsdesk_app::rules::TriggerInput;
use opsdesk_app::Page;
use opsdesk_core::model::Id;
use opsdesk_core::rules::{Automation, Trigger};
use serde_json::{json, Value};

use crate::session::{Form, Session};
use crate::view::{self, Chrome};
use crate::{page, see_other, WebError, WebResult, WebState};

/// The configuration lists, in the order admins look for them.
const KINDS: [(&str, &str); 10] = [
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
];

pub struct KindLink {
    pub key: &'static str,
    pub title: &'static str,
    pub current: bool,
}

fn kind_links(current: &str) -> Vec<KindLink> {
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
    new_link: Option<String>,
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
        "triggers" => app
            .list_rules::<Trigger>(a, false)
            .await?
            .iter()
            .map(|t| AdminRow {
                id: t.id,
                title: t.title.clone(),
                detail: format!("#{} · {}", t.position, summary(&t.rule())),
                active: Some(t.active),
                edit: Some(format!("/admin/triggers/{}/edit", t.id)),
            })
            .collect(),
        "automations" => app
            .list_rules::<Automation>(a, false)
            .await?
            .iter()
            .map(|t| AdminRow {
                id: t.id,
                title: t.title.clone(),
                detail: format!("#{} · {}", t.position, summary(&t.rule())),
                active: Some(t.active),
                edit: None,
            })
            .collect(),
        "macros" => app
            .list_macros(a, false)
            .await?
            .iter()
            .map(|m| AdminRow {
                id: m.id,
                title: m.title.clone(),
                detail: format!("{} action(s)", m.actions.len()),
                active: Some(m.active),
                edit: None,
            })
            .collect(),
        "views" => app
            .list_views(a, false)
            .await?
            .iter()
            .map(|v| AdminRow {
                id: v.id,
                title: v.title.clone(),
                detail: format!(
                    "{} condition(s)",
                    v.conditions.all.len() + v.conditions.any.len()
                ),
                active: Some(v.active),
                edit: Some(format!("/agent/views/{}", v.id)),
            })
            .collect(),
        "sla_policies" => app
            .list_sla_policies(a)
            .await?
            .iter()
            .map(|p| AdminRow {
                id: p.id,
                title: p.title.clone(),
                detail: format!("#{} · {} target(s)", p.position, p.policy_metrics.len()),
                active: None,
                edit: None,
            })
            .collect(),
        "groups" => app
            .list_groups(a, &all)
            .await?
            .items
            .iter()
            .map(|g| AdminRow {
                id: g.id,
                title: g.name.clone(),
                detail: g.description.clone(),
                active: None,
                edit: None,
            })
            .collect(),
        "users" => app
            .list_users(a, &Default::default(), &all)
            .await?
            .items
            .iter()
            .map(|u| AdminRow {
                id: u.id,
                title: u.name.clone(),
                detail: format!(
                    "{} · {}{}",
                    u.email.clone().unwrap_or_default(),
                    u.role.as_str(),
                    if u.suspended { " · suspended" } else { "" }
                ),
                active: None,
                edit: None,
            })
            .collect(),
        "organizations" => app
            .list_organizations(a, &all)
            .await?
            .items
            .iter()
            .map(|o| AdminRow {
                id: o.id,
                title: o.name.clone(),
                detail: o
                    .organization_fields
                    .get("support_level")
                    .and_then(Value::as_str)
                    .map(|p| format!("plan: {p}"))
                    .unwrap_or_default(),
                active: None,
                edit: None,
            })
            .collect(),
        "ticket_fields" => app
            .list_ticket_fields(a, &all)
            .await?
            .items
            .iter()
            .map(|f| AdminRow {
                id: f.id,
                title: f.title.clone(),
                detail: format!(
                    "{}{}",
                    f.field_type,
                    if f.required { " · required" } else { "" }
                ),
                active: None,
                edit: None,
            })
            .collect(),
        "ticket_forms" => app
            .list_ticket_forms(a, &all)
            .await?
            .items
            .iter()
            .map(|f| AdminRow {
                id: f.id,
                title: f.name.clone(),
                detail: format!("{} field(s)", f.ticket_field_ids.len()),
                active: None,
                edit: None,
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
        new_link: (kind == "triggers").then(|| "/admin/triggers/new".to_string()),
        kind,
        title,
        rows,
    })
}

fn decode<T: serde::de::DeserializeOwned>(v: Value) -> WebResult<T> {
    serde_json::from_value(v)
        .map_err(|e| WebError::BadRequest(format!("The form is not valid: {e}")))
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
            app.save_rule::<Trigger>(&s.actor, Some(id), decode(body)?)
                .await?;
        }
        "automations" => {
            app.save_rule::<Automation>(&s.actor, Some(id), decode(body)?)
                .await?;
        }
        "macros" => {
            app.save_macro(&s.actor, Some(id), decode(body)?).await?;
        }
        "views" => {
            app.save_view(&s.actor, Some(id), decode(body)?).await?;
        }
        _ => return Err(WebError::NotFound),
    }
    Ok(see_other(&format!("/admin/{kind}")))
}

// ---- the trigger editor -------------------------------------------------------------------

pub struct CondRow {
    pub field: String,
    pub operator: String,
    pub value: String,
}

#[derive(Template)]
#[template(path = "admin_trigger.html")]
struct TriggerEditor {
    chrome: Chrome,
    kinds: Vec<KindLink>,
    id: Option<Id>,
    title: String,
    description: String,
    active: bool,
    all: Vec<CondRow>,
    any: Vec<CondRow>,
    actions: Vec<CondRow>,
    /// (value, label) of every condition field, custom ticket fields included.
    fields: Vec<(String, String)>,
    action_fields: Vec<(String, String)>,
    /// Every condition field with its operators and values, for the builder's script.
    definitions: String,
    errors: Vec<String>,
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a
            .iter()
            .map(|x| {
                x.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| x.to_string())
            })
            .collect::<Vec<_>>()
            .join(" "),
        x => x.to_string(),
    }
}

async fn editor(
    st: &WebState,
    s: &Session,
    id: Option<Id>,
    title: String,
    description: String,
    active: bool,
    rows: [Vec<CondRow>; 3],
    errors: Vec<String>,
) -> WebResult<TriggerEditor> {
    let defs = st
        .app
        .rule_definitions(opsdesk_core::rules::RuleKind::Trigger)
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
    let fields = subjects("conditions_all");
    let action_fields = subjects("actions");
    let [all, any, actions] = rows;
    Ok(TriggerEditor {
        chrome: Chrome::new(
            s,
            "admin",
            if id.is_some() {
                "Edit trigger"
            } else {
                "New trigger"
            },
        ),
        kinds: kind_links("triggers"),
        id,
        title,
        description,
        active,
        all,
        any,
        actions,
        fields,
        action_fields,
        // Inside a <script type="application/json">: `</` could close the element.
        definitions: defs.to_string().replace("</", "<\\/"),
        errors,
    })
}

fn rows_of(conds: &[opsdesk_core::rules::Condition]) -> Vec<CondRow> {
    conds
        .iter()
        .map(|c| CondRow {
            field: c.field.clone(),
            operator: c.operator.clone(),
            value: value_text(&c.value),
        })
        .collect()
}

pub async fn new_trigger(st: State<WebState>, s: Session) -> WebResult<Response> {
    let s = s.admin()?;
    let e = editor(
        &st,
        &s,
        None,
        String::new(),
        String::new(),
        true,
        [
            vec![CondRow {
                field: "update_type".into(),
                operator: "is".into(),
                value: "Create".into(),
            }],
            vec![],
            vec![CondRow {
                field: "priority".into(),
                operator: String::new(),
                value: String::new(),
            }],
        ],
        vec![],
    )
    .await?;
    page(&e)
}

pub async fn edit_trigger(
    st: State<WebState>,
    s: Session,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let s = s.admin()?;
    let id: Id = id.parse().map_err(|_| WebError::NotFound)?;
    let t: Trigger = st.app.get_rule(&s.actor, id).await?;
    let r = t.rule();
    let e = editor(
        &st,
        &s,
        Some(id),
        t.title.clone(),
        t.description.clone().unwrap_or_default(),
        t.active,
        [
            rows_of(&r.conditions.all),
            rows_of(&r.conditions.any),
            r.actions
                .iter()
                .map(|a| CondRow {
                    field: a.field.clone(),
                    operator: String::new(),
                    value: value_text(&a.value),
                })
                .collect(),
        ],
        vec![],
    )
    .await?;
    page(&e)
}

/// The builder's rows: `{prefix}_field`, `{prefix}_operator`, `{prefix}_value`, in order;
/// rows without a field are blank ones the form offered and are skipped.
fn form_rows(form: &Form, prefix: &str) -> Vec<CondRow> {
    let f: Vec<&str> = form.all(&format!("{prefix}_field"));
    let o: Vec<&str> = form.all(&format!("{prefix}_operator"));
    let v: Vec<&str> = form.all(&format!("{prefix}_value"));
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

/// A condition's value as the API takes it: `tags` lists split on spaces, the rest text.
fn cond_json(r: &CondRow) -> Value {
    json!({"field": r.field, "operator": r.operator, "value": r.value})
}

fn action_json(r: &CondRow) -> Value {
    let value = match r.field.as_str() {
        "set_tags" | "current_tags" | "remove_tags" => {
            json!(r.value.split_whitespace().collect::<Vec<_>>())
        }
        _ => json!(r.value),
    };
    json!({"field": r.field, "value": value})
}

pub async fn save_trigger(st: State<WebState>, s: Session, form: Form) -> WebResult<Response> {
    let s = s.admin()?;
    s.check(&form)?;
    let id: Option<Id> = form.text("id").and_then(|v| v.parse().ok());
    let all = form_rows(&form, "all");
    let any = form_rows(&form, "any");
    let actions = form_rows(&form, "action");
    let title = form.get("title").unwrap_or("").trim().to_string();
    let description = form.get("description").unwrap_or("").trim().to_string();
    let active = form.get("active") == Some("true");
    let body = json!({
        "title": title,
        "description": description,
        "active": active,
        "conditions": {
            "all": all.iter().map(cond_json).collect::<Vec<_>>(),
            "any": any.iter().map(cond_json).collect::<Vec<_>>(),
        },
        "actions": actions.iter().map(action_json).collect::<Vec<_>>(),
    });
    let input: TriggerInput = decode(body)?;
    match st.app.save_rule::<Trigger>(&s.actor, id, input).await {
        Ok(_) => Ok(see_other("/admin/triggers")),
        Err(opsdesk_app::AppError::Invalid(i)) => {
            let e = editor(
                &st,
                &s,
                id,
                title,
                description,
                active,
                [all, any, actions],
                view::invalid_messages(&i),
            )
            .await?;
            let mut r = page(&e)?;
            *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
