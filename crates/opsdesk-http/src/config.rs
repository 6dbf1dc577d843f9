//! `/api/v2/ticket_fields`, `/ticket_forms`, `/user_fields`, `/organization_fields`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_app::fields::{FieldInput, FieldKind, FormInput};
use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::extract::{id, Auth, JsonBody, Query};
use crate::render::Ctx;
use crate::AppState;

fn kind_of(uri: &Uri) -> (FieldKind, &'static str, &'static str) {
    if uri.path().contains("/user_fields") {
        (FieldKind::User, "user_fields", "user_field")
    } else {
        (
            FieldKind::Organization,
            "organization_fields",
            "organization_field",
        )
    }
}

pub async fn ticket_fields(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let p = st.app.list_ticket_fields(&a, &page).await?;
    let items = p
        .items
        .iter()
        .map(|f| ctx.rec(f, "ticket_fields"))
        .collect();
    Ok(Json(ctx.page("ticket_fields", &page, &p, items, |f| f.id)))
}

pub async fn ticket_field(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(fid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let f = st.app.get_ticket_field(&a, id(&fid)?).await?;
    Ok(Json(json!({"ticket_field": ctx.rec(&f, "ticket_fields")})))
}

pub async fn create_ticket_field(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: FieldInput = body.take("ticket_field")?;
    let f = st.app.save_ticket_field(&a, None, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"ticket_field": ctx.rec(&f, "ticket_fields")})),
    )
        .into_response())
}

pub async fn update_ticket_field(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(fid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: FieldInput = body.take("ticket_field")?;
    let f = st.app.save_ticket_field(&a, Some(id(&fid)?), input).await?;
    Ok(Json(json!({"ticket_field": ctx.rec(&f, "ticket_fields")})))
}

pub async fn delete_ticket_field(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(fid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_ticket_field(&a, id(&fid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn ticket_forms(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let p = st.app.list_ticket_forms(&a, &page).await?;
    let items = p.items.iter().map(|f| ctx.rec(f, "ticket_forms")).collect();
    Ok(Json(ctx.page("ticket_forms", &page, &p, items, |f| f.id)))
}

pub async fn ticket_form(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(fid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let f = st.app.get_ticket_form(&a, id(&fid)?).await?;
    Ok(Json(json!({"ticket_form": ctx.rec(&f, "ticket_forms")})))
}

pub async fn create_ticket_form(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let input: FormInput = body.take("ticket_form")?;
    let f = st.app.save_ticket_form(&a, None, input).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"ticket_form": ctx.rec(&f, "ticket_forms")})),
    )
        .into_response())
}

pub async fn update_ticket_form(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(fid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let input: FormInput = body.take("ticket_form")?;
    let f = st.app.save_ticket_form(&a, Some(id(&fid)?), input).await?;
    Ok(Json(json!({"ticket_form": ctx.rec(&f, "ticket_forms")})))
}

pub async fn delete_ticket_form(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(fid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_ticket_form(&a, id(&fid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn custom_fields(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let (kind, plural, _) = kind_of(&uri);
    let fs = st.app.list_custom_fields(&a, kind).await?;
    Ok(Json(ctx.all(
        plural,
        fs.iter().map(|f| ctx.rec(f, plural)).collect(),
    )))
}

pub async fn custom_field(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(fid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let (kind, plural, one) = kind_of(&uri);
    let f = st.app.get_custom_field(&a, kind, id(&fid)?).await?;
    Ok(Json(json!({one: ctx.rec(&f, plural)})))
}

pub async fn create_custom_field(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    body: JsonBody,
) -> ApiResult<Response> {
    let ctx = Ctx::new(&h, &uri);
    let (kind, plural, one) = kind_of(&uri);
    let input: FieldInput = body.take(one)?;
    let f = st.app.save_custom_field(&a, kind, None, input).await?;
    Ok((StatusCode::CREATED, Json(json!({one: ctx.rec(&f, plural)}))).into_response())
}

pub async fn update_custom_field(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(fid): Path<String>,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let (kind, plural, one) = kind_of(&uri);
    let input: FieldInput = body.take(one)?;
    let f = st
        .app
        .save_custom_field(&a, kind, Some(id(&fid)?), input)
        .await?;
    Ok(Json(json!({one: ctx.rec(&f, plural)})))
}

pub async fn delete_custom_field(
    State(st): State<AppState>,
    Auth(a): Auth,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    Path(fid): Path<String>,
) -> ApiResult<StatusCode> {
    let (kind, _, _) = kind_of(&uri);
    st.app.delete_custom_field(&a, kind, id(&fid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}
