//! Admin forms for people and structure: groups, organisations (with their custom fields,
//! such as the support plan), users (role, organisation, suspension), ticket fields (with
//! their options and portal settings) and ticket forms. Saving goes through the API's use
//! cases, so the messages are the API's.

use askama::Template;
use axum::response::Response;
use opsdesk_app::fields::FieldKind;
use opsdesk_app::Page;
use opsdesk_core::model::Id;
use serde_json::{json, Map, Value};

use crate::session::{Form, Session};
use crate::view::{self, Choice, Chrome};
use crate::{page, see_other, WebError, WebResult, WebState};

/// The record kinds these forms edit.
pub const KINDS: [&str; 7] = [
    "groups",
    "organizations",
    "users",
    "ticket_fields",
    "ticket_forms",
    "schedules",
    "webhooks",
];

const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// A schedule's weekly intervals (minutes from Sunday 00:00) as one text per day:
/// `09:00-17:00`, several separated by commas, empty when closed. An interval that runs past
/// midnight is split at it.
fn day_texts(intervals: &[opsdesk_core::business_hours::Interval]) -> Vec<String> {
    let mut days: Vec<Vec<String>> = vec![vec![]; 7];
    for iv in intervals {
        let mut start = iv.start_time;
        while start < iv.end_time {
            let d = (start / 1440) as usize;
            let day_end = (start / 1440 + 1) * 1440;
            let end = iv.end_time.min(day_end);
            if let Some(v) = days.get_mut(d) {
                v.push(format!(
                    "{}-{}",
                    hhmm(start % 1440),
                    if end == day_end {
                        "24:00".into()
                    } else {
                        hhmm(end % 1440)
                    }
                ));
            }
            start = end;
        }
    }
    days.into_iter().map(|v| v.join(", ")).collect()
}

fn parse_hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (m < 60 && (h < 24 || (h == 24 && m == 0))).then_some(h * 60 + m)
}

/// The week's intervals from the form's `day_0` … `day_6` texts; adjacent ones are joined
/// (a day open to midnight and the next from midnight make one interval, as the API keeps).
fn intervals_from(form: &Form) -> WebResult<Vec<Value>> {
    let mut out: Vec<(u32, u32)> = vec![];
    for (d, name) in DAYS.iter().enumerate() {
        let text = form.get(&format!("day_{d}")).unwrap_or("");
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                WebError::BadRequest(format!(
                    "{name}: \"{part}\" is not a time range like 09:00-17:00"
                ))
            };
            let (a, b) = part.split_once('-').ok_or_else(bad)?;
            let (a, b) = (
                parse_hhmm(a).ok_or_else(bad)?,
                parse_hhmm(b).ok_or_else(bad)?,
            );
            if a >= b {
                return Err(bad());
            }
            let base = d as u32 * 1440;
            out.push((base + a, base + b));
        }
    }
    out.sort_unstable();
    let mut merged: Vec<(u32, u32)> = vec![];
    for (a, b) in out {
        match merged.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => merged.push((a, b)),
        }
    }
    Ok(merged
        .into_iter()
        .map(|(a, b)| json!({"start_time": a, "end_time": b}))
        .collect())
}

/// One input of a form.
pub struct Input {
    pub name: String,
    pub label: String,
    /// text, email, textarea, select, checkbox
    pub kind: &'static str,
    pub value: String,
    pub checked: bool,
    pub options: Vec<Choice>,
    pub help: String,
}

impl Input {
    fn text(name: &str, label: &str, value: impl Into<String>) -> Input {
        Input {
            name: name.into(),
            label: label.into(),
            kind: "text",
            value: value.into(),
            checked: false,
            options: vec![],
            help: String::new(),
        }
    }
    fn kind(mut self, k: &'static str) -> Input {
        self.kind = k;
        self
    }
    fn help(mut self, h: &str) -> Input {
        self.help = h.into();
        self
    }
    fn check(name: &str, label: &str, checked: bool) -> Input {
        Input {
            checked,
            ..Input::text(name, label, "true").kind("checkbox")
        }
    }
    fn select(name: &str, label: &str, options: Vec<Choice>) -> Input {
        Input {
            options,
            ..Input::text(name, label, "").kind("select")
        }
    }
}

