//! Request parsing: authentication, JSON bodies, query parameters, pagination.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use base64::Engine;
use opsdesk_app::{Actor, AppError, Order, Origin, Page};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::AppState;

/// The authenticated caller.
pub struct Auth(pub Actor);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(l) = peer.and_then(|ip| state.auth_failures.blocked(&ip)) {
            return Err(ApiError::RateLimited {
                retry_after: l.retry_after,
                limit: l.limit,
            });
        }
        let actor = match authenticate(parts, state).await {
            Ok(a) => a,
            Err(e) => {
                if let Some(ip) = peer {
                    let _ = state.auth_failures.check(ip);
                }
                return Err(e.into());
            }
        };
        match state.limiter.check(actor.id()) {
            Ok(_) => Ok(Auth(actor)),
            Err(l) => Err(ApiError::RateLimited {
                retry_after: l.retry_after,
                limit: l.limit,
            }),
        }
    }
}

async fn authenticate(parts: &Parts, state: &AppState) -> Result<Actor, AppError> {
    let h = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(AppError::Unauthorized)?;
    let (scheme, rest) = h.split_once(' ').ok_or(AppError::Unauthorized)?;
    if scheme.eq_ignore_ascii_case("basic") {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| AppError::Unauthorized)?;
        let s = String::from_utf8(raw).map_err(|_| AppError::Unauthorized)?;
        let (user, secret) = s.split_once(':').ok_or(AppError::Unauthorized)?;
        state.app.authenticate_basic(user, secret).await
    } else if scheme.eq_ignore_ascii_case("bearer") {
        state.app.authenticate_bearer(rest.trim()).await
    } else {
        Err(AppError::Unauthorized)
    }
}

/// Client and address for audit metadata.
pub fn origin(headers: &HeaderMap) -> Origin {
    let h = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    Origin::of_client(h("user-agent"), h("x-forwarded-for"))
}

/// A JSON body (400 when it is not JSON, 413 when too large).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::BadRequest(format!("could not read the request body: {e}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonBody(Value::Object(Default::default())));
        }
        let v: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::BadRequest(format!("The request body is not valid JSON: {e}"))
        })?;
        if has_nul(&v) {
            return Err(ApiError::BadRequest(
                "The request body contains a NUL character (\\u0000), which opsdesk does not store"
                    .into(),
            ));
        }
        Ok(JsonBody(v))
    }
}

impl JsonBody {
    /// Take the object under `key` (`{"ticket": {...}}`) and decode it.
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> ApiResult<T> {
        let inner = self.0.get(key).ok_or_else(|| {
            ApiError::BadRequest(format!("The request body needs a \"{key}\" object"))
        })?;
        if !inner.is_object() {
            return Err(ApiError::Unprocessable {
                field: key.into(),
                message: format!("{key}: must be an object"),
            });
        }
        decode(inner.clone(), key)
    }

    /// Decode the value under `key` if present.
    pub fn opt<T: DeserializeOwned>(&self, key: &str) -> ApiResult<Option<T>> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => decode(v.clone(), key).map(Some),
        }
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Decode with the path of the offending field in the error.
pub fn decode<T: DeserializeOwned>(v: Value, root: &str) -> ApiResult<T> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path.is_empty() {
            root.to_string()
        } else {
            path
        };
        let inner = e.into_inner().to_string();
        let msg = inner.split(" at line").next().unwrap_or(&inner).to_string();
        ApiError::Unprocessable {
            message: format!("{field}: {msg}"),
            field,
        }
    })
}

/// Query parameters in order (for single-valued keys the last value wins; [`Query::all`] sees
/// every one).
pub struct Query(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect();
        if pairs
            .iter()
            .any(|(k, v)| k.contains('\0') || v.contains('\0'))
        {
            return Err(ApiError::BadRequest(
                "A query parameter contains a NUL character".into(),
            ));
        }
        Ok(Query(pairs))
    }
}

