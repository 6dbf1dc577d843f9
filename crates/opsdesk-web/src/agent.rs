//! The agent workspace: views with live counts, view tables with sorting and bulk update,
//! the ticket page (conversation, context, properties, reply, macros, SLA, history, rule
//! trace), search, and new tickets.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use opsdesk_app::tickets::TicketFilter;
use opsdesk_app::{Actor, App, Order, Page};
use opsdesk_core::model::Id;
use opsdesk_core::ticket::{Audit, Ticket, TicketInput, Via};
use serde_json::{json, Map, Value};

use crate::session::{Form, Session};
use crate::view::{self, choices, Choice, Chrome, FieldVm, Names};
use crate::{page, see_other, WebError, WebResult, WebState};

type Params = Query<Vec<(String, String)>>;

fn param<'a>(q: &'a Params, k: &str) -> Option<&'a str> {
    view::param(&q.0, k)
}

pub const STATUSES: [&str; 6] = ["new", "open", "pending", "hold", "solved", "closed"];
const PRIORITIES: [&str; 4] = ["low", "normal", "high", "urgent"];
const TYPES: [&str; 4] = ["question", "incident", "problem", "task"];

fn as_str<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(Value::Null) | Err(_) => String::new(),
        Ok(other) => other.to_string(),
    }
}

// ---- views --------------------------------------------------------------------------------

/// A view in the sidebar.
pub struct ViewLink {
    pub id: Id,
    pub title: String,
    pub current: bool,
}

async fn view_links(app: &App, actor: &Actor, current: Id) -> WebResult<Vec<ViewLink>> {
    Ok(app
        .list_views(actor, true)
        .await?
        .into_iter()
        .map(|v| ViewLink {
            id: v.id,
            current: v.id == current,
            title: v.title,
        })
        .collect())
}

pub async fn home(st: State<WebState>, s: Session) -> WebResult<Response> {
    let s = s.staff()?;
    let views = view_links(&st.app, &s.actor, 0).await?;
    if let Some(v) = views.first() {
        return Ok(see_other(&format!("/agent/views/{}", v.id)));
    }
    Ok(see_other("/agent/search"))
}

#[derive(Template)]
#[template(path = "view_counts.html")]
struct ViewCounts {
    counts: Vec<(Id, i64)>,
}

/// The sidebar's counts (htmx polls this fragment).
pub async fn view_counts(st: State<WebState>, s: Session) -> WebResult<Response> {
    let s = s.staff()?;
    let mut counts = vec![];
    for v in st.app.list_views(&s.actor, true).await? {
        counts.push((v.id, st.app.count_view(&s.actor, v.id).await?));
    }
    page(&ViewCounts { counts })
}

pub struct Column {
    pub key: String,
    pub title: String,
    pub sort_link: Option<String>,
    pub sorted: &'static str,
}

pub struct Row {
    pub id: Id,
    pub cells: Vec<Cell>,
}

pub struct Cell {
    pub text: String,
    pub class: &'static str,
    /// The subject cell links to the ticket.
    pub link: bool,
}

#[derive(Template)]
#[template(path = "view.html")]
struct ViewPageT {
    chrome: Chrome,
    views: Vec<ViewLink>,
    title: String,
    count: i64,
    columns: Vec<Column>,
    rows: Vec<Row>,
    page: i64,
    pages: i64,
    prev: Option<String>,
    next: Option<String>,
    statuses: Vec<Choice>,
    priorities: Vec<Choice>,
    assignees: Vec<Choice>,
    groups: Vec<Choice>,
    return_to: String,
}

/// Columns a view may show that are not custom fields, with their titles and sort keys.
fn column_title(key: &str) -> Option<(&'static str, Option<&'static str>)> {
    Some(match key {
        "subject" => ("Subject", Some("subject")),
        "requester" => ("Requester", Some("requester")),
        "assignee" => ("Assignee", Some("assignee")),
        "status" => ("Status", Some("status")),
        "priority" => ("Priority", Some("priority")),
        "type" => ("Type", Some("type")),
        "group" => ("Group", Some("group")),
        "organization" => ("Organization", Some("organization")),
        "created" => ("Requested", Some("created_at")),
        "updated" => ("Updated", Some("updated_at")),
        "due_date" => ("Due", Some("due_date")),
        "sla_next_breach_at" => ("Next SLA breach", Some("sla_next_breach_at")),
        "nice_id" | "id" => ("ID", Some("nice_id")),
        _ => return None,
    })
}

