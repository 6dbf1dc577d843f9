//! `/api/v2/kpis…`: opsdesk's KPI reports (docs/kpi.md). Zendesk has no public reporting API
//! (Explore has none), so these paths are opsdesk's own; they use the API's envelopes,
//! authentication and errors, and answer JSON, or CSV with `format=csv` (or a `.csv` path).

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::Value;

use crate::error::ApiResult;
use crate::extract::{Auth, Query};
use crate::AppState;

fn params(q: &Query) -> BTreeMap<String, String> {
    q.0.iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn text(body: String, content_type: &'static str, filename: Option<String>) -> Response {
    let mut r = body.into_response();
    let hs = r.headers_mut();
    hs.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(f) =
        filename.and_then(|f| HeaderValue::from_str(&format!("attachment; filename=\"{f}\"")).ok())
    {
        hs.insert(header::CONTENT_DISPOSITION, f);
    }
    r
}

/// `GET /api/v2/kpis`: the reports, dimensions, periods and the KPI time zone.
pub async fn catalogue(State(st): State<AppState>, Auth(a): Auth) -> ApiResult<Json<Value>> {
    Ok(Json(st.app.kpi_catalogue(&a).await?))
}

/// `GET /api/v2/kpis/{name}[.csv|.json]`.
pub async fn report(
    State(st): State<AppState>,
    Auth(a): Auth,
    Path(name): Path<String>,
    q: Query,
) -> ApiResult<Response> {
    let p = params(&q);
    let (name, csv) = match name.strip_suffix(".csv") {
        Some(n) => (n.to_string(), true),
        None => (
            name.strip_suffix(".json").unwrap_or(&name).to_string(),
            p.get("format").map(String::as_str) == Some("csv"),
        ),
    };
    if name == "week_in_review" {
        return week_in_review(st, a, p).await;
    }
    let rep = st.app.kpi_report(&a, &name, &p).await?;
    if csv {
        let file = format!("{}-{}-{}.csv", rep.metric, rep.from, rep.to);
        return Ok(text(rep.to_csv(), "text/csv; charset=utf-8", Some(file)));
    }
    Ok(Json(rep.to_json()).into_response())
}

/// `GET /api/v2/kpis/week_in_review[?week=2026-W48][&format=markdown]`.
async fn week_in_review(
    st: AppState,
    a: opsdesk_app::Actor,
    p: BTreeMap<String, String>,
) -> ApiResult<Response> {
    let (json, md) = st.app.week_in_review(&a, &p).await?;
    if matches!(p.get("format").map(String::as_str), Some("markdown" | "md")) {
        return Ok(text(md, "text/markdown; charset=utf-8", None));
    }
    Ok(Json(json).into_response())
}
