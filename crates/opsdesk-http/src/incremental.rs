//! Incremental exports for ETL, as Zendesk documents them: time-based
//! (`incremental/{tickets,users,organizations,ticket_events}?start_time=`) and cursor-based
//! (`incremental/{tickets,users,organizations}/cursor?start_time=|cursor=`).
//!
//! Both leave nothing out and repeat nothing: a time-based page always ends on a whole second
//! and its `end_time` is the next second; a cursor follows the commit order (docs/search.md).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use opsdesk_app::Actor;
use opsdesk_core::clock;
use opsdesk_core::model::{Id, Organization, User};
use opsdesk_core::ticket::{Audit, Ticket};
use opsdesk_store::{Change, Doc};
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::extract::{Auth, Query};
use crate::render::Ctx;
use crate::AppState;

/// A record type with an incremental export.
pub trait Exported: Doc + Sized {
    const KEY: &'static str;
    fn render(ctx: &Ctx, c: &Change<Self>) -> Value;
    /// The tickets whose people, groups and organisations `include=` sideloads.
    fn tickets(_changes: &[Change<Self>]) -> Vec<&Ticket> {
        vec![]
    }
}

impl Exported for Ticket {
    const KEY: &'static str = "tickets";
    fn tickets(changes: &[Change<Self>]) -> Vec<&Ticket> {
        changes.iter().map(|c| &c.doc).collect()
    }
    fn render(ctx: &Ctx, c: &Change<Self>) -> Value {
        let mut v = crate::tickets::ticket_json(ctx, &c.doc);
        v["generated_timestamp"] = json!(c.updated_at);
        if c.deleted {
            // Zendesk keeps deletions in the stream with this status.
            v["status"] = json!("deleted");
        }
        v
    }
}

impl Exported for User {
    const KEY: &'static str = "users";
    fn render(ctx: &Ctx, c: &Change<Self>) -> Value {
        ctx.rec(&c.doc, "users")
    }
}

impl Exported for Organization {
    const KEY: &'static str = "organizations";
    fn render(ctx: &Ctx, c: &Change<Self>) -> Value {
        ctx.rec(&c.doc, "organizations")
    }
}

fn start_time(q: &Query) -> ApiResult<i64> {
    let s = q
        .int("start_time")?
        .ok_or_else(|| ApiError::BadRequest("start_time is required (Unix seconds, UTC)".into()))?;
    if s < 0 {
        return Err(ApiError::BadRequest(
            "start_time must not be negative".into(),
        ));
    }
    Ok(s)
}

fn per_page(q: &Query) -> ApiResult<i64> {
    let n = q.int("per_page")?.unwrap_or(1000);
    if !(1..=1000).contains(&n) {
        return Err(ApiError::BadRequest(
            "per_page must be between 1 and 1000".into(),
        ));
    }
    Ok(n)
}

fn include_deleted(q: &Query) -> bool {
    !matches!(q.get("exclude_deleted"), Some("true") | Some("1"))
}

async fn time_based<D: Exported>(
    st: &AppState,
    a: &Actor,
    ctx: &Ctx,
    q: &Query,
) -> ApiResult<(Vec<Change<D>>, Map<String, Value>)> {
    let start = start_time(q)?;
    let (changes, done) = st
        .app
        .changes_since::<D>(a, start, per_page(q)?, include_deleted(q))
        .await?;
    // The next page starts at the second after this page's last record.
    let end_time = changes.last().map(|c| c.updated_at + 1).unwrap_or(start);
    let mut out = Map::new();
    out.insert(
        D::KEY.into(),
        Value::Array(changes.iter().map(|c| D::render(ctx, c)).collect()),
    );
    out.insert("count".into(), json!(changes.len()));
    out.insert("end_time".into(), json!(end_time));
    out.insert(
        "next_page".into(),
        json!(ctx.with_params(&[("start_time", end_time.to_string())])),
    );
    out.insert("end_of_stream".into(), json!(done));
    Ok((changes, out))
}

/// `incremental/{tickets,users,organizations}?start_time=`.
pub async fn time_export<D: Exported>(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let (changes, mut out) = time_based::<D>(&st, &a, &ctx, &q).await?;
    crate::tickets::sideload(&st, &ctx, &q.includes(), &D::tickets(&changes), &mut out).await?;
    Ok(Json(Value::Object(out)))
}

/// A cursor: where a stream started and the last change it delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cursor {
    start: i64,
    seq: i64,
    id: Id,
}

impl Cursor {
    fn encode(self) -> String {
        crate::extract::encode_cursor_of("changes", &[self.start, self.seq, self.id])
    }
    fn decode(s: &str) -> Option<Cursor> {
        let v = crate::extract::decode_cursor_of("changes", s, 3)?;
        Some(Cursor {
            start: v[0],
            seq: v[1],
            id: v[2],
        })
    }
}

