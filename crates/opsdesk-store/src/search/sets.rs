//! Ticket searches led by free text or a tag (docs/search.md, "Free text and tags"): the
//! full-text index and the tag index give the ids of the matching tickets, which are
//! intersected, subtracted and counted here rather than by the database, so no ticket row is
//! read to count them, and a page is found by walking the sort index until it holds enough.
//!
//! SQLite's FTS rowids carry the ticket id (search::comment_rowid) and PostgreSQL's comment
//! matches carry `ticket_id`; `ticket_tags` carries each live ticket's status (migration
//! 0018), so `status:open tags:x` is one index range. Each term (on PostgreSQL, all the
//! positive text terms together) becomes one statement whose result is a single
//! comma-separated list (one row, so the driver's per-row cost is paid once), deduplicated in
//! Rust. The rest of the query (people, dates, visibility…) is the same
//! SQL the other searches use, checked per candidate when there are few, or listed and
//! intersected.

use std::sync::atomic::{AtomicBool, Ordering};

use opsdesk_core::model::Id;
use opsdesk_core::search::{Clause, Filter, Kind, Plan, SortKey, TextField};
use opsdesk_core::ticket::Status;

use super::{anchored, sort_expr, Hit, Visibility};
use crate::db::{Conn, Val};
use crate::{Result, StoreError};

/// At or below this many matches a page reads each match's sort value from `tickets_sort`;
/// above it, it walks the sort index when that reads fewer entries (matches² > 2 × page end ×
/// tickets).
const LOOKUP_MAX: usize = 2_000;
/// At or below this many text matches the rest of the query is checked per ticket; above it,
/// the rest's matches are listed and intersected.
const PROBE_MAX: usize = 5_000;
/// The most matches of the rest of a query that are listed; past it the text matches are
/// checked per ticket, a chunk at a time.
const REST_MAX: usize = 300_000;
/// A page walk gives up (and reads each match's sort value instead) after this many index
/// entries per match, at least WALK_MIN: an index entry costs a fraction of a row read.
const WALK_PER_ID: usize = 20;
const WALK_MIN: usize = 100_000;
/// A tag in a query narrowed by a person, group or organisation is listed from the tag index
/// when it has at most this many live tickets (of the query's status); a more common one is
/// checked per row of the narrower set.
const TAG_LIST_MAX: usize = 20_000;
/// Ids per `IN (…)` list.
const CHUNK: usize = 5_000;

/// Set by tests to take the index walk (in 3-row chunks) and the listed intersection whatever
/// the sizes.
static FORCE_WALK: AtomicBool = AtomicBool::new(false);

/// Make every id-set search take the index walk and the listed intersection, however few its
/// matches (tests: the results must be the same either way).
pub fn force_set_walk(on: bool) {
    FORCE_WALK.store(on, Ordering::Relaxed);
}

fn forced() -> bool {
    FORCE_WALK.load(Ordering::Relaxed)
}

/// Every alternative of the clause is ticket text (answered from the full-text index).
fn all_text(c: &Clause) -> bool {
    !c.any.is_empty()
        && c.any.iter().all(|f| {
            matches!(
                f,
                Filter::Text {
                    field: TextField::Any
                        | TextField::Subject
                        | TextField::Description
                        | TextField::Comment,
                    ..
                }
            )
        })
}

/// Ticket text that is not negated: a set to intersect.
fn is_text(c: &Clause) -> bool {
    !c.negated && all_text(c)
}

/// A clause answered from the tag index: every alternative is a tag.
fn is_tag(c: &Clause) -> bool {
    !c.negated && !c.any.is_empty() && c.any.iter().all(|f| matches!(f, Filter::Tag(Some(_))))
}

/// The statuses of a plain `status:`/`status<…` clause, which the tag index can answer.
fn statuses(c: &Clause) -> Option<&[Status]> {
    match &c.any[..] {
        [Filter::Status(ss)] if !c.negated => Some(ss),
        _ => None,
    }
}

