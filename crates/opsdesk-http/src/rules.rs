//! `/api/v2/triggers…` and the opsdesk extension `/api/v2/tickets/{id}/rule_trace`.

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_app::macros::MacroInput;
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
