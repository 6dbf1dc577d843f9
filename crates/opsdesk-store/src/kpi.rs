//! KPI facts (`kpi_facts`, docs/kpi.md): written with each ticket write, aggregated by the
//! reports. Counts are grouped in SQL; durations come back one row per fact for exact
//! percentiles.

use std::collections::BTreeMap;

use opsdesk_core::kpi::{Dims, Fact};
use opsdesk_core::model::Id;
use serde_json::Value;

use crate::db::{Conn, Val};
use crate::docs::{where_sql, Cond};
use crate::Result;

/// The ticket's attributes on each fact: they move with the ticket.
const TICKET_DIMS: &[&str] = &[
    "assignee_id",
    "group_id",
    "organization_id",
    "form_id",
    "priority",
    "channel",
    "plan",
    "region",
];

/// The dimensions `kpi_daily` counts by: the total (''), the ticket's attributes, and who
/// acted.
fn rollup_dims() -> Vec<&'static str> {
    let mut d = vec![""];
    d.extend_from_slice(TICKET_DIMS);
    d.push("agent_id");
    d
}

/// Whether a report may group by this column: a ticket attribute, who acted, or the SLA
/// target.
fn groupable(col: &str) -> bool {
    TICKET_DIMS.contains(&col) || col == "agent_id" || col == "metric"
}

/// One `($n, …)` row of a multi-row INSERT, its values appended to `args`.
fn values_row(args: &mut Vec<Val>, vals: impl IntoIterator<Item = Val>) -> String {
    let ps: Vec<String> = vals
        .into_iter()
        .map(|v| {
            args.push(v);
            format!("${}", args.len())
        })
        .collect();
    format!("({})", ps.join(", "))
}

/// The value of a fact's dimension as `kpi_daily` keeps it (NULL as '').
fn dim_value(f: &Fact, dims: &Dims, dim: &str) -> String {
    let v = match dim {
        "" => return String::new(),
        "agent_id" => Val::from(f.agent_id),
        col => fact_column(dims, col),
    };
    match v {
        Val::Int(i) => i.to_string(),
        Val::Text(t) => t,
        _ => String::new(),
    }
}

/// A ticket attribute as its fact column holds it.
fn fact_column(dims: &Dims, col: &str) -> Val {
    match col {
        "assignee_id" => Val::from(dims.assignee_id),
        "group_id" => Val::from(dims.group_id),
        "organization_id" => Val::from(dims.organization_id),
        "form_id" => Val::from(dims.form_id),
        "priority" => Val::from(dims.priority.clone()),
        "channel" => Val::from(dims.channel.as_str()),
        "plan" => Val::from(dims.plan.clone()),
        _ => Val::from(dims.region.clone()),
    }
}

/// `kpi_daily` keys are split this many ways (by ticket id).
const SHARDS: i64 = 16;

/// Adds to a daily count. Every write raises the row's version `v` (rows start at 1), which
/// the duration cache checks (migration 0015).
const ROLLUP_UPSERT: &str = "ON CONFLICT (kind, dim, day, value, metric, shard) DO UPDATE SET \
     n = kpi_daily.n + excluded.n, f1 = kpi_daily.f1 + excluded.f1, \
     f2 = kpi_daily.f2 + excluded.f2, f4 = kpi_daily.f4 + excluded.f4, v = kpi_daily.v + 1";

/// Which facts a report reads.
#[derive(Debug, Clone, Default)]
pub struct KpiQuery {
    pub kinds: Vec<&'static str>,
    /// Local days, `from` included, `to` excluded.
    pub from_day: Option<i64>,
    pub to_day: Option<i64>,
    /// Conditions on the dimension columns.
    pub conds: Vec<Cond>,
    /// Group by this column (a ticket attribute, `agent_id` or `metric`).
    pub by: Option<&'static str>,
    /// Group by period: an SQL expression over `day` giving the first day of a fact's bucket
    /// (the caller builds it from integers only). None: one bucket.
    pub bucket: Option<String>,
}

/// A group's count, and how many of its facts carry each of the first three flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiCount {
    pub kind: String,
    pub bucket: Option<i64>,
    pub dim: Option<String>,
    pub n: i64,
    pub flagged: [i64; 3],
}

/// A query's single dimension in `kpi_daily` terms ([`KpiQuery::daily_key`]).
#[derive(Debug, Default)]
struct DailyKey {
    /// '' for the total.
    dim: &'static str,
    /// The one value the query filters the dimension to.
    value: Option<String>,
    /// The SLA target it filters to.
    metric: Option<String>,
}

/// A bucket of a duration report: the days `[first, end)` inside the range. `cache`: a whole
/// day, week or month that has ended, whose figures may be kept and read again
/// ([`Conn::kpi_stats_cached`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatBucket {
    pub first: i64,
    pub end: i64,
    pub cache: bool,
}

/// A closed bucket's figures for one dimension value, to keep in `kpi_stat_cache`
/// ([`Conn::save_kpi_stats`]), with the version of the daily counts they were computed
/// beside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatFill {
    pub kinds: String,
    pub dim: &'static str,
    pub first: i64,
    pub end: i64,
    pub value: String,
    pub vsum: i64,
    /// The cache generation when the versions were read (raised by every rebuild).
    pub generation: i64,
    pub calendar: KpiStat,
    pub business: KpiStat,
}

