//! The one API error type: Zendesk's envelopes for every failure.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use opsdesk_app::AppError;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    App(AppError),
    /// The body is not JSON, or a parameter cannot be read.
    BadRequest(String),
    /// A JSON body whose values have the wrong types.
    Unprocessable {
        field: String,
        message: String,
    },
    TooLarge,
    NoEndpoint,
    /// Over the per-minute API limit (429 with an integer `Retry-After`, as Zendesk).
    RateLimited {
        retry_after: u64,
        limit: u32,
    },
}

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::App(e)
    }
}

impl From<opsdesk_core::Invalid> for ApiError {
    fn from(e: opsdesk_core::Invalid) -> Self {
        ApiError::App(AppError::Invalid(e))
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn body(status: StatusCode, v: serde_json::Value) -> Response {
    (status, axum::Json(v)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::App(AppError::NotFound) => body(
                StatusCode::NOT_FOUND,
                json!({"error": "RecordNotFound", "description": "Not found"}),
            ),
            ApiError::App(AppError::Invalid(i)) => body(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "RecordInvalid", "description": "Record validation errors", "details": i.details}),
            ),
            ApiError::App(AppError::Forbidden(m)) => body(
                StatusCode::FORBIDDEN,
                json!({"error": "Forbidden", "description": m}),
            ),
            ApiError::App(AppError::Unauthorized) => {
                let mut r = body(
                    StatusCode::UNAUTHORIZED,
                    json!({"error": "Couldn't authenticate you"}),
                );
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Basic realm=\"Web Password\""),
                );
                r
            }
            ApiError::App(AppError::Conflict(m)) => body(
                StatusCode::CONFLICT,
                json!({"error": "UpdateConflict", "description": m}),
            ),
            ApiError::App(AppError::InvalidQuery(m)) => body(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "invalid", "description": format!("Invalid search: {m}")}),
            ),
            ApiError::App(AppError::BadRequest(m)) | ApiError::BadRequest(m) => body(
                StatusCode::BAD_REQUEST,
                json!({"error": "InvalidParameter", "description": m}),
            ),
            ApiError::App(AppError::Unavailable(m)) => {
                tracing::warn!(error = %m, "database unavailable");
                let mut r = body(
                    StatusCode::SERVICE_UNAVAILABLE,
                    json!({"error": "DatabaseUnavailable", "description": "The database is not reachable; try again shortly"}),
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                r
            }
            ApiError::App(AppError::Internal(m)) => {
                tracing::error!(error = %m, "internal error");
                body(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "InternalError", "description": "Something went wrong on our side; it has been logged"}),
                )
            }
            ApiError::Unprocessable { field, message } => body(
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "RecordInvalid", "description": "Record validation errors",
                       "details": {field: [{"description": message, "error": "InvalidValue"}]}}),
            ),
            ApiError::TooLarge => body(
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "RequestTooLarge", "description": "The request body is too large"}),
            ),
            ApiError::NoEndpoint => body(
                StatusCode::NOT_FOUND,
                json!({"error": "InvalidEndpoint", "description": "Not found"}),
            ),
            ApiError::RateLimited { retry_after, limit } => {
                let mut r = body(
                    StatusCode::TOO_MANY_REQUESTS,
                    json!({"error": "APIRateLimitExceeded", "description": format!("Number of allowed API requests per minute exceeded ({limit}); retry after {retry_after} seconds")}),
                );
                let h = r.headers_mut();
                h.insert(header::RETRY_AFTER, header::HeaderValue::from(retry_after));
                h.insert("x-rate-limit", header::HeaderValue::from(limit));
                h.insert("x-rate-limit-remaining", header::HeaderValue::from(0u32));
                r
            }
        }
    }
}
