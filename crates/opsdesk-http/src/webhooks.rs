//! `/api/v2/webhooks…` and the opsdesk extension `/api/v2/outbox…` (messages waiting, sent,
//! failed).

use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_app::webhooks::{render, WebhookInput};
use opsdesk_app::Page;
use opsdesk_core::outbox::OutboxItem;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{id, Auth, JsonBody, Query};
use crate::render::Ctx;
use crate::AppState;

/// Webhook lists use cursor pagination only, as in Zendesk.
fn cursor_page(q: &Query) -> ApiResult<Page> {
    Ok(match q.page()? {
        Page::Offset {
            per_page, order, ..
        } => Page::Cursor {
            size: per_page,
            after: None,
            before: None,
            order,
        },
        p => p,
    })
}

pub async fn list(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = cursor_page(&q)?;
    let status = q.get("filter[status]");
    if let Some(s) = status {
        if s != "active" && s != "inactive" {
            return Err(ApiError::BadRequest(
                "filter[status] must be active or inactive".into(),
            ));
        }
    }
    let p = st
        .app
        .list_webhooks(&a, q.get("filter[name_contains]"), status, &page)
        .await?;
    let items = p.items.iter().map(render).collect();
    Ok(Json(ctx.page("webhooks", &page, &p, items, |w| w.id)))
}

pub async fn show(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(wid): Path<String>,
) -> ApiResult<Json<Value>> {
    let w = st.app.get_webhook(&a, id(&wid)?).await?;
    Ok(Json(json!({"webhook": render(&w)})))
}

pub async fn create(
    State(st): State<AppState>,
    Auth(a): Auth,
    body: JsonBody,
) -> ApiResult<Response> {
    let input: WebhookInput = body.take("webhook")?;
    let w = st.app.save_webhook(&a, None, input, false).await?;
    Ok((StatusCode::CREATED, Json(json!({"webhook": render(&w)}))).into_response())
}

/// PUT replaces the webhook, PATCH changes what it names; both answer 204 as Zendesk does.
pub async fn update(
    State(st): State<AppState>,
    Auth(a): Auth,
    method: axum::http::Method,
    Path(wid): Path<String>,
    body: JsonBody,
) -> ApiResult<StatusCode> {
    let input: WebhookInput = body.take("webhook")?;
    st.app
        .save_webhook(
            &a,
            Some(id(&wid)?),
            input,
            method == axum::http::Method::PATCH,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(wid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_webhook(&a, id(&wid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// GET shows the signing secret; POST makes a new one (201).
pub async fn signing_secret(
    State(st): State<AppState>,
    Auth(a): Auth,
    method: axum::http::Method,
    Path(wid): Path<String>,
) -> ApiResult<Response> {
    let reset = method == axum::http::Method::POST;
    let secret = st.app.webhook_secret(&a, id(&wid)?, reset).await?;
    let body = Json(json!({"signing_secret": {"algorithm": "SHA256", "secret": secret}}));
    Ok(if reset {
        (StatusCode::CREATED, body).into_response()
    } else {
        body.into_response()
    })
}

/// `POST /webhooks/test`: `{"request": {endpoint, http_method, request_format,
/// authentication, payload}}`, or `?webhook_id=` with `{"request": {"payload"}}`.
pub async fn test(
    State(st): State<AppState>,
    Auth(a): Auth,
    q: Query,
    body: JsonBody,
) -> ApiResult<Json<Value>> {
    let webhook_id = q.get("webhook_id").map(id).transpose()?;
    // Zendesk puts the settings to test in `request` (with the payload); `webhook` is also read.
    let mut settings: Option<WebhookInput> = body.opt("webhook")?;
    if settings.is_none() {
        let r: Option<WebhookInput> = body.opt("request")?;
        settings = r.filter(|r| r.endpoint.is_some());
    }
    if webhook_id.is_none() && settings.is_none() {
        return Err(ApiError::BadRequest(
            "webhooks/test needs ?webhook_id= or a \"webhook\" with an endpoint".into(),
        ));
    }
    let payload = body
        .0
        .get("request")
        .and_then(|r| r.get("payload"))
        .map(|p| match p {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
    Ok(Json(
        st.app
            .test_webhook(&a, webhook_id, settings, payload)
            .await?,
    ))
}

/// An outbox row as a Zendesk invocation.
fn invocation(i: &OutboxItem) -> Value {
    let last = i.responses.last();
    let status = match i.state.as_str() {
        "delivered" => "success",
        "failed" => "failed",
        _ if i.attempts == 0 => "unknown",
        _ => "failed",
    };
    json!({
        "id": i.id.to_string(),
        "status": status,
        "status_code": last.and_then(|r| r.get("status_code").cloned()),
        "latest_completed_at": last.and_then(|r| r.get("at").cloned()),
        "attempts": i.attempts,
        "state": i.state,
        "next_attempt_at": (i.state == "pending").then(|| opsdesk_core::clock::format(i.next_attempt_at)),
        "ticket_id": i.ticket_id,
    })
}

pub async fn invocations(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
    Path(wid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let wid = id(&wid)?;
    st.app.get_webhook(&a, wid).await?;
    let page = cursor_page(&q)?;
    let p = st
        .app
        .list_outbox(&a, None, Some("webhook"), Some(wid), &page)
        .await?;
    let items = p.items.iter().map(invocation).collect();
    Ok(Json(ctx.page("invocations", &page, &p, items, |i| i.id)))
}

pub async fn attempts(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path((wid, iid)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    let item = st.app.outbox_item(&a, id(&iid)?).await?;
    if item.webhook_id != Some(id(&wid)?) {
        return Err(opsdesk_app::AppError::NotFound.into());
    }
    let attempts: Vec<Value> = item
        .responses
        .iter()
        .enumerate()
        .map(|(n, r)| {
            json!({
                "id": format!("{}-{}", item.id, n + 1),
                "invocation_id": item.id.to_string(),
                "status": r.get("status"),
                "status_code": r.get("status_code"),
                "completed_at": r.get("at"),
                "duration_ms": r.get("duration_ms"),
                "error": r.get("error"),
                "response": {"payload": r.get("response")},
            })
        })
        .collect();
    Ok(Json(json!({"attempts": attempts})))
}

// ---- outbox (opsdesk) -----------------------------------------------------------------------

pub async fn outbox(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let state = q.get("state");
    if let Some(s) = state {
        if !matches!(s, "pending" | "delivered" | "failed") {
            return Err(ApiError::BadRequest(
                "state must be pending, delivered or failed".into(),
            ));
        }
    }
    let kind = q.get("kind");
    if let Some(k) = kind {
        if !matches!(k, "email" | "webhook") {
            return Err(ApiError::BadRequest("kind must be email or webhook".into()));
        }
    }
    let p = st.app.list_outbox(&a, state, kind, None, &page).await?;
    let items = p.items.iter().map(|i| ctx.rec(i, "outbox")).collect();
    Ok(Json(ctx.page("outbox", &page, &p, items, |i| i.id)))
}

pub async fn outbox_item(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(oid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let i = st.app.outbox_item(&a, id(&oid)?).await?;
    Ok(Json(json!({"outbox": ctx.rec(&i, "outbox")})))
}

pub async fn outbox_retry(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(oid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let i = st.app.retry_outbox_item(&a, id(&oid)?).await?;
    Ok(Json(json!({"outbox": ctx.rec(&i, "outbox")})))
}