/// A kept bucket's figures in `kpi_stat_cache`, in [`KpiStat`] order (count, sum, median,
/// p90), calendar then business.
const STAT_COLUMNS: [&str; 8] = [
    "n_calendar",
    "sum_calendar",
    "median_calendar",
    "p90_calendar",
    "n_business",
    "sum_business",
    "median_business",
    "p90_business",
];

/// A report group: its bucket and dimension value.
type GroupKey = (Option<i64>, Option<String>);

/// A duration's figures for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KpiStat {
    pub bucket: Option<i64>,
    pub dim: Option<String>,
    pub n: i64,
    pub sum: i64,
    pub median: Option<i64>,
    pub p90: Option<i64>,
}

impl KpiStat {
    /// No facts.
    pub fn empty() -> KpiStat {
        KpiStat {
            bucket: None,
            dim: None,
            n: 0,
            sum: 0,
            median: None,
            p90: None,
        }
    }
}

impl KpiQuery {
    fn where_clause(&self, args: &mut Vec<Val>) -> String {
        let mut conds = self.conds.clone();
        conds.push(Cond::In(
            "kind",
            self.kinds.iter().map(|k| Val::from(*k)).collect(),
        ));
        if let Some(f) = self.from_day {
            conds.push(Cond::Ge("day", Val::Int(f)));
        }
        if let Some(t) = self.to_day {
            conds.push(Cond::Lt("day", Val::Int(t)));
        }
        where_sql(&conds, args)
    }

    fn by(&self) -> Option<&'static str> {
        self.by.filter(|b| groupable(b))
    }

    /// The query as `kpi_daily` keys it: at most one dimension, filtered to one value
    /// (`Eq`, or `IsNull` as '') and/or grouped by, and a filter on the SLA target. None
    /// when the daily rows cannot answer it.
    fn daily_key(&self) -> Option<DailyKey> {
        let mut key = DailyKey::default();
        for c in &self.conds {
            let (col, value) = match c {
                Cond::Eq(col, Val::Int(v)) => (*col, v.to_string()),
                Cond::Eq(col, Val::Text(v)) => (*col, v.clone()),
                Cond::IsNull(col) => (*col, String::new()),
                _ => return None,
            };
            if col == "metric" {
                key.metric = Some(value);
                continue;
            }
            if !rollup_dims().contains(&col) || key.value.is_some() {
                return None;
            }
            key.dim = col;
            key.value = Some(value);
        }
        match self.by() {
            Some("metric") | None => {}
            Some(b) if key.value.is_none() || key.dim == b => key.dim = b,
            Some(_) => return None,
        }
        Some(key)
    }

    /// The bucket and dimension as SELECT expressions, and the columns that group by them.
    fn keys(&self) -> (String, String, Vec<String>) {
        let bucket = self
            .bucket
            .clone()
            .unwrap_or_else(|| "CAST(NULL AS BIGINT)".into());
        let dim = match self.by() {
            Some(b) => format!("CAST({b} AS TEXT)"),
            None => "CAST(NULL AS TEXT)".into(),
        };
        let mut group = vec![];
        if let Some(b) = &self.bucket {
            group.push(b.clone());
        }
        if let Some(b) = self.by() {
            group.push(b.to_string());
        }
        (bucket, dim, group)
    }
}

impl Conn {
    /// Record facts for a ticket, with its current attributes.
    pub async fn insert_kpi_facts(&mut self, facts: &[(Fact, i64)], dims: &Dims) -> Result<()> {
        for chunk in facts.chunks(50) {
            let mut args = vec![];
            let mut rows = vec![];
            for (f, day) in chunk {
                let vals = [
                    Val::Int(f.ticket_id),
                    Val::Int(f.time),
                    Val::Int(*day),
                    Val::from(f.kind),
                    Val::from(f.agent_id),
                    Val::from(f.metric.clone()),
                    Val::from(f.calendar),
                    Val::from(f.business),
                    Val::Int(f.flags),
                ];
                let attrs = TICKET_DIMS.iter().map(|col| fact_column(dims, col));
                rows.push(values_row(&mut args, vals.into_iter().chain(attrs)));
            }
            let sql = format!(
                "INSERT INTO kpi_facts (ticket_id, time, day, kind, agent_id, metric, calendar, business, flags, {}) VALUES {}",
                TICKET_DIMS.join(", "),
                rows.join(", ")
            );
            self.exec(&sql, &args).await?;
        }
        // The daily counts, summed here so each key is written once.
        type Key = (&'static str, &'static str, i64, String, String, i64);
        let mut sums: std::collections::BTreeMap<Key, [i64; 4]> = std::collections::BTreeMap::new();
        for (f, day) in facts {
            for dim in rollup_dims() {
                let key = (
                    f.kind,
                    dim,
                    *day,
                    dim_value(f, dims, dim),
                    f.metric.clone().unwrap_or_default(),
                    f.ticket_id.rem_euclid(SHARDS),
                );
                let e = sums.entry(key).or_default();
                e[0] += 1;
                for (i, bit) in [1, 2, 4].into_iter().enumerate() {
                    if f.flags & bit != 0 {
                        e[i + 1] += 1;
                    }
                }
            }
        }
        let sums: Vec<_> = sums.into_iter().collect();
        for chunk in sums.chunks(100) {
            let mut args = vec![];
            let mut rows = vec![];
            for ((kind, dim, day, value, metric, shard), c) in chunk {
                let vals = [
                    Val::from(*kind),
                    Val::from(*dim),
                    Val::Int(*day),
                    Val::from(value.as_str()),
                    Val::from(metric.as_str()),
                    Val::Int(*shard),
                    Val::Int(c[0]),
                    Val::Int(c[1]),
                    Val::Int(c[2]),
                    Val::Int(c[3]),
                    Val::Int(1),
                ];
                rows.push(values_row(&mut args, vals));
            }
            let sql = format!(
                "INSERT INTO kpi_daily (kind, dim, day, value, metric, shard, n, f1, f2, f4, v) VALUES {} {ROLLUP_UPSERT}",
                rows.join(", ")
            );
            self.exec(&sql, &args).await?;
        }
        Ok(())
    }

