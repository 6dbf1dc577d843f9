//! What pages share: the page frame, names for ids, times, labels, sanitised bodies.

use std::collections::HashMap;

use opsdesk_app::{Actor, App, Page};
use opsdesk_core::model::{Id, Role};
use opsdesk_core::{Invalid, Timestamp};

use crate::WebResult;

/// The frame around every signed-in page: who is signed in, the CSRF token for its forms,
/// which section is current.
pub struct Chrome {
    pub user_name: String,
    pub csrf: String,
    pub is_staff: bool,
    pub is_admin: bool,
    pub section: &'static str,
    pub title: String,
}

impl Chrome {
    pub fn new(s: &crate::Session, section: &'static str, title: impl Into<String>) -> Chrome {
        Chrome {
            user_name: s.actor.user.name.clone(),
            csrf: s.csrf.clone(),
            is_staff: s.actor.is_staff(),
            is_admin: s.actor.is_admin(),
            section,
            title: title.into(),
        }
    }
}

/// `2026-11-23 14:05` (UTC).
pub fn time(t: Timestamp) -> String {
    let s = opsdesk_core::clock::format(t);
    // 2026-11-23T14:05:00Z
    format!(
        "{} {} UTC",
        &s[..10.min(s.len())],
        s.get(11..16).unwrap_or("")
    )
}

pub fn time_secs(secs: i64) -> String {
    time(opsdesk_core::clock::from_unix(secs))
}

/// Every message of a validation failure, as the API's `details` describe them.
pub fn invalid_messages(i: &Invalid) -> Vec<String> {
    i.details
        .values()
        .flatten()
        .map(|e| e.description.clone())
        .collect()
}

/// A query-string value: everything but letters, digits and `-_.~` is escaped.
pub fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// Customer-written HTML made safe to show: the stored body is sanitised on write; this is a
/// second pass with the same allow-list, so a row written before a sanitiser fix is safe too.
pub fn safe_html(html: &str) -> String {
    opsdesk_app::html::sanitize(html)
}

/// Names of users, groups and organisations by id, looked up once per page.
#[derive(Default)]
pub struct Names {
    pub users: HashMap<Id, opsdesk_core::model::User>,
    pub groups: HashMap<Id, String>,
    pub orgs: HashMap<Id, opsdesk_core::model::Organization>,
}

impl Names {
    pub async fn load(
        app: &App,
        users: impl IntoIterator<Item = Id>,
        groups: impl IntoIterator<Item = Id>,
        orgs: impl IntoIterator<Item = Id>,
    ) -> WebResult<Names> {
        let mut u: Vec<Id> = users.into_iter().collect();
        u.sort_unstable();
        u.dedup();
        let mut g: Vec<Id> = groups.into_iter().collect();
        g.sort_unstable();
        g.dedup();
        let mut o: Vec<Id> = orgs.into_iter().collect();
        o.sort_unstable();
        o.dedup();
        Ok(Names {
            users: app
                .users_by_ids(&u)
                .await?
                .into_iter()
                .map(|x| (x.id, x))
                .collect(),
            groups: app
                .groups_by_ids(&g)
                .await?
                .into_iter()
                .map(|x| (x.id, x.name))
                .collect(),
            orgs: app
                .organizations_by_ids(&o)
                .await?
                .into_iter()
                .map(|x| (x.id, x))
                .collect(),
        })
    }

    pub fn user(&self, id: Option<Id>) -> String {
        match id {
            None => "—".into(),
            Some(id) => self
                .users
                .get(&id)
                .map(|u| u.name.clone())
                .unwrap_or_else(|| format!("User {id}")),
        }
    }
    pub fn group(&self, id: Option<Id>) -> String {
        match id {
            None => "—".into(),
            Some(id) => self
                .groups
                .get(&id)
                .cloned()
                .unwrap_or_else(|| format!("Group {id}")),
        }
    }
    pub fn org(&self, id: Option<Id>) -> String {
        match id {
            None => "—".into(),
            Some(id) => self
                .orgs
                .get(&id)
                .map(|o| o.name.clone())
                .unwrap_or_else(|| format!("Organization {id}")),
        }
    }
}

/// An option of a `<select>`.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: impl Into<String>, label: impl Into<String>, selected: bool) -> Choice {
        Choice {
            value: value.into(),
            label: label.into(),
            selected,
        }
    }
}

/// Every staff member, for assignee choices (bounded).
pub async fn agents(app: &App, actor: &Actor) -> WebResult<Vec<opsdesk_core::model::User>> {
    let f = opsdesk_app::people::UserFilter {
        roles: vec![Role::Agent, Role::Admin],
        ..Default::default()
    };
    let mut users = app
        .list_users(actor, &f, &Page::All { limit: 5000 })
        .await?
        .items;
    users.retain(|u| u.active && !u.suspended);
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(users)
}

pub fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A `<select>`'s options: `none` (the empty choice) first, then `it`. A current value that
/// is not among them (a suspended assignee, a removed option) is kept as a choice of its own,
/// selected, so saving the form does not clear it.
pub fn choices<'a>(
    none: Option<&str>,
    it: impl Iterator<Item = (String, String)> + 'a,
    current: &str,
) -> Vec<Choice> {
    let mut out: Vec<Choice> = none
        .map(|n| Choice::new("", n, current.is_empty()))
        .into_iter()
        .chain(it.map(|(v, l)| {
            let sel = v == current;
            Choice::new(v, l, sel)
        }))
        .collect();
    if !current.is_empty() && !out.iter().any(|c| c.selected) {
        out.push(Choice::new(
            current,
            format!("{current} (current value)"),
            true,
        ));
    }
    out
}

