//! opsdesk HTTP: the Zendesk-compatible `/api/v2` and health endpoints. Handlers parse the
//! request, call one use case on [`opsdesk_app::App`], and render the answer.

mod config;
mod error;
mod extract;
mod incremental;
mod kpi;
mod mail;
mod ops;
mod people;
mod render;
mod rules;
mod search;
mod sla;
mod tickets;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router, ServiceExt};
use opsdesk_app::App;
use opsdesk_core::model::{Organization, User};
use opsdesk_core::rules::{Automation, Trigger};
use opsdesk_core::ticket::Ticket;
use serde_json::json;
use tower::Layer;

pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub app: App,
    pub limiter: std::sync::Arc<ops::RateLimiter>,
    /// Failed authentications per client address (slows password guessing).
    pub auth_failures: std::sync::Arc<ops::RateLimiter<std::net::IpAddr>>,
}

/// Failed authentications allowed per client address per minute.
pub const AUTH_FAILURES_PER_MINUTE: u32 = 100;

/// Server settings.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// API requests per user per minute (0: no limit).
    pub rate_limit_per_minute: u32,
    /// Largest upload or relayed message (`/uploads`, `/mail/inbound`).
    pub max_upload_bytes: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 2 * 1024 * 1024,
            rate_limit_per_minute: 0,
            max_upload_bytes: 50 * 1024 * 1024,
        }
    }
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(st): State<AppState>) -> impl IntoResponse {
    let db = st.app.store.ping().await;
    let pending = st.app.store.pending_migrations().await;
    let workers = st.app.heartbeats.healthy(st.app.now().as_second());
    let workers_json = match workers {
        None => json!("not run by this process"),
        Some(true) => json!("running"),
        Some(false) => json!("stalled"),
    };
    match (db, pending) {
        (Ok(()), Ok(p)) if p.is_empty() && workers != Some(false) => (
            StatusCode::OK,
            Json(
                json!({"status": "ready", "database": st.app.store.backend(), "workers": workers_json}),
            ),
        ),
        (Ok(()), Ok(p)) if p.is_empty() => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "workers stalled", "workers": workers_json})),
        ),
        (Ok(()), Ok(p)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "migrations pending", "pending": p})),
        ),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "database unavailable"})),
            )
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::NoEndpoint
}

/// Install the Prometheus recorder. Call before anything records a metric (the background
/// workers start before the router is built); calling it again is harmless.
pub fn install_metrics() {
    let _ = ops::prometheus();
}