    /// Add (`sign` 1) or take away (-1) the daily counts of the facts `filter` selects (one
    /// statement per dimension).
    async fn roll(&mut self, filter: &str, arg: Val, dims: &[&str], sign: i64) -> Result<()> {
        for dim in dims {
            // PostgreSQL refuses a constant in GROUP BY: the total groups without a value.
            let (value, grouped) = if dim.is_empty() {
                ("''".to_string(), String::new())
            } else {
                let v = format!("COALESCE(CAST({dim} AS TEXT), '')");
                (v.clone(), format!(", {v}"))
            };
            let flag = |bit: i64| {
                format!("{sign} * SUM(CASE WHEN (flags & {bit}) <> 0 THEN 1 ELSE 0 END)")
            };
            let sql = format!(
                "INSERT INTO kpi_daily (kind, dim, day, value, metric, shard, n, f1, f2, f4, v) \
                 SELECT kind, '{dim}', day, {value}, COALESCE(metric, ''), ticket_id % {SHARDS}, {sign} * COUNT(*), {}, {}, {}, 1 \
                 FROM kpi_facts WHERE {filter} GROUP BY kind, day{grouped}, COALESCE(metric, ''), ticket_id % {SHARDS} {ROLLUP_UPSERT}",
                flag(1),
                flag(2),
                flag(4)
            );
            self.exec(&sql, std::slice::from_ref(&arg)).await?;
        }
        Ok(())
    }

