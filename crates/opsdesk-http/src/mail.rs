//! Attachments and the email channel over HTTP: `POST /api/v2/uploads` (Zendesk's upload
//! flow: the token goes in `comment.uploads`), `GET /api/v2/attachments/{id}`, downloads at
//! `/attachments/token/{token}/`, and the opsdesk extensions `POST /api/v2/mail/inbound` (raw
//! MIME from a relay, spooled like SMTP mail) and `GET /api/v2/mail/inbound` (what became of
//! each inbound message; `state=suspended` is the review queue).

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use opsdesk_core::mail::state;
use serde_json::{json, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{id, Auth, JsonBody, Query};
use crate::render::Ctx;
use crate::AppState;

/// `POST /api/v2/uploads?filename=…[&token=…]` with the file as the body.
pub async fn upload(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    q: Query,
    body: Bytes,
) -> ApiResult<Response> {
    let Some(name) = q.get("filename") else {
        return Err(ApiError::BadRequest(
            "filename is required (POST /api/v2/uploads?filename=report.csv)".into(),
        ));
    };
    let ct = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream");
    let (token, att) = st
        .app
        .upload(&a, name, ct, body.to_vec(), q.get("token"))
        .await?;
    let files = st.app.upload_files(&token).await?;
    let rendered: Vec<Value> = files.iter().map(|f| st.app.attachment_json(f)).collect();
    let expires = opsdesk_core::clock::format(opsdesk_core::clock::from_unix(
        att.created_at.as_second() + 3 * 24 * 3600,
    ));
    Ok((
        StatusCode::CREATED,
        Json(json!({"upload": {
            "token": token,
            "expires_at": expires,
            "attachment": st.app.attachment_json(&att),
            "attachments": rendered,
        }})),
    )
        .into_response())
}

/// `DELETE /api/v2/uploads/{token}`.
pub async fn delete_upload(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(token): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_upload(&a, &token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v2/attachments/{id}`.
pub async fn attachment(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(aid): Path<String>,
) -> ApiResult<Json<Value>> {
    let att = st.app.get_attachment(&a, id(&aid)?).await?;
    Ok(Json(json!({"attachment": st.app.attachment_json(&att)})))
}

/// `GET /attachments/token/{token}/?name=…`: the file, for whoever may see its comment.
/// Served as a download with `nosniff` and a sandboxing CSP, so an HTML or SVG file a
/// customer sent can never run in the help desk's origin.
pub async fn download(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(token): Path<String>,
) -> ApiResult<Response> {
    let (att, bytes) = st.app.attachment_download(&a, &token).await?;
    let mut r = bytes.into_response();
    let hs = r.headers_mut();
    let ct = HeaderValue::from_str(&att.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    hs.insert(header::CONTENT_TYPE, ct);
    let ascii: String = att
        .file_name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = opsdesk_app::attachments::percent_encode(&att.file_name);
    if let Ok(v) = HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    )) {
        hs.insert(header::CONTENT_DISPOSITION, v);
    }
    hs.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    hs.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    hs.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    Ok(r)
}

/// `POST /api/v2/mail/inbound`: a raw RFC 5322 message from a relay (admins: whoever posts
/// here can write mail as anyone).
/// Answered 202 once the message is spooled; ingest follows within moments.
pub async fn inbound(
    State(st): State<AppState>,
    Auth(a): Auth,
    body: Bytes,
) -> ApiResult<Response> {
    a.require_admin()?;
    if body.is_empty() {
        return Err(ApiError::BadRequest(
            "send the raw message (message/rfc822) as the request body".into(),
        ));
    }
    let app = st.app.clone();
    let path = tokio::task::spawn_blocking(move || app.spool_inbound(&body))
        .await
        .map_err(|_| ApiError::from(opsdesk_app::AppError::Internal("spool task".into())))??;
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"inbound": {"spooled": name}})),
    )
        .into_response())
}

/// `GET /api/v2/mail/inbound?state=…`.
pub async fn inbound_list(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let s = q.get("state");
    let all = [
        state::TICKET,
        state::COMMENT,
        state::NOTE,
        state::BOUNCE,
        state::SUSPENDED,
        state::REJECTED,
    ];
    if let Some(s) = s {
        if !all.contains(&s) {
            return Err(ApiError::BadRequest(format!(
                "state must be one of {}",
                all.join(", ")
            )));
        }
    }
    let p = st.app.list_inbound(&a, s, &page).await?;
    let items = p.items.iter().map(|i| ctx.rec(i, "inbound")).collect();
    Ok(Json(ctx.page("inbound", &page, &p, items, |i| i.id)))
}

/// `GET /api/v2/mail/settings`.
pub async fn settings(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(
        json!({"mail_settings": st.app.mail_settings(&a).await?}),
    ))
}

/// `PUT /api/v2/mail/settings` with `{"mail_settings": {"html_template", "text_template", "footer"}}`.
pub async fn update_settings(
    State(st): State<AppState>,
    Auth(a): Auth,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Value>> {
    let input = body.get("mail_settings").cloned().unwrap_or(body);
    Ok(Json(
        json!({"mail_settings": st.app.update_mail_settings(&a, &input).await?}),
    ))
}

/// A suspended message as Zendesk's suspended ticket.
fn suspended_json(ctx: &Ctx, r: &opsdesk_core::mail::InboundEmail) -> Value {
    let at = opsdesk_core::clock::format(r.created_at);
    json!({
        "id": r.id,
        "url": ctx.url(&format!("suspended_tickets/{}", r.id)),
        "author": {"id": null, "name": r.from_name, "email": r.from_address},
        "subject": r.subject,
        "content": r.text,
        "cause": r.reason,
        "cause_id": null,
        "message_id": r.message_id,
        "ticket_id": null,
        "recipient": r.recipients.first(),
        "via": {"channel": "email", "source": {"from": {"address": r.from_address, "name": r.from_name}, "to": {}, "rel": null}},
        "brand_id": null,
        "attachments": [],
        "created_at": at,
        "updated_at": at,
    })
}

/// `GET /api/v2/suspended_tickets`.
pub async fn suspended_list(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.page()?;
    let p = st.app.suspended_tickets(&a, &page).await?;
    let items = p.items.iter().map(|r| suspended_json(&ctx, r)).collect();
    Ok(Json(
        ctx.page("suspended_tickets", &page, &p, items, |r| r.id),
    ))
}

/// `GET /api/v2/suspended_tickets/{id}`, `DELETE` drops it.
pub async fn suspended_show(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(sid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let r = st.app.suspended_ticket(&a, id(&sid)?).await?;
    Ok(Json(json!({"suspended_ticket": suspended_json(&ctx, &r)})))
}

pub async fn suspended_delete(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(sid): Path<String>,
) -> ApiResult<StatusCode> {
    st.app.delete_suspended(&a, id(&sid)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /api/v2/suspended_tickets/{id}/recover`: `{"ticket": {…}}` made from it.
pub async fn suspended_recover(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    OriginalUri(uri): OriginalUri,
    Path(sid): Path<String>,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let t = st.app.recover_suspended(&a, id(&sid)?).await?;
    Ok(Json(
        json!({"ticket": crate::tickets::ticket_json(&ctx, &t)}),
    ))
}