pub async fn view(
    st: State<WebState>,
    s: Session,
    Path(id): Path<String>,
    q: Params,
) -> WebResult<Response> {
    let s = s.staff()?;
    let vid = view::id_of(&id)?;
    let page_no = param(&q, "page")
        .and_then(|p| p.parse::<i64>().ok())
        .unwrap_or(1)
        .clamp(1, 10_000);
    let per_page = 50;
    let sort_by = param(&q, "sort_by");
    let sort_order = param(&q, "sort_order");
    let vp = st
        .app
        .execute_view(&s.actor, vid, page_no, per_page, sort_by, sort_order)
        .await?;
    let users: Vec<Id> = vp
        .tickets
        .iter()
        .flat_map(|t| [Some(t.requester_id), t.assignee_id])
        .flatten()
        .collect();
    let group_ids: Vec<Id> = vp.tickets.iter().filter_map(|t| t.group_id).collect();
    let org_ids: Vec<Id> = vp
        .tickets
        .iter()
        .filter_map(|t| t.organization_id)
        .collect();
    let names = Names::load(&st.app, users, group_ids, org_ids).await?;
    let fields = st.app.all_ticket_fields().await?;
    let base = format!("/agent/views/{vid}");
    let mut keys: Vec<String> = vp
        .view
        .execution
        .columns
        .iter()
        .filter_map(|c| c.get("id"))
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    if keys.is_empty() {
        keys = ["subject", "requester", "status", "updated"]
            .map(String::from)
            .to_vec();
    }
    if !keys.iter().any(|k| k == "subject") {
        keys.insert(0, "subject".into());
    }
    let current_sort = sort_by
        .map(str::to_string)
        .or_else(|| vp.view.execution.sort_by.clone());
    let desc = sort_order
        .map(|o| o.eq_ignore_ascii_case("desc"))
        .unwrap_or_else(|| {
            vp.view
                .execution
                .sort_order
                .as_deref()
                .is_some_and(|o| o.eq_ignore_ascii_case("desc"))
        });
    let columns: Vec<Column> = keys
        .iter()
        .map(|k| {
            let (title, sort) = match column_title(k) {
                Some((t, s)) => (t.to_string(), s),
                None => (
                    k.parse::<Id>()
                        .ok()
                        .and_then(|fid| fields.iter().find(|f| f.id == fid))
                        .map(|f| f.title.clone())
                        .unwrap_or_else(|| view::capitalize(&k.replace('_', " "))),
                    None,
                ),
            };
            let is_current = sort.is_some() && current_sort.as_deref() == sort;
            Column {
                key: k.clone(),
                title,
                sort_link: sort.map(|sk| {
                    let order = if is_current && !desc { "desc" } else { "asc" };
                    format!("{base}?sort_by={sk}&sort_order={order}")
                }),
                sorted: match (is_current, desc) {
                    (false, _) => "none",
                    (true, false) => "ascending",
                    (true, true) => "descending",
                },
            }
        })
        .collect();
    let rows = vp
        .tickets
        .iter()
        .map(|t| Row {
            id: t.id,
            cells: columns
                .iter()
                .map(|c| cell(&c.key, t, &names, vp.next_breach.get(&t.id).copied()))
                .collect(),
        })
        .collect();
    let pages = ((vp.count + per_page - 1) / per_page).max(1);
    let keep = |p: i64| {
        let mut u = format!("{base}?page={p}");
        if let Some(sb) = sort_by {
            u.push_str(&format!("&sort_by={}", view::url_encode(sb)));
        }
        if let Some(so) = sort_order {
            u.push_str(&format!("&sort_order={}", view::url_encode(so)));
        }
        u
    };
    let agents = view::agents(&st.app, &s.actor).await?;
    let groups = st
        .app
        .list_groups(&s.actor, &Page::All { limit: 1000 })
        .await?
        .items;
    let t = ViewPageT {
        chrome: Chrome::new(&s, "views", vp.view.title.clone()),
        views: view_links(&st.app, &s.actor, vid).await?,
        title: vp.view.title.clone(),
        count: vp.count,
        columns,
        rows,
        page: page_no,
        pages,
        prev: (page_no > 1).then(|| keep(page_no - 1)),
        next: (page_no < pages).then(|| keep(page_no + 1)),
        statuses: unchanged_choices(
            STATUSES
                .iter()
                .filter(|s| **s != "new" && **s != "closed")
                .map(|s| (s.to_string(), view::capitalize(s))),
        ),
        priorities: unchanged_choices(
            PRIORITIES
                .iter()
                .map(|s| (s.to_string(), view::capitalize(s))),
        ),
        assignees: unchanged_choices(agents.iter().map(|u| (u.id.to_string(), u.name.clone()))),
        groups: unchanged_choices(groups.iter().map(|g| (g.id.to_string(), g.name.clone()))),
        return_to: keep(page_no),
    };
    page(&t)
}

/// Choices for a bulk edit: the first, selected, leaves the field as it is.
fn unchanged_choices(it: impl Iterator<Item = (String, String)>) -> Vec<Choice> {
    std::iter::once(Choice::new("", "— unchanged —", true))
        .chain(it.map(|(v, l)| Choice::new(v, l, false)))
        .collect()
}