    /// Move a ticket's facts to its new attributes; `moved` names the columns whose values
    /// changed (their daily counts move; the others stay as they are).
    pub async fn set_kpi_dims(
        &mut self,
        ticket_id: Id,
        dims: &Dims,
        moved: &[&'static str],
    ) -> Result<()> {
        let moved: Vec<&str> = TICKET_DIMS
            .iter()
            .copied()
            .filter(|d| moved.contains(d))
            .collect();
        let moved = &moved[..];
        if moved.is_empty() {
            return Ok(());
        }
        self.roll("ticket_id = $1", Val::Int(ticket_id), moved, -1)
            .await?;
        // Only the moved columns change, so the daily counts always match the facts.
        let mut args = vec![Val::Int(ticket_id)];
        let set: Vec<String> = moved
            .iter()
            .map(|col| {
                args.push(fact_column(dims, col));
                format!("{col} = ${}", args.len())
            })
            .collect();
        self.exec(
            &format!(
                "UPDATE kpi_facts SET {} WHERE ticket_id = $1",
                set.join(", ")
            ),
            &args,
        )
        .await?;
        self.roll("ticket_id = $1", Val::Int(ticket_id), moved, 1)
            .await
    }

    /// Benchmarks' bulk load: drop the fact table's indexes and return their definitions, to
    /// build them again after the load ([`Conn::create_indexes`]).
    pub async fn drop_kpi_fact_indexes(&mut self) -> Result<Vec<String>> {
        let sql = if self.is_postgres() {
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'kpi_facts' \
             AND schemaname = current_schema() AND indexname <> 'kpi_facts_pkey'"
        } else {
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'kpi_facts' \
             AND sql IS NOT NULL"
        };
        let rows = self.all(sql, &[]).await?;
        let mut defs = vec![];
        for r in rows {
            let (name, def) = (r.str(0)?, r.str(1)?);
            self.exec(&format!("DROP INDEX {name}"), &[]).await?;
            defs.push(def);
        }
        Ok(defs)
    }

    /// Run index definitions (from [`Conn::drop_kpi_fact_indexes`]).
    pub async fn create_indexes(&mut self, defs: &[String]) -> Result<()> {
        for d in defs {
            self.exec(d, &[]).await?;
        }
        Ok(())
    }

    /// Count every fact into `kpi_daily` (after facts were inserted directly: benchmarks).
    pub async fn roll_up_kpi_facts(&mut self) -> Result<()> {
        self.roll("ticket_id >= $1", Val::Int(0), &rollup_dims(), 1)
            .await
    }

    /// Forget every fact, daily count and kept figure (a full rebuild starts here). The
    /// daily rows' versions start again, so the cache generation is raised first: figures
    /// computed before it are not kept after it ([`Conn::save_kpi_stats`]).
    pub async fn clear_kpi(&mut self) -> Result<()> {
        self.exec(
            "UPDATE kpi_cache_generation SET generation = generation + 1 WHERE id = 1",
            &[],
        )
        .await?;
        self.exec("DELETE FROM kpi_facts", &[]).await?;
        self.exec("DELETE FROM kpi_daily", &[]).await?;
        self.exec("DELETE FROM kpi_stat_cache", &[]).await?;
        Ok(())
    }

    /// Forget a ticket's facts (it was deleted, or they are about to be derived again).
    pub async fn delete_kpi_facts(&mut self, ticket_id: Id) -> Result<()> {
        self.roll("ticket_id = $1", Val::Int(ticket_id), &rollup_dims(), -1)
            .await?;
        self.exec(
            "DELETE FROM kpi_facts WHERE ticket_id = $1",
            &[Val::Int(ticket_id)],
        )
        .await?;
        Ok(())
    }

    /// A ticket's SLA metric events, in the order they were written.
    pub async fn metric_events_of(&mut self, ticket_id: Id) -> Result<Vec<Value>> {
        let rows = self
            .all(
                "SELECT data FROM ticket_metric_events WHERE ticket_id = $1 ORDER BY id",
                &[Val::Int(ticket_id)],
            )
            .await?;
        rows.iter().map(|r| r.json(0)).collect()
    }

    /// Counts of facts by kind (and bucket, and the `by` column), with their flags: from the
    /// daily counts when the query filters by one dimension at most (and groups by it or by
    /// the SLA target), else from the facts.
    pub async fn kpi_counts(&mut self, q: &KpiQuery) -> Result<Vec<KpiCount>> {
        if let Some(r) = self.kpi_counts_daily(q).await? {
            return Ok(r);
        }
        let mut args = vec![];
        let w = q.where_clause(&mut args);
        let (bucket, dim, mut group) = q.keys();
        group.insert(0, "kind".into());
        let flag = |bit: i64| format!("SUM(CASE WHEN (flags & {bit}) <> 0 THEN 1 ELSE 0 END)");
        let sql = format!(
            "SELECT kind, {bucket}, {dim}, COUNT(*), {}, {}, {} FROM kpi_facts WHERE {w} GROUP BY {}",
            flag(1),
            flag(2),
            flag(4),
            group.join(", ")
        );
        let rows = self.all(&sql, &args).await?;
        rows.iter()
            .map(|r| {
                Ok(KpiCount {
                    kind: r.str(0)?,
                    bucket: r.opt_i64(1)?,
                    dim: r.opt_str(2)?,
                    n: r.i64(3)?,
                    flagged: [
                        r.opt_i64(4)?.unwrap_or(0),
                        r.opt_i64(5)?.unwrap_or(0),
                        r.opt_i64(6)?.unwrap_or(0),
                    ],
                })
            })
            .collect()
    }

    /// [`Conn::kpi_counts`] from `kpi_daily`, when the query allows it.
    async fn kpi_counts_daily(&mut self, q: &KpiQuery) -> Result<Option<Vec<KpiCount>>> {
        let Some(key) = q.daily_key() else {
            return Ok(None);
        };
        let mut conds = vec![];
        if let Some(m) = key.metric {
            conds.push(Cond::Eq("metric", Val::Text(m)));
        }
        if let Some(v) = key.value {
            conds.push(Cond::Eq("value", Val::Text(v)));
        }
        let by = q.by();
        let (dim, out) = match by {
            Some("metric") => (key.dim, "NULLIF(metric, '')"),
            Some(_) => (key.dim, "NULLIF(value, '')"),
            None => (key.dim, "CAST(NULL AS TEXT)"),
        };
        conds.push(Cond::Eq("dim", Val::from(dim)));
        conds.push(Cond::In(
            "kind",
            q.kinds.iter().map(|k| Val::from(*k)).collect(),
        ));
        if let Some(f) = q.from_day {
            conds.push(Cond::Ge("day", Val::Int(f)));
        }
        if let Some(t) = q.to_day {
            conds.push(Cond::Lt("day", Val::Int(t)));
        }
        let mut args = vec![];
        let w = where_sql(&conds, &mut args);
        let bucket = q
            .bucket
            .clone()
            .unwrap_or_else(|| "CAST(NULL AS BIGINT)".into());
        let mut group = vec!["kind".to_string()];
        if let Some(b) = &q.bucket {
            group.push(b.clone());
        }
        if by.is_some() {
            group.push(out.to_string());
        }
        let sum = |c: &str| format!("CAST(SUM({c}) AS BIGINT)");
        let sql = format!(
            "SELECT kind, {bucket}, {out}, {}, {}, {}, {} FROM kpi_daily WHERE {w} GROUP BY {}",
            sum("n"),
            sum("f1"),
            sum("f2"),
            sum("f4"),
            group.join(", ")
        );
        let rows = self.all(&sql, &args).await?;
        let counts: Result<Vec<KpiCount>> = rows
            .iter()
            .map(|r| {
                Ok(KpiCount {
                    kind: r.str(0)?,
                    bucket: r.opt_i64(1)?,
                    dim: r.opt_str(2)?,
                    n: r.i64(3)?,
                    flagged: [r.i64(4)?, r.i64(5)?, r.i64(6)?],
                })
            })
            .collect();
        // Keys whose facts all went away remain with zero counts.
        Ok(Some(counts?.into_iter().filter(|c| c.n != 0).collect()))
    }

    /// The durations' count, sum, median and 90th percentile per bucket and dimension, on
    /// the calendar and in business hours, by nearest rank (the ⌈p·n⌉-th smallest).
    /// PostgreSQL computes them in one pass (`percentile_disc` is the nearest rank); SQLite
    /// returns each value's count per column, and they are read off that.
    pub async fn kpi_stats(&mut self, q: &KpiQuery) -> Result<Vec<(KpiStat, KpiStat)>> {
        let mut args = vec![];
        let w = q.where_clause(&mut args);
        let (bucket, dim, group) = q.keys();
        let group_by = |extra: &str| {
            let mut g = group.clone();
            if !extra.is_empty() {
                g.push(extra.to_string());
            }
            if g.is_empty() {
                String::new()
            } else {
                format!(" GROUP BY {}", g.join(", "))
            }
        };
        let stat = |bucket, dim, n, sum, median, p90| KpiStat {
            bucket,
            dim,
            n,
            sum,
            median,
            p90,
        };
        if self.is_postgres() {
            let figures = |c: &str| {
                format!(
                    "COUNT({c}), CAST(SUM({c}) AS BIGINT), \
                     percentile_disc(0.5) WITHIN GROUP (ORDER BY {c}), \
                     percentile_disc(0.9) WITHIN GROUP (ORDER BY {c})"
                )
            };
            let sql = format!(
                "SELECT {bucket}, {dim}, {}, {} FROM kpi_facts WHERE {w} AND calendar IS NOT NULL{}",
                figures("calendar"),
                figures("business"),
                group_by("")
            );
            let mut out = vec![];
            for r in self.all(&sql, &args).await? {
                let (b, d, n) = (r.opt_i64(0)?, r.opt_str(1)?, r.i64(2)?);
                // Without grouping, no facts still make one row.
                if n > 0 {
                    let cal = stat(
                        b,
                        d.clone(),
                        n,
                        r.opt_i64(3)?.unwrap_or(0),
                        r.opt_i64(4)?,
                        r.opt_i64(5)?,
                    );
                    let bus = stat(
                        b,
                        d,
                        r.i64(6)?,
                        r.opt_i64(7)?.unwrap_or(0),
                        r.opt_i64(8)?,
                        r.opt_i64(9)?,
                    );
                    out.push((cal, bus));
                }
            }
            return Ok(out);
        }
        let mut hists: std::collections::BTreeMap<GroupKey, [Vec<(i64, i64)>; 2]> =
            std::collections::BTreeMap::new();
        for (i, column) in ["calendar", "business"].into_iter().enumerate() {
            let sql = format!(
                "SELECT {bucket}, {dim}, {column}, COUNT(*) FROM kpi_facts WHERE {w} AND {column} IS NOT NULL{}",
                group_by(column)
            );
            for r in self.all(&sql, &args).await? {
                hists.entry((r.opt_i64(0)?, r.opt_str(1)?)).or_default()[i]
                    .push((r.i64(2)?, r.i64(3)?));
            }
        }
        let read = |(b, d): &GroupKey, h: &mut Vec<(i64, i64)>| {
            h.sort_unstable();
            let n: i64 = h.iter().map(|x| x.1).sum();
            let at = |rank: i64| {
                let mut seen = 0;
                h.iter().find_map(|(v, c)| {
                    seen += c;
                    (seen >= rank).then_some(*v)
                })
            };
            let sum = h.iter().map(|(v, c)| v * c).sum();
            stat(*b, d.clone(), n, sum, at((n + 1) / 2), at((9 * n + 9) / 10))
        };
        Ok(hists
            .into_iter()
            .map(|(k, [mut cal, mut bus])| (read(&k, &mut cal), read(&k, &mut bus)))
            .collect())
    }

    /// [`Conn::kpi_stats`] over `buckets` (in order, covering the query's range), reading
    /// the figures of cacheable buckets from `kpi_stat_cache` where they are still valid, and
    /// computing the rest from the facts. Returns the figures and what to keep for the
    /// cacheable buckets that were computed ([`Conn::save_kpi_stats`], on a write
    /// connection). Queries the daily counts cannot key (two dimensions) are computed whole.
    ///
    /// A kept bucket is valid while the sum of its daily rows' versions is the one it was
    /// computed beside (migration 0015). The versions are read before the facts: a write
    /// between the two reads leaves the kept figures with an older sum than the table's, so
    /// they are computed again next time, never trusted.
    pub async fn kpi_stats_cached(
        &mut self,
        q: &KpiQuery,
        buckets: &[StatBucket],
    ) -> Result<(Vec<(KpiStat, KpiStat)>, Vec<StatFill>)> {
        let key = q
            .daily_key()
            .filter(|k| k.metric.is_none() && q.by() != Some("metric"));
        let cacheable: Vec<usize> = (0..buckets.len()).filter(|&i| buckets[i].cache).collect();
        let (Some(key), Some(&lo), Some(&hi)) = (key, cacheable.first(), cacheable.last()) else {
            return Ok((self.kpi_stats(q).await?, vec![]));
        };
        let (lo, hi) = (buckets[lo].first, buckets[hi].end);
        let kinds = q.kinds.join(",");
        // Read before the versions: a rebuild after this point makes these figures not kept.
        let generation = self.kpi_cache_generation(false).await?;
        let at = |day: i64| {
            buckets
                .partition_point(|b| b.first <= day)
                .saturating_sub(1)
        };
        // The dimension (and value) over the cacheable buckets' days, as `day` names them.
        let scoped = |mut conds: Vec<Cond>, day: &'static str| {
            conds.push(Cond::Eq("dim", Val::from(key.dim)));
            conds.push(Cond::Ge(day, Val::Int(lo)));
            conds.push(Cond::Lt(day, Val::Int(hi)));
            if let Some(v) = &key.value {
                conds.push(Cond::Eq("value", Val::from(v.as_str())));
            }
            conds
        };
        // The versions of the cacheable buckets' daily rows, by bucket and value.
        let conds = vec![Cond::In(
            "kind",
            q.kinds.iter().map(|k| Val::from(*k)).collect(),
        )];
        let mut args = vec![];
        let w = where_sql(&scoped(conds, "day"), &mut args);
        let sql = format!(
            "SELECT day, value, CAST(SUM(v) AS BIGINT) FROM kpi_daily WHERE {w} GROUP BY day, value"
        );
        let mut versions: BTreeMap<(usize, String), i64> = BTreeMap::new();
        for r in self.all(&sql, &args).await? {
            let b = at(r.i64(0)?);
            if buckets[b].cache {
                *versions.entry((b, r.str(1)?)).or_default() += r.i64(2)?;
            }
        }
        // What was kept, by bucket and value.
        let conds = vec![Cond::Eq("kinds", Val::from(kinds.as_str()))];
        let mut args = vec![];
        let w = where_sql(&scoped(conds, "first_day"), &mut args);
        let sql = format!(
            "SELECT first_day, end_day, value, vsum, {} FROM kpi_stat_cache WHERE {w}",
            STAT_COLUMNS.join(", ")
        );
        let mut kept: BTreeMap<(usize, String), (i64, KpiStat, KpiStat)> = BTreeMap::new();
        for r in self.all(&sql, &args).await? {
            let b = at(r.i64(0)?);
            if buckets[b].first != r.i64(0)? || buckets[b].end != r.i64(1)? {
                continue;
            }
            let stat = |i: usize| -> Result<KpiStat> {
                Ok(KpiStat {
                    bucket: None,
                    dim: None,
                    n: r.i64(i)?,
                    sum: r.i64(i + 1)?,
                    median: r.opt_i64(i + 2)?,
                    p90: r.opt_i64(i + 3)?,
                })
            };
            kept.insert((b, r.str(2)?), (r.i64(3)?, stat(4)?, stat(8)?));
        }
        // A bucket is read from what was kept when every value it has now was kept beside
        // the same versions.
        let mut valid = vec![false; buckets.len()];
        for &b in &cacheable {
            valid[b] = versions
                .range((b, String::new())..(b + 1, String::new()))
                .all(|(k, v)| kept.get(k).is_some_and(|x| x.0 == *v));
        }
        let stat_key = |b: usize, value: &str| -> (Option<i64>, Option<String>) {
            let bucket = q.bucket.as_ref().map(|_| buckets[b].first);
            let dim = q.by().is_some().then(|| value.to_string());
            (bucket, dim.filter(|d| !d.is_empty()))
        };
        let mut out = vec![];
        for ((b, value), (_, cal, bus)) in &kept {
            if valid[*b] && versions.contains_key(&(*b, value.clone())) && cal.n + bus.n > 0 {
                let (bucket, dim) = stat_key(*b, value);
                let with = |s: &KpiStat| KpiStat {
                    bucket,
                    dim: dim.clone(),
                    ..s.clone()
                };
                out.push((with(cal), with(bus)));
            }
        }
        // The rest from the facts: each run of buckets to compute is one query.
        let todo: Vec<usize> = (0..buckets.len()).filter(|&b| !valid[b]).collect();
        let mut runs: Vec<(usize, usize)> = vec![];
        for &b in &todo {
            match runs.last_mut() {
                Some(r) if r.1 + 1 == b => r.1 = b,
                _ => runs.push((b, b)),
            }
        }
        if runs.len() > 3 {
            runs = vec![(todo[0], todo[todo.len() - 1])];
        }
        let mut fills = vec![];
        let mut computed: BTreeMap<(usize, String), (KpiStat, KpiStat)> = BTreeMap::new();
        for (a, z) in runs {
            let mut part = q.clone();
            part.from_day = Some(buckets[a].first);
            part.to_day = Some(buckets[z].end);
            for (cal, bus) in self.kpi_stats(&part).await? {
                let b = at(cal.bucket.unwrap_or(buckets[a].first).max(buckets[a].first));
                if valid[b] {
                    continue;
                }
                let value = match q.by() {
                    Some(_) => cal.dim.clone().unwrap_or_default(),
                    None => key.value.clone().unwrap_or_default(),
                };
                computed.insert((b, value), (cal.clone(), bus.clone()));
                out.push((cal, bus));
            }
        }
        for ((b, value), vsum) in versions {
            if valid[b] {
                continue;
            }
            let (calendar, business) = computed
                .remove(&(b, value.clone()))
                .unwrap_or_else(|| (KpiStat::empty(), KpiStat::empty()));
            fills.push(StatFill {
                kinds: kinds.clone(),
                dim: key.dim,
                first: buckets[b].first,
                end: buckets[b].end,
                value,
                vsum,
                generation,
                calendar,
                business,
            });
        }
        Ok((out, fills))
    }

