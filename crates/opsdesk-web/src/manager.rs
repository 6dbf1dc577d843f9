//! Manager dashboards over the KPI reports (docs/kpi.md): the SLA and backlog overview, the
//! team's week against the baselines, an engineer's page for 1:1s, and the week in review.
//! Charts are server-side SVG (chart.rs); every chart has its numbers in a table one click
//! away and as CSV (`/manager/kpis/{name}.csv`, the same report the API answers).

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use opsdesk_app::kpi::KpiReport;
use opsdesk_app::Actor;
use opsdesk_app::App;
use serde_json::Value;

use crate::chart::{self, Scale, Series};
use crate::session::Session;
use crate::view::Chrome;
use crate::{page, WebError, WebResult, WebState};

type Params = Query<Vec<(String, String)>>;

fn param(q: &Params, k: &str) -> Option<String> {
    crate::view::param(&q.0, k).map(str::to_string)
}

/// A chart with its numbers.
pub struct Figure {
    pub id: String,
    pub title: String,
    pub svg: String,
    pub table: Table,
}

pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
    pub csv: String,
}

fn col(r: &KpiReport, name: &str) -> Option<usize> {
    r.columns.iter().position(|c| c == name)
}

fn cell(v: &Value, column: &str) -> String {
    match v {
        Value::Null => "–".into(),
        Value::Bool(true) => "yes".into(),
        Value::Bool(false) => "no".into(),
        Value::Number(n) => match n.as_f64() {
            Some(f)
                if column.contains("achievement")
                    || column.contains("share")
                    || column == "rate"
                    || column == "satisfaction" =>
            {
                format!("{:.1} %", f * 100.0)
            }
            _ => n.to_string(),
        },
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn query_string(params: &BTreeMap<String, String>) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish()
}

fn table(r: &KpiReport, name: &str, params: &BTreeMap<String, String>) -> Table {
    Table {
        columns: r.columns.clone(),
        rows: r
            .rows
            .iter()
            .map(|row| {
                row.iter()
                    .zip(&r.columns)
                    .map(|(v, c)| cell(v, c))
                    .collect()
            })
            .collect(),
        csv: format!("/manager/kpis/{name}.csv?{}", query_string(params)),
    }
}

/// The periods of a report (its `period` column, in order, without repeats).
fn periods(r: &KpiReport) -> Vec<String> {
    let Some(i) = col(r, "period") else {
        return vec![];
    };
    let mut out: Vec<String> = vec![];
    for row in &r.rows {
        if let Some(p) = row.get(i).and_then(Value::as_str) {
            if out.last().map(String::as_str) != Some(p) && !out.iter().any(|x| x == p) {
                out.push(p.to_string());
            }
        }
    }
    out
}

/// One series per column, over the report's periods (rows filtered by `keep`).
fn series_of(
    r: &KpiReport,
    labels: &[String],
    columns: &[(&str, &str)],
    keep: impl Fn(&[Value]) -> bool,
) -> Vec<Series> {
    let pi = col(r, "period");
    columns
        .iter()
        .filter_map(|(c, name)| {
            let ci = col(r, c)?;
            let mut values = vec![None; labels.len()];
            for row in r.rows.iter().filter(|row| keep(row)) {
                let p = pi.and_then(|i| row.get(i)).and_then(Value::as_str);
                if let Some(k) = labels.iter().position(|l| Some(l.as_str()) == p) {
                    values[k] = row.get(ci).and_then(Value::as_f64);
                }
            }
            Some(Series {
                name: name.to_string(),
                values,
            })
        })
        .collect()
}

async fn report(
    app: &App,
    actor: &Actor,
    name: &str,
    params: &BTreeMap<String, String>,
) -> WebResult<KpiReport> {
    Ok(app.kpi_report(actor, name, params).await?)
}

fn figure(
    id: &str,
    title: &str,
    r: &KpiReport,
    name: &str,
    params: &BTreeMap<String, String>,
    series: Vec<Series>,
    labels: &[String],
    scale: Scale,
) -> Figure {
    Figure {
        id: id.into(),
        title: title.into(),
        svg: chart::line(id, title, labels, &series, scale),
        table: table(r, name, params),
    }
}

fn weeks_param(q: &Params) -> i64 {
    param(q, "weeks")
        .and_then(|w| w.parse::<i64>().ok())
        .unwrap_or(12)
        .clamp(2, 104)
}

pub struct Tile {
    pub label: String,
    pub value: String,
    pub note: String,
}

#[derive(Template)]
#[template(path = "manager_overview.html")]
struct Overview {
    chrome: Chrome,
    weeks: i64,
    from: String,
    to: String,
    tiles: Vec<Tile>,
    figures: Vec<Figure>,
}

pub async fn overview(st: State<WebState>, s: Session, q: Params) -> WebResult<Response> {
    let s = s.staff()?;
    let (app, a) = (&st.app, &s.actor);
    let weeks = weeks_param(&q);
    let (from, to, _) = app.kpi_recent_weeks(weeks - 1).await?;
    let mut p = BTreeMap::new();
    p.insert("period".to_string(), "week".to_string());
    p.insert("from".to_string(), from.clone());
    p.insert("to".to_string(), to.clone());
    let tickets = report(app, a, "tickets", &p).await?;
    let sla = report(app, a, "sla_achievement", &p).await?;
    let frt = report(app, a, "first_reply_time", &p).await?;
    let res = report(app, a, "full_resolution_time", &p).await?;
    let labels = periods(&tickets);
    let sla_metrics: Vec<String> = {
        let i = col(&sla, "sla_metric");
        let mut m: Vec<String> = sla
            .rows
            .iter()
            .filter_map(|r| i.and_then(|i| r.get(i)).and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        m.sort();
        m.dedup();
        m
    };
    let mi = col(&sla, "sla_metric");
    let sla_series: Vec<Series> = sla_metrics
        .iter()
        .flat_map(|m| {
            series_of(
                &sla,
                &labels,
                &[("achievement", &m.replace('_', " "))],
                |row| mi.and_then(|i| row.get(i)).and_then(Value::as_str) == Some(m),
            )
        })
        .collect();
    // Tiles: the last whole week (the second-to-last period; the last is this week so far).
    let last = |r: &KpiReport, c: &str| -> String {
        let ci = col(r, c);
        let pi = col(r, "period");
        let want = labels.iter().rev().nth(1).or(labels.last());
        r.rows
            .iter()
            .rev()
            .find(|row| {
                pi.and_then(|i| row.get(i)).and_then(Value::as_str) == want.map(String::as_str)
            })
            .and_then(|row| ci.and_then(|i| row.get(i)))
            .map(|v| cell(v, c))
            .unwrap_or_else(|| "–".into())
    };
    let last_week = labels.iter().rev().nth(1).cloned().unwrap_or_default();
    let mut tiles = vec![
        Tile {
            label: "Created".into(),
            value: last(&tickets, "created"),
            note: last_week.clone(),
        },
        Tile {
            label: "Solved".into(),
            value: last(&tickets, "solved"),
            note: last_week.clone(),
        },
        Tile {
            label: "Backlog".into(),
            value: last(&tickets, "backlog"),
            note: format!("at the end of {last_week}"),
        },
        Tile {
            label: "First reply, median".into(),
            value: format!("{} min", last(&frt, "median_calendar")),
            note: format!("{} business", last(&frt, "median_business")),
        },
    ];
    for m in &sla_metrics {
        let ci = col(&sla, "achievement");
        let pi = col(&sla, "period");
        let v = sla
            .rows
            .iter()
            .find(|row| {
                mi.and_then(|i| row.get(i)).and_then(Value::as_str) == Some(m)
                    && pi.and_then(|i| row.get(i)).and_then(Value::as_str) == Some(&last_week)
            })
            .and_then(|row| ci.and_then(|i| row.get(i)))
            .map(|v| cell(v, "achievement"))
            .unwrap_or_else(|| "–".into());
        tiles.push(Tile {
            label: format!("SLA {}", m.replace('_', " ")),
            value: v,
            note: "target 95 %".into(),
        });
    }
    let figures = vec![
        figure(
            "tickets",
            "Tickets per week",
            &tickets,
            "tickets",
            &p,
            series_of(
                &tickets,
                &labels,
                &[
                    ("created", "created"),
                    ("solved", "solved"),
                    ("backlog", "backlog at the end"),
                ],
                |_| true,
            ),
            &labels,
            Scale::Number,
        ),
        figure(
            "sla",
            "SLA achievement per week",
            &sla,
            "sla_achievement",
            &p,
            sla_series,
            &labels,
            Scale::Percent(Some(opsdesk_app::kpi::SLA_TARGET)),
        ),
        figure(
            "frt",
            "First reply time (minutes)",
            &frt,
            "first_reply_time",
            &p,
            series_of(
                &frt,
                &labels,
                &[
                    ("median_calendar", "median"),
                    ("p90_calendar", "90th percentile"),
                    ("median_business", "median, business hours"),
                ],
                |_| true,
            ),
            &labels,
            Scale::Number,
        ),
        figure(
            "resolution",
            "Full resolution time (minutes)",
            &res,
            "full_resolution_time",
            &p,
            series_of(
                &res,
                &labels,
                &[
                    ("median_calendar", "median"),
                    ("median_business", "median, business hours"),
                ],
                |_| true,
            ),
            &labels,
            Scale::Number,
        ),
    ];
    page(&Overview {
        chrome: Chrome::new(&s, "manager", "Support overview"),
        weeks,
        from,
        to,
        tiles,
        figures,
    })
}

pub struct EngineerRow {
    pub id: i64,
    pub name: String,
    pub counted: bool,
    pub cells: Vec<(String, String, bool)>,
    pub assigned_share: String,
    pub share_ok: bool,
}

#[derive(Template)]
#[template(path = "manager_team.html")]
struct Team {
    chrome: Chrome,
    week: String,
    prev: String,
    next: String,
    rows: Vec<EngineerRow>,
    baselines: Vec<String>,
    table: Table,
}

/// A week label `n` weeks from `week` (2026-W48 → 2026-W49).
fn shift_week(week: &str, n: i64) -> Option<String> {
    let d = opsdesk_core::kpi::parse_week(week)?;
    Some(opsdesk_core::kpi::label(
        d + 7 * n,
        opsdesk_core::kpi::Period::Week,
    ))
}

pub async fn team(st: State<WebState>, s: Session, q: Params) -> WebResult<Response> {
    let s = s.staff()?;
    let (app, a) = (&st.app, &s.actor);
    let week = match param(&q, "week") {
        Some(w) => w,
        None => app.kpi_recent_weeks(0).await?.2,
    };
    let mut p = BTreeMap::new();
    p.insert("week".to_string(), week.clone());
    p.insert("period".to_string(), "week".to_string());
    let base = report(app, a, "baselines", &p).await?;
    let act = report(app, a, "engineer_activity", &p).await?;
    let g = |r: &KpiReport, row: &[Value], c: &str| -> Value {
        col(r, c)
            .and_then(|i| row.get(i))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut baselines = vec![];
    if let Some(first) = base.rows.first() {
        for (c, label) in [
            ("baseline_solved", "solved"),
            ("baseline_public_replies", "public replies"),
            ("baseline_internal_notes", "internal notes"),
        ] {
            baselines.push(format!("{label}: {}", cell(&g(&base, first, c), c)));
        }
    }
    let rows = base
        .rows
        .iter()
        .map(|row| {
            let id = g(&base, row, "engineer_id").as_i64().unwrap_or(0);
            let arow = act
                .rows
                .iter()
                .find(|r| g(&act, r, "engineer_id").as_i64() == Some(id));
            let share = arow
                .map(|r| g(&act, r, "assigned_share"))
                .unwrap_or(Value::Null);
            EngineerRow {
                id,
                name: g(&base, row, "engineer_name")
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                counted: g(&base, row, "counted").as_bool().unwrap_or(false),
                cells: ["solved", "public_replies", "internal_notes"]
                    .iter()
                    .map(|c| {
                        (
                            cell(&g(&base, row, c), c),
                            cell(&g(&base, row, &format!("baseline_{c}")), c),
                            g(&base, row, &format!("under_{c}")).as_bool() == Some(true),
                        )
                    })
                    .collect(),
                share_ok: arow
                    .map(|r| g(&act, r, "assigned_share_in_target").as_bool() == Some(true))
                    .unwrap_or(false),
                assigned_share: cell(&share, "assigned_share"),
            }
        })
        .collect();
    page(&Team {
        chrome: Chrome::new(&s, "manager", format!("Team week {week}")),
        prev: shift_week(&week, -1).unwrap_or_default(),
        next: shift_week(&week, 1).unwrap_or_default(),
        table: table(&base, "baselines", &p),
        week,
        rows,
        baselines,
    })
}

#[derive(Template)]
#[template(path = "manager_engineer.html")]
struct Engineer {
    chrome: Chrome,
    name: String,
    weeks: i64,
    figures: Vec<Figure>,
}

pub async fn engineer(
    st: State<WebState>,
    s: Session,
    Path(id): Path<String>,
    q: Params,
) -> WebResult<Response> {
    let s = s.staff()?;
    let (app, a) = (&st.app, &s.actor);
    let id: i64 = id.parse().map_err(|_| WebError::NotFound)?;
    let user = app.get_user(a, id).await?;
    if !user.role.is_staff() {
        return Err(WebError::NotFound);
    }
    let weeks = weeks_param(&q);
    let (from, to, _) = app.kpi_recent_weeks(weeks - 1).await?;
    let mut p = BTreeMap::new();
    p.insert("period".to_string(), "week".to_string());
    p.insert("from".to_string(), from);
    p.insert("to".to_string(), to);
    let mut pe = p.clone();
    pe.insert("engineer_id".to_string(), id.to_string());
    let act = report(app, a, "engineer_activity", &pe).await?;
    let base = report(app, a, "baselines", &p).await?;
    let frt = report(app, a, "first_reply_time", &pe).await?;
    let tickets = report(app, a, "tickets", &p).await?;
    let labels = periods(&tickets);
    let ei = col(&base, "engineer_id");
    let mine = |row: &[Value]| ei.and_then(|i| row.get(i)).and_then(Value::as_i64) == Some(id);
    let mut work = series_of(
        &act,
        &labels,
        &[
            ("solved", "solved"),
            ("public_replies", "public replies"),
            ("internal_notes", "internal notes"),
        ],
        |_| true,
    );
    work.extend(series_of(
        &base,
        &labels,
        &[
            ("baseline_solved", "baseline: solved"),
            ("baseline_public_replies", "baseline: replies"),
        ],
        mine,
    ));
    let figures = vec![
        figure(
            "work",
            "Solved, public replies and internal notes per week, against the baselines",
            &act,
            "engineer_activity",
            &pe,
            work,
            &labels,
            Scale::Number,
        ),
        figure(
            "share",
            "Share of public replies on tickets assigned to them (target 50–60 %)",
            &act,
            "engineer_activity",
            &pe,
            series_of(
                &act,
                &labels,
                &[("assigned_share", "assigned share")],
                |_| true,
            ),
            &labels,
            Scale::PercentBand(
                opsdesk_app::kpi::ASSIGNED_SHARE_TARGET.0,
                opsdesk_app::kpi::ASSIGNED_SHARE_TARGET.1,
            ),
        ),
        figure(
            "frt",
            "Their first replies: minutes from creation",
            &frt,
            "first_reply_time",
            &pe,
            series_of(
                &frt,
                &labels,
                &[
                    ("median_calendar", "median"),
                    ("median_business", "median, business hours"),
                ],
                |_| true,
            ),
            &labels,
            Scale::Number,
        ),
    ];
    page(&Engineer {
        chrome: Chrome::new(&s, "manager", user.name.clone()),
        name: user.name,
        weeks,
        figures,
    })
}

#[derive(Template)]
#[template(path = "manager_week.html")]
struct Week {
    chrome: Chrome,
    week: String,
    prev: String,
    next: String,
    html: String,
}

/// The week in review as a page (its Markdown export, rendered), and its exports.
pub async fn week(st: State<WebState>, s: Session, q: Params) -> WebResult<Response> {
    let s = s.staff()?;
    let mut p = BTreeMap::new();
    if let Some(w) = param(&q, "week") {
        p.insert("week".to_string(), w);
    }
    let (summary, md) = st.app.week_in_review(&s.actor, &p).await?;
    let week = summary["week_in_review"]["week"]
        .as_str()
        .unwrap_or("")
        .to_string();
    match param(&q, "format").as_deref() {
        Some("markdown") => {
            return Ok(text(
                md,
                "text/markdown; charset=utf-8",
                &format!("week-in-review-{week}.md"),
            ))
        }
        Some("json") => {
            return Ok(text(
                summary.to_string(),
                "application/json",
                &format!("week-in-review-{week}.json"),
            ))
        }
        _ => {}
    }
    page(&Week {
        chrome: Chrome::new(&s, "manager", format!("Week in review {week}")),
        prev: shift_week(&week, -1).unwrap_or_default(),
        next: shift_week(&week, 1).unwrap_or_default(),
        html: markdown_html(&md),
        week,
    })
}

fn text(body: String, ct: &'static str, filename: &str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

/// `/manager/kpis/{name}.csv`: a report's CSV through the session (the API needs a token).
pub async fn csv(
    st: State<WebState>,
    s: Session,
    Path(name): Path<String>,
    q: Params,
) -> WebResult<Response> {
    let s = s.staff()?;
    let name = name.strip_suffix(".csv").unwrap_or(&name).to_string();
    let p: BTreeMap<String, String> =
        q.0.iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    let r = st.app.kpi_report(&s.actor, &name, &p).await?;
    Ok(text(
        r.to_csv(),
        "text/csv; charset=utf-8",
        &format!("{name}.csv"),
    ))
}

/// The week in review's Markdown as HTML: second-level headings, pipe tables, bullets and
/// paragraphs — the subset it writes (its `#` title is left to the page's h1). Every text is
/// escaped.
fn markdown_html(md: &str) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut out = String::new();
    let mut lines = md.lines().peekable();
    while let Some(l) = lines.next() {
        let t = l.trim();
        if t.is_empty() {
            continue;
        }
        if let Some(h) = t.strip_prefix("## ") {
            out.push_str(&format!("<h2>{}</h2>", esc(h)));
        } else if t.starts_with("# ") {
            // The title: the page has its own h1.
        } else if t.starts_with('|') {
            let mut rows = vec![t.to_string()];
            while let Some(n) = lines.peek() {
                if n.trim().starts_with('|') {
                    rows.push(n.trim().to_string());
                    lines.next();
                } else {
                    break;
                }
            }
            out.push_str("<table class=\"tickets\">");
            for (i, r) in rows.iter().enumerate() {
                let cells: Vec<&str> = r.trim_matches('|').split('|').map(str::trim).collect();
                if i == 1
                    && cells
                        .iter()
                        .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':')))
                {
                    continue;
                }
                let tag = if i == 0 { "th" } else { "td" };
                out.push_str("<tr>");
                for c in cells {
                    out.push_str(&format!("<{tag}>{}</{tag}>", esc(c)));
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>");
        } else if let Some(first) = t.strip_prefix("- ") {
            out.push_str("<ul>");
            out.push_str(&format!("<li>{}</li>", esc(first)));
            while let Some(n) = lines.peek() {
                if let Some(item) = n.trim().strip_prefix("- ") {
                    out.push_str(&format!("<li>{}</li>", esc(item)));
                    lines.next();
                } else {
                    break;
                }
            }
            out.push_str("</ul>");
        } else {
            out.push_str(&format!("<p>{}</p>", esc(t)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_week_in_review_markdown_becomes_escaped_html() {
        let html = markdown_html(
            "# Title\n\n## Tickets\n\n| a | b |\n|---:|---:|\n| 1 | <x> |\n\nText & more.\n\n- one\n- two\n",
        );
        assert!(
            html.starts_with("<h2>Tickets</h2>"),
            "the title is the page's"
        );
        assert!(html.contains("<tr><th>a</th><th>b</th></tr><tr><td>1</td><td>&lt;x&gt;</td></tr>"));
        assert!(html.contains("<p>Text &amp; more.</p>"));
        assert!(html.contains("<ul><li>one</li><li>two</li></ul>"));
        assert_eq!(shift_week("2026-W52", 1).as_deref(), Some("2026-W53"));
        assert_eq!(shift_week("2026-W01", -1).as_deref(), Some("2025-W52"));
        assert_eq!(shift_week("nonsense", 1), None);
    }
}
