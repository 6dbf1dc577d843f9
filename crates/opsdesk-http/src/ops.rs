//! Operations: Prometheus metrics, request ids and access logs, per-user rate limits.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

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

/// Fixed one-minute windows per user, like Zendesk's per-minute API limits. Per node: with
/// several nodes each enforces its own window.
pub struct RateLimiter<K = i64> {
    per_minute: u32,
    windows: Mutex<HashMap<K, (Instant, u32)>>,
}

/// The caller is over the limit; retry after this many seconds.
pub struct Limited {
    pub retry_after: u64,
    pub limit: u32,
}

impl<K: std::hash::Hash + Eq> RateLimiter<K> {
    /// Whether `key` is over the limit now, without counting.
    pub fn blocked(&self, key: &K) -> Option<Limited> {
        if self.per_minute == 0 {
            return None;
        }
        let now = Instant::now();
        let m = self.windows.lock().ok()?;
        let w = m.get(key)?;
        let age = now.duration_since(w.0);
        (age < Duration::from_secs(60) && w.1 >= self.per_minute).then(|| Limited {
            retry_after: Duration::from_secs(60).saturating_sub(age).as_secs().max(1),
            limit: self.per_minute,
        })
    }

    pub fn new(per_minute: u32) -> RateLimiter<K> {
        RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Count one request; `Ok(remaining)` or the time to wait.
    pub fn check(&self, user: K) -> Result<Option<u32>, Limited> {
        if self.per_minute == 0 {
            return Ok(None);
        }
        let now = Instant::now();
        let Ok(mut m) = self.windows.lock() else {
            return Ok(None);
        };
        if m.len() > 100_000 {
            m.retain(|_, (start, _)| now.duration_since(*start) < Duration::from_secs(60));
        }
        let w = m.entry(user).or_insert((now, 0));
        if now.duration_since(w.0) >= Duration::from_secs(60) {
            *w = (now, 0);
        }
        if w.1 >= self.per_minute {
            let left = Duration::from_secs(60).saturating_sub(now.duration_since(w.0));
            metrics::counter!("http_rate_limited_total").increment(1);
            return Err(Limited {
                retry_after: left.as_secs().max(1),
                limit: self.per_minute,
            });
        }
        w.1 += 1;
        Ok(Some(self.per_minute - w.1))
    }
}