    /// The cache generation; `shared` (PostgreSQL) waits for a rebuild's clear in progress
    /// and keeps it from starting until this transaction ends.
    async fn kpi_cache_generation(&mut self, shared: bool) -> Result<i64> {
        let lock = if shared && self.is_postgres() {
            " FOR SHARE"
        } else {
            ""
        };
        self.int(
            &format!("SELECT generation FROM kpi_cache_generation WHERE id = 1{lock}"),
            &[],
        )
        .await
    }

    /// Keep closed buckets' figures ([`Conn::kpi_stats_cached`]), replacing what was kept.
    /// Figures computed before a rebuild cleared everything are dropped.
    pub async fn save_kpi_stats(&mut self, fills: &[StatFill]) -> Result<()> {
        let generation = self.kpi_cache_generation(true).await?;
        let mut fills: Vec<&StatFill> = fills
            .iter()
            .filter(|f| f.generation == generation)
            .collect();
        // One order for every writer, so two PostgreSQL writers never wait on each other
        // in a cycle.
        let key = |f: &StatFill| (f.kinds.clone(), f.dim, f.first, f.end, f.value.clone());
        fills.sort_by_key(|f| key(f));
        fills.dedup_by_key(|f| key(f));
        for chunk in fills.chunks(50) {
            let mut args = vec![];
            let mut rows = vec![];
            for f in chunk {
                let stat = |s: &KpiStat| {
                    [
                        Val::Int(s.n),
                        Val::Int(s.sum),
                        Val::from(s.median),
                        Val::from(s.p90),
                    ]
                };
                let mut vals = vec![
                    Val::from(f.kinds.as_str()),
                    Val::from(f.dim),
                    Val::Int(f.first),
                    Val::Int(f.end),
                    Val::from(f.value.as_str()),
                    Val::Int(f.vsum),
                ];
                vals.extend(stat(&f.calendar));
                vals.extend(stat(&f.business));
                rows.push(values_row(&mut args, vals));
            }
            let replaced: Vec<String> = std::iter::once("vsum")
                .chain(STAT_COLUMNS)
                .map(|c| format!("{c} = excluded.{c}"))
                .collect();
            let sql = format!(
                "INSERT INTO kpi_stat_cache (kinds, dim, first_day, end_day, value, vsum, {}) VALUES {} \
                 ON CONFLICT (kinds, dim, first_day, end_day, value) DO UPDATE SET {}",
                STAT_COLUMNS.join(", "),
                rows.join(", "),
                replaced.join(", ")
            );
            self.exec(&sql, &args).await?;
        }
        Ok(())
    }