fn cell(key: &str, t: &Ticket, names: &Names, breach: Option<i64>) -> Cell {
    let plain = |text: String| Cell {
        text,
        class: "",
        link: false,
    };
    match key {
        "subject" => Cell {
            text: t
                .subject
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| t.description.chars().take(80).collect()),
            class: "subject",
            link: true,
        },
        "requester" => plain(names.user(Some(t.requester_id))),
        "assignee" => plain(names.user(t.assignee_id)),
        "group" => plain(names.group(t.group_id)),
        "organization" => plain(names.org(t.organization_id)),
        "status" => Cell {
            text: t.status.as_str().to_string(),
            class: "status",
            link: false,
        },
        "priority" => plain(as_str(&t.priority)),
        "type" => plain(as_str(&t.ticket_type)),
        "created" => plain(view::time(t.created_at)),
        "updated" => plain(view::time(t.updated_at)),
        "due_date" => plain(t.due_at.map(view::time).unwrap_or_default()),
        "sla_next_breach_at" => plain(breach.map(view::time_secs).unwrap_or_default()),
        "nice_id" | "id" => plain(format!("#{}", t.id)),
        other => plain(
            other
                .parse::<Id>()
                .ok()
                .and_then(|fid| t.custom_field(fid))
                .map(|v| match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    x => x.to_string(),
                })
                .unwrap_or_default(),
        ),
    }
}