/// Sorted, deduplicated ids in both `a` and `b`.
fn intersect(a: &[Id], b: &[Id]) -> Vec<Id> {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    small
        .iter()
        .copied()
        .filter(|x| large.binary_search(x).is_ok())
        .collect()
}

/// Sorted ids in `a` and not in `b`.
fn subtract(a: &[Id], b: &[Id]) -> Vec<Id> {
    a.iter()
        .copied()
        .filter(|x| b.binary_search(x).is_err())
        .collect()
}

fn id_list_sql(ids: &[Id]) -> String {
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

impl Conn {
    /// The integers of a statement whose rows are one column `x` (an integer, or text of
    /// comma-separated integers), read as one aggregated row, in no particular order.
    async fn ints(&mut self, sql: &str, args: &[Val]) -> Result<Vec<i64>> {
        let agg = if self.is_postgres() {
            format!("SELECT string_agg(x::text, ',') FROM ({sql}) s")
        } else {
            format!("SELECT group_concat(x) FROM ({sql})")
        };
        let row = self.one(&agg, args).await?;
        let Some(text) = row.opt_str(0)? else {
            return Ok(vec![]);
        };
        text.split(',')
            .map(|x| {
                x.parse::<i64>()
                    .map_err(|_| StoreError::Corrupt(format!("not an id: {x:?}")))
            })
            .collect()
    }

    /// `(value, id)` pairs of a statement whose rows are one column `x` made by
    /// [`Conn::pair`], sorted by value then id, in the given direction.
    async fn pairs(&mut self, sql: &str, descending: bool) -> Result<Vec<(i64, Id)>> {
        let flat = self.ints(sql, &[]).await?;
        let mut pairs: Vec<(i64, Id)> = flat.chunks_exact(2).map(|p| (p[1], p[0])).collect();
        pairs.sort_unstable();
        if descending {
            pairs.reverse();
        }
        Ok(pairs)
    }

    /// An id and an integer value as one text column for [`Conn::pairs`].
    fn pair(&self, id: &str, value: &str) -> String {
        if self.is_postgres() {
            format!("{id}::text || ',' || ({value})::text")
        } else {
            format!("{id} || ',' || ({value})")
        }
    }

    /// As [`Conn::ints`], sorted and deduplicated.
    async fn id_set(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Id>> {
        let mut ids = self.ints(sql, args).await?;
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// The tickets a text or tag clause matches (any of its alternatives); tags only among
    /// tickets with one of `status` when given. With `most`, the list stops after one more
    /// row than that, so a caller can tell a larger set without reading all of it: a list cut
    /// there comes back as read, more than `most` long (rows count duplicates, a ticket with
    /// two tags matching `tags:x*` twice, so only an uncut list is deduplicated). PostgreSQL
    /// answers ticket text from `ticket_words` (Conn::words_ids).
    async fn clause_ids(
        &mut self,
        c: &Clause,
        status: Option<&[Status]>,
        vis: Option<&Visibility>,
        most: Option<usize>,
    ) -> Result<Vec<Id>> {
        if self.is_postgres() && all_text(c) {
            return self.words_ids(&[c], vis).await;
        }
        let mut args = vec![];
        let mut s = self.sql(&mut args);
        let mut sources = vec![];
        for f in &c.any {
            match f {
                Filter::Text {
                    field,
                    words,
                    prefix,
                } => sources.extend(s.text_sources(Kind::Ticket, *field, words, *prefix, vis)),
                Filter::Tag(Some(tag)) => {
                    // Live tickets only (a deleted ticket's rows have no status).
                    let status = match status {
                        Some(ss) => format!(
                            "status IN ({})",
                            s.ps(ss.iter().map(|x| Val::from(x.as_str())))
                        ),
                        None => "status IS NOT NULL".into(),
                    };
                    let tag = s.tag_cond(tag).replace("{v}", "tag");
                    sources.push(format!(
                        "SELECT ticket_id AS x FROM ticket_tags WHERE {tag} AND {status}"
                    ));
                }
                _ => {}
            }
        }
        let union = sources.join(" UNION ALL ");
        match most {
            Some(n) => {
                let sql = format!("SELECT x FROM ({union}) u LIMIT {}", n + 1);
                let mut ids = self.ints(&sql, &args).await?;
                if ids.len() <= n {
                    ids.sort_unstable();
                    ids.dedup();
                }
                Ok(ids)
            }
            None => self.id_set(&union, &args).await,
        }
    }

    /// PostgreSQL: the tickets all of `clauses` (ticket text, each any of its alternatives)
    /// match, in one statement over `ticket_words` whose GIN scans meet in one bitmap, rather
    /// than a list of ids per clause to intersect. The tickets matched by comments kept on
    /// their own rows (few; search::Sql::overflow_text) or named by a bare number are listed
    /// first and named in their clause, as one bound array.
    async fn words_ids(
        &mut self,
        clauses: &[&Clause],
        vis: Option<&Visibility>,
    ) -> Result<Vec<Id>> {
        let mut args = vec![];
        let mut conds = vec![];
        for c in clauses {
            let mut alts = vec![];
            for f in &c.any {
                let Filter::Text {
                    field,
                    words,
                    prefix,
                } = f
                else {
                    continue;
                };
                let mut own = vec![];
                let mut s = self.sql(&mut own);
                let listed: Vec<String> = s
                    .overflow_text(*field, words, *prefix, vis)
                    .into_iter()
                    .chain(s.bare_ticket(*field, words))
                    .collect();
                if !listed.is_empty() {
                    let found = self.id_set(&listed.join(" UNION ALL "), &own).await?;
                    if !found.is_empty() {
                        // One bound array, however many there are.
                        let list = Val::Text(format!("{{{}}}", id_list_sql(&found)));
                        let p = self.sql(&mut args).p(list);
                        alts.push(format!("ticket_id = ANY(CAST({p} AS BIGINT[]))"));
                    }
                }
                alts.push(self.sql(&mut args).words_text(*field, words, *prefix, vis));
            }
            conds.push(format!("({})", alts.join(" OR ")));
        }
        let sql = format!(
            "SELECT ticket_id AS x FROM ticket_words WHERE {}",
            conds.join(" AND ")
        );
        self.id_set(&sql, &args).await
    }

    /// The ids (sorted) of the tickets a plan matches when free text or a tag leads it: a
    /// plan for tickets only with a text clause that is not negated, or a tag clause with no
    /// person, group or organisation to narrow it, or with one and a tag on at most
    /// TAG_LIST_MAX live tickets (a commoner tag is checked per row). `None` for any other
    /// plan, which the SQL of search::Sql answers whole.
    pub(crate) async fn set_matches(
        &mut self,
        plan: &Plan,
        vis: Option<&Visibility>,
    ) -> Result<Option<Vec<Id>>> {
        if plan.kinds != [Kind::Ticket] {
            return Ok(None);
        }
        // A status clause goes into the tag index's range when there is a tag to read.
        let status_at = plan.clauses.iter().position(|c| statuses(c).is_some());
        let tag_at = plan.clauses.iter().position(is_tag);
        // With a person, group or organisation to narrow the query, a tag is read from its
        // index only when it is rare enough to list (a common one is checked per row of the
        // narrower set by the single statement).
        let mut first_tag = None;
        let with_tags = match tag_at {
            None => false,
            Some(_) if !anchored(plan) => true,
            Some(i) => {
                let status = status_at.and_then(|j| statuses(&plan.clauses[j]));
                // Tests take the other way as soon as a tag has more than two rows.
                let most = if forced() { 2 } else { TAG_LIST_MAX };
                let found = self
                    .clause_ids(&plan.clauses[i], status, vis, Some(most))
                    .await?;
                let rare = found.len() <= most;
                if rare {
                    first_tag = Some((i, found));
                }
                rare
            }
        };
        if !with_tags && !plan.clauses.iter().any(is_text) {
            return Ok(None);
        }
        let status_at = if with_tags { status_at } else { None };
        let status = status_at.and_then(|i| statuses(&plan.clauses[i]));
        // PostgreSQL: the text clauses are one statement (Conn::words_ids), not one each.
        let text: Vec<&Clause> = plan.clauses.iter().filter(|c| is_text(c)).collect();
        let together = self.is_postgres() && !text.is_empty();
        let mut ids: Option<Vec<Id>> = None;
        if together {
            let found = self.words_ids(&text, vis).await?;
            if found.is_empty() {
                return Ok(Some(found));
            }
            ids = Some(found);
        }
        let mut rest = vec![];
        let mut negated = vec![];
        for (i, c) in plan.clauses.iter().enumerate() {
            if Some(i) == status_at {
                continue;
            }
            if c.negated && all_text(c) {
                negated.push(c);
                continue;
            }
            if !(is_text(c) || with_tags && is_tag(c)) {
                rest.push(c);
                continue;
            }
            if together && is_text(c) {
                continue;
            }
            let found = match &mut first_tag {
                Some((at, found)) if *at == i => std::mem::take(found),
                _ => self.clause_ids(c, status, vis, None).await?,
            };
            let next = match ids {
                None => found,
                Some(a) => intersect(&a, &found),
            };
            if next.is_empty() {
                return Ok(Some(next));
            }
            ids = Some(next);
        }
        let mut ids = ids.unwrap_or_default();
        for c in negated {
            let found = self.clause_ids(c, None, vis, None).await?;
            ids = subtract(&ids, &found);
        }
        if rest.is_empty() && vis.is_none() {
            if !plan.clauses.iter().any(is_text) {
                // Tag rows of deleted tickets have no status: nothing to take out.
                return Ok(Some(ids));
            }
            // Only the soft-deleted tickets to take out: few, and listed by their own index.
            let deleted = self
                .id_set(
                    "SELECT id AS x FROM tickets WHERE deleted_at IS NOT NULL",
                    &[],
                )
                .await?;
            return Ok(Some(subtract(&ids, &deleted)));
        }
        let rest_plan = Plan {
            kinds: vec![Kind::Ticket],
            clauses: rest.into_iter().cloned().collect(),
            sort: plan.sort,
            descending: plan.descending,
        };
        let mut args = vec![];
        let w = self.sql(&mut args).where_for(Kind::Ticket, &rest_plan, vis);
        if forced() || ids.len() > PROBE_MAX {
            let listed = self
                .id_set(
                    &format!(
                        "SELECT t.id AS x FROM tickets t WHERE {w} LIMIT {}",
                        REST_MAX + 1
                    ),
                    &args,
                )
                .await?;
            if listed.len() <= REST_MAX {
                return Ok(Some(intersect(&ids, &listed)));
            }
        }
        // Few text matches (or a rest too broad to list): check each against the rest.
        let mut out = vec![];
        for chunk in ids.chunks(CHUNK) {
            out.extend(
                self.ints(
                    &format!(
                        "SELECT t.id AS x FROM tickets t WHERE t.id IN ({}) AND {w}",
                        id_list_sql(chunk)
                    ),
                    &args,
                )
                .await?,
            );
        }
        out.sort_unstable();
        Ok(Some(out))
    }

    /// Hits `offset..offset + limit` of `ids` (sorted ids of live tickets) in the plan's order
    /// (the sort value, then the id, both in the plan's direction).
    pub(crate) async fn set_page(
        &mut self,
        ids: &[Id],
        sort: SortKey,
        descending: bool,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<Hit>> {
        let need = offset + limit;
        let col = match sort {
            SortKey::Updated => Some("updated_at"),
            SortKey::Created => Some("created_at"),
            _ => None,
        };
        let walked = match col {
            Some(col) if forced() || ids.len() > LOOKUP_MAX => {
                let max_id = self
                    .int("SELECT COALESCE(MAX(id), 0) FROM tickets", &[])
                    .await?
                    .max(1) as f64;
                // A lookup reads one index entry per match; a walk about need / density.
                let n = ids.len() as f64;
                if forced() || n * n > 2.0 * need as f64 * max_id {
                    self.walk(ids, col, descending, need, n / max_id).await?
                } else {
                    None
                }
            }
            _ => None,
        };
        let mut found = match walked {
            Some(found) => found,
            None => self.lookup(ids, sort, descending).await?,
        };
        found.truncate(need);
        Ok(found
            .into_iter()
            .skip(offset)
            .map(|(sort, id)| Hit {
                kind: Kind::Ticket,
                id,
                sort,
            })
            .collect())
    }

    /// `(sort value, id)` of every ticket in `ids`, in order.
    async fn lookup(
        &mut self,
        ids: &[Id],
        sort: SortKey,
        descending: bool,
    ) -> Result<Vec<(i64, Id)>> {
        let pair = self.pair("t.id", &sort_expr(Kind::Ticket, sort));
        // The times are in the compact `tickets_sort` index (migration 0019), so no ticket row
        // is read; SQLite is told to use it (it would read the rows by rowid).
        let from = match sort {
            SortKey::Updated | SortKey::Created if !self.is_postgres() => {
                "tickets t INDEXED BY tickets_sort"
            }
            _ => "tickets t",
        };
        let mut out = vec![];
        for chunk in ids.chunks(CHUNK) {
            let sql = format!(
                "SELECT {pair} AS x FROM {from} WHERE t.id IN ({})",
                id_list_sql(chunk)
            );
            out.extend(self.pairs(&sql, descending).await?);
        }
        if ids.len() > CHUNK {
            out.sort_unstable();
            if descending {
                out.reverse();
            }
        }
        Ok(out)
    }

    /// The first `need` tickets of `ids` in `col` order, found by walking the `(col, id)`
    /// index a chunk at a time; each chunk is sized from how dense the matches are. `None`
    /// when the walk has read many more index entries than there are ids (the matches sit far
    /// from where the walk starts), so reading each one's sort value is cheaper.
    async fn walk(
        &mut self,
        ids: &[Id],
        col: &str,
        descending: bool,
        need: usize,
        density: f64,
    ) -> Result<Option<Vec<(i64, Id)>>> {
        let (op, dir) = if descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let pair = self.pair("id", col);
        let density = density.clamp(1e-6, 1.0);
        let budget = ids.len().saturating_mul(WALK_PER_ID).max(WALK_MIN);
        let mut scanned = 0;
        let mut out = vec![];
        let mut last: Option<(i64, Id)> = None;
        loop {
            if scanned > budget {
                return Ok(None);
            }
            let want = (need - out.len()) as f64;
            // Forced in tests: chunks of three rows, so resuming after a chunk is exercised.
            let n = if forced() {
                3
            } else {
                ((want / density) * 1.5 + 64.0).clamp(256.0, 100_000.0) as usize
            };
            let bound = match last {
                Some((s, id)) => format!("WHERE ({col}, id) {op} ({s}, {id}) "),
                None => String::new(),
            };
            let sql = format!(
                "SELECT {pair} AS x FROM (SELECT id, {col} FROM tickets {bound}ORDER BY {col} {dir}, id {dir} LIMIT {n}) w"
            );
            let chunk = self.pairs(&sql, descending).await?;
            scanned += chunk.len();
            for &(s, id) in &chunk {
                if ids.binary_search(&id).is_ok() {
                    out.push((s, id));
                    if out.len() == need {
                        return Ok(Some(out));
                    }
                }
            }
            if chunk.len() < n {
                return Ok(Some(out));
            }
            last = chunk.last().copied();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets() {
        assert_eq!(intersect(&[1, 3, 5, 7], &[3, 4, 5]), vec![3, 5]);
        assert_eq!(intersect(&[], &[3, 4, 5]), Vec::<i64>::new());
        assert_eq!(subtract(&[1, 3, 5, 7], &[3, 4, 5]), vec![1, 7]);
        assert_eq!(subtract(&[1, 3], &[]), vec![1, 3]);
    }
}
