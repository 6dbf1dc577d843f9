//! `/api/v2/tickets…`, `/requests…`, `/deleted_tickets`, `/job_statuses`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_app::tickets::{RequestInput, TagMode, TicketFilter};
use opsdesk_app::{Actor, Page};
use opsdesk_core::clock;
use opsdesk_core::model::Id;
use opsdesk_core::ticket::{Audit, Comment, Status, Ticket, TicketInput, Via};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{decode, id, origin, Auth, JsonBody, Query};
use crate::render::Ctx;
use crate::AppState;

pub(crate) fn ticket_json(ctx: &Ctx, t: &Ticket) -> Value {
    let mut v = ctx.rec(t, "tickets");
    if let Value::Object(m) = &mut v {
        m.insert(
            "fields".into(),
            m.get("custom_fields").cloned().unwrap_or(json!([])),
        );
        m.insert(
            "generated_timestamp".into(),
            json!(t.updated_at.as_second()),
        );
        for (k, d) in [
            ("forum_topic_id", Value::Null),
            ("satisfaction_rating", Value::Null),
            ("custom_status_id", Value::Null),
        ] {
            m.insert(k.into(), d);
        }
        m.insert("sharing_agreement_ids".into(), json!([]));
        m.insert("followup_ids".into(), json!([]));
        m.insert("allow_channelback".into(), json!(false));
        m.insert("allow_attachments".into(), json!(true));
        m.insert("from_messaging_channel".into(), json!(false));
    }
    v
}

fn audit_json(a: &Audit) -> Value {
    json!({
        "id": a.id, "ticket_id": a.ticket_id, "created_at": clock::format(a.created_at), "author_id": a.author_id,
        "via": a.via, "metadata": a.metadata, "events": a.events,
    })
}

fn empty_audit(t: &Ticket) -> Value {
    json!({"id": null, "ticket_id": t.id, "created_at": clock::format(t.updated_at), "author_id": null, "via": Via::api(), "metadata": {}, "events": []})
}

fn comment_json(c: &Comment) -> Value {
    json!({
        "id": c.id, "type": c.kind, "author_id": c.author_id, "body": c.body, "html_body": c.html_body,
        "plain_body": c.plain_body, "public": c.public, "attachments": c.attachments, "audit_id": c.audit_id,
        "via": c.via, "metadata": c.metadata, "created_at": clock::format(c.created_at),
    })
}

/// Add `users`, `groups`, `organizations` arrays for the people and teams on these tickets.
pub(crate) async fn sideload(
    st: &AppState,
    ctx: &Ctx,
    inc: &[String],
    ts: &[&Ticket],
    out: &mut Map<String, Value>,
) -> ApiResult<()> {
    if inc.iter().any(|i| i == "users") {
        let mut ids: Vec<Id> = vec![];
        for t in ts {
            ids.push(t.requester_id);
            ids.push(t.submitter_id);
            ids.extend(t.assignee_id);
            ids.extend(&t.collaborator_ids);
        }
        ids.sort_unstable();
        ids.dedup();
        let users = st.app.users_by_ids(&ids).await?;
        out.insert(
            "users".into(),
            Value::Array(users.iter().map(|u| ctx.rec(u, "users")).collect()),
        );
    }
    if inc.iter().any(|i| i == "groups") {
        let mut ids: Vec<Id> = ts.iter().filter_map(|t| t.group_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let gs = st.app.groups_by_ids(&ids).await?;
        out.insert(
            "groups".into(),
            Value::Array(gs.iter().map(|g| ctx.rec(g, "groups")).collect()),
        );
    }
    if inc.iter().any(|i| i == "organizations") {
        let mut ids: Vec<Id> = ts.iter().filter_map(|t| t.organization_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let os = st.app.organizations_by_ids(&ids).await?;
        out.insert(
            "organizations".into(),
            Value::Array(os.iter().map(|o| ctx.rec(o, "organizations")).collect()),
        );
    }
    Ok(())
}

/// `include=slas`: each ticket's SLA policy and targets, inside the ticket as Zendesk does.
async fn add_slas(
    st: &AppState,
    actor: &opsdesk_app::Actor,
    q: &Query,
    ts: &[&Ticket],
    items: &mut [Value],
) -> ApiResult<()> {
    if !q.includes().iter().any(|i| i == "slas") {
        return Ok(());
    }
    let slas = st.app.ticket_slas(actor, ts).await?;
    for (t, v) in ts.iter().zip(items.iter_mut()) {
        if let Some(s) = slas.get(&t.id) {
            v["slas"] = s.clone();
        }
    }
    Ok(())
}

async fn ticket_page(
    st: &AppState,
    actor: &opsdesk_app::Actor,
    ctx: &Ctx,
    q: &Query,
    page: &Page,
    p: opsdesk_app::Paged<Ticket>,
) -> ApiResult<Json<Value>> {
    let mut items: Vec<Value> = p.items.iter().map(|t| ticket_json(ctx, t)).collect();
    let refs: Vec<&Ticket> = p.items.iter().collect();
    add_slas(st, actor, q, &refs, &mut items).await?;
    let mut v = ctx.page("tickets", page, &p, items, |t| t.id);
    if let Value::Object(m) = &mut v {
        let refs: Vec<&Ticket> = p.items.iter().collect();
        sideload(st, ctx, &q.includes(), &refs, m).await?;
    }
    Ok(Json(v))
}

pub async fn list(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let mut f = TicketFilter {
        external_id: q.get("external_id").map(str::to_string),
        ..Default::default()
    };
    if let Some(s) = q.get("status") {
        for x in s.split(',') {
            f.statuses.push(Status::parse(x).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "status '{x}' is not one of new, open, pending, hold, solved, closed"
                ))
            })?);
        }
    }
    let p = st.app.list_tickets(&a, &f, &page).await?;
    ticket_page(&st, &a, &ctx, &q, &page, p).await
}

