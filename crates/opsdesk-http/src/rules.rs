//! `/api/v2/triggers…` and the opsdesk extension `/api/v2/tickets/{id}/rule_trace`.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_app::macros::MacroInput;
use opsdesk_app::rules::{RuleRecord, TriggerInput};
use opsdesk_app::views::ViewInput;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{id, Auth, JsonBody, Query};
use crate::render::Ctx;
use crate::AppState;

fn plural<R: RuleRecord>() -> String {
    format!("{}s", R::NAME)
}

/// `GET /triggers`, `/triggers/active`, `/automations`, `/automations/active`.
pub async fn list<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let active =
        uri.path().ends_with("/active") || q.get("active").map(|v| v == "true").unwrap_or(false);
    let mut rs = st.app.list_rules::<R>(&a, active).await?;
    if uri.path().ends_with("/search") {
        let query = q
            .get("query")
            .ok_or_else(|| ApiError::BadRequest("search needs a query parameter".into()))?
            .to_lowercase();
        rs.retain(|r| r.rule().title.to_lowercase().contains(&query));
    }
    let key = plural::<R>();
    Ok(Json(
        ctx.all(&key, rs.iter().map(|t| ctx.rec(t, &key)).collect()),
    ))
}

pub async fn show<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let t = st.app.get_rule::<R>(&a, id(&tid)?).await?;
    Ok(Json(json!({R::NAME: ctx.rec(&t, &plural::<R>())})))
}

pub async fn create<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: TriggerInput = body.take(R::NAME)?;
    let t = st.app.save_rule::<R>(&a, None, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({R::NAME: ctx.rec(&t, &plural::<R>())})),
    )
        .into_response())
}

pub async fn update<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(tid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: TriggerInput = body.take(R::NAME)?;
    let t = st.app.save_rule::<R>(&a, Some(id(&tid)?), input).await?;
    Ok(Json(json!({R::NAME: ctx.rec(&t, &plural::<R>())})))
}

pub async fn delete<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(tid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_rule::<R>(&a, id(&tid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /…/destroy_many?ids=1,2`: all or nothing is checked first (404 if one is missing).
pub async fn destroy_many<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
    q: Query,
) -> ApiResult<StatusCode> {
    let ids = q.ids("ids")?;
    if ids.is_empty() {
        return Err(ApiError::BadRequest("destroy_many needs ids=1,2,…".into()));
    }
    for i in &ids {
        st.app.get_rule::<R>(&a, *i).await?;
    }
    for i in ids {
        st.app.delete_rule::<R>(&a, i).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /…/update_many`: `{"automations": [{"id", "position", "active"}]}`.
pub async fn update_many<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let key = plural::<R>();
    let items: Vec<TriggerInputWithId> = body
        .opt(&key)?
        .ok_or_else(|| ApiError::BadRequest(format!("The request body needs \"{key}\"")))?;
    let mut out = vec![];
    for it in items {
        let input = TriggerInput {
            active: it.active,
            position: it.position,
            ..Default::default()
        };
        out.push(st.app.save_rule::<R>(&a, Some(it.id), input).await?);
    }
    Ok(Json(
        ctx.all(&key, out.iter().map(|t| ctx.rec(t, &key)).collect()),
    ))
}

#[derive(serde::Deserialize)]
pub struct TriggerInputWithId {
    id: i64,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    position: Option<i64>,
}

pub async fn reorder<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let field = format!("{}_ids", R::NAME);
    let ids: Vec<i64> = body
        .opt(&field)?
        .ok_or_else(|| ApiError::BadRequest(format!("The request body needs \"{field}\"")))?;
    let ts = st.app.reorder_rules::<R>(&a, &ids).await?;
    let key = plural::<R>();
    Ok(Json(
        ctx.all(&key, ts.iter().map(|t| ctx.rec(t, &key)).collect()),
    ))
}

pub async fn definitions<R: RuleRecord>(
    State(st): State<AppState>,
    Auth(a): Auth,
) -> ApiResult<Json<Value>> {
    a.require_staff()?;
    Ok(Json(st.app.rule_definitions(R::KIND)))
}

/// `GET /automations/status` (opsdesk): the last run, the one in progress, the next.
pub async fn automation_status(
    State(st): State<AppState>,
    Auth(a): Auth,
) -> ApiResult<Json<Value>> {
    Ok(Json(st.app.automation_status(&a).await?))
}

/// `POST /automations/run` (opsdesk): run at the scheduler's next tick (within seconds).
pub async fn automation_run(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<StatusCode> {
    st.app.request_automation_run(&a).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn rule_trace(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let tid = id(&tid)?;
    let traces = st.app.rule_trace(&a, tid).await?;
    let automations = st.app.automations_explain(&a, tid).await?;
    Ok(Json(
        json!({"rule_traces": traces, "automations_now": automations}),
    ))
}

// ---- macros ----------------------------------------------------------------------------

pub async fn macros(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let active = uri.path().ends_with("/active");
    let ms = st.app.list_macros(&a, active).await?;
    Ok(Json(ctx.all(
        "macros",
        ms.iter().map(|m| ctx.rec(m, "macros")).collect(),
    )))
}

pub async fn macro_(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(mid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let m = st.app.get_macro(&a, id(&mid)?).await?;
    Ok(Json(json!({"macro": ctx.rec(&m, "macros")})))
}

pub async fn create_macro(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: MacroInput = body.take("macro")?;
    let m = st.app.save_macro(&a, None, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"macro": ctx.rec(&m, "macros")})),
    )
        .into_response())
}