/// A custom field on a form.
pub struct FieldVm {
    pub id: Id,
    pub title: String,
    /// text, number, textarea, select, multiselect, checkbox
    pub kind: &'static str,
    /// The value as the form shows it (a multiselect's: its values sorted, space separated).
    pub value: String,
    pub checked: bool,
    pub options: Vec<Choice>,
}

pub fn field_vm(f: &opsdesk_core::fields::TicketField, v: Option<&serde_json::Value>) -> FieldVm {
    use serde_json::Value;
    let v = v.cloned().unwrap_or(Value::Null);
    let kind = match f.field_type.as_str() {
        "tagger" => "select",
        "multiselect" => "multiselect",
        "checkbox" => "checkbox",
        "textarea" => "textarea",
        "integer" | "decimal" => "number",
        _ => "text",
    };
    let selected: Vec<String> = match &v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    };
    let value = match (&v, kind) {
        (_, "multiselect") => {
            let mut s = selected.clone();
            s.sort();
            s.join(" ")
        }
        (Value::String(s), _) => s.clone(),
        (Value::Null, _) => String::new(),
        (x, _) => x.to_string(),
    };
    let options = if kind == "multiselect" {
        let mut o: Vec<Choice> = f
            .custom_field_options
            .iter()
            .map(|o| Choice::new(o.value.clone(), o.name.clone(), selected.contains(&o.value)))
            .collect();
        for s in &selected {
            if !o.iter().any(|c| &c.value == s) {
                o.push(Choice::new(s.clone(), format!("{s} (current value)"), true));
            }
        }
        o
    } else {
        choices(
            Some("—"),
            f.custom_field_options
                .iter()
                .map(|o| (o.value.clone(), o.name.clone())),
            &value,
        )
    };
    FieldVm {
        id: f.id,
        title: f.title.clone(),
        kind,
        checked: v.as_bool().unwrap_or(false) || value == "true",
        options,
        value,
    }
}

/// The custom fields of a submitted form (`field_ID`, with `fieldtype_ID` giving the input's
/// kind: checkboxes send nothing when unticked, a multiselect sends each value) as the API's
/// `custom_fields`. With
/// `only_changed`, a field whose `orig_field_ID` (the value the page showed) equals what was
/// submitted is left out.
pub fn custom_fields_from_form(
    form: &crate::session::Form,
    only_changed: bool,
) -> Vec<serde_json::Value> {
    use serde_json::{json, Value};
    let mut ids: Vec<Id> = form
        .0
        .iter()
        .filter_map(|(k, _)| {
            k.strip_prefix("field_")
                .or_else(|| k.strip_prefix("fieldtype_"))
                .and_then(|f| f.parse::<Id>().ok())
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut cf = vec![];
    for fid in ids {
        let kind = form.get(&format!("fieldtype_{fid}")).unwrap_or("text");
        let submitted = match kind {
            "checkbox" => form
                .get(&format!("field_{fid}"))
                .unwrap_or("false")
                .to_string(),
            "multiselect" => {
                let mut v: Vec<&str> = form.all(&format!("field_{fid}"));
                v.retain(|x| !x.is_empty());
                v.sort_unstable();
                v.join(" ")
            }
            // Browsers send textarea lines with CRLF; the stored text has LF.
            _ => match form.get(&format!("field_{fid}")) {
                Some(v) => v.trim().replace("\r\n", "\n"),
                None => continue,
            },
        };
        if only_changed
            && form
                .get(&format!("orig_field_{fid}"))
                .is_some_and(|o| o.trim().replace("\r\n", "\n") == submitted)
        {
            continue;
        }
        let value = match kind {
            "checkbox" => json!(submitted == "true"),
            _ if submitted.is_empty() => Value::Null,
            "multiselect" => json!(submitted.split(' ').collect::<Vec<_>>()),
            // Numbers as numbers, as the API stores them (an unparsable one goes as text,
            // and the API says why it is refused).
            "number" => submitted
                .parse::<i64>()
                .map(|n| json!(n))
                .or_else(|_| submitted.parse::<f64>().map(|n| json!(n)))
                .unwrap_or_else(|_| json!(submitted)),
            _ => json!(submitted),
        };
        cf.push(json!({"id": fid, "value": value}));
    }
    cf
}

/// A JSON value as one line of text: strings as they are, lists joined with spaces, null
/// empty.
pub fn value_text(v: &serde_json::Value) -> String {
    use serde_json::Value;
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

/// A query parameter (the last one of that name), trimmed; None when absent or empty.
pub fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter()
        .rev()
        .find(|(key, _)| key == k)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A record id from a path: a positive number, else 404.
pub fn id_of(s: &str) -> crate::WebResult<Id> {
    s.parse::<Id>()
        .ok()
        .filter(|i| *i > 0)
        .ok_or(crate::WebError::NotFound)
}

/// A use case's input built from a form (the JSON the API would take).
pub fn decode<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> crate::WebResult<T> {
    serde_json::from_value(v)
        .map_err(|e| crate::WebError::BadRequest(format!("The form is not valid: {e}")))
}

/// What a form is told when its save is refused for its content (the page comes back with
/// the message and what was typed); None for other failures, which get the error page.
pub fn refused(e: &opsdesk_app::AppError) -> Option<String> {
    match e {
        opsdesk_app::AppError::Invalid(i) => Some(invalid_messages(i).join(" ")),
        opsdesk_app::AppError::BadRequest(m) | opsdesk_app::AppError::Conflict(m) => {
            Some(m.clone())
        }
        _ => None,
    }
}
