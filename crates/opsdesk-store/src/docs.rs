//! Generic document CRUD: each record type names its table and index columns once.

use opsdesk_core::model::Id;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::db::{Conn, Row, Val};
use crate::{Result, StoreError};

/// A record stored as JSON in `data` with index columns beside it.
pub trait Doc: Serialize + DeserializeOwned + Send + Sync {
    const TABLE: &'static str;
    /// Index columns, in the order [`Doc::values`] returns them.
    const COLUMNS: &'static [&'static str];
    fn id(&self) -> Id;
    fn set_id(&mut self, id: Id);
    fn values(&self) -> Vec<Val>;
    /// Searched records (tickets, users, organisations) carry `change_seq` for the cursor
    /// exports and a full-text entry written with every insert and update (see `search.rs`).
    const SEARCHED: bool = false;
    /// Rows are soft-deleted (`deleted_at`) and stay in the change streams as deletions.
    const SOFT_DELETED: bool = false;
    /// The record's searchable fields as opsdesk_core::search tokenizes them, at most four
    /// (empty unless [`Doc::SEARCHED`]).
    fn search_text(&self) -> Vec<String> {
        vec![]
    }
}

/// Implement [`Doc`] for a record type: its table, index columns, and their values.
macro_rules! doc_record {
    ($ty:ty, $table:expr, [$($col:expr),*], |$s:ident| [$($val:expr),*]) => {
        impl $crate::docs::Doc for $ty {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &[$($col),*];
            fn id(&self) -> opsdesk_core::model::Id { self.id }
            fn set_id(&mut self, id: opsdesk_core::model::Id) { self.id = id; }
            fn values(&self) -> Vec<$crate::db::Val> { let $s = self; vec![$($val),*] }
        }
    };
    ($ty:ty, $table:expr, [$($col:expr),*], |$s:ident| [$($val:expr),*],
     searched |$t:ident| [$($text:expr),*]) => {
        impl $crate::docs::Doc for $ty {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] = &[$($col),*];
            const SEARCHED: bool = true;
            fn id(&self) -> opsdesk_core::model::Id { self.id }
            fn set_id(&mut self, id: opsdesk_core::model::Id) { self.id = id; }
            fn values(&self) -> Vec<$crate::db::Val> { let $s = self; vec![$($val),*] }
            fn search_text(&self) -> Vec<String> { let $t = self; vec![$($text),*] }
        }
    };
}
pub(crate) use doc_record;

