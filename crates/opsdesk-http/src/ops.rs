//! Operations: Prometheus metrics, request ids and access logs, per-user rate limits.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::AppState;

/// The process-wide Prometheus recorder (installed once; later calls reuse it).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    static H: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    H.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            )
            .ok()?
            .install_recorder()
            .ok()
    })
    .as_ref()
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(st): State<AppState>) -> Response {
    let stats = st.app.store.pool_stats();
    metrics::gauge!("db_pool_connections", "backend" => st.app.store.backend())
        .set(stats.size as f64);
    metrics::gauge!("db_pool_idle_connections", "backend" => st.app.store.backend())
        .set(stats.idle as f64);
    // Outbox depth and the age of its oldest waiting message.
    if let Ok(kinds) = st.app.outbox_stats().await {
        for (kind, o) in kinds {
            metrics::gauge!("outbox_pending", "kind" => kind).set(o.pending as f64);
            metrics::gauge!("outbox_failed", "kind" => kind).set(o.failed as f64);
            let age = o
                .oldest_pending
                .map_or(0, |t| (st.app.now().as_second() - t).max(0));
            metrics::gauge!("outbox_oldest_pending_age_seconds", "kind" => kind).set(age as f64);
        }
    }
    match prometheus() {
        Some(h) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4",
            )],
            h.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable",
        )
            .into_response(),
    }
}

fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Request id (`X-Request-Id`, kept from the client when sane), metrics by route and status,
/// and an access log line (DEBUG; WARN for 5xx and for requests over one second).
pub async fn observe(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|s| {
            !s.is_empty()
                && s.len() <= 64
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let span = tracing::info_span!("request", request.id = %id, method = %method, route = %route);
    let mut resp = tracing::Instrument::instrument(next.run(req), span.clone()).await;
    let status = resp.status().as_u16();
    let secs = start.elapsed().as_secs_f64();
    metrics::counter!("http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status.to_string()).increment(1);
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone()).record(secs);
    let _g = span.enter();
    if status >= 500 || secs > 1.0 {
        tracing::warn!(status, latency_ms = secs * 1e3, "request");
    } else {
        tracing::debug!(status, latency_ms = secs * 1e3, "request");
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

pub use opsdesk_app::limits::RateLimiter;