/// The `/api/v2` routes (paths without `.json`; [`strip_json`] removes the suffix first).
pub fn router(app: App, cfg: &HttpConfig) -> Router {
    // Install the metrics recorder before the first request is counted.
    let _ = ops::prometheus();
    use tickets as t;
    let api = Router::new()
        // tickets
        .route("/tickets", get(t::list).post(t::create))
        .route("/tickets/show_many", get(t::show_many))
        .route("/tickets/create_many", post(t::create_many))
        .route("/tickets/update_many", put(t::update_many))
        .route(
            "/tickets/destroy_many",
            axum::routing::delete(t::destroy_many),
        )
        .route(
            "/tickets/{id}",
            get(t::show).put(t::update).delete(t::destroy),
        )
        .route("/tickets/{id}/comments", get(t::comments))
        .route("/tickets/{id}/audits", get(t::audits))
        .route("/tickets/{id}/audits/{audit_id}", get(t::audit))
        .route("/tickets/{id}/incidents", get(t::incidents))
        .route(
            "/tickets/{id}/tags",
            get(t::tags)
                .post(t::set_tags)
                .put(t::add_tags)
                .delete(t::remove_tags),
        )
        .route("/deleted_tickets", get(t::deleted))
        .route("/deleted_tickets/{id}/restore", put(t::restore))
        .route("/deleted_tickets/{id}", axum::routing::delete(t::purge))
        .route("/job_statuses/{id}", get(t::job_status))
        .route("/requests", get(t::requests).post(t::create_request))
        .route("/requests/open", get(t::requests))
        .route("/requests/solved", get(t::requests))
        .route("/requests/search", get(search::requests))
        .route("/requests/{id}", get(t::request).put(t::update_request))
        .route("/requests/{id}/comments", get(t::request_comments))
        // people
        .route("/users", get(people::users).post(people::create_user))
        .route("/users/me", get(people::me))
        .route("/users/search", get(people::search_users))
        .route("/users/show_many", get(people::show_many_users))
        .route(
            "/users/create_or_update",
            post(people::create_or_update_user),
        )
        .route(
            "/users/{id}",
            get(people::user)
                .put(people::update_user)
                .delete(people::delete_user),
        )
        .route("/users/{id}/identities", get(people::identities))
        .route(
            "/users/{id}/password",
            post(people::set_password).put(people::change_password),
        )
        .route("/users/{id}/tickets/requested", get(t::list_for))
        .route("/users/{id}/tickets/assigned", get(t::list_for))
        .route("/users/{id}/tickets/ccd", get(t::list_for))
        .route(
            "/users/{id}/organization_memberships",
            get(people::org_memberships),
        )
        .route("/users/{id}/organizations", get(people::user_organizations))
        .route(
            "/users/{id}/group_memberships",
            get(people::group_memberships),
        )
        .route("/users/{id}/groups", get(people::groups))
        .route(
            "/organizations",
            get(people::organizations).post(people::create_organization),
        )
        .route(
            "/organizations/show_many",
            get(people::show_many_organizations),
        )
        .route("/organizations/search", get(people::search_organizations))
        .route(
            "/organizations/create_or_update",
            post(people::create_or_update_organization),
        )
        .route(
            "/organizations/{id}",
            get(people::organization)
                .put(people::update_organization)
                .delete(people::delete_organization),
        )
        .route("/organizations/{id}/tickets", get(t::list_for))
        .route("/organizations/{id}/users", get(people::users))
        .route(
            "/organizations/{id}/organization_memberships",
            get(people::org_memberships),
        )
        .route(
            "/organization_memberships",
            get(people::org_memberships).post(people::create_org_membership),
        )
        .route(
            "/organization_memberships/{id}",
            get(people::org_membership).delete(people::delete_org_membership),
        )
        .route("/groups", get(people::groups).post(people::create_group))
        .route(
            "/groups/{id}",
            get(people::group)
                .put(people::update_group)
                .delete(people::delete_group),
        )
        .route("/groups/{id}/memberships", get(people::group_memberships))
        .route("/groups/{id}/users", get(people::users))
        .route("/groups/{id}/tickets", get(t::list_for))
        .route(
            "/group_memberships",
            get(people::group_memberships).post(people::create_group_membership),
        )
        .route(
            "/group_memberships/{id}",
            get(people::group_membership).delete(people::delete_group_membership),
        )
        // configuration
        .route(
            "/ticket_fields",
            get(config::ticket_fields).post(config::create_ticket_field),
        )
        .route(
            "/ticket_fields/{id}",
            get(config::ticket_field)
                .put(config::update_ticket_field)
                .delete(config::delete_ticket_field),
        )
        .route(
            "/ticket_forms",
            get(config::ticket_forms).post(config::create_ticket_form),
        )
        .route(
            "/ticket_forms/{id}",
            get(config::ticket_form)
                .put(config::update_ticket_form)
                .delete(config::delete_ticket_form),
        )
        .route(
            "/user_fields",
            get(config::custom_fields).post(config::create_custom_field),
        )
        .route(
            "/user_fields/{id}",
            get(config::custom_field)
                .put(config::update_custom_field)
                .delete(config::delete_custom_field),
        )
        .route(
            "/organization_fields",
            get(config::custom_fields).post(config::create_custom_field),
        )
        .route(
            "/organization_fields/{id}",
            get(config::custom_field)
                .put(config::update_custom_field)
                .delete(config::delete_custom_field),
        )
        // search
        .route(
            "/triggers",
            get(rules::list::<Trigger>).post(rules::create::<Trigger>),
        )
        .route("/triggers/active", get(rules::list::<Trigger>))
        .route("/triggers/search", get(rules::list::<Trigger>))
        .route("/triggers/definitions", get(rules::definitions::<Trigger>))
        .route("/triggers/reorder", put(rules::reorder::<Trigger>))
        .route("/triggers/update_many", put(rules::update_many::<Trigger>))
        .route(
            "/triggers/destroy_many",
            axum::routing::delete(rules::destroy_many::<Trigger>),
        )
        .route(
            "/triggers/{id}",
            get(rules::show::<Trigger>)
                .put(rules::update::<Trigger>)
                .delete(rules::delete::<Trigger>),
        )
        .route(
            "/automations",
            get(rules::list::<Automation>).post(rules::create::<Automation>),
        )
        .route("/automations/active", get(rules::list::<Automation>))
        .route("/automations/search", get(rules::list::<Automation>))
        .route(
            "/automations/definitions",
            get(rules::definitions::<Automation>),
        )
        .route("/automations/reorder", put(rules::reorder::<Automation>))
        .route(
            "/automations/update_many",
            put(rules::update_many::<Automation>),
        )
        .route(
            "/automations/destroy_many",
            axum::routing::delete(rules::destroy_many::<Automation>),
        )
        .route("/automations/status", get(rules::automation_status))
        .route("/automations/run", post(rules::automation_run))
        .route(
            "/automations/{id}",
            get(rules::show::<Automation>)
                .put(rules::update::<Automation>)
                .delete(rules::delete::<Automation>),
        )
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/test", post(webhooks::test))
        .route(
            "/webhooks/{id}",
            get(webhooks::show)
                .put(webhooks::update)
                .patch(webhooks::update)
                .delete(webhooks::delete),
        )
        .route(
            "/webhooks/{id}/signing_secret",
            get(webhooks::signing_secret).post(webhooks::signing_secret),
        )
        .route("/webhooks/{id}/invocations", get(webhooks::invocations))
        .route(
            "/webhooks/{id}/invocations/{invocation_id}/attempts",
            get(webhooks::attempts),
        )
        .route(
            "/business_hours/schedules",
            get(sla::list).post(sla::create),
        )
        .route(
            "/business_hours/schedules/{id}",
            get(sla::show).put(sla::update).delete(sla::delete),
        )
        .route(
            "/business_hours/schedules/{id}/workweek",
            put(sla::workweek),
        )
        .route(
            "/business_hours/schedules/{id}/holidays",
            get(sla::holidays).post(sla::create_holiday),
        )
        .route(
            "/business_hours/schedules/{id}/holidays/{holiday_id}",
            get(sla::holiday)
                .put(sla::update_holiday)
                .delete(sla::delete_holiday),
        )
        .route(
            "/slas/policies",
            get(sla::sla_policies).post(sla::create_sla_policy),
        )
        .route("/slas/policies/definitions", get(sla::sla_definitions))
        .route("/slas/policies/reorder", put(sla::reorder_sla_policies))
        .route(
            "/slas/policies/{id}",
            get(sla::sla_policy)
                .put(sla::update_sla_policy)
                .delete(sla::delete_sla_policy),
        )
        .route("/incremental/ticket_metric_events", get(sla::metric_events))
        .route(
            "/incremental/tickets",
            get(incremental::time_export::<Ticket>),
        )
        .route(
            "/incremental/tickets/cursor",
            get(incremental::cursor_export::<Ticket>),
        )
        .route("/incremental/users", get(incremental::time_export::<User>))
        .route(
            "/incremental/users/cursor",
            get(incremental::cursor_export::<User>),
        )
        .route(
            "/incremental/organizations",
            get(incremental::time_export::<Organization>),
        )
        .route(
            "/incremental/organizations/cursor",
            get(incremental::cursor_export::<Organization>),
        )
        .route(
            "/incremental/ticket_events",
            get(incremental::ticket_events),
        )
        .route("/kpis", get(kpi::catalogue))
        .route("/kpis/{name}", get(kpi::report))
        .route("/ticket_metrics", get(sla::ticket_metrics))
        .route("/ticket_metrics/{id}", get(sla::ticket_metric))
        .route("/tickets/{id}/metrics", get(sla::ticket_metric))
        .route("/outbox", get(webhooks::outbox))
        .route("/outbox/{id}", get(webhooks::outbox_item))
        .route("/outbox/{id}/retry", post(webhooks::outbox_retry))
        .route("/tickets/{id}/rule_trace", get(rules::rule_trace))
        .route("/views", get(rules::views).post(rules::create_view))
        .route("/views/active", get(rules::views))
        .route("/views/count_many", get(rules::count_many))
        .route("/views/preview", post(rules::preview_view))
        .route("/views/preview/count", post(rules::preview_view))
        .route(
            "/views/{id}",
            get(rules::view)
                .put(rules::update_view)
                .delete(rules::delete_view),
        )
        .route("/views/{id}/execute", get(rules::execute_view))
        .route("/views/{id}/tickets", get(rules::execute_view))
        .route("/views/{id}/count", get(rules::count_view))
        .route("/macros", get(rules::macros).post(rules::create_macro))
        .route("/macros/active", get(rules::macros))
        .route(
            "/macros/{id}",
            get(rules::macro_)
                .put(rules::update_macro)
                .delete(rules::delete_macro),
        )
        .route("/macros/{id}/apply", get(rules::apply_macro))
        .route(
            "/tickets/{id}/macros/{macro_id}/apply",
            get(rules::apply_macro),
        )
        .route(
            "/uploads",
            post(mail::upload).layer(DefaultBodyLimit::max(cfg.max_upload_bytes)),
        )
        .route(
            "/uploads/{token}",
            axum::routing::delete(mail::delete_upload),
        )
        .route("/attachments/{id}", get(mail::attachment))
        .route("/suspended_tickets", get(mail::suspended_list))
        .route(
            "/suspended_tickets/{id}",
            get(mail::suspended_show).delete(mail::suspended_delete),
        )
        .route(
            "/suspended_tickets/{id}/recover",
            put(mail::suspended_recover),
        )
        .route(
            "/mail/settings",
            get(mail::settings).put(mail::update_settings),
        )
        .route(
            "/mail/inbound",
            get(mail::inbound_list)
                .post(mail::inbound)
                .layer(DefaultBodyLimit::max(cfg.max_upload_bytes)),
        )
        .route("/search", get(search::search))
        .route("/search/count", get(search::count))
        .route("/search/export", get(search::export))
        .route_layer(axum::middleware::from_fn(ops::observe));

    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(ops::metrics))
        .route("/attachments/token/{token}", get(mail::download))
        .route("/attachments/token/{token}/", get(mail::download))
        .nest("/api/v2", api)
        .fallback(not_found)
        .method_not_allowed_fallback(not_found)
        .layer(DefaultBodyLimit::max(cfg.max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(json!({"error": "InternalError", "description": "Something went wrong on our side; it has been logged"}))).into_response()
        }))
        .with_state(AppState {
            app,
            limiter: std::sync::Arc::new(ops::RateLimiter::new(cfg.rate_limit_per_minute)),
            auth_failures: std::sync::Arc::new(ops::RateLimiter::new(AUTH_FAILURES_PER_MINUTE)),
        })
}

/// Drop a trailing `.json` from the path (Zendesk clients use both forms).
fn strip_json(mut req: Request) -> Request {
    let uri = req.uri();
    if let Some(p) = uri.path().strip_suffix(".json") {
        let pq = match uri.query() {
            Some(q) => format!("{p}?{q}"),
            None => p.to_string(),
        };
        if let Ok(pq) = pq.parse::<axum::http::uri::PathAndQuery>() {
            let mut parts = uri.clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(u) = axum::http::Uri::from_parts(parts) {
                *req.uri_mut() = u;
            }
        }
    }
    req
}

/// Serve until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    cfg: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_router(listener, router(app, &cfg), shutdown).await
}

/// Serve a router built from [`router`] (and merged with others, such as the web
/// interface's) until `shutdown` resolves; in-flight requests finish first.
pub async fn serve_router(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let svc = tower::util::MapRequestLayer::new(strip_json).layer(router);
    axum::serve(
        listener,
        ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(svc),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

/// Give in-flight work this long after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(20);