/// A filter condition. Column names are always static strings from this crate.
#[derive(Debug, Clone)]
pub enum Cond {
    Eq(&'static str, Val),
    Ne(&'static str, Val),
    Gt(&'static str, Val),
    Ge(&'static str, Val),
    Lt(&'static str, Val),
    Le(&'static str, Val),
    IsNull(&'static str),
    NotNull(&'static str),
    In(&'static str, Vec<Val>),
    /// `(a = x OR b IN (...))` style alternatives: any of the inner conditions.
    Any(Vec<Cond>),
    /// `col LIKE pattern` on a lower-cased key column.
    Like(&'static str, Val),
    /// `col [NOT] IN (SELECT … WHERE key IN (values))`: `select` is a static
    /// `SELECT x FROM t WHERE key` prefix (e.g. tickets carrying any of some tags).
    InSelect {
        col: &'static str,
        select: &'static str,
        values: Vec<Val>,
        negate: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    Asc,
    Desc,
}

/// Which slice of a list to read.
#[derive(Debug, Clone)]
pub enum Page {
    /// 1-based page number; `per_page` items each; count the total.
    Offset {
        page: i64,
        per_page: i64,
        order: Order,
    },
    /// Keyset pagination on id.
    Cursor {
        size: i64,
        after: Option<Id>,
        before: Option<Id>,
        order: Order,
    },
    /// Everything (bounded by the caller).
    All { limit: i64 },
}

/// A page of records.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Total matching rows (offset pagination only).
    pub count: Option<i64>,
    /// More rows lie beyond this page in the direction of travel.
    pub has_more: bool,
    /// For cursor pagination: rows exist before the first item.
    pub has_prev: bool,
}

impl<T> Paged<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Paged<U> {
        Paged {
            items: self.items.into_iter().map(f).collect(),
            count: self.count,
            has_more: self.has_more,
            has_prev: self.has_prev,
        }
    }
}

/// Render conditions as a WHERE clause, appending bind values.
pub fn where_sql(conds: &[Cond], args: &mut Vec<Val>) -> String {
    if conds.is_empty() {
        return "1=1".into();
    }
    conds
        .iter()
        .map(|c| cond_sql(c, args))
        .collect::<Vec<_>>()
        .join(" AND ")
}

fn push(args: &mut Vec<Val>, v: Val) -> String {
    args.push(v);
    format!("${}", args.len())
}

fn cond_sql(c: &Cond, args: &mut Vec<Val>) -> String {
    match c {
        Cond::Eq(col, v) => format!("{col} = {}", push(args, v.clone())),
        Cond::Ne(col, v) => format!("{col} <> {}", push(args, v.clone())),
        Cond::Gt(col, v) => format!("{col} > {}", push(args, v.clone())),
        Cond::Ge(col, v) => format!("{col} >= {}", push(args, v.clone())),
        Cond::Lt(col, v) => format!("{col} < {}", push(args, v.clone())),
        Cond::Le(col, v) => format!("{col} <= {}", push(args, v.clone())),
        Cond::IsNull(col) => format!("{col} IS NULL"),
        Cond::NotNull(col) => format!("{col} IS NOT NULL"),
        Cond::Like(col, v) => format!("{col} LIKE {}", push(args, v.clone())),
        Cond::In(col, vs) => {
            if vs.is_empty() {
                "1=0".into()
            } else {
                let ps: Vec<String> = vs.iter().map(|v| push(args, v.clone())).collect();
                format!("{col} IN ({})", ps.join(", "))
            }
        }
        Cond::InSelect {
            col,
            select,
            values,
            negate,
        } => {
            if values.is_empty() {
                return if *negate { "1=1".into() } else { "1=0".into() };
            }
            let ps: Vec<String> = values.iter().map(|v| push(args, v.clone())).collect();
            let not = if *negate { "NOT " } else { "" };
            format!("{col} {not}IN ({select} IN ({}))", ps.join(", "))
        }
        Cond::Any(cs) => {
            if cs.is_empty() {
                "1=0".into()
            } else {
                let parts: Vec<String> = cs.iter().map(|c| cond_sql(c, args)).collect();
                format!("({})", parts.join(" OR "))
            }
        }
    }
}

pub(crate) fn decode<D: Doc>(row: &Row) -> Result<D> {
    let id = row.i64(0)?;
    let mut d: D = row.json(1)?;
    d.set_id(id);
    Ok(d)
}

fn to_json<D: Serialize>(d: &D) -> Result<String> {
    serde_json::to_string(d).map_err(|e| StoreError::Corrupt(e.to_string()))
}

impl Conn {
    fn lock_clause(&self) -> &'static str {
        if matches!(self, Conn::PgTx(_)) {
            " FOR UPDATE"
        } else {
            ""
        }
    }

    /// Insert a record; sets its id.
    pub async fn insert<D: Doc>(&mut self, d: &mut D) -> Result<Id> {
        let id = self.insert_row(d, false).await?;
        d.set_id(id);
        Ok(id)
    }

    /// Insert a record with the id it already has.
    pub async fn insert_with_id<D: Doc>(&mut self, d: &mut D) -> Result<Id> {
        self.insert_row(d, true).await
    }

    async fn insert_row<D: Doc>(&mut self, d: &D, with_id: bool) -> Result<Id> {
        let mut args = vec![];
        let mut cols = vec![];
        if with_id {
            args.push(Val::Int(d.id()));
            cols.push("id".to_string());
        }
        args.extend(d.values());
        cols.extend(D::COLUMNS.iter().map(|c| c.to_string()));
        args.push(Val::Text(to_json(d)?));
        cols.push("data".into());
        let mut ps: Vec<String> = (1..=args.len()).map(|i| format!("${i}")).collect();
        for (col, expr) in self.tracked_columns(d, &mut args) {
            cols.push(col.into());
            ps.push(expr);
        }
        let sql = format!(
            "INSERT INTO {} ({}) VALUES ({}) RETURNING id",
            D::TABLE,
            cols.join(", "),
            ps.join(", ")
        );
        let id = self.int(&sql, &args).await?;
        if D::SEARCHED {
            self.index_text(D::TABLE, id, &d.search_text(), false)
                .await?;
        }
        Ok(id)
    }

    /// Replace a record's data and index columns.
    pub async fn update<D: Doc>(&mut self, d: &D) -> Result<()> {
        let mut args = d.values();
        let mut sets: Vec<String> = D::COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect();
        args.push(Val::Text(to_json(d)?));
        sets.push(format!("data = ${}", args.len()));
        for (col, expr) in self.tracked_columns(d, &mut args) {
            sets.push(format!("{col} = {expr}"));
        }
        args.push(Val::Int(d.id()));
        let sql = format!(
            "UPDATE {} SET {} WHERE id = ${}",
            D::TABLE,
            sets.join(", "),
            args.len()
        );
        match self.exec(&sql, &args).await? {
            0 => Err(StoreError::NotFound),
            _ => {
                if D::SEARCHED {
                    self.index_text(D::TABLE, d.id(), &d.search_text(), true)
                        .await?;
                }
                Ok(())
            }
        }
    }

    /// A record by id. Inside a PostgreSQL transaction the row is locked (`FOR UPDATE`) until
    /// the transaction ends, so read-modify-write use cases cannot lose each other's changes.
    pub async fn get<D: Doc>(&mut self, id: Id) -> Result<Option<D>> {
        let lock = self.lock_clause();
        self.get_with(id, lock).await
    }

    /// A record a write refers to but does not change (a ticket's requester, assignee, group or
    /// organisation). Inside a PostgreSQL transaction the row is locked `FOR KEY SHARE`: writes
    /// that share it do not wait for each other, but a use case that changes or deletes it
    /// through [`Conn::get`] (`FOR UPDATE`) waits until this write ends, so its checks (no open
    /// ticket in a group being deleted, no ticket assigned to an agent being demoted) see this
    /// write.
    pub async fn get_shared<D: Doc>(&mut self, id: Id) -> Result<Option<D>> {
        let lock = if matches!(self, Conn::PgTx(_)) {
            " FOR KEY SHARE"
        } else {
            ""
        };
        self.get_with(id, lock).await
    }

    async fn get_with<D: Doc>(&mut self, id: Id, lock: &str) -> Result<Option<D>> {
        let sql = format!("SELECT id, data FROM {} WHERE id = $1{lock}", D::TABLE);
        match self.opt(&sql, &[Val::Int(id)]).await? {
            Some(r) => Ok(Some(decode(&r)?)),
            None => Ok(None),
        }
    }

    pub async fn find<D: Doc>(&mut self, conds: &[Cond]) -> Result<Option<D>> {
        let mut args = vec![];
        let w = where_sql(conds, &mut args);
        let sql = format!(
            "SELECT id, data FROM {} WHERE {w} ORDER BY id LIMIT 1",
            D::TABLE
        );
        match self.opt(&sql, &args).await? {
            Some(r) => Ok(Some(decode(&r)?)),
            None => Ok(None),
        }
    }

    pub async fn delete<D: Doc>(&mut self, id: Id) -> Result<bool> {
        let sql = format!("DELETE FROM {} WHERE id = $1", D::TABLE);
        let gone = self.exec(&sql, &[Val::Int(id)]).await? > 0;
        if gone && D::SEARCHED {
            self.unindex_text(D::TABLE, id).await?;
        }
        Ok(gone)
    }

    pub async fn count<D: Doc>(&mut self, conds: &[Cond]) -> Result<i64> {
        let mut args = vec![];
        let w = where_sql(conds, &mut args);
        self.int(
            &format!("SELECT COUNT(*) FROM {} WHERE {w}", D::TABLE),
            &args,
        )
        .await
    }

    /// Records matching `conds`, by id, one page of them.
    pub async fn list<D: Doc>(&mut self, conds: &[Cond], page: &Page) -> Result<Paged<D>> {
        self.page_rows(D::TABLE, "id, data", conds, page, decode::<D>)
            .await
    }

    /// One page of rows of `table` (by id) matching `conds`: offset pages count the total;
    /// cursor pages read one row more than asked to know whether more follow.
    pub(crate) async fn page_rows<T>(
        &mut self,
        table: &str,
        cols: &str,
        conds: &[Cond],
        page: &Page,
        decode: impl Fn(&Row) -> Result<T>,
    ) -> Result<Paged<T>> {
        let mut args = vec![];
        let mut conds = conds.to_vec();
        let (limit, offset, order, reverse, count) = match page {
            Page::Offset {
                page,
                per_page,
                order,
            } => {
                let per = (*per_page).clamp(1, 1000);
                (
                    per + 1,
                    ((*page).max(1) - 1).saturating_mul(per),
                    *order,
                    false,
                    true,
                )
            }
            Page::Cursor {
                size,
                after,
                before,
                order,
            } => {
                let size = (*size).clamp(1, 1000);
                let (gt, lt) = if *order == Order::Asc {
                    (Cond::Gt as fn(_, _) -> _, Cond::Lt as fn(_, _) -> _)
                } else {
                    (Cond::Lt as fn(_, _) -> _, Cond::Gt as fn(_, _) -> _)
                };
                let mut rev = false;
                if let Some(b) = before {
                    conds.push(lt("id", Val::Int(*b)));
                    rev = true;
                } else if let Some(a) = after {
                    conds.push(gt("id", Val::Int(*a)));
                }
                (size + 1, 0, *order, rev, false)
            }
            Page::All { limit } => ((*limit).max(1), 0, Order::Asc, false, false),
        };
        let w = where_sql(&conds, &mut args);
        let dir = match (order, reverse) {
            (Order::Asc, false) | (Order::Desc, true) => "ASC",
            _ => "DESC",
        };
        let sql = format!(
            "SELECT {cols} FROM {table} WHERE {w} ORDER BY id {dir} LIMIT {limit} OFFSET {offset}"
        );
        let rows = self.all(&sql, &args).await?;
        let mut items = rows.iter().map(&decode).collect::<Result<Vec<T>>>()?;
        let mut has_more = false;
        if !matches!(page, Page::All { .. }) && items.len() as i64 == limit {
            items.pop();
            has_more = true;
        }
        let mut has_prev = matches!(page, Page::Cursor { after: Some(_), .. });
        if reverse {
            items.reverse();
            has_prev = has_more;
            has_more = true;
        }
        let count = if count {
            let mut cargs = vec![];
            let w = where_sql(&conds, &mut cargs);
            Some(
                self.int(&format!("SELECT COUNT(*) FROM {table} WHERE {w}"), &cargs)
                    .await?,
            )
        } else {
            None
        };
        Ok(Paged {
            items,
            count,
            has_more,
            has_prev,
        })
    }

    /// Records with the given ids (any order); missing ids are skipped.
    pub async fn get_many<D: Doc>(&mut self, ids: &[Id]) -> Result<Vec<D>> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut args = vec![];
            let w = where_sql(
                &[Cond::In("id", chunk.iter().map(|i| Val::Int(*i)).collect())],
                &mut args,
            );
            let sql = format!("SELECT id, data FROM {} WHERE {w} ORDER BY id", D::TABLE);
            for r in self.all(&sql, &args).await? {
                out.push(decode(&r)?);
            }
        }
        Ok(out)
    }
}
