//! `/api/v2/search` — a first, deliberately small subset of Zendesk's query language
//! (`type:`, `email:`, `name:`, `status:`, `requester:`, `assignee:`, `organization:` and free
//! text on users and organisations). The full language is issue #5; anything outside this
//! subset gets a 400 that says so, never a wrong answer.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use opsdesk_app::tickets::TicketFilter;
use opsdesk_app::{Actor, Order, Page};
use opsdesk_core::ticket::Status;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Query};
use crate::render::Ctx;
use crate::AppState;

fn tokens(q: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    for c in q.chars() {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

async fn user_id_for(st: &AppState, a: &Actor, v: &str) -> ApiResult<Option<i64>> {
    if v == "me" {
        return Ok(Some(a.id()));
    }
    if v == "none" {
        return Ok(None);
    }
    if let Ok(i) = v.parse() {
        return Ok(Some(i));
    }
    let us = st.app.search_users(a, Some(v), None, None).await?;
    Ok(Some(us.first().map(|u| u.id).unwrap_or(-1)))
}

async fn run(
    st: &AppState,
    a: &Actor,
    ctx: &Ctx,
    q: &str,
    filter_type: Option<&str>,
    page: (i64, i64),
) -> ApiResult<(Vec<Value>, i64)> {
    a.require_staff()?;
    let mut ty = filter_type.map(str::to_string);
    let mut free = vec![];
    let mut f = TicketFilter::default();
    let mut email = None;
    let mut ticket_terms = false;
    for t in tokens(q) {
        match t.split_once(':') {
            Some(("type", v)) => ty = Some(v.to_lowercase()),
            Some(("email", v)) => email = Some(v.to_string()),
            Some(("name", v)) => free.push(v.to_string()),
            Some(("status", v)) => {
                f.statuses.push(Status::parse(v).ok_or_else(|| {
                    ApiError::BadRequest(format!("status '{v}' is not a ticket status"))
                })?);
                ticket_terms = true;
            }
            Some(("requester", v)) => {
                f.requester_id = Some(user_id_for(st, a, v).await?.unwrap_or(-1));
                ticket_terms = true;
            }
            Some(("assignee", v)) => {
                match user_id_for(st, a, v).await? {
                    Some(id) => f.assignee_id = Some(id),
                    None => f.unassigned = true,
                }
                ticket_terms = true;
            }
            Some(("organization", v)) => {
                f.organization_id = Some(v.parse().map_err(|_| {
                    ApiError::BadRequest("organization: takes an organization id here".into())
                })?);
                ticket_terms = true;
            }
            Some((k, _)) => {
                return Err(ApiError::BadRequest(format!(
                    "search keyword '{k}:' is not supported yet"
                )))
            }
            None if t.contains(['<', '>', '=']) || t.starts_with('-') || t.contains('*') => {
                return Err(ApiError::BadRequest(format!(
                    "'{t}': comparisons, exclusions and wildcards are not supported yet"
                )))
            }
            None => free.push(t),
        }
    }
    let mut out = vec![];
    match ty.as_deref() {
        Some("ticket") => {
            if !free.is_empty() || email.is_some() {
                return Err(ApiError::BadRequest(
                    "free-text ticket search is not supported yet".into(),
                ));
            }
            // Newest first, one offset page; the count is of every match.
            let p = st
                .app
                .list_tickets(
                    a,
                    &f,
                    &Page::Offset {
                        page: page.0,
                        per_page: page.1,
                        order: Order::Desc,
                    },
                )
                .await?;
            let total = p.count.unwrap_or(p.items.len() as i64);
            for t in p.items {
                let mut v = ctx.rec(&t, "tickets");
                v["result_type"] = json!("ticket");
                out.push(v);
            }
            return Ok((out, total));
        }
        Some("user") | Some("organization") | None => {
            if ticket_terms {
                return Err(ApiError::BadRequest(
                    "ticket keywords need type:ticket".into(),
                ));
            }
            if ty.is_none() && !free.is_empty() {
                // Zendesk would search tickets too; opsdesk cannot yet, so it says so.
                return Err(ApiError::BadRequest("free text without type: would include tickets, which is not supported yet; add type:user or type:organization".into()));
            }
            if ty.as_deref() != Some("organization") {
                let users = match &email {
                    Some(e) => st.app.search_users(a, None, Some(e), None).await?,
                    None if !free.is_empty() => {
                        st.app
                            .search_users(a, Some(&free.join(" ")), None, None)
                            .await?
                    }
                    None => vec![],
                };
                for u in users {
                    let mut v = ctx.rec(&u, "users");
                    v["result_type"] = json!("user");
                    out.push(v);
                }
            }
            if ty.as_deref() != Some("user") && !free.is_empty() {
                for o in st
                    .app
                    .search_organizations(a, Some(&free.join(" ")), None)
                    .await?
                {
                    let mut v = ctx.rec(&o, "organizations");
                    v["result_type"] = json!("organization");
                    out.push(v);
                }
            }
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "type:{other} is not searchable"
            )))
        }
    }
    let n = out.len() as i64;
    Ok((out, n))
}

pub async fn search(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let query = q
        .get("query")
        .ok_or_else(|| ApiError::BadRequest("query is required".into()))?;
    let page = q.int("page")?.unwrap_or(1).max(1);
    let per = q.int("per_page")?.unwrap_or(100).clamp(1, 100);
    let (results, n) = run(&st, &a, &ctx, query, q.get("filter[type]"), (page, per)).await?;
    let next = (page.saturating_mul(per) < n)
        .then(|| ctx.with_params(&[("page", (page + 1).to_string())]));
    let prev = (page > 1).then(|| ctx.with_params(&[("page", (page - 1).to_string())]));
    Ok(Json(
        json!({"results": results, "count": n, "next_page": next, "previous_page": prev, "facets": null}),
    ))
}

pub async fn count(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let query = q
        .get("query")
        .ok_or_else(|| ApiError::BadRequest("query is required".into()))?;
    let (_, n) = run(&st, &a, &ctx, query, q.get("filter[type]"), (1, 1)).await?;
    Ok(Json(json!({"count": n})))
}
