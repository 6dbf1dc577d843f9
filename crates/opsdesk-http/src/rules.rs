//! `/api/v2/triggers…` and the opsdesk extension `/api/v2/tickets/{id}/rule_trace`.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_app::rules::TriggerInput;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{id, Auth, JsonBody};
use crate::render::Ctx;
use crate::AppState;

pub async fn triggers(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let active = uri.path().ends_with("/active");
    let ts = st.app.list_triggers(&a, active).await?;
    Ok(Json(ctx.all(
        "triggers",
        ts.iter().map(|t| ctx.rec(t, "triggers")).collect(),
    )))
}

pub async fn trigger(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let t = st.app.get_trigger(&a, id(&tid)?).await?;
    Ok(Json(json!({"trigger": ctx.rec(&t, "triggers")})))
}

pub async fn create(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: TriggerInput = body.take("trigger")?;
    let t = st.app.save_trigger(&a, None, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"trigger": ctx.rec(&t, "triggers")})),
    )
        .into_response())
}

pub async fn update(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(tid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: TriggerInput = body.take("trigger")?;
    let t = st.app.save_trigger(&a, Some(id(&tid)?), input).await?;
    Ok(Json(json!({"trigger": ctx.rec(&t, "triggers")})))
}

pub async fn delete(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(tid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_trigger(&a, id(&tid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn reorder(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let ids: Vec<i64> = body
        .opt("trigger_ids")?
        .ok_or_else(|| ApiError::BadRequest("The request body needs \"trigger_ids\"".into()))?;
    let ts = st.app.reorder_triggers(&a, &ids).await?;
    Ok(Json(ctx.all(
        "triggers",
        ts.iter().map(|t| ctx.rec(t, "triggers")).collect(),
    )))
}

pub async fn definitions(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<Json<Value>> {
    a.require_staff()?;
    Ok(Json(st.app.trigger_definitions()))
}

pub async fn rule_trace(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(tid): Path<String>,
) -> ApiResult<Json<Value>> {
    let traces = st.app.rule_trace(&a, id(&tid)?).await?;
    Ok(Json(json!({"rule_traces": traces})))
}
