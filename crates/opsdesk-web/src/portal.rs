//! The customer portal: my requests and my shared organisations' requests, a request's public
//! conversation with a reply form, and new requests with the instance's forms and the fields
//! end-users may fill. Everything goes through the `/requests` use cases, so a customer sees
//! exactly what the Requests API would show them: never an internal note.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use opsdesk_app::tickets::RequestInput;
use opsdesk_app::{Order, Page};
use opsdesk_core::model::Id;
use opsdesk_core::ticket::{Status, Ticket, Via};
use serde_json::{json, Value};

use crate::session::{Form, Session};
use crate::view::{self, Chrome, FieldVm, Names};
use crate::{page, see_other, WebResult, WebState};

pub struct RequestRow {
    pub id: Id,
    pub subject: String,
    pub status: String,
    pub requester: String,
    pub updated: String,
}

#[derive(Template)]
#[template(path = "portal_home.html")]
struct PortalHome {
    chrome: Chrome,
    mine: Vec<RequestRow>,
    organization: Vec<RequestRow>,
}

/// End-users see their requests as Zendesk shows them: new and open are both "Open",
/// pending is "Awaiting your reply", hold is "Open".
fn customer_status(s: Status) -> &'static str {
    match s {
        Status::New | Status::Open | Status::Hold => "open",
        Status::Pending => "awaiting your reply",
        Status::Solved => "solved",
        Status::Closed => "closed",
    }
}

fn rows(ts: &[&Ticket], names: &Names) -> Vec<RequestRow> {
    ts.iter()
        .map(|t| RequestRow {
            id: t.id,
            subject: t.subject.clone().unwrap_or_default(),
            status: customer_status(t.status).into(),
            requester: names.user(Some(t.requester_id)),
            updated: view::time(t.updated_at),
        })
        .collect()
}

pub async fn home(st: State<WebState>, s: Session) -> WebResult<Response> {
    let p = st
        .app
        .list_requests(
            &s.actor,
            &[],
            None,
            &Page::Offset {
                page: 1,
                per_page: 100,
                order: Order::Desc,
            },
        )
        .await?;
    let requesters: Vec<Id> = p.items.iter().map(|t| t.requester_id).collect();
    let names = Names::load(&st.app, requesters, None, None).await?;
    let me = s.actor.id();
    let mine: Vec<&Ticket> = p.items.iter().filter(|t| t.requester_id == me).collect();
    let org: Vec<&Ticket> = p.items.iter().filter(|t| t.requester_id != me).collect();
    page(&PortalHome {
        chrome: Chrome::new(&s, "portal", "My requests"),
        mine: rows(&mine, &names),
        organization: rows(&org, &names),
    })
}

pub struct PublicComment {
    pub author: String,
    pub staff: bool,
    pub time: String,
    pub html: String,
}

#[derive(Template)]
#[template(path = "portal_request.html")]
struct PortalRequest {
    chrome: Chrome,
    id: Id,
    subject: String,
    status: String,
    closed: bool,
    solved: bool,
    requester: String,
    created: String,
    comments: Vec<PublicComment>,
    error: Option<String>,
    draft: String,
}

async fn request_page(
    st: &WebState,
    s: &Session,
    id: Id,
    error: Option<String>,
    draft: String,
) -> WebResult<PortalRequest> {
    let t = st.app.get_request(&s.actor, id).await?;
    let comments = st
        .app
        .request_comments(&s.actor, id, &Page::All { limit: 2000 })
        .await?
        .items;
    let authors: Vec<Id> = comments
        .iter()
        .map(|c| c.author_id)
        .chain([t.requester_id])
        .collect();
    let names = Names::load(&st.app, authors, None, None).await?;
    Ok(PortalRequest {
        chrome: Chrome::new(s, "portal", t.subject.clone().unwrap_or_default()),
        id: t.id,
        subject: t.subject.clone().unwrap_or_default(),
        status: customer_status(t.status).into(),
        closed: t.status == Status::Closed,
        solved: t.status == Status::Solved,
        requester: names.user(Some(t.requester_id)),
        created: view::time(t.created_at),
        comments: comments
            .iter()
            .filter(|c| c.public)
            .map(|c| PublicComment {
                author: names.user(Some(c.author_id)),
                staff: names
                    .users
                    .get(&c.author_id)
                    .is_some_and(|u| u.role.is_staff()),
                time: view::time(c.created_at),
                html: view::safe_html(&c.html_body),
            })
            .collect(),
        error,
        draft,
    })
}

pub async fn request(
    st: State<WebState>,
    s: Session,
    Path(id): Path<String>,
) -> WebResult<Response> {
    page(&request_page(&st, &s, view::id_of(&id)?, None, String::new()).await?)
}

