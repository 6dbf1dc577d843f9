//! `/api/v2/business_hours/schedules…` (schedules, workweek, holidays), `/api/v2/slas/policies…`,
//! ticket metrics and the metric-event export.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_app::business_hours::{HolidayInput, ScheduleInput};
use opsdesk_core::business_hours::{Holiday, Interval, ScheduleRecord};
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{id, Auth, JsonBody};
use crate::AppState;

/// A schedule as Zendesk shows it: holidays have their own endpoint.
fn render(r: &ScheduleRecord) -> Value {
    json!({
        "id": r.id,
        "name": r.name,
        "time_zone": r.time_zone,
        "intervals": r.intervals,
        "created_at": opsdesk_core::clock::format(r.created_at),
        "updated_at": opsdesk_core::clock::format(r.updated_at),
    })
}

pub async fn list(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<Json<Value>> {
    let rs = st.app.list_schedules(&a).await?;
    Ok(Json(
        json!({"schedules": rs.iter().map(render).collect::<Vec<_>>()}),
    ))
}

pub async fn show(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(sid): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = st.app.get_schedule(&a, id(&sid)?).await?;
    Ok(Json(json!({"schedule": render(&r)})))
}

pub async fn create(
    State(st): State<AppState>,
    Auth(a): Auth,
    body: JsonBody,
) -> ApiResult<Response> {
    let input: ScheduleInput = body.take("schedule")?;
    let r = st.app.save_schedule(&a, None, input).await?;
    Ok((StatusCode::CREATED, Json(json!({"schedule": render(&r)}))).into_response())
}

pub async fn update(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(sid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let input: ScheduleInput = body.take("schedule")?;
    let r = st.app.save_schedule(&a, Some(id(&sid)?), input).await?;
    Ok(Json(json!({"schedule": render(&r)})))
}

pub async fn delete(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(sid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_schedule(&a, id(&sid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT …/workweek` `{"workweek": {"intervals": [...]}}`.
pub async fn workweek(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(sid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let w: Value = body.take("workweek")?;
    let intervals: Vec<Interval> = match w.get("intervals") {
        Some(v) => crate::extract::decode(v.clone(), "workweek.intervals")?,
        None => {
            return Err(ApiError::BadRequest(
                "The request body needs \"workweek\": {\"intervals\": [...]}".into(),
            ))
        }
    };
    let r = st.app.set_workweek(&a, id(&sid)?, intervals).await?;
    Ok(Json(json!({"workweek": {"intervals": r.intervals}})))
}

pub async fn holidays(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(sid): Path<String>,
) -> ApiResult<Json<Value>> {
    let r = st.app.get_schedule(&a, id(&sid)?).await?;
    Ok(Json(json!({"holidays": r.holidays})))
}

fn holiday_json(h: &Holiday) -> Value {
    json!({"holiday": h})
}

pub async fn create_holiday(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(sid): Path<String>,
    body: JsonBody,
) -> ApiResult<Response> {
    let input: HolidayInput = body.take("holiday")?;
    let h = st
        .app
        .save_holiday(&a, id(&sid)?, None, Some(input))
        .await?
        .ok_or(opsdesk_app::AppError::NotFound)?;
    Ok((StatusCode::CREATED, Json(holiday_json(&h))).into_response())
}

pub async fn holiday(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path((sid, hid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let r = st.app.get_schedule(&a, id(&sid)?).await?;
    let hid = id(&hid)?;
    let h = r
        .holidays
        .iter()
        .find(|h| h.id == hid)
        .ok_or(opsdesk_app::AppError::NotFound)?;
    Ok(Json(holiday_json(h)))
}

pub async fn update_holiday(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path((sid, hid)): Path<(String, String)>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let input: HolidayInput = body.take("holiday")?;
    let h = st
        .app
        .save_holiday(&a, id(&sid)?, Some(id(&hid)?), Some(input))
        .await?
        .ok_or(opsdesk_app::AppError::NotFound)?;
    Ok(Json(holiday_json(&h)))
}

pub async fn delete_holiday(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path((sid, hid)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    st.app
        .save_holiday(&a, id(&sid)?, Some(id(&hid)?), None)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- ticket metrics ---------------------------------------------------------------------

/// `GET /tickets/{id}/metrics` and `GET /ticket_metrics/{id}` (the id is the ticket's).
pub async fn ticket_metric(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: axum::http::HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = crate::render::Ctx::new(&h, &uri);
    let m = st.app.ticket_metric(&a, id(&tid)?).await?;
    Ok(Json(
        json!({"ticket_metric": ctx.rec(&m, "ticket_metrics")}),
    ))
}

/// `GET /ticket_metrics`: paged by ticket id (offset or cursor).
pub async fn ticket_metrics(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: axum::http::HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: crate::extract::Query,
) -> ApiResult<Json<Value>> {
    let ctx = crate::render::Ctx::new(&h, &uri);
    let page = q.page()?;
    let p = st.app.ticket_metrics(&a, &page).await?;
    let items = p
        .items
        .iter()
        .map(|m| ctx.rec(m, "ticket_metrics"))
        .collect();
    Ok(Json(ctx.page("ticket_metrics", &page, &p, items, |m| {
        m["id"].as_i64().unwrap_or(0)
    })))
}

// ---- SLA policies -----------------------------------------------------------------------

pub async fn sla_policies(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: axum::http::HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Json<Value>> {
    let ctx = crate::render::Ctx::new(&h, &uri);
    let ps = st.app.list_sla_policies(&a).await?;
    Ok(Json(ctx.all(
        "sla_policies",
        ps.iter().map(|p| ctx.rec(p, "slas/policies")).collect(),
    )))
}

pub async fn sla_policy(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: axum::http::HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(pid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = crate::render::Ctx::new(&h, &uri);
    let p = st.app.get_sla_policy(&a, id(&pid)?).await?;
    Ok(Json(json!({"sla_policy": ctx.rec(&p, "slas/policies")})))
}

pub async fn create_sla_policy(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: axum::http::HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = crate::render::Ctx::new(&h, &uri);
    let input: opsdesk_app::sla::SlaPolicyInput = body.take("sla_policy")?;
    let p = st.app.save_sla_policy(&a, None, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"sla_policy": ctx.rec(&p, "slas/policies")})),
    )
        .into_response())
}

pub async fn update_sla_policy(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: axum::http::HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(pid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = crate::render::Ctx::new(&h, &uri);
    let input: opsdesk_app::sla::SlaPolicyInput = body.take("sla_policy")?;
    let p = st.app.save_sla_policy(&a, Some(id(&pid)?), input).await?;
    Ok(Json(json!({"sla_policy": ctx.rec(&p, "slas/policies")})))
}

pub async fn delete_sla_policy(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(pid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_sla_policy(&a, id(&pid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reorder_sla_policies(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: axum::http::HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = crate::render::Ctx::new(&h, &uri);
    let ids: Vec<i64> = body
        .opt("sla_policy_ids")?
        .ok_or_else(|| ApiError::BadRequest("The request body needs \"sla_policy_ids\"".into()))?;
    let ps = st.app.reorder_sla_policies(&a, &ids).await?;
    Ok(Json(ctx.all(
        "sla_policies",
        ps.iter().map(|p| ctx.rec(p, "slas/policies")).collect(),
    )))
}

/// `GET /slas/policies/definitions`: the filter conditions (as views take them, plus
/// requester and organisation fields) and the metrics.
pub async fn sla_definitions(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<Json<Value>> {
    a.require_staff()?;
    let d = st.app.rule_definitions(opsdesk_core::rules::RuleKind::View);
    let conds = d["definitions"]["conditions_any"].clone();
    Ok(Json(json!({"definitions": {
        "all": conds, "any": conds,
        "metrics": opsdesk_core::sla::SLA_METRICS,
        "priorities": ["low", "normal", "high", "urgent"],
    }})))
}

/// `GET /incremental/ticket_metric_events?start_time=`: metric events from that time (UTC
/// seconds), oldest first, 100 a page; `next_page` carries `after_id` so events sharing a
/// second are neither repeated nor skipped.
pub async fn metric_events(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: axum::http::HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: crate::extract::Query,
) -> ApiResult<Json<Value>> {
    let ctx = crate::render::Ctx::new(&h, &uri);
    let start = q
        .int("start_time")?
        .ok_or_else(|| ApiError::BadRequest("start_time is required (UTC seconds)".into()))?;
    if start < 0 {
        return Err(ApiError::BadRequest(
            "start_time must not be negative".into(),
        ));
    }
    let after = q.int("after_id")?.unwrap_or(0);
    const PAGE: i64 = 100;
    let rows = st.app.ticket_metric_events(&a, start, after, PAGE).await?;
    let end = rows.last().map(|r| (r.1, r.0));
    let events: Vec<Value> = rows
        .into_iter()
        .map(|(id, _, mut e)| {
            e["id"] = json!(id);
            e
        })
        .collect();
    let full = events.len() as i64 == PAGE;
    let (end_time, last_id) = end.unwrap_or((start, after));
    let next = ctx.with_params(&[
        ("start_time", end_time.to_string()),
        ("after_id", last_id.to_string()),
    ]);
    Ok(Json(json!({
        "ticket_metric_events": events,
        "count": events.len(),
        "end_time": end_time,
        "next_page": next,
        "end_of_stream": !full,
    })))
}