/// Bulk update from a view: the chosen tickets get the chosen status, priority, assignee or
/// group (each ticket its own audited update, as Zendesk's bulk update makes).
pub async fn bulk(
    st: State<WebState>,
    s: Session,
    headers: HeaderMap,
    form: Form,
) -> WebResult<Response> {
    let s = s.staff()?;
    s.check(&form)?;
    let mut input = Map::new();
    for k in ["status", "priority"] {
        if let Some(v) = form.text(k) {
            input.insert(k.into(), json!(v));
        }
    }
    for k in ["assignee_id", "group_id"] {
        if let Some(v) = form.text(k) {
            input.insert(
                k.into(),
                json!(view::id_of(v).map_err(|_| WebError::BadRequest(format!("{k}: not an id")))?),
            );
        }
    }
    let back = crate::session::safe_path(form.get("return_to")).unwrap_or_else(|| "/agent".into());
    if input.is_empty() {
        return Ok(see_other(&back));
    }
    let mut ids: Vec<Id> = vec![];
    for v in form.all("ticket_ids") {
        let id: Id = v
            .parse()
            .map_err(|_| WebError::BadRequest(format!("Not a ticket id: {v}")))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    if ids.is_empty() {
        return Err(WebError::BadRequest("Choose at least one ticket.".into()));
    }
    if ids.len() > 100 {
        return Err(WebError::BadRequest(
            "Update at most 100 tickets at once.".into(),
        ));
    }
    let origin = crate::origin(&headers);
    let mut failed = vec![];
    for id in ids {
        let ti: TicketInput = view::decode::<TicketInput>(Value::Object(input.clone()))?;
        if let Err(e) = st
            .app
            .update_ticket_via(&s.actor, id, ti, Via::channel("web"), &origin)
            .await
        {
            failed.push(format!("#{id}: {}", message(&e)));
        }
    }
    if !failed.is_empty() {
        return Err(WebError::BadRequest(format!(
            "Some tickets were not updated. {}",
            failed.join(" ")
        )));
    }
    Ok(see_other(&back))
}

/// What the agent is told when an update is refused.
fn message(e: &opsdesk_app::AppError) -> String {
    match e {
        opsdesk_app::AppError::Invalid(i) => view::invalid_messages(i).join(" "),
        opsdesk_app::AppError::NotFound => "not found".into(),
        opsdesk_app::AppError::Forbidden(m)
        | opsdesk_app::AppError::Conflict(m)
        | opsdesk_app::AppError::BadRequest(m)
        | opsdesk_app::AppError::InvalidQuery(m) => m.clone(),
        _ => "something went wrong; it has been logged".into(),
    }
}

// ---- search -------------------------------------------------------------------------------

pub struct Hit {
    pub kind: &'static str,
    pub link: String,
    pub title: String,
    pub detail: String,
}

#[derive(Template)]
#[template(path = "search.html")]
struct SearchPage {
    chrome: Chrome,
    views: Vec<ViewLink>,
    query: String,
    hits: Vec<Hit>,
    count: i64,
    error: Option<String>,
}

pub async fn search(st: State<WebState>, s: Session, q: Params) -> WebResult<Response> {
    let s = s.staff()?;
    let query = param(&q, "q").unwrap_or("").trim().to_string();
    let mut hits = vec![];
    let mut count = 0;
    let mut error = None;
    if !query.is_empty() {
        match st
            .app
            .search(&s.actor, &query, None, Default::default(), 1, 50)
            .await
        {
            Ok((found, n)) => {
                count = n;
                for f in found {
                    hits.push(match f {
                        opsdesk_app::search::Found::Ticket(t) => Hit {
                            kind: "ticket",
                            link: format!("/agent/tickets/{}", t.id),
                            title: format!("#{} {}", t.id, t.subject.clone().unwrap_or_default()),
                            detail: format!(
                                "{} · updated {}",
                                t.status.as_str(),
                                view::time(t.updated_at)
                            ),
                        },
                        opsdesk_app::search::Found::User(u) => Hit {
                            kind: "user",
                            link: format!(
                                "/agent/search?q={}",
                                view::url_encode(&format!("requester:{}", u.id))
                            ),
                            title: u.name.clone(),
                            detail: format!(
                                "{} · {}",
                                u.email.clone().unwrap_or_default(),
                                as_str(&u.role)
                            ),
                        },
                        opsdesk_app::search::Found::Organization(o) => Hit {
                            kind: "organization",
                            link: format!(
                                "/agent/search?q={}",
                                view::url_encode(&format!("organization:{}", o.id))
                            ),
                            title: o.name.clone(),
                            detail: o.domain_names.join(", "),
                        },
                    });
                }
            }
            Err(
                e @ (opsdesk_app::AppError::InvalidQuery(_) | opsdesk_app::AppError::BadRequest(_)),
            ) => {
                error = Some(message(&e));
            }
            Err(e) => return Err(e.into()),
        }
    }
    page(&SearchPage {
        chrome: Chrome::new(&s, "search", "Search"),
        views: view_links(&st.app, &s.actor, 0).await?,
        query,
        hits,
        count,
        error,
    })
}

// ---- the ticket page ----------------------------------------------------------------------

pub struct CommentVm {
    pub author: String,
    pub staff: bool,
    pub public: bool,
    pub time: String,
    pub html: String,
}

pub struct AuditVm {
    pub id: Id,
    pub time: String,
    pub author: String,
    pub via: String,
    pub lines: Vec<String>,
}

pub struct TraceVm {
    pub audit_id: Id,
    pub time: String,
    pub fired: Vec<String>,
    pub not_fired: Vec<String>,
}

pub struct SlaVm {
    pub label: String,
    pub class: &'static str,
    pub text: String,
}

pub struct OtherTicket {
    pub id: Id,
    pub subject: String,
    pub status: String,
}

#[derive(Template)]
#[template(path = "ticket.html")]
struct TicketPage {
    chrome: Chrome,
    views: Vec<ViewLink>,
    id: Id,
    subject: String,
    status: String,
    priority: String,
    via: String,
    created: String,
    updated: String,
    requester: String,
    requester_email: String,
    organization: String,
    plan: String,
    shared_org: bool,
    other_tickets: Vec<OtherTicket>,
    comments: Vec<CommentVm>,
    history: Vec<AuditVm>,
    trace: Vec<TraceVm>,
    slas: Vec<SlaVm>,
    statuses: Vec<Choice>,
    priorities: Vec<Choice>,
    types: Vec<Choice>,
    assignees: Vec<Choice>,
    groups: Vec<Choice>,
    fields: Vec<FieldVm>,
    tags: String,
    /// The values the form was rendered with: an update sends only what the agent changed,
    /// so it never reverts what someone else changed meanwhile.
    ticket_type: String,
    ticket_form_id: String,
    /// The instance's ticket forms.
    forms: Vec<Choice>,
    assignee_id: String,
    group_id: String,
    macros: Vec<Choice>,
    error: Option<String>,
    draft: String,
    draft_public: bool,
}

fn describe_event(e: &Value, names: &Names) -> Option<String> {
    let kind = e.get("type").and_then(Value::as_str).unwrap_or("");
    let field = e.get("field_name").and_then(Value::as_str).unwrap_or("");
    let show = |v: Option<&Value>| -> String {
        let v = v.unwrap_or(&Value::Null);
        let id = v
            .as_i64()
            .or_else(|| v.as_str().and_then(|s| s.parse().ok()));
        match (field, id) {
            ("assignee_id" | "requester_id" | "submitter_id", Some(i)) => names.user(Some(i)),
            ("group_id", Some(i)) => names.group(Some(i)),
            ("organization_id", Some(i)) => names.org(Some(i)),
            _ => match view::value_text(v) {
                t if t.is_empty() => "—".into(),
                t => t,
            },
        }
    };
    let label = field.trim_end_matches("_id").replace('_', " ");
    Some(match kind {
        "Create" => format!("{}: {}", view::capitalize(&label), show(e.get("value"))),
        "Change" => format!(
            "{}: {} → {}",
            view::capitalize(&label),
            show(e.get("previous_value")),
            show(e.get("value"))
        ),
        "Comment" => {
            if e.get("public").and_then(Value::as_bool).unwrap_or(true) {
                "Public reply".into()
            } else {
                "Internal note".into()
            }
        }
        "Notification" => format!(
            "Notification “{}”",
            e.get("subject").and_then(Value::as_str).unwrap_or("")
        ),
        "External" => "Webhook called".into(),
        "" => return None,
        other => other.to_string(),
    })
}

fn trace_vm(t: &Value) -> Option<TraceVm> {
    let tr = t.get("trigger_trace")?;
    if tr.is_null() {
        return None;
    }
    let fired = tr
        .get("fired")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|f| {
                    format!(
                        "{} (pass {})",
                        f.get("title").and_then(Value::as_str).unwrap_or("?"),
                        f.get("pass").and_then(Value::as_i64).unwrap_or(1)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let not_fired = tr
        .get("not_fired")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|f| {
                    let title = f
                        .get("title")
                        .and_then(Value::as_str)
                        .unwrap_or("(deleted trigger)");
                    match f.get("failed") {
                        Some(Value::String(s)) => format!("{title}: {s}"),
                        Some(Value::Null) | None => {
                            format!("{title}: none of its “any” conditions held")
                        }
                        Some(x) => format!("{title}: {x}"),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Some(TraceVm {
        audit_id: t.get("audit_id").and_then(Value::as_i64).unwrap_or(0),
        time: t
            .get("created_at")
            .and_then(Value::as_str)
            .map(|s| s.replace('T', " ").replace('Z', " UTC"))
            .unwrap_or_default(),
        fired,
        not_fired,
    })
}

fn sla_vm(v: &Value) -> Vec<SlaVm> {
    v.get("policy_metrics")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|m| {
                    let metric = m.get("metric").and_then(Value::as_str).unwrap_or("");
                    let label = match metric {
                        "first_reply_time" => "First reply",
                        "next_reply_time" => "Next reply",
                        "periodic_update_time" => "Periodic update",
                        "requester_wait_time" => "Requester wait",
                        "agent_work_time" => "Agent work",
                        "pausable_update_time" => "Pausable update",
                        other => other,
                    }
                    .to_string();
                    let stage = m.get("stage").and_then(Value::as_str).unwrap_or("");
                    let breached = m.get("breached").and_then(Value::as_bool).unwrap_or(false);
                    let h = m.get("hours").and_then(Value::as_i64);
                    let min = m.get("minutes").and_then(Value::as_i64).unwrap_or(0);
                    let (class, text) = match (stage, breached, h) {
                        ("achieved", _, _) => ("sla-met", "met".to_string()),
                        (_, true, Some(h)) => {
                            ("sla-breached", format!("breached {}h {}m ago", -h, -min))
                        }
                        (_, true, None) => ("sla-breached", "breached".into()),
                        ("paused", _, _) => ("sla-paused", "paused".into()),
                        (_, false, Some(h)) if h < 1 => ("sla-soon", format!("{min}m left")),
                        (_, false, Some(h)) => ("sla-ok", format!("{h}h {min}m left")),
                        _ => ("sla-paused", stage.to_string()),
                    };
                    SlaVm { label, class, text }
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn ticket_page(
    st: &WebState,
    s: &Session,
    id: Id,
    error: Option<String>,
    draft: String,
    draft_public: bool,
) -> WebResult<TicketPage> {
    let app = &st.app;
    let actor = &s.actor;
    let t = app.get_ticket(actor, id).await?;
    let comments = app
        .ticket_comments(actor, id, &Page::All { limit: 2000 })
        .await?
        .items;
    let audits: Vec<Audit> = app
        .ticket_audits(actor, id, &Page::All { limit: 2000 })
        .await?
        .items;
    let others = app
        .list_tickets(
            actor,
            &TicketFilter {
                requester_id: Some(t.requester_id),
                ..Default::default()
            },
            &Page::Offset {
                page: 1,
                per_page: 11,
                order: Order::Desc,
            },
        )
        .await?
        .items;
    let mut user_ids: Vec<Id> = vec![t.requester_id];
    user_ids.extend(t.assignee_id);
    user_ids.extend(comments.iter().map(|c| c.author_id));
    user_ids.extend(audits.iter().map(|a| a.author_id));
    for a in &audits {
        for e in &a.events {
            if let Some(f) = e.get("field_name").and_then(Value::as_str) {
                if f.ends_with("_id") && f != "group_id" && f != "organization_id" {
                    for k in ["value", "previous_value"] {
                        if let Some(i) = e.get(k).and_then(|v| {
                            v.as_i64()
                                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                        }) {
                            user_ids.push(i);
                        }
                    }
                }
            }
        }
    }
    let groups = app
        .list_groups(actor, &Page::All { limit: 1000 })
        .await?
        .items;
    let names = Names::load(
        app,
        user_ids,
        groups.iter().map(|g| g.id),
        t.organization_id,
    )
    .await?;
    let requester = names.users.get(&t.requester_id);
    let org = t.organization_id.and_then(|o| names.orgs.get(&o));
    let plan = org
        .and_then(|o| o.organization_fields.get(opsdesk_app::kpi::PLAN_FIELD))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let slas = app.ticket_slas(actor, &[&t]).await?;
    // The trace explains the audits already read above (no second read of them).
    let trace = app.trigger_traces(actor, &audits).await?;
    let mut agents = view::agents(app, actor).await?;
    // A suspended or deactivated assignee stays a choice (by name), so a reply keeps them.
    if let Some(u) = t.assignee_id.and_then(|a| names.users.get(&a)) {
        if !agents.iter().any(|x| x.id == u.id) {
            agents.push(u.clone());
        }
    }
    let macros = app.list_macros(actor, true).await?;
    let fields = app.all_ticket_fields().await?;
    let forms = app
        .list_ticket_forms(actor, &Page::All { limit: 1000 })
        .await?
        .items;
    let field_vms = fields
        .iter()
        .filter(|f| f.active && !f.is_system())
        .map(|f| view::field_vm(f, t.custom_field(f.id)))
        .collect();
    let status = t.status.as_str().to_string();
    Ok(TicketPage {
        chrome: Chrome::new(
            s,
            "ticket",
            format!("#{} {}", t.id, t.subject.clone().unwrap_or_default()),
        ),
        views: view_links(app, actor, 0).await?,
        id: t.id,
        subject: t.subject.clone().unwrap_or_default(),
        status: status.clone(),
        priority: as_str(&t.priority),
        via: t.via.channel.clone(),
        created: view::time(t.created_at),
        updated: view::time(t.updated_at),
        requester: names.user(Some(t.requester_id)),
        requester_email: requester.and_then(|u| u.email.clone()).unwrap_or_default(),
        organization: org.map(|o| o.name.clone()).unwrap_or_default(),
        plan,
        shared_org: org.is_some_and(|o| o.shared_tickets),
        other_tickets: others
            .iter()
            .filter(|o| o.id != t.id)
            .take(10)
            .map(|o| OtherTicket {
                id: o.id,
                subject: o.subject.clone().unwrap_or_default(),
                status: o.status.as_str().to_string(),
            })
            .collect(),
        comments: comments
            .iter()
            .map(|c| CommentVm {
                author: names.user(Some(c.author_id)),
                staff: names
                    .users
                    .get(&c.author_id)
                    .is_some_and(|u| u.role.is_staff()),
                public: c.public,
                time: view::time(c.created_at),
                html: view::safe_html(&c.html_body),
            })
            .collect(),
        history: audits
            .iter()
            .rev()
            .map(|a| AuditVm {
                id: a.id,
                time: view::time(a.created_at),
                author: names.user(Some(a.author_id)),
                via: a.via.channel.clone(),
                lines: a
                    .events
                    .iter()
                    .filter_map(|e| describe_event(e, &names))
                    .collect(),
            })
            .collect(),
        trace: trace.iter().rev().filter_map(trace_vm).collect(),
        slas: slas.get(&t.id).map(sla_vm).unwrap_or_default(),
        statuses: choices(
            None,
            STATUSES
                .iter()
                .filter(|x| **x != "closed" || status == "closed")
                .map(|x| (x.to_string(), view::capitalize(x))),
            &status,
        ),
        priorities: choices(
            Some("—"),
            PRIORITIES
                .iter()
                .map(|x| (x.to_string(), view::capitalize(x))),
            &as_str(&t.priority),
        ),
        types: choices(
            Some("—"),
            TYPES.iter().map(|x| (x.to_string(), view::capitalize(x))),
            &as_str(&t.ticket_type),
        ),
        assignees: choices(
            Some("—"),
            agents.iter().map(|u| (u.id.to_string(), u.name.clone())),
            &t.assignee_id.map(|i| i.to_string()).unwrap_or_default(),
        ),
        groups: choices(
            Some("—"),
            groups.iter().map(|g| (g.id.to_string(), g.name.clone())),
            &t.group_id.map(|i| i.to_string()).unwrap_or_default(),
        ),
        fields: field_vms,
        tags: t.tags.join(" "),
        ticket_type: as_str(&t.ticket_type),
        ticket_form_id: t.ticket_form_id.map(|i| i.to_string()).unwrap_or_default(),
        forms: choices(
            Some("—"),
            forms
                .iter()
                .filter(|f| f.active)
                .map(|f| (f.id.to_string(), f.name.clone())),
            &t.ticket_form_id.map(|i| i.to_string()).unwrap_or_default(),
        ),
        assignee_id: t.assignee_id.map(|i| i.to_string()).unwrap_or_default(),
        group_id: t.group_id.map(|i| i.to_string()).unwrap_or_default(),
        macros: macros
            .iter()
            .map(|m| Choice::new(m.id.to_string(), m.title.clone(), false))
            .collect(),
        error,
        draft,
        draft_public,
    })
}

pub async fn ticket(
    st: State<WebState>,
    s: Session,
    Path(id): Path<String>,
) -> WebResult<Response> {
    let s = s.staff()?;
    let t = ticket_page(&st, &s, view::id_of(&id)?, None, String::new(), true).await?;
    page(&t)
}

/// Whether the agent changed field `k`: it differs from the `orig_k` the page was rendered
/// with (a field without one, as in the new-ticket form, always counts).
fn changed(form: &Form, k: &str) -> bool {
    match form.get(&format!("orig_{k}")) {
        Some(orig) => form.get(k).unwrap_or("").trim() != orig.trim(),
        None => form.get(k).is_some(),
    }
}

/// The ticket form as the API's update: the properties, tags and custom fields the agent
/// changed, and the comment.
fn ticket_input(form: &Form, fields_present: bool) -> WebResult<Value> {
    let mut m = Map::new();
    if changed(form, "status") {
        if let Some(v) = form.text("status") {
            m.insert("status".into(), json!(v));
        }
    }
    for k in ["priority", "type"] {
        if changed(form, k) {
            m.insert(k.into(), form.text(k).map_or(Value::Null, |v| json!(v)));
        }
    }
    for k in ["assignee_id", "group_id", "ticket_form_id"] {
        if changed(form, k) {
            let v = match form.text(k) {
                None => Value::Null,
                Some(v) => json!(v
                    .parse::<Id>()
                    .map_err(|_| WebError::BadRequest(format!("{k}: not an id")))?),
            };
            m.insert(k.into(), v);
        }
    }
    if changed(form, "tags") {
        let tags: Vec<&str> = form.get("tags").unwrap_or("").split_whitespace().collect();
        m.insert("tags".into(), json!(tags));
    }
    if fields_present {
        let cf = view::custom_fields_from_form(form, true);
        if !cf.is_empty() {
            m.insert("custom_fields".into(), json!(cf));
        }
    }
    if let Some(body) = form.text("body") {
        let public = form.get("public") != Some("false");
        m.insert("comment".into(), json!({"body": body, "public": public}));
    }
    Ok(Value::Object(m))
}

pub async fn update_ticket(
    st: State<WebState>,
    s: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> WebResult<Response> {
    let s = s.staff()?;
    s.check(&form)?;
    let id = view::id_of(&id)?;
    let input = view::decode::<TicketInput>(ticket_input(&form, true)?)?;
    match st
        .app
        .update_ticket_via(
            &s.actor,
            id,
            input,
            Via::channel("web"),
            &crate::origin(&headers),
        )
        .await
    {
        Ok(_) => Ok(see_other(&format!("/agent/tickets/{id}"))),
        Err(e) if view::refused(&e).is_some() => {
            let draft = form.get("body").unwrap_or("").to_string();
            let public = form.get("public") != Some("false");
            let t = ticket_page(&st, &s, id, Some(message(&e)), draft, public).await?;
            let mut r = page(&t)?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Template)]
#[template(path = "macro_preview.html")]
struct MacroPreviewT {
    ticket_id: Id,
    macro_id: Id,
    title: String,
    changes: Vec<String>,
    comment_html: Option<String>,
    comment_public: bool,
    csrf: String,
}

/// Fields a macro may set on a ticket, as the update takes them.
const MACRO_FIELDS: [&str; 12] = [
    "collaborator_ids",
    "email_cc_ids",
    "follower_ids",
    "status",
    "priority",
    "type",
    "assignee_id",
    "group_id",
    "tags",
    "custom_fields",
    "subject",
    "ticket_form_id",
];

pub async fn macro_preview(
    st: State<WebState>,
    s: Session,
    Path(id): Path<String>,
    q: Params,
) -> WebResult<Response> {
    let s = s.staff()?;
    let id = view::id_of(&id)?;
    let mid = view::id_of(param(&q, "macro_id").unwrap_or(""))?;
    let m = st.app.get_macro(&s.actor, mid).await?;
    let p = st.app.apply_macro(&s.actor, mid, Some(id)).await?;
    let groups = st
        .app
        .list_groups(&s.actor, &Page::All { limit: 1000 })
        .await?
        .items;
    let names = Names::load(
        &st.app,
        p.ticket.assignee_id,
        groups.iter().map(|g| g.id),
        None,
    )
    .await?;
    let changes = p
        .changes
        .iter()
        .filter(|(k, _)| MACRO_FIELDS.contains(&k.as_str()))
        .filter_map(|(k, v)| {
            describe_event(
                &json!({"type": "Create", "field_name": k, "value": v}),
                &names,
            )
        })
        .collect();
    page(&MacroPreviewT {
        ticket_id: id,
        macro_id: mid,
        title: m.title,
        changes,
        comment_html: p
            .comment
            .as_ref()
            .and_then(|c| c.get("html_body"))
            .and_then(Value::as_str)
            .map(view::safe_html),
        comment_public: p
            .comment
            .as_ref()
            .and_then(|c| c.get("public"))
            .and_then(Value::as_bool)
            .unwrap_or(true),
        csrf: s.csrf.clone(),
    })
}

/// Apply a macro (after its preview): its changes and comment as one update.
pub async fn apply_macro(
    st: State<WebState>,
    s: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> WebResult<Response> {
    let s = s.staff()?;
    s.check(&form)?;
    let id = view::id_of(&id)?;
    let mid = view::id_of(form.get("macro_id").unwrap_or(""))?;
    let p = st.app.apply_macro(&s.actor, mid, Some(id)).await?;
    let mut m: Map<String, Value> = p
        .changes
        .into_iter()
        .filter(|(k, _)| MACRO_FIELDS.contains(&k.as_str()))
        .collect();
    if let Some(c) = p.comment {
        m.insert(
            "comment".into(),
            json!({"html_body": c.get("html_body"), "public": c.get("public")}),
        );
    }
    let input = view::decode::<TicketInput>(Value::Object(m))?;
    st.app
        .update_ticket_via(
            &s.actor,
            id,
            input,
            Via::channel("web"),
            &crate::origin(&headers),
        )
        .await?;
    Ok(see_other(&format!("/agent/tickets/{id}")))
}

// ---- new ticket ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "new_ticket.html")]
struct NewTicketPage {
    chrome: Chrome,
    views: Vec<ViewLink>,
    priorities: Vec<Choice>,
    assignees: Vec<Choice>,
    groups: Vec<Choice>,
    error: Option<String>,
    requester: String,
    subject: String,
    body: String,
}

async fn new_ticket_page(
    st: &WebState,
    s: &Session,
    form: Option<&Form>,
    error: Option<String>,
) -> WebResult<NewTicketPage> {
    let agents = view::agents(&st.app, &s.actor).await?;
    let groups = st
        .app
        .list_groups(&s.actor, &Page::All { limit: 1000 })
        .await?
        .items;
    let f = |k: &str| form.and_then(|f| f.get(k)).unwrap_or("").to_string();
    Ok(NewTicketPage {
        chrome: Chrome::new(s, "new", "New ticket"),
        views: view_links(&st.app, &s.actor, 0).await?,
        priorities: choices(
            Some("—"),
            PRIORITIES
                .iter()
                .map(|x| (x.to_string(), view::capitalize(x))),
            &f("priority"),
        ),
        assignees: choices(
            Some("—"),
            agents.iter().map(|u| (u.id.to_string(), u.name.clone())),
            &f("assignee_id"),
        ),
        groups: choices(
            Some("—"),
            groups.iter().map(|g| (g.id.to_string(), g.name.clone())),
            &f("group_id"),
        ),
        error,
        requester: f("requester"),
        subject: f("subject"),
        body: f("body"),
    })
}

pub async fn new_ticket(st: State<WebState>, s: Session) -> WebResult<Response> {
    let s = s.staff()?;
    page(&new_ticket_page(&st, &s, None, None).await?)
}

pub async fn create_ticket(
    st: State<WebState>,
    s: Session,
    headers: HeaderMap,
    form: Form,
) -> WebResult<Response> {
    let s = s.staff()?;
    s.check(&form)?;
    let mut v = ticket_input(&form, false)?;
    v["subject"] = json!(form.get("subject").unwrap_or(""));
    let who = form.text("requester").unwrap_or("");
    v["requester"] = json!({"email": who, "name": who.split('@').next().unwrap_or(who)});
    let input = view::decode::<TicketInput>(v)?;
    match st
        .app
        .create_ticket(
            &s.actor,
            input,
            Via::channel("web"),
            &crate::origin(&headers),
        )
        .await
    {
        Ok((t, _)) => Ok(see_other(&format!("/agent/tickets/{}", t.id))),
        Err(e @ opsdesk_app::AppError::Invalid(_)) => {
            let p = new_ticket_page(&st, &s, Some(&form), Some(message(&e))).await?;
            let mut r = page(&p)?;
            *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
            Ok(r)
        }
        Err(e) => Err(e.into()),
    }
}
