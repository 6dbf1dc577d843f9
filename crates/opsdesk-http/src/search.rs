//! `/api/v2/search`, `search/count`, `search/export`: Zendesk's query language over tickets,
//! users and organisations (docs/search.md). Unreadable queries get Zendesk's
//! `422 {"error": "invalid", "description": "Invalid search: …"}` saying where.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use opsdesk_app::search::{Found, SortParams};
use opsdesk_app::Actor;
use opsdesk_core::model::Id;
use opsdesk_core::search::{Kind, SortKey};
use opsdesk_core::ticket::Ticket;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Query};
use crate::render::Ctx;
use crate::AppState;

fn query_param(q: &Query) -> ApiResult<&str> {
    q.get("query")
        .ok_or_else(|| ApiError::BadRequest("Parameter query is required".into()))
}

fn kind_param(q: &Query) -> ApiResult<Option<Kind>> {
    match q.get("filter[type]") {
        None => Ok(None),
        Some(t) => Kind::parse(t).map(Some).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "filter[type] must be ticket, user or organization, not '{t}'"
            ))
        }),
    }
}

fn sort_params(q: &Query) -> ApiResult<SortParams> {
    let sort_by = match q.get("sort_by") {
        None => None,
        Some(s) => Some(SortKey::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "sort_by must be updated_at, created_at, priority, status or ticket_type, not '{s}'"
            ))
        })?),
    };
    let descending = match q.get("sort_order") {
        None => None,
        Some("asc") => Some(false),
        Some("desc") => Some(true),
        Some(s) => {
            return Err(ApiError::BadRequest(format!(
                "sort_order must be asc or desc, not '{s}'"
            )))
        }
    };
    Ok(SortParams {
        sort_by,
        descending,
    })
}

/// `include=tickets(users,groups)` (Zendesk's search form) or plain `include=users`.
fn search_includes(q: &Query) -> Vec<String> {
    q.get("include")
        .map(|s| {
            s.split([',', '(', ')'])
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty() && !matches!(x.as_str(), "tickets" | "None"))
                .collect()
        })
        .unwrap_or_default()
}

async fn render(
    st: &AppState,
    a: &Actor,
    ctx: &Ctx,
    q: &Query,
    found: &[Found],
    out: &mut Map<String, Value>,
) -> ApiResult<Vec<Value>> {
    let visible = if a.is_staff() {
        vec![]
    } else {
        st.app.portal_field_ids().await?
    };
    let mut tickets: Vec<&Ticket> = vec![];
    let results = found
        .iter()
        .map(|f| {
            let (mut v, ty) = match f {
                Found::Ticket(t) => {
                    tickets.push(t);
                    let v = if a.is_staff() {
                        crate::tickets::ticket_json(ctx, t)
                    } else {
                        crate::tickets::request_json(ctx, a, t, &visible)
                    };
                    (v, "ticket")
                }
                Found::User(u) => (ctx.rec(u, "users"), "user"),
                Found::Organization(o) => (ctx.rec(o, "organizations"), "organization"),
            };
            v["result_type"] = json!(ty);
            v
        })
        .collect();
    if a.is_staff() {
        crate::tickets::sideload(st, ctx, &search_includes(q), &tickets, out).await?;
    }
    Ok(results)
}

pub async fn search(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let query = query_param(&q)?;
    let page = q.int("page")?.unwrap_or(1).max(1);
    let per = q.int("per_page")?.unwrap_or(100).clamp(1, 100);
    let (found, n) = st
        .app
        .search(&a, query, kind_param(&q)?, sort_params(&q)?, page, per)
        .await?;
    let mut out = Map::new();
    let results = render(&st, &a, &ctx, &q, &found, &mut out).await?;
    let reachable = n.min(opsdesk_app::search::RESULT_LIMIT);
    let next = (page.saturating_mul(per) < reachable
        && (page + 1).saturating_mul(per) <= opsdesk_app::search::RESULT_LIMIT)
        .then(|| ctx.with_params(&[("page", (page + 1).to_string())]));
    let prev = (page > 1).then(|| ctx.with_params(&[("page", (page - 1).to_string())]));
    out.insert("results".into(), Value::Array(results));
    out.insert("count".into(), json!(n));
    out.insert("next_page".into(), json!(next));
    out.insert("previous_page".into(), json!(prev));
    out.insert("facets".into(), Value::Null);
    Ok(Json(Value::Object(out)))
}