/// `/users/{id}/tickets/{requested|assigned|ccd}`, `/organizations/{id}/tickets`, `/groups/{id}/tickets`.
pub async fn list_for(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    Path(p): Path<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let rid = id(&p[0].1)?;
    let mut f = TicketFilter::default();
    let path = uri.path();
    if path.contains("/organizations/") {
        f.organization_id = Some(rid);
    } else if path.contains("/groups/") {
        f.group_id = Some(rid);
    } else if path.contains("/assigned") {
        f.assignee_id = Some(rid);
    } else if path.contains("/requested") {
        f.requester_id = Some(rid);
    } else {
        // ccd: tickets the user is copied on; not indexed yet, answered from the requester index.
        return Err(ApiError::BadRequest(
            "tickets/ccd is not supported yet".into(),
        ));
    }
    let p = st.app.list_tickets(&a, &f, &page).await?;
    ticket_page(&st, &a, &ctx, &q, &page, p).await
}

pub async fn show(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let t = st.app.get_ticket(&a, id(&tid)?).await?;
    let mut m = Map::new();
    let mut item = [ticket_json(&ctx, &t)];
    add_slas(&st, &a, &q, &[&t], &mut item).await?;
    let [item] = item;
    m.insert("ticket".into(), item);
    sideload(&st, &ctx, &q.includes(), &[&t], &mut m).await?;
    Ok(Json(Value::Object(m)))
}

pub async fn show_many(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let ids = q.ids("ids")?;
    let ts = st.app.tickets_by_ids(&a, &ids).await?;
    let mut m = Map::new();
    let v = ctx.all("tickets", ts.iter().map(|t| ticket_json(&ctx, t)).collect());
    if let Value::Object(vm) = v {
        m.extend(vm);
    }
    let refs: Vec<&Ticket> = ts.iter().collect();
    sideload(&st, &ctx, &q.includes(), &refs, &mut m).await?;
    Ok(Json(Value::Object(m)))
}

pub async fn create(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: TicketInput = body.take("ticket")?;
    let (t, audit) = st
        .app
        .create_ticket(&a, input, Via::api(), &origin(&h))
        .await?;
    let loc = ctx.url(&format!("tickets/{}", t.id));
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::LOCATION, loc)],
        Json(json!({"ticket": ticket_json(&ctx, &t), "audit": audit_json(&audit)})),
    )
        .into_response())
}