    /// Tickets unsolved now (not deleted), counted by the query's dimension through their
    /// `created` facts (the query's conditions apply; its kinds and days do not).
    pub async fn kpi_open_tickets(&mut self, q: &KpiQuery) -> Result<Vec<(Option<String>, i64)>> {
        let mut args = vec![];
        let w = where_sql(&q.conds, &mut args);
        let dim = match q.by() {
            Some(b) => format!("CAST({b} AS TEXT)"),
            None => "CAST(NULL AS TEXT)".into(),
        };
        let group = q.by().map_or(String::new(), |b| format!(" GROUP BY {b}"));
        let sql = format!(
            "SELECT {dim}, COUNT(*) FROM kpi_facts WHERE kind = 'created' AND ticket_id IN \
             (SELECT id FROM tickets WHERE status IN ('new', 'open', 'pending', 'hold') AND deleted_at IS NULL) \
             AND {w}{group}"
        );
        let rows = self.all(&sql, &args).await?;
        rows.iter()
            .map(|r| Ok((r.opt_str(0)?, r.i64(1)?)))
            .collect()
    }

    /// PostgreSQL: lock an organisation's row, shared (a ticket write reading its plan) or
    /// exclusive (changing it), so facts never take a plan that is being changed. SQLite has
    /// one writer already.
    pub async fn lock_organization(&mut self, id: Id, exclusive: bool) -> Result<()> {
        if self.is_postgres() {
            let sql = if exclusive {
                "SELECT id FROM organizations WHERE id = $1 FOR UPDATE"
            } else {
                "SELECT id FROM organizations WHERE id = $1 FOR SHARE"
            };
            self.exec(sql, &[Val::Int(id)]).await?;
        }
        Ok(())
    }