pub async fn count(State(st): State<AppState>, Auth(a): Auth, q: Query) -> ApiResult<Json<Value>> {
    let n = st
        .app
        .search_count(&a, query_param(&q)?, kind_param(&q)?)
        .await?;
    Ok(Json(json!({"count": n})))
}

/// `requests/search?query=`: the caller's requests (for end-users, what they may see) that
/// match a query, in the `/requests` shape, newest updated first.
pub async fn requests(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let page = q.int("page")?.unwrap_or(1).max(1);
    let per = q.int("per_page")?.unwrap_or(100).clamp(1, 100);
    let (found, n) = st
        .app
        .search(
            &a,
            query_param(&q)?,
            Some(Kind::Ticket),
            SortParams::default(),
            page,
            per,
        )
        .await?;
    let visible = st.app.portal_field_ids().await?;
    let requests: Vec<Value> = found
        .iter()
        .filter_map(|f| match f {
            Found::Ticket(t) => Some(crate::tickets::request_json(&ctx, &a, t, &visible)),
            _ => None,
        })
        .collect();
    let next = (page.saturating_mul(per) < n.min(opsdesk_app::search::RESULT_LIMIT))
        .then(|| ctx.with_params(&[("page", (page + 1).to_string())]));
    let prev = (page > 1).then(|| ctx.with_params(&[("page", (page - 1).to_string())]));
    Ok(Json(
        json!({"requests": requests, "count": n, "next_page": next, "previous_page": prev}),
    ))
}

fn encode_cursor(c: (i64, Id)) -> String {
    crate::extract::encode_cursor_of("search", &[c.0, c.1])
}

fn decode_cursor(s: &str) -> Option<(i64, Id)> {
    crate::extract::decode_cursor_of("search", s, 2).map(|v| (v[0], v[1]))
}

/// `search/export?query=&filter[type]=&page[size]=&page[after]=`: every result of one type,
/// newest created first, by cursor (no 1,000-result limit, no count).
pub async fn export(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let query = query_param(&q)?;
    let kind = kind_param(&q)?.ok_or_else(|| {
        ApiError::BadRequest("filter[type] is required: ticket, user or organization".into())
    })?;
    // zenpy also writes the type into the query (`type:ticket`); that is accepted when it
    // agrees with filter[type] and refused when it does not.
    let size = q.int("page[size]")?.unwrap_or(100);
    if !(1..=1000).contains(&size) {
        return Err(ApiError::BadRequest(
            "page[size] must be between 1 and 1000".into(),
        ));
    }
    let after = match q.get("page[after]") {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| {
            ApiError::BadRequest("page[after] is not a cursor this server gave out".into())
        })?),
    };
    let (found, next) = st.app.search_export(&a, query, kind, after, size).await?;
    let mut out = Map::new();
    let results = render(&st, &a, &ctx, &q, &found, &mut out).await?;
    let after_cursor = next.map(encode_cursor);
    let next_url = after_cursor
        .as_ref()
        .map(|c| ctx.with_params(&[("page[after]", c.clone()), ("page[size]", size.to_string())]));
    out.insert("results".into(), Value::Array(results));
    out.insert("facets".into(), Value::Null);
    out.insert(
        "meta".into(),
        json!({"has_more": after_cursor.is_some(), "after_cursor": after_cursor, "before_cursor": null}),
    );
    out.insert("links".into(), json!({"next": next_url, "prev": null}));
    Ok(Json(Value::Object(out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = encode_cursor((1_800_000_000, 42));
        assert_eq!(decode_cursor(&c), Some((1_800_000_000, 42)));
        assert_eq!(decode_cursor("not a cursor"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