pub async fn update(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(tid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: TicketInput = body.take("ticket")?;
    let (t, audit) = st
        .app
        .update_ticket(&a, id(&tid)?, input, &origin(&h))
        .await?;
    let audit = audit
        .as_ref()
        .map(audit_json)
        .unwrap_or_else(|| empty_audit(&t));
    Ok(Json(
        json!({"ticket": ticket_json(&ctx, &t), "audit": audit}),
    ))
}

pub async fn destroy(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(tid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_ticket(&a, id(&tid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn job_json(ctx: &Ctx, j: &opsdesk_core::model::JobStatus) -> Value {
    json!({"job_status": ctx.rec(j, "job_statuses")})
}

pub async fn create_many(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let inputs: Vec<TicketInput> = body
        .opt("tickets")?
        .ok_or_else(|| ApiError::BadRequest("The request body needs a \"tickets\" array".into()))?;
    let job = st.app.create_many(&a, inputs, &origin(&h)).await?;
    Ok(Json(job_json(&ctx, &job)))
}

pub async fn update_many(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let ids = q.ids("ids")?;
    let changes: Vec<(Id, TicketInput)> = if !ids.is_empty() {
        let input: TicketInput = body.take("ticket")?;
        ids.into_iter().map(|i| (i, input.clone())).collect()
    } else {
        let list: Vec<Value> = body.opt("tickets")?.ok_or_else(|| {
            ApiError::BadRequest(
                "give ids=… with a \"ticket\" object, or a \"tickets\" array with ids".into(),
            )
        })?;
        let mut out = vec![];
        for (i, v) in list.into_iter().enumerate() {
            let tid =
                v.get("id")
                    .and_then(Value::as_i64)
                    .ok_or_else(|| ApiError::Unprocessable {
                        field: format!("tickets[{i}].id"),
                        message: format!("tickets[{i}].id: is required"),
                    })?;
            out.push((tid, decode::<TicketInput>(v, &format!("tickets[{i}]"))?));
        }
        out
    };
    let job = st.app.update_many(&a, changes, &origin(&h)).await?;
    Ok(Json(job_json(&ctx, &job)))
}

pub async fn destroy_many(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let job = st.app.destroy_many(&a, q.ids("ids")?).await?;
    Ok(Json(job_json(&ctx, &job)))
}

pub async fn job_status(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(jid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let j = st.app.job_status(&a, jid.trim_end_matches(".json")).await?;
    Ok(Json(job_json(&ctx, &j)))
}

pub async fn comments(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let p = st.app.ticket_comments(&a, id(&tid)?, &page).await?;
    let items = p.items.iter().map(comment_json).collect();
    Ok(Json(ctx.page("comments", &page, &p, items, |c| c.id)))
}

pub async fn audits(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let p = st.app.ticket_audits(&a, id(&tid)?, &page).await?;
    let items = p.items.iter().map(audit_json).collect();
    Ok(Json(ctx.page("audits", &page, &p, items, |c| c.id)))
}

pub async fn audit(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path((tid, aid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let au = st.app.ticket_audit(&a, id(&tid)?, id(&aid)?).await?;
    Ok(Json(json!({"audit": audit_json(&au)})))
}

pub async fn incidents(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let p = st.app.incidents(&a, id(&tid)?, &page).await?;
    ticket_page(&st, &a, &ctx, &q, &page, p).await
}

pub async fn tags(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"tags": st.app.ticket_tags(&a, id(&tid)?).await?}),
    ))
}

async fn change_tags(
    st: AppState,
    a: Actor,
    h: HeaderMap,
    tid: String,
    body: JsonBody,
    mode: TagMode,
) -> ApiResult<Json<Value>> {
    let tags: Vec<String> = body
        .opt("tags")?
        .ok_or_else(|| ApiError::BadRequest("The request body needs a \"tags\" array".into()))?;
    let out = st
        .app
        .change_tags(&a, id(&tid)?, tags, mode, &origin(&h))
        .await?;
    Ok(Json(json!({"tags": out})))
}

pub async fn set_tags(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    Path(tid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    change_tags(st, a, h, tid, body, TagMode::Set).await
}
pub async fn add_tags(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    Path(tid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    change_tags(st, a, h, tid, body, TagMode::Add).await
}
pub async fn remove_tags(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    Path(tid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    change_tags(st, a, h, tid, body, TagMode::Remove).await
}

pub async fn deleted(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.int("page")?.unwrap_or(1);
    let per = q.int("per_page")?.unwrap_or(100).clamp(1, 100);
    let mut rows = st.app.deleted_tickets(&a, page, per).await?;
    let has_more = rows.len() as i64 > per;
    rows.truncate(per as usize);
    let items: Vec<Value> = rows
        .iter()
        .map(|(t, at, by)| json!({"id": t.id, "subject": t.subject, "description": t.description, "actor": {"id": by}, "deleted_at": clock::format(clock::from_unix(*at)), "previous_state": t.status}))
        .collect();
    let paged = opsdesk_app::Paged {
        items: rows.iter().map(|r| r.0.id).collect::<Vec<_>>(),
        count: None,
        has_more,
        has_prev: page > 1,
    };
    Ok(Json(ctx.page(
        "deleted_tickets",
        &opsdesk_app::Page::Offset {
            page,
            per_page: per,
            order: opsdesk_app::Order::Asc,
        },
        &paged,
        items,
        |i| *i,
    )))
}

pub async fn restore(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(tid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.restore_ticket(&a, id(&tid)?).await?;
    Ok(StatusCode::OK)
}

pub async fn purge(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(tid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.purge_ticket(&a, id(&tid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- requests --------------------------------------------------------------------------

pub(crate) fn request_json(ctx: &Ctx, a: &Actor, t: &Ticket, visible_fields: &[Id]) -> Value {
    // End-users see only the fields the portal shows them.
    let custom: Vec<&opsdesk_core::ticket::CustomFieldValue> = t
        .custom_fields
        .iter()
        .filter(|c| a.is_staff() || visible_fields.contains(&c.id))
        .collect();
    json!({
        "id": t.id, "url": ctx.url(&format!("requests/{}", t.id)), "subject": t.subject, "description": t.description,
        "status": t.status, "priority": t.priority, "type": t.ticket_type, "requester_id": t.requester_id,
        "organization_id": t.organization_id, "assignee_id": t.assignee_id, "group_id": t.group_id,
        "collaborator_ids": t.collaborator_ids, "email_cc_ids": t.email_cc_ids, "via": t.via, "is_public": t.is_public,
        "due_at": t.due_at.map(clock::format), "can_be_solved_by_me": t.assignee_id.is_some() && t.requester_id == a.id() && t.ticket_type != Some(opsdesk_core::ticket::TicketType::Problem) && !matches!(t.status, Status::Solved | Status::Closed),
        "solved": matches!(t.status, Status::Solved | Status::Closed), "ticket_form_id": t.ticket_form_id,
        "recipient": t.recipient, "custom_fields": custom, "fields": custom,
        "created_at": clock::format(t.created_at), "updated_at": clock::format(t.updated_at),
        "followup_source_id": null, "custom_status_id": null,
    })
}

pub async fn requests(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let visible = st.app.portal_field_ids().await?;
    let page = q.page()?;
    let path = uri.path();
    let mut statuses: Vec<Status> = vec![];
    if let Some(s) = q.get("status") {
        for x in s.split(',') {
            statuses.push(Status::parse(x).ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "status '{x}' is not one of new, open, pending, hold, solved, closed"
                ))
            })?);
        }
    }
    if path.contains("/requests/solved") {
        statuses = vec![Status::Solved, Status::Closed];
    } else if path.contains("/requests/open") {
        statuses = vec![Status::New, Status::Open, Status::Pending, Status::Hold];
    }
    let org = q.int("organization_id")?;
    let p = st.app.list_requests(&a, &statuses, org, &page).await?;
    let items = p
        .items
        .iter()
        .map(|t| request_json(&ctx, &a, t, &visible))
        .collect();
    Ok(Json(ctx.page("requests", &page, &p, items, |t| t.id)))
}

pub async fn request(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(rid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let visible = st.app.portal_field_ids().await?;
    let t = st.app.get_request(&a, id(&rid)?).await?;
    Ok(Json(
        json!({"request": request_json(&ctx, &a, &t, &visible)}),
    ))
}

pub async fn create_request(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let visible = st.app.portal_field_ids().await?;
    let input: RequestInput = body.take("request")?;
    let (t, _) = st
        .app
        .create_request(&a, input, Via::channel("api"), &origin(&h))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"request": request_json(&ctx, &a, &t, &visible)})),
    )
        .into_response())
}

pub async fn update_request(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(rid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let visible = st.app.portal_field_ids().await?;
    let input: RequestInput = body.take("request")?;
    let (t, _) = st
        .app
        .update_request(&a, id(&rid)?, input, Via::api(), &origin(&h))
        .await?;
    Ok(Json(
        json!({"request": request_json(&ctx, &a, &t, &visible)}),
    ))
}

pub async fn request_comments(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
    Path(rid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let rid = id(&rid)?;
    let p = st.app.request_comments(&a, rid, &page).await?;
    let items = p
        .items
        .iter()
        .map(|c| {
            let mut v = comment_json(c);
            v["request_id"] = json!(rid);
            v["url"] = json!(ctx.url(&format!("requests/{rid}/comments/{}", c.id)));
            v
        })
        .collect();
    let mut out = ctx.page("comments", &page, &p, items, |c| c.id);
    if q.includes().iter().any(|i| i == "users") {
        let mut ids: Vec<Id> = p.items.iter().map(|c| c.author_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let users = st.app.users_by_ids(&ids).await?;
        out["users"] = Value::Array(users.iter().map(|u| json!({"id": u.id, "name": u.name, "agent": u.role.is_staff(), "organization_id": u.organization_id, "photo": null})).collect());
    }
    Ok(Json(out))
}