    /// An organisation's plan or region changed: move its tickets' facts.
    pub async fn set_kpi_org(
        &mut self,
        organization_id: Id,
        plan: Option<String>,
        region: Option<String>,
    ) -> Result<()> {
        let moved = &["plan", "region"];
        self.roll("organization_id = $1", Val::Int(organization_id), moved, -1)
            .await?;
        self.exec(
            "UPDATE kpi_facts SET plan = $2, region = $3 WHERE organization_id = $1",
            &[
                Val::Int(organization_id),
                Val::from(plan),
                Val::from(region),
            ],
        )
        .await?;
        self.roll("organization_id = $1", Val::Int(organization_id), moved, 1)
            .await
    }

    /// Benchmarks: `per_ticket` synthetic facts for each of `tickets` tickets (ids from
    /// `first_id`), created evenly over `days` days from day `first_day` (UTC), with agents,
    /// groups and organisations taken in turn from the given id ranges. Kinds cycle through
    /// created, first reply, public replies, an internal note, a next reply, the solve with its
    /// resolution and requester wait, and an SLA outcome (one in ten missed). Organisation k
    /// (from 0) has plan priority, standard, standard, expired, community for k % 5 and region
    /// amer, emea, apac for k % 3.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_synthetic_kpi_facts(
        &mut self,
        first_id: Id,
        tickets: i64,
        per_ticket: i64,
        first_day: i64,
        days: i64,
        agents: (Id, i64),
        groups: (Id, i64),
        orgs: (Id, i64),
    ) -> Result<()> {
        // Row x: ticket x / per_ticket, fact j = x % per_ticket.
        let body = "SELECT $1 + x / $3 AS ticket_id, \
             ($4 * 86400) + ((x / $3) * $5 * 86400) / $2 + (x % $3) * 3600 * (1 + (x / $3) % 7) AS time, \
             CASE x % $3 WHEN 0 THEN 'created' WHEN 1 THEN 'first_reply' WHEN 2 THEN 'public_reply' \
               WHEN 3 THEN 'public_reply' WHEN 4 THEN 'internal_note' WHEN 5 THEN 'next_reply' \
               WHEN 6 THEN 'solved' WHEN 7 THEN 'resolution' WHEN 8 THEN 'requester_wait' \
               WHEN 9 THEN CASE WHEN (x / $3) % 10 = 0 THEN 'sla_missed' ELSE 'sla_met' END \
               ELSE 'public_reply' END AS kind, \
             $6 + ((x / $3) * 7 + x % $3) % $7 AS agent, \
             (x * 2654435761) % 3000 AS minutes, \
             x";
        let sql = if self.is_postgres() {
            format!(
                "INSERT INTO kpi_facts (ticket_id, time, day, kind, agent_id, metric, calendar, business, flags, \
                 assignee_id, group_id, organization_id, form_id, priority, channel, plan, region) \
                 SELECT ticket_id, time, time / 86400, kind, \
                   CASE WHEN kind IN ('public_reply', 'internal_note', 'solved', 'first_reply', 'next_reply') THEN agent END, \
                   CASE WHEN kind IN ('sla_met', 'sla_missed') THEN 'first_reply_time' END, \
                   CASE WHEN kind IN ('first_reply', 'next_reply', 'resolution', 'requester_wait') THEN minutes END, \
                   CASE WHEN kind IN ('first_reply', 'next_reply', 'resolution', 'requester_wait') THEN minutes * 2 / 3 END, \
                   CASE WHEN kind = 'public_reply' THEN x % 2 WHEN kind = 'solved' THEN (CASE WHEN ticket_id % 3 = 0 THEN 2 ELSE 0 END) + (CASE WHEN ticket_id % 20 = 0 THEN 4 ELSE 0 END) ELSE 0 END, \
                   $6 + (ticket_id * 7) % $7, $8 + ticket_id % $9, $10 + ticket_id % $11, NULL, \
                   (ARRAY['low', 'normal', 'high', 'urgent'])[1 + ticket_id % 4], \
                   CASE WHEN ticket_id % 3 = 0 THEN 'web' ELSE 'email' END, \
                   CASE (ticket_id % $11) % 5 WHEN 0 THEN 'priority' WHEN 3 THEN 'expired' WHEN 4 THEN 'community' ELSE 'standard' END, \
                   CASE (ticket_id % $11) % 3 WHEN 0 THEN 'amer' WHEN 1 THEN 'emea' ELSE 'apac' END \
                 FROM ({body} FROM generate_series(0::bigint, $2 * $3 - 1) AS x) AS g"
            )
        } else {
            format!(
                "WITH RECURSIVE s(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM s WHERE x + 1 < $2 * $3) \
                 INSERT INTO kpi_facts (ticket_id, time, day, kind, agent_id, metric, calendar, business, flags, \
                 assignee_id, group_id, organization_id, form_id, priority, channel, plan, region) \
                 SELECT ticket_id, time, time / 86400, kind, \
                   CASE WHEN kind IN ('public_reply', 'internal_note', 'solved', 'first_reply', 'next_reply') THEN agent END, \
                   CASE WHEN kind IN ('sla_met', 'sla_missed') THEN 'first_reply_time' END, \
                   CASE WHEN kind IN ('first_reply', 'next_reply', 'resolution', 'requester_wait') THEN minutes END, \
                   CASE WHEN kind IN ('first_reply', 'next_reply', 'resolution', 'requester_wait') THEN minutes * 2 / 3 END, \
                   CASE WHEN kind = 'public_reply' THEN x % 2 WHEN kind = 'solved' THEN (CASE WHEN ticket_id % 3 = 0 THEN 2 ELSE 0 END) + (CASE WHEN ticket_id % 20 = 0 THEN 4 ELSE 0 END) ELSE 0 END, \
                   $6 + (ticket_id * 7) % $7, $8 + ticket_id % $9, $10 + ticket_id % $11, NULL, \
                   CASE ticket_id % 4 WHEN 0 THEN 'low' WHEN 1 THEN 'normal' WHEN 2 THEN 'high' ELSE 'urgent' END, \
                   CASE WHEN ticket_id % 3 = 0 THEN 'web' ELSE 'email' END, \
                   CASE (ticket_id % $11) % 5 WHEN 0 THEN 'priority' WHEN 3 THEN 'expired' WHEN 4 THEN 'community' ELSE 'standard' END, \
                   CASE (ticket_id % $11) % 3 WHEN 0 THEN 'amer' WHEN 1 THEN 'emea' ELSE 'apac' END \
                 FROM ({body} FROM s) AS g"
            )
        };
        self.exec(
            &sql,
            &[
                Val::Int(first_id),
                Val::Int(tickets),
                Val::Int(per_ticket),
                Val::Int(first_day),
                Val::Int(days),
                Val::Int(agents.0),
                Val::Int(agents.1.max(1)),
                Val::Int(groups.0),
                Val::Int(groups.1.max(1)),
                Val::Int(orgs.0),
                Val::Int(orgs.1.max(1)),
            ],
        )
        .await?;
        Ok(())
    }

    /// The ids of the tickets with an id above `after`, in order, up to `limit`, deleted ones
    /// included (what a rebuild walks).
    pub async fn ticket_ids_after(&mut self, after: Id, limit: i64) -> Result<Vec<Id>> {
        let rows = self
            .all(
                "SELECT id FROM tickets WHERE id > $1 ORDER BY id LIMIT $2",
                &[Val::Int(after), Val::Int(limit)],
            )
            .await?;
        rows.iter().map(|r| r.i64(0)).collect()
    }
}