pub async fn update_macro(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(mid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: MacroInput = body.take("macro")?;
    let m = st.app.save_macro(&a, Some(id(&mid)?), input).await?;
    Ok(Json(json!({"macro": ctx.rec(&m, "macros")})))
}

pub async fn delete_macro(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(mid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_macro(&a, id(&mid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `macros/{id}/apply` (the fields the macro sets) and `tickets/{t}/macros/{id}/apply` (the
/// whole ticket as it would be). Nothing is saved.
pub async fn apply_macro(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(p): Path<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let (ticket, mac) = match p.as_slice() {
        [(_, t), (_, m)] => (Some(id(t)?), id(m)?),
        [(_, m)] => (None, id(m)?),
        _ => return Err(ApiError::NoEndpoint),
    };
    let preview = st.app.apply_macro(&a, mac, ticket).await?;
    let t = match ticket {
        Some(_) => crate::tickets::ticket_json(&ctx, &preview.ticket),
        None => Value::Object(preview.changes),
    };
    let mut result = json!({"ticket": t});
    if let Some(c) = preview.comment {
        result["comment"] = c;
    }
    Ok(Json(json!({"result": result})))
}

// ---- views -----------------------------------------------------------------------------

pub async fn views(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let active = uri.path().ends_with("/active");
    let vs = st.app.list_views(&a, active).await?;
    Ok(Json(ctx.all(
        "views",
        vs.iter().map(|v| ctx.rec(v, "views")).collect(),
    )))
}

pub async fn view(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(vid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let v = st.app.get_view(&a, id(&vid)?).await?;
    Ok(Json(json!({"view": ctx.rec(&v, "views")})))
}

pub async fn create_view(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: ViewInput = body.take("view")?;
    let v = st.app.save_view(&a, None, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"view": ctx.rec(&v, "views")})),
    )
        .into_response())
}

pub async fn update_view(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(vid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: ViewInput = body.take("view")?;
    let v = st.app.save_view(&a, Some(id(&vid)?), input).await?;
    Ok(Json(json!({"view": ctx.rec(&v, "views")})))
}

pub async fn delete_view(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(vid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_view(&a, id(&vid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn view_page_links(ctx: &Ctx, page: i64, per: i64, count: i64) -> (Value, Value) {
    let link = |p: i64| {
        Value::String(ctx.with_params(&[("page", p.to_string()), ("per_page", per.to_string())]))
    };
    let next = if page.saturating_mul(per) < count {
        link(page + 1)
    } else {
        Value::Null
    };
    let prev = if page > 1 {
        link(page - 1)
    } else {
        Value::Null
    };
    (next, prev)
}

/// `views/{id}/execute` (rows and columns) and `views/{id}/tickets` (tickets).
pub async fn execute_view(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: crate::extract::Query,
    Path(vid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.int("page")?.unwrap_or(1).max(1);
    let per = q.int("per_page")?.unwrap_or(100).clamp(1, 100);
    let vp = st
        .app
        .execute_view(
            &a,
            id(&vid)?,
            page,
            per,
            q.get("sort_by"),
            q.get("sort_order"),
        )
        .await?;
    if uri.path().ends_with("/tickets") {
        let (next, prev) = view_page_links(&ctx, page, per, vp.count);
        let items: Vec<Value> = vp
            .tickets
            .iter()
            .map(|t| crate::tickets::ticket_json(&ctx, t))
            .collect();
        return Ok(Json(
            json!({"tickets": items, "count": vp.count, "next_page": next, "previous_page": prev}),
        ));
    }
    Ok(Json(view_rows_json(&ctx, &vp, page, per)))
}

/// `execute`/`preview`: rows with the view's columns, the groups, paging.
fn view_rows_json(ctx: &Ctx, vp: &opsdesk_app::views::ViewPage, page: i64, per: i64) -> Value {
    let (next, prev) = view_page_links(ctx, page, per, vp.count);
    let rows: Vec<Value> = vp
        .tickets
        .iter()
        .map(|t| {
            let mut row = json!({
                "ticket_id": t.id,
                "ticket": {"id": t.id, "subject": t.subject, "description": t.description, "status": t.status, "type": t.ticket_type, "priority": t.priority, "url": ctx.url(&format!("tickets/{}", t.id))},
                "subject": t.subject, "status": t.status, "priority": t.priority, "type": t.ticket_type,
                "requester_id": t.requester_id, "assignee_id": t.assignee_id, "group_id": t.group_id, "organization_id": t.organization_id,
                "created": opsdesk_core::clock::format(t.created_at), "updated": opsdesk_core::clock::format(t.updated_at),
                "due_date": t.due_at.map(opsdesk_core::clock::format),
                "sla_next_breach_at": vp.next_breach.get(&t.id).map(|b| opsdesk_core::clock::format(opsdesk_core::clock::from_unix(*b))),
            });
            for col in &vp.view.execution.columns {
                if let Some(fid) = col.get("id").and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok()))) {
                    row[fid.to_string()] = t.custom_field(fid).cloned().unwrap_or(Value::Null);
                }
            }
            row
        })
        .collect();
    let view = if vp.view.id > 0 {
        ctx.rec(&vp.view, "views")
    } else {
        serde_json::to_value(&vp.view).unwrap_or(Value::Null)
    };
    json!({"rows": rows, "columns": vp.view.execution.columns, "view": view, "groups": vp.groups, "count": vp.count, "next_page": next, "previous_page": prev})
}

/// `POST /views/preview` (`{"view": {"all", "any", "output"}}`) and `/views/preview/count`.
pub async fn preview_view(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: crate::extract::Query,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: ViewInput = body.take("view")?;
    let page = q.int("page")?.unwrap_or(1).max(1);
    let per = q.int("per_page")?.unwrap_or(100).clamp(1, 100);
    let vp = st.app.preview_view(&a, input, page, per).await?;
    if uri.path().ends_with("/count") {
        return Ok(Json(
            json!({"view_count": {"view_id": null, "url": null, "value": vp.count, "pretty": vp.count.to_string(), "fresh": true}}),
        ));
    }
    Ok(Json(view_rows_json(&ctx, &vp, page, per)))
}

fn view_count_json(ctx: &Ctx, vid: i64, n: i64) -> Value {
    json!({"view_id": vid, "url": ctx.url(&format!("views/{vid}/count")), "value": n, "pretty": n.to_string(), "fresh": true, "active": true})
}

pub async fn count_view(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(vid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let vid = id(&vid)?;
    let n = st.app.count_view(&a, vid).await?;
    Ok(Json(json!({"view_count": view_count_json(&ctx, vid, n)})))
}

pub async fn count_many(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: crate::extract::Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let ids = q.ids("ids")?;
    if ids.is_empty() || ids.len() > 20 {
        return Err(ApiError::BadRequest(
            "ids: give between 1 and 20 view ids".into(),
        ));
    }
    let mut out = vec![];
    for vid in ids {
        let n = st.app.count_view(&a, vid).await?;
        out.push(view_count_json(&ctx, vid, n));
    }
    Ok(Json(json!({"view_counts": out})))
}