impl Query {
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|s| !s.is_empty())
    }

    /// Every value of a repeated key (`role[]=agent&role[]=admin`).
    pub fn all(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub fn int(&self, k: &str) -> ApiResult<Option<i64>> {
        match self.get(k) {
            None => Ok(None),
            Some(s) => s
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| ApiError::BadRequest(format!("{k} must be a whole number"))),
        }
    }

    /// Comma-separated ids (`ids=1,2,3`).
    pub fn ids(&self, k: &str) -> ApiResult<Vec<i64>> {
        match self.get(k) {
            None => Ok(vec![]),
            Some(s) => s
                .split(',')
                .filter(|x| !x.trim().is_empty())
                .map(|x| {
                    x.trim().parse().map_err(|_| {
                        ApiError::BadRequest(format!("{k} must be a comma-separated list of ids"))
                    })
                })
                .collect(),
        }
    }

    /// Sideloads asked for (`include=users,groups`); unknown names (and zenpy's `None`) ignored.
    pub fn includes(&self) -> Vec<String> {
        self.get("include")
            .map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty() && x != "None")
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The page asked for: cursor pagination when any `page[...]` key is present.
    pub fn page(&self) -> ApiResult<Page> {
        // Lists are kept in id order, which is creation order; other sorts are refused, not ignored.
        if let Some(by) = self.get("sort_by") {
            if by != "id" && by != "created_at" {
                return Err(ApiError::BadRequest(format!(
                    "sort_by={by} is not supported yet; lists are ordered by id (created_at)"
                )));
            }
        }
        let order = match (self.get("sort_order"), self.get("sort")) {
            (Some("desc"), _) => Order::Desc,
            (Some("asc") | None, None) => Order::Asc,
            (Some("asc"), _) => Order::Asc,
            (_, Some("-id") | Some("-created_at")) => Order::Desc,
            (_, Some("id") | Some("created_at")) => Order::Asc,
            (Some(o), _) => {
                return Err(ApiError::BadRequest(format!(
                    "sort_order={o} must be asc or desc"
                )))
            }
            (_, Some(o)) => {
                return Err(ApiError::BadRequest(format!(
                    "sort={o} is not supported yet; use id or -id"
                )))
            }
        };
        let cursor = self.0.iter().any(|(k, _)| k.starts_with("page["));
        if cursor {
            let size = self.int("page[size]")?.unwrap_or(100);
            if !(1..=100).contains(&size) {
                return Err(ApiError::BadRequest(
                    "page[size] must be between 1 and 100".into(),
                ));
            }
            let after = self.get("page[after]").map(decode_cursor).transpose()?;
            let before = self.get("page[before]").map(decode_cursor).transpose()?;
            return Ok(Page::Cursor {
                size,
                after,
                before,
                order,
            });
        }
        let per_page = self.int("per_page")?.unwrap_or(100).clamp(1, 100);
        let page = self.int("page")?.unwrap_or(1);
        if page < 1 {
            return Err(ApiError::BadRequest("page must be 1 or more".into()));
        }
        if page.saturating_mul(per_page) > 10_000_000 {
            return Err(ApiError::BadRequest(
                "page is too deep; use cursor pagination".into(),
            ));
        }
        Ok(Page::Offset {
            page,
            per_page,
            order,
        })
    }
}

pub fn encode_cursor(id: i64) -> String {
    encode_cursor_of("id", &[id])
}

fn decode_cursor(s: &str) -> ApiResult<i64> {
    decode_cursor_of("id", s, 1)
        .map(|v| v[0])
        .ok_or_else(|| ApiError::BadRequest("page cursor is invalid".into()))
}

/// An opaque cursor: `tag:` and whole numbers joined by dots, in URL-safe base64
/// (`id:42` for id pages; search exports and change streams carry more numbers).
pub fn encode_cursor_of(tag: &str, parts: &[i64]) -> String {
    let nums: Vec<String> = parts.iter().map(i64::to_string).collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{tag}:{}", nums.join(".")))
}

/// The `n` numbers of a cursor made by [`encode_cursor_of`] with `tag`, or `None`.
pub fn decode_cursor_of(tag: &str, s: &str, n: usize) -> Option<Vec<i64>> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim().trim_end_matches('='))
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let parts = text.strip_prefix(tag)?.strip_prefix(':')?;
    let v = parts
        .split('.')
        .map(|x| x.parse().ok())
        .collect::<Option<Vec<i64>>>()?;
    (v.len() == n).then_some(v)
}

/// Parse an id path segment; anything else is "not found".
pub fn id(s: &str) -> ApiResult<i64> {
    s.trim_end_matches(".json")
        .parse::<i64>()
        .map_err(|_| ApiError::App(AppError::NotFound))
}

/// The scheme and host the client used, for absolute URLs in answers.
pub fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get("x-forwarded-host")
        .or(headers.get(header::HOST))
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|s| *s == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}