#[derive(Template)]
#[template(path = "admin_form.html")]
struct RecordForm {
    chrome: Chrome,
    kinds: Vec<crate::admin::KindLink>,
    kind: String,
    id: Option<Id>,
    inputs: Vec<Input>,
    errors: Vec<String>,
    /// A schedule's holidays: (id, name, from, to).
    holidays: Vec<(Id, String, String, String)>,
}

fn noun(kind: &str) -> &'static str {
    match kind {
        "groups" => "group",
        "organizations" => "organization",
        "ticket_fields" => "ticket field",
        "ticket_forms" => "ticket form",
        "schedules" => "schedule",
        "webhooks" => "webhook",
        _ => "user",
    }
}

/// An organisation field's value as its input shows it (a list: its values sorted, space
/// separated), so a submitted value can be compared with the stored one.
fn org_field_text(v: &Value) -> String {
    match v {
        Value::Array(a) => {
            let mut x: Vec<String> = a
                .iter()
                .map(|e| {
                    e.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| e.to_string())
                })
                .collect();
            x.sort();
            x.join(" ")
        }
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        x => x.to_string(),
    }
}

/// A field's options as the form edits them: one `Name = value` per line.
fn options_text(v: &Value) -> String {
    v.get("custom_field_options")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|o| {
                    format!(
                        "{} = {}",
                        o.get("name").and_then(Value::as_str).unwrap_or(""),
                        o.get("value").and_then(Value::as_str).unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// `Name = value` lines as the API's `custom_field_options` (a line without ` = ` is a
/// name whose value is made from it, as Zendesk's admin does: lower case, underscores).
fn options_json(text: &str) -> Vec<Value> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| match l.split_once(" = ").or_else(|| l.split_once('=')) {
            Some((n, v)) => json!({"name": n.trim(), "value": v.trim()}),
            None => json!({"name": l, "value": l.to_lowercase().split_whitespace().collect::<Vec<_>>().join("_")}),
        })
        .collect()
}

/// The inputs of a kind's form, filled from `v` (the record as JSON, or what was submitted).
async fn inputs(st: &WebState, s: &Session, kind: &str, v: &Value) -> WebResult<Vec<Input>> {
    let t = |k: &str| -> String {
        match v.get(k) {
            Some(Value::String(x)) => x.clone(),
            Some(Value::Null) | None => String::new(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            Some(x) => x.to_string(),
        }
    };
    Ok(match kind {
        "groups" => vec![
            Input::text("name", "Name", t("name")),
            Input::text("description", "Description", t("description")).kind("textarea"),
        ],
        "organizations" => {
            let mut out = vec![
                Input::text("name", "Name", t("name")),
                Input::text("domain_names", "Domains", t("domain_names"))
                    .help("Separated by spaces; mail from these domains joins the organisation."),
                Input::check(
                    "shared_tickets",
                    "Members see each other's tickets (shared organisation)",
                    v.get("shared_tickets")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                ),
                Input::text("notes", "Notes", t("notes")).kind("textarea"),
            ];
            let fields = st
                .app
                .list_custom_fields(&s.actor, FieldKind::Organization)
                .await?;
            for f in fields.iter().filter(|f| f.active) {
                let cur = v
                    .get("organization_fields")
                    .and_then(|o| o.get(&f.key))
                    .cloned()
                    .unwrap_or(Value::Null);
                let name = format!("orgfield_{}", f.key);
                let shown = org_field_text(&cur);
                let options = || {
                    f.custom_field_options
                        .iter()
                        .map(|o| (o.value.clone(), o.name.clone()))
                };
                out.push(match f.field_type.as_str() {
                    "dropdown" | "tagger" => {
                        Input::select(&name, &f.title, view::choices(Some("—"), options(), &shown))
                    }
                    "multiselect" => {
                        let sel: Vec<&str> = shown.split(' ').collect();
                        let mut o: Vec<Choice> = options()
                            .map(|(v, l)| {
                                let on = sel.contains(&v.as_str());
                                Choice::new(v, l, on)
                            })
                            .collect();
                        for x in sel.iter().filter(|x| !x.is_empty()) {
                            if !o.iter().any(|c| c.value == *x) {
                                o.push(Choice::new(*x, format!("{x} (current value)"), true));
                            }
                        }
                        Input {
                            options: o,
                            ..Input::text(&name, &f.title, "").kind("multiselect")
                        }
                    }
                    "checkbox" => Input::check(&name, &f.title, cur.as_bool().unwrap_or(false)),
                    _ => Input::text(&name, &f.title, shown),
                });
            }
            out
        }
        "ticket_fields" => {
            let b = |k: &str, default: bool| v.get(k).and_then(Value::as_bool).unwrap_or(default);
            let ty = t("type");
            vec![
                Input::text("title", "Title", t("title")),
                Input::select(
                    "type",
                    "Type",
                    view::choices(
                        None,
                        [
                            "text",
                            "textarea",
                            "checkbox",
                            "integer",
                            "decimal",
                            "date",
                            "regexp",
                            "tagger",
                            "multiselect",
                        ]
                        .iter()
                        .map(|x| (x.to_string(), view::capitalize(x))),
                        if ty.is_empty() { "text" } else { &ty },
                    ),
                ),
                Input::text("description", "Description", t("description")).kind("textarea"),
                Input::text(
                    "custom_field_options",
                    "Options (drop-down and multi-select)",
                    options_text(v),
                )
                .kind("textarea")
                .help("One per line: Name = value (the value is the tag it sets)."),
                Input::text(
                    "regexp_for_validation",
                    "Pattern (regexp fields)",
                    t("regexp_for_validation"),
                ),
                Input::check("active", "Active", b("active", true)),
                Input::check("required", "Required to solve", b("required", false)),
                Input::check(
                    "visible_in_portal",
                    "Customers see it",
                    b("visible_in_portal", false),
                ),
                Input::check(
                    "editable_in_portal",
                    "Customers can fill it in",
                    b("editable_in_portal", false),
                ),
                Input::check(
                    "required_in_portal",
                    "Customers must fill it in",
                    b("required_in_portal", false),
                ),
                Input::text(
                    "title_in_portal",
                    "Title in the portal",
                    t("title_in_portal"),
                ),
            ]
        }
        "ticket_forms" => {
            let b = |k: &str, default: bool| v.get(k).and_then(Value::as_bool).unwrap_or(default);
            let chosen: Vec<i64> = v
                .get("ticket_field_ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            let fields = st.app.all_ticket_fields().await?;
            vec![
                Input::text("name", "Name", t("name")),
                Input::text("display_name", "Name customers see", t("display_name")),
                Input::check("active", "Active", b("active", true)),
                Input::check("default", "The default form", b("default", false)),
                Input::check(
                    "end_user_visible",
                    "Customers can choose it",
                    b("end_user_visible", true),
                ),
                Input {
                    // The form's fields first, in its order (inactive ones too, so a save
                    // keeps them), then every other active field.
                    options: chosen
                        .iter()
                        .filter_map(|id| fields.iter().find(|f| f.id == *id))
                        .map(|f| {
                            let label = if f.active {
                                f.title.clone()
                            } else {
                                format!("{} (inactive)", f.title)
                            };
                            Choice::new(f.id.to_string(), label, true)
                        })
                        .chain(
                            fields
                                .iter()
                                .filter(|f| f.active && !chosen.contains(&f.id))
                                .map(|f| Choice::new(f.id.to_string(), f.title.clone(), false)),
                        )
                        .collect(),
                    ..Input::text(
                        "ticket_field_ids",
                        "Fields (chosen ones keep their order; new ones go last)",
                        "",
                    )
                    .kind("multiselect")
                },
            ]
        }
        "schedules" => {
            let intervals: Vec<opsdesk_core::business_hours::Interval> = v
                .get("intervals")
                .cloned()
                .and_then(|i| serde_json::from_value(i).ok())
                .unwrap_or_default();
            let texts = if v.get("day_0").is_some() {
                (0..7).map(|d| t(&format!("day_{d}"))).collect()
            } else {
                day_texts(&intervals)
            };
            let mut out = vec![
                Input::text("name", "Name", t("name")),
                Input::text("time_zone", "Time zone", t("time_zone")).help(
                    "Zendesk's names (Pacific Time (US & Canada)) or IANA names (America/Los_Angeles).",
                ),
            ];
            for (d, name) in DAYS.iter().enumerate() {
                out.push(
                    Input::text(
                        &format!("day_{d}"),
                        &format!("{name} hours"),
                        texts[d].clone(),
                    )
                    .help(if d == 0 {
                        "Like 09:00-17:00; several separated by commas; empty: closed."
                    } else {
                        ""
                    }),
                );
            }
            out
        }
        "webhooks" => {
            let auth_type = v
                .get("authentication")
                .and_then(|a| a.get("type"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let auth_type = if auth_type.is_empty() {
                t("auth_type")
            } else {
                auth_type
            };
            let sel = |name: &str, label: &str, opts: &[&str], cur: &str| {
                Input::select(
                    name,
                    label,
                    view::choices(
                        None,
                        opts.iter().map(|o| (o.to_string(), o.to_string())),
                        cur,
                    ),
                )
            };
            let cur = |k: &str, d: &str| {
                let x = t(k);
                if x.is_empty() {
                    d.to_string()
                } else {
                    x
                }
            };
            vec![
                Input::text("name", "Name", t("name")),
                Input::text("description", "Description", t("description")),
                Input::text("endpoint", "Endpoint URL", t("endpoint")),
                sel("http_method", "Method", &["POST", "PUT", "PATCH", "GET", "DELETE"], &cur("http_method", "POST")),
                sel("request_format", "Format", &["json", "xml", "form_encoded"], &cur("request_format", "json")),
                sel("status", "Status", &["active", "inactive"], &cur("status", "active")),
                Input::text("subscriptions", "Subscriptions", t("subscriptions")).help(
                    "conditional_ticket_events for triggers and automations; event types separated by spaces.",
                ),
                sel(
                    "auth_type",
                    "Authentication",
                    &["none", "basic_auth", "bearer_token", "api_key"],
                    if auth_type.is_empty() { "none" } else { &auth_type },
                ),
                Input::text(
                    "auth_username",
                    "User name (basic auth) or header name (API key)",
                    {
                        let data = v.get("authentication").and_then(|a| a.get("data"));
                        data.and_then(|d| d.get("username").or_else(|| d.get("name")))
                            .and_then(Value::as_str)
                            .map(str::to_string)
                            .unwrap_or_else(|| t("auth_username"))
                    },
                ),
                Input::text("auth_secret", "Password or token", "")
                    .kind("password")
                    .help("Leave empty to keep the stored one."),
            ]
        }
        _ => {
            let role = t("role");
            let org = t("organization_id");
            let orgs = st
                .app
                .list_organizations(&s.actor, &Page::All { limit: 2000 })
                .await?
                .items;
            vec![
                Input::text("name", "Name", t("name")),
                Input::text("email", "Email", t("email")).kind("email"),
                Input::select(
                    "role",
                    "Role",
                    view::choices(
                        None,
                        [
                            ("end-user", "End-user"),
                            ("agent", "Agent"),
                            ("admin", "Admin"),
                        ]
                        .iter()
                        .map(|(v, l)| (v.to_string(), l.to_string())),
                        if role.is_empty() { "end-user" } else { &role },
                    ),
                ),
                Input::select(
                    "organization_id",
                    "Organization",
                    view::choices(
                        Some("—"),
                        orgs.iter().map(|o| (o.id.to_string(), o.name.clone())),
                        &org,
                    ),
                ),
                Input::check(
                    "suspended",
                    "Suspended (cannot sign in; mail from them is suspended)",
                    v.get("suspended").and_then(Value::as_bool).unwrap_or(false),
                ),
            ]
        }
    })
}

async fn render(
    st: &WebState,
    s: &Session,
    kind: &str,
    id: Option<Id>,
    v: &Value,
    errors: Vec<String>,
) -> WebResult<Response> {
    let verb = if id.is_some() { "Edit" } else { "New" };
    let f = RecordForm {
        chrome: Chrome::new(s, "admin", format!("{verb} {}", noun(kind))),
        kinds: crate::admin::kind_links(kind),
        kind: kind.to_string(),
        id,
        inputs: inputs(st, s, kind, v).await?,
        errors,
        holidays: v
            .get("holidays")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|h| {
                        let f =
                            |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                        (
                            h.get("id").and_then(Value::as_i64).unwrap_or(0),
                            f("name"),
                            f("start_date"),
                            f("end_date"),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    let mut r = page(&f)?;
    if !f.errors.is_empty() {
        *r.status_mut() = axum::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(r)
}

pub async fn new(st: &WebState, s: &Session, kind: &str) -> WebResult<Response> {
    render(st, s, kind, None, &json!({}), vec![]).await
}

pub async fn edit(st: &WebState, s: &Session, kind: &str, id: Id) -> WebResult<Response> {
    let (app, a) = (&st.app, &s.actor);
    let v = match kind {
        "groups" => serde_json::to_value(app.get_group(a, id).await?),
        "organizations" => serde_json::to_value(app.get_organization(a, id).await?),
        "ticket_fields" => serde_json::to_value(app.get_ticket_field(a, id).await?),
        "ticket_forms" => serde_json::to_value(app.get_ticket_form(a, id).await?),
        "schedules" => serde_json::to_value(app.get_schedule(a, id).await?),
        "webhooks" => serde_json::to_value(app.get_webhook(a, id).await?),
        _ => serde_json::to_value(app.get_user(a, id).await?),
    }
    .map_err(|_| WebError::Internal)?;
    render(st, s, kind, Some(id), &v, vec![]).await
}

pub async fn save(st: &WebState, s: &Session, kind: &str, form: &Form) -> WebResult<Response> {
    let id: Option<Id> = match form.text("id") {
        None => None,
        Some(v) => Some(v.parse().map_err(|_| WebError::NotFound)?),
    };
    let (app, a) = (&st.app, &s.actor);
    let text = |k: &str| form.get(k).unwrap_or("").trim().to_string();
    let opt_id = |k: &str| -> Value {
        form.text(k)
            .and_then(|v| v.parse::<Id>().ok())
            .map_or(Value::Null, |i| json!(i))
    };
    let body = match kind {
        "groups" => json!({"name": text("name"), "description": text("description")}),
        "organizations" => {
            // Only the fields whose value changed: a value the form cannot show exactly (a
            // removed option, a number typed differently) is left as it is.
            let stored = match id {
                Some(i) => app.get_organization(a, i).await?.organization_fields,
                None => Default::default(),
            };
            let mut fields = Map::new();
            for f in app
                .list_custom_fields(a, FieldKind::Organization)
                .await?
                .iter()
                .filter(|f| f.active)
            {
                let name = format!("orgfield_{}", f.key);
                let submitted = match f.field_type.as_str() {
                    "checkbox" => (form.get(&name) == Some("true")).to_string(),
                    "multiselect" => {
                        let mut v: Vec<&str> = form.all(&name);
                        v.retain(|x| !x.is_empty());
                        v.sort_unstable();
                        v.join(" ")
                    }
                    _ => form.get(&name).unwrap_or("").trim().to_string(),
                };
                let before = stored.get(&f.key).map(org_field_text).unwrap_or_default();
                let before = if f.field_type == "checkbox" && before.is_empty() {
                    "false".into()
                } else {
                    before
                };
                if submitted == before {
                    continue;
                }
                let value = match f.field_type.as_str() {
                    "checkbox" => json!(submitted == "true"),
                    _ if submitted.is_empty() => Value::Null,
                    "multiselect" => json!(submitted.split(' ').collect::<Vec<_>>()),
                    "integer" | "decimal" => submitted
                        .parse::<i64>()
                        .map(|n| json!(n))
                        .or_else(|_| submitted.parse::<f64>().map(|n| json!(n)))
                        .unwrap_or_else(|_| json!(submitted)),
                    _ => json!(submitted),
                };
                fields.insert(f.key.clone(), value);
            }
            json!({
                "name": text("name"),
                "domain_names": text("domain_names").split(|c: char| c == ',' || c.is_whitespace()).filter(|d| !d.is_empty()).collect::<Vec<_>>(),
                "shared_tickets": form.get("shared_tickets") == Some("true"),
                "notes": text("notes"),
                "organization_fields": fields,
            })
        }
        "ticket_fields" => {
            let mut b = json!({
                "title": text("title"),
                "type": text("type"),
                "description": text("description"),
                "active": form.get("active") == Some("true"),
                "required": form.get("required") == Some("true"),
                "visible_in_portal": form.get("visible_in_portal") == Some("true"),
                "editable_in_portal": form.get("editable_in_portal") == Some("true"),
                "required_in_portal": form.get("required_in_portal") == Some("true"),
                "title_in_portal": text("title_in_portal"),
                "regexp_for_validation": form.text("regexp_for_validation"),
            });
            if matches!(text("type").as_str(), "tagger" | "multiselect") {
                // An option whose value is unchanged keeps its id, raw name and default flag.
                let existing: Vec<Value> = match id {
                    Some(i) => {
                        serde_json::to_value(app.get_ticket_field(a, i).await?.custom_field_options)
                            .ok()
                            .and_then(|v| v.as_array().cloned())
                            .unwrap_or_default()
                    }
                    None => vec![],
                };
                let opts: Vec<Value> = options_json(form.get("custom_field_options").unwrap_or(""))
                    .into_iter()
                    .map(
                        |o| match existing.iter().find(|e| e["value"] == o["value"]) {
                            Some(e) => {
                                let mut e = e.clone();
                                if e["name"] != o["name"] {
                                    e["raw_name"] = o["name"].clone();
                                }
                                e["name"] = o["name"].clone();
                                e
                            }
                            None => o,
                        },
                    )
                    .collect();
                b["custom_field_options"] = json!(opts);
            }
            if form.text("title_in_portal").is_none() {
                b.as_object_mut().map(|o| o.remove("title_in_portal"));
            }
            b
        }
        "ticket_forms" => json!({
            "name": text("name"),
            "display_name": text("display_name"),
            "active": form.get("active") == Some("true"),
            "default": form.get("default") == Some("true"),
            "end_user_visible": form.get("end_user_visible") == Some("true"),
            "ticket_field_ids": form.all("ticket_field_ids").iter().filter_map(|v| v.parse::<Id>().ok()).collect::<Vec<_>>(),
        }),
        "schedules" => {
            let mut b = json!({"name": text("name"), "time_zone": text("time_zone")});
            for d in 0..7 {
                b[format!("day_{d}")] = json!(text(&format!("day_{d}")));
            }
            b
        }
        "webhooks" => {
            let mut b = json!({
                "name": text("name"),
                "description": text("description"),
                "endpoint": text("endpoint"),
                "http_method": text("http_method"),
                "request_format": text("request_format"),
                "status": text("status"),
                "subscriptions": text("subscriptions").split(|c: char| c == ',' || c.is_whitespace()).filter(|x| !x.is_empty()).collect::<Vec<_>>(),
                "auth_type": text("auth_type"),
            });
            let secret = form.text("auth_secret");
            let user = text("auth_username");
            match (text("auth_type").as_str(), secret) {
                ("none", _) => b["authentication"] = Value::Null,
                ("basic_auth", Some(pw)) => {
                    b["authentication"] = json!({"type": "basic_auth", "add_position": "header", "data": {"username": user, "password": pw}})
                }
                ("bearer_token", Some(tok)) => {
                    b["authentication"] = json!({"type": "bearer_token", "add_position": "header", "data": {"token": tok}})
                }
                ("api_key", Some(val)) => {
                    b["authentication"] = json!({"type": "api_key", "add_position": "header", "data": {"name": user, "value": val}})
                }
                // No new secret: the stored authentication stays, if it is of this type
                // (checked where the stored webhook is read).
                _ => {}
            }
            b
        }
        _ => json!({
            "name": text("name"),
            "email": form.text("email"),
            "role": text("role"),
            "organization_id": opt_id("organization_id"),
            "suspended": form.get("suspended") == Some("true"),
        }),
    };
    let saved = match (kind, id) {
        ("groups", _) => app
            .save_group(a, id, view::decode(body.clone())?)
            .await
            .map(|_| ()),
        ("schedules", _) => {
            let mut input = body.clone();
            input["intervals"] = match intervals_from(form) {
                Ok(iv) => json!(iv),
                Err(WebError::BadRequest(m)) => {
                    let mut shown = body.clone();
                    if let Some(i) = id {
                        shown["holidays"] = json!(app.get_schedule(a, i).await?.holidays);
                    }
                    return render(st, s, kind, id, &shown, vec![m]).await;
                }
                Err(e) => return Err(e),
            };
            app.save_schedule(a, id, view::decode(input)?)
                .await
                .map(|_| ())
        }
        ("webhooks", _) => {
            let stored_type = match id {
                Some(i) => app
                    .get_webhook(a, i)
                    .await?
                    .authentication
                    .and_then(|x| x.get("type").and_then(Value::as_str).map(str::to_string)),
                None => None,
            };
            let ty = text("auth_type");
            if ty != "none"
                && form.text("auth_secret").is_none()
                && stored_type.as_deref() != Some(ty.as_str())
            {
                let msg = format!("Authentication: {ty} needs its password, token or key");
                return render(st, s, kind, id, &body, vec![msg]).await;
            }
            // PATCH semantics: what the form leaves out (a stored secret) stays.
            app.save_webhook(a, id, view::decode(body.clone())?, true)
                .await
                .map(|_| ())
        }
        ("ticket_fields", _) => app
            .save_ticket_field(a, id, view::decode(body.clone())?)
            .await
            .map(|_| ()),
        ("ticket_forms", _) => app
            .save_ticket_form(a, id, view::decode(body.clone())?)
            .await
            .map(|_| ()),
        ("organizations", None) => app
            .create_organization(a, view::decode(body.clone())?)
            .await
            .map(|_| ()),
        ("organizations", Some(i)) => app
            .update_organization(a, i, view::decode(body.clone())?)
            .await
            .map(|_| ()),
        (_, None) => app
            .create_user(a, view::decode(body.clone())?)
            .await
            .map(|_| ()),
        (_, Some(i)) => app
            .update_user(a, i, view::decode(body.clone())?)
            .await
            .map(|_| ()),
    };
    match saved {
        Ok(()) => Ok(see_other(&format!("/admin/{kind}"))),
        Err(opsdesk_app::AppError::Invalid(i)) => {
            render(st, s, kind, id, &body, view::invalid_messages(&i)).await
        }
        Err(e) => Err(e.into()),
    }
}

/// Add a holiday to a schedule (`name`, `start_date`, `end_date`), or with `delete` set,
/// remove the holiday `holiday_id`.
pub async fn holiday(
    st: axum::extract::State<WebState>,
    s: Session,
    axum::extract::Path(id): axum::extract::Path<String>,
    form: Form,
) -> WebResult<Response> {
    let s = s.admin()?;
    s.check(&form)?;
    let id: Id = id.parse().map_err(|_| WebError::NotFound)?;
    let (app, a) = (&st.app, &s.actor);
    let result = match form.text("delete").and_then(|h| h.parse::<Id>().ok()) {
        Some(hid) => app.save_holiday(a, id, Some(hid), None).await.map(|_| ()),
        None => {
            let end = form
                .text("end_date")
                .or(form.text("start_date"))
                .unwrap_or("");
            let input = view::decode(json!({
                "name": form.get("name").unwrap_or("").trim(),
                "start_date": form.get("start_date").unwrap_or("").trim(),
                "end_date": end,
            }))?;
            app.save_holiday(a, id, None, Some(input)).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(see_other(&format!("/admin/schedules/{id}/edit"))),
        Err(opsdesk_app::AppError::Invalid(i)) => {
            let v = serde_json::to_value(app.get_schedule(a, id).await?)
                .map_err(|_| WebError::Internal)?;
            render(
                &st,
                &s,
                "schedules",
                Some(id),
                &v,
                view::invalid_messages(&i),
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}