async fn cursor_based<D: Exported>(
    st: &AppState,
    a: &Actor,
    ctx: &Ctx,
    q: &Query,
) -> ApiResult<(Vec<Change<D>>, Map<String, Value>)> {
    let from = match q.get("cursor") {
        Some(c) => Cursor::decode(c)
            .ok_or_else(|| ApiError::BadRequest("cursor is not one this server gave out".into()))?,
        None => Cursor {
            start: start_time(q)?,
            seq: -1,
            id: 0,
        },
    };
    let (changes, done) = st
        .app
        .changes_after::<D>(
            a,
            from.start,
            (from.seq, from.id),
            per_page(q)?,
            include_deleted(q),
        )
        .await?;
    let after = changes
        .last()
        .map(|c| Cursor {
            start: from.start,
            seq: c.change_seq,
            id: c.doc.id(),
        })
        .unwrap_or(from)
        .encode();
    let mut out = Map::new();
    out.insert(
        D::KEY.into(),
        Value::Array(changes.iter().map(|c| D::render(ctx, c)).collect()),
    );
    out.insert(
        "after_url".into(),
        json!(ctx.with_params_dropping(&[("cursor", after.clone())], &["start_time"])),
    );
    out.insert("after_cursor".into(), json!(after));
    // Backward paging is not offered.
    out.insert("before_url".into(), Value::Null);
    out.insert("before_cursor".into(), Value::Null);
    out.insert("end_of_stream".into(), json!(done));
    Ok((changes, out))
}

/// `incremental/{tickets,users,organizations}/cursor?start_time=|cursor=`.
pub async fn cursor_export<D: Exported>(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let (changes, mut out) = cursor_based::<D>(&st, &a, &ctx, &q).await?;
    crate::tickets::sideload(&st, &ctx, &q.includes(), &D::tickets(&changes), &mut out).await?;
    Ok(Json(Value::Object(out)))
}

/// Zendesk shows `via` in ticket events as a label.
fn via_label(channel: &str) -> String {
    match channel {
        "api" => "API".into(),
        "web" => "Web form".into(),
        "email" => "Mail".into(),
        "rule" => "Rule".into(),
        other => {
            let mut cs = other.chars();
            match cs.next() {
                Some(f) => f.to_uppercase().chain(cs).collect(),
                None => String::new(),
            }
        }
    }
}

fn ticket_event(a: &Audit, with_comments: bool) -> Value {
    let via = via_label(&a.via.channel);
    let children: Vec<Value> = a
        .events
        .iter()
        .map(|e| {
            let ty = e.get("type").and_then(Value::as_str).unwrap_or("Unknown");
            let mut c = Map::new();
            c.insert("id".into(), e.get("id").cloned().unwrap_or(Value::Null));
            c.insert("via".into(), json!(via));
            c.insert("via_reference_id".into(), Value::Null);
            match ty {
                "Create" | "Change" => {
                    if let Some(f) = e.get("field_name").and_then(Value::as_str) {
                        c.insert(f.into(), e.get("value").cloned().unwrap_or(Value::Null));
                    }
                    if ty == "Change" {
                        c.insert(
                            "previous_value".into(),
                            e.get("previous_value").cloned().unwrap_or(Value::Null),
                        );
                    }
                }
                "Comment" if !with_comments => {
                    c.insert("comment_present".into(), json!(true));
                    c.insert(
                        "comment_public".into(),
                        e.get("public").cloned().unwrap_or(json!(true)),
                    );
                }
                _ => {
                    if let Value::Object(m) = e {
                        for (k, v) in m {
                            if k != "id" {
                                c.insert(k.clone(), v.clone());
                            }
                        }
                    }
                    if ty == "Comment" {
                        c.insert("audit_id".into(), json!(a.id));
                        c.insert("created_at".into(), json!(clock::format(a.created_at)));
                    }
                }
            }
            c.insert("event_type".into(), json!(ty));
            Value::Object(c)
        })
        .collect();
    json!({
        "id": a.id,
        "ticket_id": a.ticket_id,
        "timestamp": a.created_at.as_second(),
        "created_at": clock::format(a.created_at),
        "updater_id": a.author_id,
        "via": via,
        "system": a.metadata.get("system").cloned().unwrap_or(json!({})),
        "metadata": a.metadata,
        "event_type": "Audit",
        "child_events": children,
    })
}

/// `incremental/ticket_events?start_time=` (`include=comment_events` for comment bodies).
pub async fn ticket_events(
    State(st): State<AppState>,
    Auth(a): Auth,
    h: HeaderMap,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    q: Query,
) -> ApiResult<Json<Value>> {
    let ctx = Ctx::new(&h, &uri);
    let start = start_time(&q)?;
    let with_comments = q.includes().iter().any(|i| i == "comment_events");
    let (audits, done) = st.app.audits_since(&a, start, per_page(&q)?).await?;
    let end_time = audits
        .last()
        .map(|x| x.created_at.as_second() + 1)
        .unwrap_or(start);
    let events: Vec<Value> = audits
        .iter()
        .map(|x| ticket_event(x, with_comments))
        .collect();
    Ok(Json(json!({
        "ticket_events": events,
        "count": events.len(),
        "end_time": end_time,
        "next_page": ctx.with_params(&[("start_time", end_time.to_string())]),
        "end_of_stream": done,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let c = Cursor {
            start: 0,
            seq: 912,
            id: 7,
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("bm9wZQ"), None);
        assert_eq!(Cursor::decode("1.2.3.4"), None);
    }
}