/// A customer's reply (and, if ticked, marking the request solved).
pub async fn reply(
    st: State<WebState>,
    s: Session,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Form,
) -> WebResult<Response> {
    s.check(&form)?;
    let id = view::id_of(&id)?;
    let mut v = json!({});
    if let Some(body) = form.text("body") {
        v["comment"] = json!({"body": body});
    }
    if form.get("solved") == Some("true") {
        v["solved"] = json!(true);
    }
    let input: RequestInput = view::decode(v)?;
    match st
        .app
        .update_request(
            &s.actor,
            id,
            input,
            Via::channel("web"),
            &crate::origin(&headers),
        )
        .await
    {
        Ok(_) => Ok(see_other(&format!("/portal/tickets/{id}"))),
        Err(e) => match view::refused(&e) {
            Some(msg) => {
                let p = request_page(
                    &st,
                    &s,
                    id,
                    Some(msg),
                    form.get("body").unwrap_or("").into(),
                )
                .await?;
                let mut r = page(&p)?;
                *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                Ok(r)
            }
            None => Err(e.into()),
        },
    }
}

pub struct FormChoice {
    pub id: Id,
    pub name: String,
    pub selected: bool,
}

#[derive(Template)]
#[template(path = "portal_new.html")]
struct PortalNew {
    chrome: Chrome,
    forms: Vec<FormChoice>,
    form_id: Option<Id>,
    fields: Vec<FieldVm>,
    error: Option<String>,
    subject: String,
    body: String,
}

async fn new_page(
    st: &WebState,
    s: &Session,
    form_id: Option<Id>,
    form: Option<&Form>,
    error: Option<String>,
) -> WebResult<PortalNew> {
    let forms = st
        .app
        .list_ticket_forms(&s.actor, &Page::All { limit: 1000 })
        .await?
        .items;
    let chosen = form_id
        .and_then(|id| forms.iter().find(|f| f.id == id))
        .or_else(|| forms.iter().find(|f| f.default))
        .or_else(|| forms.first());
    let all = st
        .app
        .list_ticket_fields(&s.actor, &Page::All { limit: 10_000 })
        .await?
        .items;
    let fields = all
        .iter()
        .filter(|f| f.active && f.visible_in_portal && f.editable_in_portal && !f.is_system())
        .filter(|f| chosen.is_none_or(|c| c.ticket_field_ids.contains(&f.id)))
        .map(|f| {
            let submitted = form
                .and_then(|x| x.get(&format!("field_{}", f.id)))
                .map(|v| json!(v));
            let mut vm = view::field_vm(f, submitted.as_ref());
            vm.title = if f.title_in_portal.is_empty() {
                f.title.clone()
            } else {
                f.title_in_portal.clone()
            };
            vm
        })
        .collect();
    let text = |k: &str| form.and_then(|x| x.get(k)).unwrap_or("").to_string();
    Ok(PortalNew {
        chrome: Chrome::new(s, "portal", "Submit a request"),
        forms: forms
            .iter()
            .map(|f| FormChoice {
                id: f.id,
                name: if f.display_name.is_empty() {
                    f.name.clone()
                } else {
                    f.display_name.clone()
                },
                selected: chosen.is_some_and(|c| c.id == f.id),
            })
            .collect(),
        form_id: chosen.map(|c| c.id),
        fields,
        error,
        subject: text("subject"),
        body: text("body"),
    })
}

pub async fn new_request(
    st: State<WebState>,
    s: Session,
    q: Query<Vec<(String, String)>>,
) -> WebResult<Response> {
    let form_id =
        q.0.iter()
            .find(|(k, _)| k == "ticket_form_id")
            .and_then(|(_, v)| v.parse().ok());
    page(&new_page(&st, &s, form_id, None, None).await?)
}

pub async fn create_request(
    st: State<WebState>,
    s: Session,
    headers: HeaderMap,
    form: Form,
) -> WebResult<Response> {
    s.check(&form)?;
    let form_id: Option<Id> = form.text("ticket_form_id").and_then(|v| v.parse().ok());
    let mut v = json!({
        "subject": form.get("subject").unwrap_or(""),
        "comment": {"body": form.get("body").unwrap_or("")},
    });
    if let Some(fid) = form_id {
        v["ticket_form_id"] = json!(fid);
    }
    let cf = view::custom_fields_from_form(&form, false);
    if !cf.is_empty() {
        v["custom_fields"] = Value::Array(cf);
    }
    let input: RequestInput = view::decode(v)?;
    match st
        .app
        .create_request(
            &s.actor,
            input,
            Via::channel("web"),
            &crate::origin(&headers),
        )
        .await
    {
        Ok((t, _)) => Ok(see_other(&format!("/portal/tickets/{}", t.id))),
        Err(e) => match view::refused(&e) {
            Some(msg) => {
                let p = new_page(&st, &s, form_id, Some(&form), Some(msg)).await?;
                let mut r = page(&p)?;
                *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
                Ok(r)
            }
            None => Err(e.into()),
        },
    }
}
