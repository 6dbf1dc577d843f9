//! Search and incremental exports: the full-text entries kept in step with every write, the
//! SQL for a search plan (opsdesk_core::search::Plan), and the change streams.
//!
//! Full text uses each database's own index. SQLite: contentless FTS5 tables
//! (`{table}_fts`, rowid = record id). PostgreSQL: a `search_vec` tsvector column with a GIN
//! index, fields weighted A..D, and a ticket's comments in its one `ticket_words` row. Both
//! hold the tokens opsdesk_core::search produced, so a query matches the same records on
//! either backend.

use std::collections::HashMap;

use opsdesk_core::model::{Id, Organization, User};
use opsdesk_core::search::{
    index_text, Filter, Kind, PersonField, Plan, SortKey, TextField, TimeField, Who,
};
use opsdesk_core::ticket::{Comment, Priority, Status, Ticket, TicketType};

use crate::db::{Conn, Row, Val};
use crate::docs::{decode, Doc};
use crate::Result;

mod sets;
pub use sets::force_set_walk;

/// What an end-user may find: their own tickets and their shared organisations' (public
/// tickets, public comments), themselves, their organisations.
#[derive(Debug, Clone)]
pub struct Visibility {
    pub user_id: Id,
    /// Organisations whose tickets the user may see.
    pub ticket_org_ids: Vec<Id>,
    /// Organisations the user belongs to.
    pub member_org_ids: Vec<Id>,
}

/// One search result before it is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    pub kind: Kind,
    pub id: Id,
    /// The sort value (for export cursors: created_at).
    pub sort: i64,
}

/// A record in a change stream.
#[derive(Debug, Clone)]
pub struct Change<D> {
    pub doc: D,
    pub updated_at: i64,
    pub change_seq: i64,
    /// Tickets only: soft-deleted.
    pub deleted: bool,
}

const WEIGHTS: [&str; 4] = ["A", "B", "C", "D"];

/// PostgreSQL's `ticket_words`: most word positions in one ticket's vector (positions stop at
/// 16,383; what the two tokenizers count may differ a little) and an upper bound of its bytes
/// (a tsvector holds at most 1 MB).
const WORDS_MAX: i64 = 16_000;
const WORDS_BYTES_MAX: i64 = 900_000;
/// Most positions PostgreSQL keeps for one lexeme of a tsvector.
const LEXEME_POSITIONS: i64 = 256;

/// `ticket_words.spill` on every write (migration 0022): takes the tuple over the 2 kB at which
/// PostgreSQL starts moving values out of line, so the vector always goes to the TOAST table
/// and the row stays about a hundred bytes; it compresses to 35 bytes.
const SPILL: &str = "repeat(' ', 2100)";

/// Between two comments in `ticket_words`: a lexeme at its own position that no query names
/// (queries hold letters and digits only), so a phrase cannot match across comments. It
/// changes every 64 words (`|0`, `|1`, …) so no separator reaches 256 positions.
fn comment_gap(words_before: i64) -> String {
    format!("'''|{}'':1'::tsvector", words_before / 64)
}

fn table(kind: Kind) -> (&'static str, &'static str) {
    match kind {
        Kind::Ticket => ("tickets", "t"),
        Kind::User => ("users", "u"),
        Kind::Organization => ("organizations", "o"),
    }
}

/// SQL text with its bind values.
struct Sql<'a> {
    pg: bool,
    args: &'a mut Vec<Val>,
    /// The plan also narrows tickets by a person, group or organisation: few candidate rows,
    /// so a tag is checked per row rather than by listing every ticket with the tag.
    anchored: bool,
}

impl Sql<'_> {
    fn p(&mut self, v: Val) -> String {
        self.args.push(v);
        format!("${}", self.args.len())
    }
    fn ps(&mut self, vs: impl IntoIterator<Item = Val>) -> String {
        let ps: Vec<String> = vs.into_iter().map(|v| self.p(v)).collect();
        if ps.is_empty() {
            "NULL".into()
        } else {
            ps.join(", ")
        }
    }
    /// A JSON scalar as text (booleans as 'true'/'false').
    fn json_text(&self, expr: &str, path: &[&str]) -> String {
        if self.pg {
            format!("(({expr})::jsonb #>> '{{{}}}')", path.join(","))
        } else {
            let p = format!("$.{}", path.join("."));
            format!(
                "(CASE json_type({expr}, '{p}') WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                 ELSE CAST(json_extract({expr}, '{p}') AS TEXT) END)"
            )
        }
    }
    /// `EXISTS` an element of the JSON array at `key` whose text satisfies `cond` (`{v}` is
    /// the element's text).
    fn json_any(&self, expr: &str, key: &str, cond: &str) -> String {
        if self.pg {
            let c = cond.replace("{v}", "j.v");
            format!(
                "EXISTS (SELECT 1 FROM jsonb_array_elements_text(COALESCE(({expr})::jsonb -> '{key}', '[]'::jsonb)) j(v) WHERE {c})"
            )
        } else {
            let c = cond.replace("{v}", "CAST(j.value AS TEXT)");
            format!("EXISTS (SELECT 1 FROM json_each({expr}, '$.{key}') j WHERE {c})")
        }
    }
    /// ISO-8601 instants compare as text (opsdesk always writes `YYYY-MM-DDTHH:MM:SSZ`).
    fn iso_range(&mut self, expr: String, from: Option<i64>, to: Option<i64>) -> String {
        let c = if self.pg { " COLLATE \"C\"" } else { "" };
        let mut parts = vec![format!("{expr} IS NOT NULL")];
        if let Some(f) = from {
            let iso = opsdesk_core::clock::format(opsdesk_core::clock::from_unix(f));
            parts.push(format!("{expr}{c} >= {}", self.p(Val::Text(iso))));
        }
        if let Some(t) = to {
            let iso = opsdesk_core::clock::format(opsdesk_core::clock::from_unix(t));
            parts.push(format!("{expr}{c} < {}", self.p(Val::Text(iso))));
        }
        parts.join(" AND ")
    }
}

/// The full-text query for `words` (a phrase; the last word a prefix when asked), in the
/// backend's syntax, restricted to field `col` when given.
fn text_query(pg: bool, words: &[String], prefix: bool, col: Option<usize>) -> String {
    if pg {
        ts_query(words, prefix, col.map(|c| WEIGHTS[c]).unwrap_or(""))
    } else {
        let star = if prefix { " *" } else { "" };
        let phrase = format!("\"{}\"{star}", words.join(" "));
        match col {
            Some(c) => format!("f{c} : {phrase}"),
            None => phrase,
        }
    }
}

/// A PostgreSQL tsquery for the phrase `words`, each word restricted to the weights `w` (none:
/// any), the last a prefix when `prefix`.
fn ts_query(words: &[String], prefix: bool, w: &str) -> String {
    let n = words.len();
    words
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let star = if prefix && i + 1 == n { "*" } else { "" };
            let sep = if star.is_empty() && w.is_empty() {
                ""
            } else {
                ":"
            };
            format!("'{x}'{sep}{star}{w}")
        })
        .collect::<Vec<_>>()
        .join(" <-> ")
}

/// A free-text term of one number also finds the ticket with that id.
fn bare_id(words: &[String]) -> Option<i64> {
    match words {
        [w] => w.parse().ok(),
        _ => None,
    }
}

fn kind_code(k: Kind) -> i64 {
    match k {
        Kind::Ticket => 0,
        Kind::User => 1,
        Kind::Organization => 2,
    }
}

fn rank_case(col: &str, values: &[&str]) -> String {
    let arms: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, v)| format!("WHEN '{v}' THEN {}", i + 1))
        .collect();
    format!("CAST(CASE {col} {} ELSE 0 END AS BIGINT)", arms.join(" "))
}

fn sort_expr(kind: Kind, key: SortKey) -> String {
    let (_, a) = table(kind);
    match key {
        SortKey::Created => format!("{a}.created_at"),
        SortKey::Updated => format!("{a}.updated_at"),
        SortKey::Priority => {
            rank_case(&format!("{a}.priority"), &Priority::ALL.map(|p| p.as_str()))
        }
        SortKey::Status => rank_case(&format!("{a}.status"), &Status::ALL.map(|s| s.as_str())),
        SortKey::TicketType => rank_case(
            &format!("{a}.ticket_type"),
            &TicketType::ALL.map(|s| s.as_str()),
        ),
    }
}

fn ids_of(w: &Who) -> Option<Vec<Val>> {
    match w {
        Who::Ids(ids) => Some(ids.iter().map(|i| Val::Int(*i)).collect()),
        // Unresolved references match nothing (the application resolves them first).
        Who::Me | Who::Text(_) => Some(vec![]),
        Who::None => None,
    }
}

fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}

impl Sql<'_> {
    fn id_in(&mut self, col: &str, w: &Who) -> String {
        match ids_of(w) {
            None => format!("{col} IS NULL"),
            Some(v) if v.is_empty() => "1=0".into(),
            Some(v) => format!("{col} IN ({})", self.ps(v)),
        }
    }

    /// A tag as a condition on `{v}` (a trailing `*` matches any tag it begins).
    fn tag_cond(&mut self, tag: &str) -> String {
        match tag.strip_suffix('*') {
            Some(pre) => format!(
                "{{v}} LIKE {} ESCAPE '\\'",
                self.p(Val::Text(format!("{}%", like_escape(pre))))
            ),
            None => format!("{{v}} = {}", self.p(Val::Text(tag.to_string()))),
        }
    }

    fn comment_public(&self, vis: Option<&Visibility>) -> &'static str {
        if vis.is_some() {
            " AND c.public = 1"
        } else {
            ""
        }
    }

    /// The SELECTs whose union is the ids (column `x`) of the records a text filter matches:
    /// the record's own fields; for tickets also its comments (public ones only for end-users,
    /// the first only for description:) and, for a bare number, the ticket with that id.
    fn text_sources(
        &mut self,
        kind: Kind,
        field: TextField,
        words: &[String],
        prefix: bool,
        vis: Option<&Visibility>,
    ) -> Vec<String> {
        let (tab, _) = table(kind);
        if kind == Kind::Ticket && self.pg {
            let cond = self.words_text(field, words, prefix, vis);
            let mut sets = vec![format!(
                "SELECT ticket_id AS x FROM ticket_words WHERE {cond}"
            )];
            sets.extend(self.overflow_text(field, words, prefix, vis));
            sets.extend(self.bare_ticket(field, words));
            return sets;
        }
        let col = match (kind, field) {
            (_, TextField::Any) => None,
            (Kind::Ticket, TextField::Subject) => Some(0),
            (_, TextField::Name) => Some(0),
            (_, TextField::Notes) => Some(2),
            (_, TextField::Details) => Some(3),
            _ => None,
        };
        let records = |s: &mut Self| {
            let q = s.p(Val::Text(text_query(s.pg, words, prefix, col)));
            if s.pg {
                format!("SELECT id AS x FROM {tab} WHERE search_vec @@ {q}::tsquery")
            } else {
                format!("SELECT rowid AS x FROM {tab}_fts WHERE {tab}_fts MATCH {q}")
            }
        };
        if kind != Kind::Ticket {
            return vec![records(self)];
        }
        // SQLite: the FTS rowid carries the ticket, the comment's place and its visibility
        // (comment_rowid), so no row is read to answer.
        let comments = |s: &mut Self, first_only: bool| {
            let cq = s.p(Val::Text(text_query(false, words, prefix, None)));
            let public = if vis.is_some() {
                " AND (rowid & 1) = 1"
            } else {
                ""
            };
            let first = if first_only {
                " AND ((rowid >> 1) & 1048575) = 0"
            } else {
                ""
            };
            format!("SELECT rowid >> 21 AS x FROM ticket_comments_fts WHERE ticket_comments_fts MATCH {cq}{public}{first}")
        };
        match field {
            TextField::Any => {
                let mut sets = vec![records(self), comments(self, false)];
                sets.extend(self.bare_ticket(field, words));
                sets
            }
            TextField::Comment => vec![comments(self, false)],
            TextField::Description => vec![comments(self, true)],
            _ => vec![records(self)],
        }
    }

    /// Free text of one number also finds the ticket with that id: its SELECT (column `x`).
    fn bare_ticket(&mut self, field: TextField, words: &[String]) -> Option<String> {
        let id = bare_id(words).filter(|_| field == TextField::Any)?;
        let id = self.p(Val::Int(id));
        Some(format!("SELECT id AS x FROM tickets WHERE id = {id}"))
    }

    /// PostgreSQL: a ticket text filter as a condition on its `ticket_words` row (migration
    /// 0022): `head` the ticket's own fields, weighted as `tickets.search_vec` (A the subject,
    /// B its tags, custom field values and external id); `vec` its comments (A public
    /// description, B later public comment, C internal description, D later internal
    /// comment). The comments kept on their own rows are Sql::overflow_text's, a bare number's
    /// ticket Sql::bare_ticket's.
    fn words_text(
        &mut self,
        field: TextField,
        words: &[String],
        prefix: bool,
        vis: Option<&Visibility>,
    ) -> String {
        let q = |s: &mut Self, w: &str| s.p(Val::Text(ts_query(words, prefix, w)));
        let comment_weights = match (field, vis.is_some()) {
            (TextField::Description, false) => "AC",
            (TextField::Description, true) => "A",
            (_, false) => "",
            (_, true) => "AB",
        };
        match field {
            TextField::Any => {
                let c = q(self, comment_weights);
                let h = q(self, "");
                format!("(vec @@ {c}::tsquery OR head @@ {h}::tsquery)")
            }
            TextField::Comment | TextField::Description => {
                format!("vec @@ {}::tsquery", q(self, comment_weights))
            }
            TextField::Subject => format!("head @@ {}::tsquery", q(self, "A")),
            // Not a ticket field: matches nothing.
            _ => "1=0".into(),
        }
    }

    /// PostgreSQL: the SELECT of the tickets (column `x`) whose comments kept on their own rows
    /// (too long for `ticket_words`, or written by an older binary) match a text filter; `None`
    /// for a filter of the ticket's own fields.
    fn overflow_text(
        &mut self,
        field: TextField,
        words: &[String],
        prefix: bool,
        vis: Option<&Visibility>,
    ) -> Option<String> {
        let first = match field {
            TextField::Any | TextField::Comment => "",
            TextField::Description => {
                " AND c.id = (SELECT MIN(c2.id) FROM ticket_comments c2 WHERE c2.ticket_id = c.ticket_id)"
            }
            _ => return None,
        };
        let public = if vis.is_some() {
            " AND c.public = 1"
        } else {
            ""
        };
        let q = self.p(Val::Text(ts_query(words, prefix, "")));
        Some(format!("SELECT c.ticket_id AS x FROM ticket_comments c WHERE c.search_vec @@ {q}::tsquery{public}{first}"))
    }

    fn filter(&mut self, kind: Kind, f: &Filter, vis: Option<&Visibility>) -> String {
        let (_, a) = table(kind);
        match f {
            Filter::Text {
                field,
                words,
                prefix,
            } => format!(
                "{a}.id IN ({})",
                self.text_sources(kind, *field, words, *prefix, vis)
                    .join(" UNION ")
            ),
            Filter::Status(ss) => format!(
                "t.status IN ({})",
                self.ps(ss.iter().map(|s| Val::from(s.as_str())))
            ),
            Filter::Priority(ps) => {
                let mut parts = vec![];
                let some: Vec<Val> = ps.iter().flatten().map(|p| Val::from(p.as_str())).collect();
                if !some.is_empty() {
                    parts.push(format!("t.priority IN ({})", self.ps(some)));
                }
                if ps.contains(&None) {
                    parts.push("t.priority IS NULL".into());
                }
                format!("({})", parts.join(" OR "))
            }
            Filter::TicketType(ts) => {
                let mut parts = vec![];
                let some: Vec<Val> = ts.iter().flatten().map(|p| Val::from(p.as_str())).collect();
                if !some.is_empty() {
                    parts.push(format!("t.ticket_type IN ({})", self.ps(some)));
                }
                if ts.contains(&None) {
                    parts.push("t.ticket_type IS NULL".into());
                }
                format!("({})", parts.join(" OR "))
            }
            Filter::Person(field, w) => match field {
                PersonField::Requester => self.id_in("t.requester_id", w),
                PersonField::Assignee => self.id_in("t.assignee_id", w),
                PersonField::Submitter => self.id_in("t.submitter_id", w),
                PersonField::Commenter => {
                    let public = self.comment_public(vis);
                    let c = self.id_in("c.author_id", w);
                    format!("t.id IN (SELECT c.ticket_id FROM ticket_comments c WHERE {c}{public})")
                }
                PersonField::Cc => {
                    let ids: Vec<Val> = match w {
                        Who::Ids(ids) => ids.iter().map(|i| Val::Text(i.to_string())).collect(),
                        _ => vec![],
                    };
                    if ids.is_empty() {
                        return "1=0".into();
                    }
                    let list = self.ps(ids);
                    let cond = format!("{{v}} IN ({list})");
                    let parts: Vec<String> = ["email_cc_ids", "collaborator_ids", "follower_ids"]
                        .iter()
                        .map(|k| self.json_any("t.data", k, &cond))
                        .collect();
                    format!("({})", parts.join(" OR "))
                }
            },
            Filter::Organization(w) => match kind {
                Kind::User => match ids_of(w) {
                    None => "u.organization_id IS NULL AND NOT EXISTS (SELECT 1 FROM organization_memberships m WHERE m.user_id = u.id)".into(),
                    Some(v) if v.is_empty() => "1=0".into(),
                    Some(v) => {
                        let l = self.ps(v);
                        format!("(u.organization_id IN ({l}) OR u.id IN (SELECT m.user_id FROM organization_memberships m WHERE m.organization_id IN ({l})))")
                    }
                },
                _ => self.id_in(&format!("{a}.organization_id"), w),
            },
            Filter::Group(w) => self.id_in("t.group_id", w),
            Filter::Tag(tag) => {
                let cond = tag.as_ref().map(|t| self.tag_cond(t));
                match (kind, cond) {
                    (Kind::Ticket, None) => {
                        "NOT EXISTS (SELECT 1 FROM ticket_tags g WHERE g.ticket_id = t.id)".into()
                    }
                    (Kind::Ticket, Some(c)) if self.anchored => format!(
                        "EXISTS (SELECT 1 FROM ticket_tags g WHERE {} AND g.ticket_id = t.id)",
                        c.replace("{v}", "g.tag")
                    ),
                    (Kind::Ticket, Some(c)) => format!(
                        "t.id IN (SELECT g.ticket_id FROM ticket_tags g WHERE {})",
                        c.replace("{v}", "g.tag")
                    ),
                    (_, None) => format!("NOT {}", self.json_any(&format!("{a}.data"), "tags", "1=1")),
                    (_, Some(c)) => self.json_any(&format!("{a}.data"), "tags", &c),
                }
            }
            Filter::Via(v) => {
                let e = self.json_text("t.data", &["via", "channel"]);
                format!("{e} = {}", self.p(Val::Text(v.clone())))
            }
            Filter::Time { field, from, to } => {
                let col = match field {
                    TimeField::Created => format!("{a}.created_at"),
                    TimeField::Updated => format!("{a}.updated_at"),
                    TimeField::Solved => {
                        let e = self.json_text("m.data", &["solved_at"]);
                        let r = self.iso_range(e, *from, *to);
                        return format!("t.id IN (SELECT m.id FROM ticket_metrics m WHERE {r})");
                    }
                    TimeField::DueDate => {
                        let e = self.json_text("t.data", &["due_at"]);
                        return self.iso_range(e, *from, *to);
                    }
                };
                let mut parts = vec![];
                if let Some(f) = from {
                    parts.push(format!("{col} >= {}", self.p(Val::Int(*f))));
                }
                if let Some(t) = to {
                    parts.push(format!("{col} < {}", self.p(Val::Int(*t))));
                }
                if parts.is_empty() {
                    "1=1".into()
                } else {
                    parts.join(" AND ")
                }
            }
            Filter::CustomField { id, value } => {
                let (idc, vc) = if self.pg {
                    ("(j.v ->> 'id')", "(j.v ->> 'value')")
                } else {
                    ("CAST(json_extract(j.value, '$.id') AS TEXT)", "")
                };
                let val = if self.pg {
                    vc.to_string()
                } else {
                    self.json_text("j.value", &["value"])
                };
                let idp = self.p(Val::Text(id.to_string()));
                let present = format!("{val} IS NOT NULL AND {val} <> ''");
                let cond = match value.as_deref() {
                    None | Some("*") => present,
                    Some(v) => {
                        let v = if v.eq_ignore_ascii_case("checked") { "true" } else { v };
                        format!("lower({val}) = {}", self.p(Val::Text(v.to_lowercase())))
                    }
                };
                let exists = self.custom_fields_exists(&format!("{idc} = {idp} AND {cond}"));
                if value.is_none() {
                    format!("NOT {exists}")
                } else {
                    exists
                }
            }
            Filter::FieldValue(v) => {
                let val = if self.pg {
                    "(j.v ->> 'value')".to_string()
                } else {
                    self.json_text("j.value", &["value"])
                };
                let p = self.p(Val::Text(v.to_lowercase()));
                self.custom_fields_exists(&format!("lower({val}) = {p}"))
            }
            Filter::HasAttachment(yes) => {
                let n = if self.pg {
                    "jsonb_array_length(COALESCE(c.data::jsonb -> 'attachments', '[]'::jsonb))"
                } else {
                    "COALESCE(json_array_length(c.data, '$.attachments'), 0)"
                };
                let public = self.comment_public(vis);
                let e = format!(
                    "EXISTS (SELECT 1 FROM ticket_comments c WHERE c.ticket_id = t.id AND {n} > 0{public})"
                );
                if *yes {
                    e
                } else {
                    format!("NOT {e}")
                }
            }
            Filter::Email(e) => {
                if e == "none" {
                    "u.email IS NULL".into()
                } else if e.contains('*') {
                    let pat = like_escape(e).replace('*', "%");
                    format!("u.email LIKE {} ESCAPE '\\'", self.p(Val::Text(pat)))
                } else {
                    format!("u.email = {}", self.p(Val::Text(e.clone())))
                }
            }
            Filter::Role(r) => format!("u.role = {}", self.p(Val::from(r.as_str()))),
            Filter::ExternalId(x) => {
                if x.eq_ignore_ascii_case("none") {
                    format!("{a}.external_id IS NULL")
                } else {
                    format!("{a}.external_id = {}", self.p(Val::Text(x.clone())))
                }
            }
            Filter::Form(id) => {
                let e = self.json_text("t.data", &["ticket_form_id"]);
                format!("{e} = {}", self.p(Val::Text(id.to_string())))
            }
            Filter::RecordField { key, value } => {
                let map = if kind == Kind::User {
                    "user_fields"
                } else {
                    "organization_fields"
                };
                let e = if self.pg {
                    let k = self.p(Val::Text(key.clone()));
                    format!("(({a}.data)::jsonb -> '{map}' ->> {k})")
                } else {
                    let path = self.p(Val::Text(format!("$.{map}.\"{}\"", key.replace('"', ""))));
                    format!(
                        "(CASE json_type({a}.data, {path}) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' \
                         ELSE CAST(json_extract({a}.data, {path}) AS TEXT) END)"
                    )
                };
                match value {
                    None => format!("({e} IS NULL OR {e} = '')"),
                    Some(v) => format!("lower({e}) = {}", self.p(Val::Text(v.to_lowercase()))),
                }
            }
            Filter::IsPublic(yes) => {
                let e = self.json_text("t.data", &["is_public"]);
                format!("{e} = '{yes}'")
            }
        }
    }

    fn custom_fields_exists(&self, cond: &str) -> String {
        if self.pg {
            format!("EXISTS (SELECT 1 FROM jsonb_array_elements(COALESCE(t.data::jsonb -> 'custom_fields', '[]'::jsonb)) j(v) WHERE {cond})")
        } else {
            format!("EXISTS (SELECT 1 FROM json_each(t.data, '$.custom_fields') j WHERE {cond})")
        }
    }

    /// The WHERE clause for one kind of record.
    fn where_for(&mut self, kind: Kind, plan: &Plan, vis: Option<&Visibility>) -> String {
        self.anchored = kind == Kind::Ticket && anchored(plan);
        let mut parts = vec![];
        match kind {
            Kind::Ticket => parts.push("t.deleted_at IS NULL".to_string()),
            Kind::User => parts.push("u.active = 1".to_string()),
            Kind::Organization => {}
        }
        if let Some(v) = vis {
            match kind {
                Kind::Ticket => {
                    let me = self.p(Val::Int(v.user_id));
                    let orgs = if v.ticket_org_ids.is_empty() {
                        "1=0".to_string()
                    } else {
                        format!(
                            "t.organization_id IN ({})",
                            self.ps(v.ticket_org_ids.iter().map(|i| Val::Int(*i)))
                        )
                    };
                    let mine = self.p(Val::Text(v.user_id.to_string()));
                    let cc = self.json_any("t.data", "email_cc_ids", &format!("{{v}} = {mine}"));
                    let public = self.json_text("t.data", &["is_public"]);
                    parts.push(format!(
                        "(t.requester_id = {me} OR {orgs} OR {cc}) AND {public} = 'true'"
                    ));
                }
                Kind::User => parts.push(format!("u.id = {}", self.p(Val::Int(v.user_id)))),
                Kind::Organization => parts.push(if v.member_org_ids.is_empty() {
                    "1=0".into()
                } else {
                    format!(
                        "o.id IN ({})",
                        self.ps(v.member_org_ids.iter().map(|i| Val::Int(*i)))
                    )
                }),
            }
        }
        for c in &plan.clauses {
            let alts: Vec<String> = c.any.iter().map(|f| self.filter(kind, f, vis)).collect();
            let e = if alts.len() == 1 {
                alts.into_iter().next().unwrap_or_default()
            } else {
                format!("({})", alts.join(" OR "))
            };
            parts.push(if c.negated {
                format!("NOT ({e})")
            } else {
                format!("({e})")
            });
        }
        if parts.is_empty() {
            "1=1".into()
        } else {
            parts.join(" AND ")
        }
    }
}

/// Whether a ticket plan is narrowed by a person, group or organisation: few candidate rows,
/// so a tag is checked per row rather than by listing every ticket with the tag.
fn anchored(plan: &Plan) -> bool {
    plan.clauses.iter().any(|c| {
        !c.negated
            && c.any.iter().all(|f| {
                matches!(
                    f,
                    Filter::Person(
                        PersonField::Requester | PersonField::Assignee | PersonField::Submitter,
                        Who::Ids(_)
                    ) | Filter::Group(Who::Ids(_))
                        | Filter::Organization(Who::Ids(_))
                )
            })
    })
}

fn decode_hit(r: &Row) -> Result<Hit> {
    let kind = match r.i64(0)? {
        0 => Kind::Ticket,
        1 => Kind::User,
        _ => Kind::Organization,
    };
    Ok(Hit {
        kind,
        id: r.i64(1)?,
        sort: r.i64(2)?,
    })
}

/// SQLite: the FTS rowid of a ticket's `seq`-th comment: the ticket id, the comment's place
/// (20 bits; 0 is the description) and whether it is public, so a match names its ticket
/// without a lookup. `None` past the millionth comment of one ticket (not indexed).
pub(crate) fn comment_rowid(ticket_id: Id, seq: i64, public: bool) -> Option<i64> {
    if (0..1 << 20).contains(&seq) && (0..1 << 42).contains(&ticket_id) {
        Some((ticket_id << 21) | (seq << 1) | public as i64)
    } else {
        None
    }
}

impl Conn {
    /// SQL text for this connection's backend, its bind values collected in `args`.
    fn sql<'a>(&self, args: &'a mut Vec<Val>) -> Sql<'a> {
        Sql {
            pg: self.is_postgres(),
            args,
            anchored: false,
        }
    }

    /// The `change_seq` a write gives a row (see the 0010 migration).
    pub(crate) fn change_seq_expr(&self, table: &str) -> String {
        if self.is_postgres() {
            "pg_current_xact_id()::text::bigint".into()
        } else {
            format!("(SELECT COALESCE(MAX(change_seq), 0) + 1 FROM {table})")
        }
    }

    /// Extra `(column, expression)` pairs an insert or update of `d` writes.
    pub(crate) fn tracked_columns<D: Doc>(
        &self,
        d: &D,
        args: &mut Vec<Val>,
    ) -> Vec<(&'static str, String)> {
        if !D::SEARCHED {
            return vec![];
        }
        let mut out = vec![("change_seq", self.change_seq_expr(D::TABLE))];
        if self.is_postgres() {
            out.push(("search_vec", tsvector(&d.search_text(), args)));
        }
        out
    }

    /// SQLite: replace the FTS entry of `id` in `{table}_fts`. PostgreSQL keeps it in the row
    /// (Conn::tracked_columns), and a ticket's also in its `ticket_words` row.
    pub(crate) async fn index_text(
        &mut self,
        table: &str,
        id: Id,
        fields: &[String],
        replace: bool,
    ) -> Result<()> {
        if self.is_postgres() {
            if table == "tickets" {
                self.index_ticket_head(id, fields).await?;
            }
            return Ok(());
        }
        if fields.is_empty() {
            return Ok(());
        }
        if replace {
            self.unindex_text(table, id).await?;
        }
        let cols: Vec<String> = (0..fields.len()).map(|i| format!("f{i}")).collect();
        let ps: Vec<String> = (2..=fields.len() + 1).map(|i| format!("${i}")).collect();
        let mut args = vec![Val::Int(id)];
        args.extend(fields.iter().map(|f| Val::Text(f.clone())));
        self.exec_deferred(
            format!(
                "INSERT INTO {table}_fts (rowid, {}) VALUES ($1, {})",
                cols.join(", "),
                ps.join(", ")
            ),
            args,
        )
        .await
    }

    /// PostgreSQL: a ticket's own fields into its `ticket_words` row (`head`, migration 0022),
    /// so free text over a ticket's fields and comments is one index scan of one narrow table.
    /// Makes the row when the ticket has none yet (before its first comment); writes nothing
    /// when the fields did not change.
    async fn index_ticket_head(&mut self, id: Id, fields: &[String]) -> Result<()> {
        let mut args = vec![Val::Int(id)];
        let head = tsvector(fields, &mut args);
        self.exec(
            &format!(
                "INSERT INTO ticket_words (ticket_id, words, bytes, vec, head, spill) \
                 VALUES ($1, 0, 0, ''::tsvector, {head}, {SPILL}) \
                 ON CONFLICT (ticket_id) DO UPDATE SET head = EXCLUDED.head, spill = EXCLUDED.spill \
                 WHERE ticket_words.head IS DISTINCT FROM EXCLUDED.head"
            ),
            &args,
        )
        .await?;
        Ok(())
    }

    pub(crate) async fn unindex_text(&mut self, table: &str, id: Id) -> Result<()> {
        if !self.is_postgres() {
            self.exec_deferred(
                format!("DELETE FROM {table}_fts WHERE rowid = $1"),
                vec![Val::Int(id)],
            )
            .await?;
        }
        Ok(())
    }

    /// Rebuild every full-text entry from the records and comments.
    pub async fn reindex_search(&mut self) -> Result<()> {
        self.reindex_records().await?;
        self.reindex_comments().await
    }

    /// The 0010 migration's fill: the records, and SQLite's comments (PostgreSQL's comment
    /// index is the 0020 migration's, which fills it).
    pub(crate) async fn reindex_search_at_0010(&mut self) -> Result<()> {
        self.reindex_records().await?;
        if !self.is_postgres() {
            self.reindex_comments().await?;
        }
        Ok(())
    }

    async fn reindex_records(&mut self) -> Result<()> {
        self.reindex::<Ticket>().await?;
        self.reindex::<User>().await?;
        self.reindex::<Organization>().await
    }

    /// Rebuild the comments' full-text entries, a few hundred tickets at a time: SQLite one
    /// FTS row per comment, PostgreSQL one `ticket_words` row per ticket.
    pub(crate) async fn reindex_comments(&mut self) -> Result<()> {
        if self.is_postgres() {
            // The rows stay for their `head` (the ticket's own fields), but for tickets gone.
            self.exec(
                "DELETE FROM ticket_words w \
                 WHERE NOT EXISTS (SELECT 1 FROM tickets t WHERE t.id = w.ticket_id)",
                &[],
            )
            .await?;
            self.exec(
                "UPDATE ticket_words SET words = 0, bytes = 0, vec = ''::tsvector WHERE words > 0",
                &[],
            )
            .await?;
        } else {
            self.exec_deferred(
                "INSERT INTO ticket_comments_fts (ticket_comments_fts) VALUES ('delete-all')"
                    .into(),
                vec![],
            )
            .await?;
        }
        let mut after = 0;
        loop {
            let last = self
                .opt(
                    "SELECT MAX(id) FROM (SELECT id FROM tickets WHERE id > $1 ORDER BY id LIMIT 200) s",
                    &[Val::Int(after)],
                )
                .await?;
            let Some(last) = last.map(|r| r.opt_i64(0)).transpose()?.flatten() else {
                break;
            };
            let rows = self
                .all(
                    "SELECT data FROM ticket_comments WHERE ticket_id > $1 AND ticket_id <= $2 \
                     ORDER BY ticket_id, id",
                    &[Val::Int(after), Val::Int(last)],
                )
                .await?;
            if self.is_postgres() {
                // Every comment goes back into its ticket's row unless it overflows again.
                self.exec(
                    "UPDATE ticket_comments SET search_vec = NULL \
                     WHERE ticket_id > $1 AND ticket_id <= $2 AND search_vec IS NOT NULL",
                    &[Val::Int(after), Val::Int(last)],
                )
                .await?;
            }
            after = last;
            let comments: Vec<Comment> = rows.iter().map(|r| r.json(0)).collect::<Result<_>>()?;
            for ticket in comments.chunk_by(|a, b| a.ticket_id == b.ticket_id) {
                self.index_comments(ticket, Some(true)).await?;
            }
        }
        Ok(())
    }

    /// Index `comments` (one ticket's, in order, already inserted). `starts`: whether the
    /// first of them is the ticket's first comment, when the caller knows.
    ///
    /// SQLite: one FTS row per comment, its rowid carrying the ticket, the comment's place and
    /// its visibility (comment_rowid). PostgreSQL: the ticket's `ticket_words` row (migration
    /// 0020), a hundred comments at a time; a comment that would take the row past its limits
    /// is indexed on its own row (`ticket_comments.search_vec`) instead. The caller holds the
    /// ticket's row lock (`save_ticket` updates the ticket first; a new ticket is this
    /// transaction's own), so no other writer reads the row's counts between this read and
    /// this write.
    pub(crate) async fn index_comments(
        &mut self,
        comments: &[Comment],
        starts: Option<bool>,
    ) -> Result<()> {
        let Some(head) = comments.first() else {
            return Ok(());
        };
        if !self.is_postgres() {
            let mut place = match starts {
                Some(true) => 0,
                _ => self.earlier_comments(head).await?,
            };
            for c in comments {
                if let Some(rowid) = comment_rowid(c.ticket_id, place, c.public) {
                    let text = index_text([c.body.as_str()]);
                    self.index_text("ticket_comments", rowid, &[text], false)
                        .await?;
                }
                place += 1;
            }
            return Ok(());
        }
        let mut starts = starts;
        for chunk in comments.chunks(100) {
            self.index_comment_chunk(chunk, starts).await?;
            starts = Some(false);
        }
        Ok(())
    }

    /// How many comments its ticket had before `c`.
    async fn earlier_comments(&mut self, c: &Comment) -> Result<i64> {
        self.int(
            "SELECT COUNT(*) FROM ticket_comments WHERE ticket_id = $1 AND id < $2",
            &[Val::Int(c.ticket_id), Val::Int(c.id)],
        )
        .await
    }

    async fn index_comment_chunk(
        &mut self,
        comments: &[Comment],
        starts: Option<bool>,
    ) -> Result<()> {
        let Some(ticket_id) = comments.first().map(|c| c.ticket_id) else {
            return Ok(());
        };
        let texts: Vec<String> = comments
            .iter()
            .map(|c| index_text([c.body.as_str()]))
            .collect();
        let counts: Vec<HashMap<&str, i64>> = texts
            .iter()
            .map(|t| {
                let mut m = HashMap::new();
                for w in t.split(' ').filter(|w| !w.is_empty()) {
                    *m.entry(w).or_insert(0) += 1;
                }
                m
            })
            .collect();
        // A lexeme keeps at most 256 positions; only those already near it can overflow.
        let mut chunk_total: HashMap<&str, i64> = HashMap::new();
        for m in &counts {
            for (w, n) in m {
                *chunk_total.entry(w).or_insert(0) += n;
            }
        }
        let near = LEXEME_POSITIONS - chunk_total.values().max().copied().unwrap_or(0);
        let row = self
            .opt(
                "SELECT words, bytes, (SELECT string_agg(u.lexeme || ' ' || cardinality(u.positions), ' ') \
                 FROM unnest(vec) u WHERE cardinality(u.positions) > $2) \
                 FROM ticket_words WHERE ticket_id = $1",
                &[Val::Int(ticket_id), Val::Int(near)],
            )
            .await?;
        let (mut words, mut bytes) = match &row {
            Some(r) => (r.i64(0)?, r.i64(1)?),
            None => (0, 0),
        };
        // Positions held per lexeme: exact for those above `near`, at most `near` for the rest.
        let mut held: HashMap<String, i64> = HashMap::new();
        if let Some(list) = row.as_ref().map(|r| r.opt_str(2)).transpose()?.flatten() {
            let mut it = list.split(' ');
            while let (Some(w), Some(n)) = (it.next(), it.next()) {
                held.insert(w.to_string(), n.parse().unwrap_or(LEXEME_POSITIONS));
            }
        }
        // Words in the row mean an earlier comment; without them, every earlier comment
        // overflowed, or there is none (the row may hold only the ticket's own fields).
        let mut filled = words > 0;
        let mut first = match starts {
            Some(b) => b,
            None if filled => false,
            None => self.earlier_comments(&comments[0]).await? == 0,
        };
        let (mut added_words, mut added_bytes) = (0, 0);
        let mut args = vec![Val::Int(ticket_id)];
        let mut new = String::new();
        let mut lead_gap = None;
        for ((c, text), own) in comments.iter().zip(&texts).zip(&counts) {
            let n: i64 = own.values().sum();
            // An upper bound of its tsvector: each lexeme's bytes, entry and position.
            let size = text.len() as i64 + 8 * n + 8;
            let gap = filled as i64;
            let weight = match (first, c.public) {
                (true, true) => "A",
                (false, true) => "B",
                (true, false) => "C",
                (false, false) => "D",
            };
            first = false;
            // A word the ticket already holds keeps every position of this comment (a word
            // this comment alone repeats past the limit is cut the same way on its own row).
            let positions_fit = own.iter().all(|(w, k)| {
                let h = held.get(*w).copied().unwrap_or(0);
                h == 0 || h + k <= LEXEME_POSITIONS
            });
            if words + gap + n <= WORDS_MAX && bytes + size <= WORDS_BYTES_MAX && positions_fit {
                // Each separator lexeme takes at most 64 positions (one per gap, and each gap
                // adds a position), so none reaches the 256 limit.
                if filled {
                    let sep = comment_gap(words);
                    if new.is_empty() {
                        lead_gap = Some(sep);
                    } else {
                        new.push_str(&format!(" || {sep} || "));
                    }
                }
                for (w, k) in own {
                    *held.entry(w.to_string()).or_insert(0) += k;
                }
                words += gap + n;
                bytes += size;
                added_words += gap + n;
                added_bytes += size;
                filled = true;
                args.push(Val::Text(text.clone()));
                new.push_str(&format!(
                    "setweight(to_tsvector('simple', ${}), '{weight}')",
                    args.len()
                ));
            } else {
                self.exec(
                    "UPDATE ticket_comments SET search_vec = to_tsvector('simple', $1) WHERE id = $2",
                    &[Val::Text(text.clone()), Val::Int(c.id)],
                )
                .await?;
            }
        }
        if new.is_empty() {
            return Ok(());
        }
        args.push(Val::Int(added_words));
        args.push(Val::Int(added_bytes));
        let (w, b) = (args.len() - 1, args.len());
        // With no words read, a row another writer filled meanwhile still gets a separator.
        let lead = lead_gap.unwrap_or_else(|| comment_gap(0));
        self.exec(
            &format!(
                "INSERT INTO ticket_words (ticket_id, words, bytes, vec, spill) \
                 VALUES ($1, ${w}, ${b}, {new}, {SPILL}) \
                 ON CONFLICT (ticket_id) DO UPDATE SET words = ticket_words.words + EXCLUDED.words, \
                 bytes = ticket_words.bytes + EXCLUDED.bytes, \
                 vec = CASE WHEN ticket_words.words = 0 THEN EXCLUDED.vec \
                 ELSE ticket_words.vec || {lead} || EXCLUDED.vec END, spill = EXCLUDED.spill"
            ),
            &args,
        )
        .await?;
        Ok(())
    }

    async fn reindex<D: Doc>(&mut self) -> Result<()> {
        let mut after = 0;
        loop {
            let rows = self
                .all(
                    &format!(
                        "SELECT id, data FROM {} WHERE id > $1 ORDER BY id LIMIT 500",
                        D::TABLE
                    ),
                    &[Val::Int(after)],
                )
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.i64(0)?;
            for r in &rows {
                let d: D = decode(r)?;
                if self.is_postgres() {
                    let mut args = vec![];
                    let v = tsvector(&d.search_text(), &mut args);
                    args.push(Val::Int(d.id()));
                    self.exec(
                        &format!(
                            "UPDATE {} SET search_vec = {v} WHERE id = ${}",
                            D::TABLE,
                            args.len()
                        ),
                        &args,
                    )
                    .await?;
                }
                self.index_text(D::TABLE, d.id(), &d.search_text(), true)
                    .await?;
            }
        }
        Ok(())
    }

    /// One page of a search: hits in the plan's order.
    pub async fn search(
        &mut self,
        plan: &Plan,
        vis: Option<&Visibility>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Hit>> {
        Ok(self.search_rows(plan, vis, limit, offset, false).await?.0)
    }

    /// One page of a search and the number of all matches, counted in the same pass (a
    /// window count over the rows the page is sorted from).
    pub async fn search_page(
        &mut self,
        plan: &Plan,
        vis: Option<&Visibility>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<Hit>, i64)> {
        let (hits, total) = self.search_rows(plan, vis, limit, offset, true).await?;
        match total {
            Some(n) => Ok((hits, n)),
            // A page past the end has no row to carry the count.
            None if offset > 0 => Ok((hits, self.search_count(plan, vis).await?)),
            None => Ok((hits, 0)),
        }
    }

    async fn search_rows(
        &mut self,
        plan: &Plan,
        vis: Option<&Visibility>,
        limit: i64,
        offset: i64,
        count: bool,
    ) -> Result<(Vec<Hit>, Option<i64>)> {
        if let Some(ids) = self.set_matches(plan, vis).await? {
            let (limit, offset) = (limit.clamp(1, 1000) as usize, offset.max(0) as usize);
            let hits = self
                .set_page(&ids, plan.sort, plan.descending, offset, limit)
                .await?;
            return Ok((hits, Some(ids.len() as i64)));
        }
        let total = if count { ", COUNT(*) OVER ()" } else { "" };
        let mut args = vec![];
        let mut s = self.sql(&mut args);
        let dir = if plan.descending { "DESC" } else { "ASC" };
        let sql = if let [kind] = plan.kinds[..] {
            let (tab, a) = table(kind);
            let w = s.where_for(kind, plan, vis);
            let e = sort_expr(kind, plan.sort);
            format!(
                "SELECT CAST({} AS BIGINT), {a}.id, {e}{total} FROM {tab} {a} WHERE {w} ORDER BY {e} {dir}, {a}.id {dir} LIMIT {} OFFSET {}",
                kind_code(kind),
                limit.clamp(1, 1000),
                offset.max(0)
            )
        } else {
            let parts: Vec<String> = plan
                .kinds
                .iter()
                .map(|&kind| {
                    let (tab, a) = table(kind);
                    let w = s.where_for(kind, plan, vis);
                    let e = sort_expr(kind, plan.sort);
                    format!(
                        "SELECT CAST({} AS BIGINT) AS k, {a}.id AS id, {e} AS s FROM {tab} {a} WHERE {w}",
                        kind_code(kind)
                    )
                })
                .collect();
            format!(
                "SELECT k, id, s{total} FROM ({}) x ORDER BY s {dir}, k, id {dir} LIMIT {} OFFSET {}",
                parts.join(" UNION ALL "),
                limit.clamp(1, 1000),
                offset.max(0)
            )
        };
        let rows = self.all(&sql, &args).await?;
        let total = match rows.first() {
            Some(r) if count => Some(r.i64(3)?),
            _ => None,
        };
        Ok((rows.iter().map(decode_hit).collect::<Result<_>>()?, total))
    }

    /// How many records a plan matches.
    pub async fn search_count(&mut self, plan: &Plan, vis: Option<&Visibility>) -> Result<i64> {
        if let Some(ids) = self.set_matches(plan, vis).await? {
            return Ok(ids.len() as i64);
        }
        let mut total = 0;
        for &kind in &plan.kinds {
            let mut args = vec![];
            let mut s = self.sql(&mut args);
            let (tab, a) = table(kind);
            let w = s.where_for(kind, plan, vis);
            total += self
                .int(&format!("SELECT COUNT(*) FROM {tab} {a} WHERE {w}"), &args)
                .await?;
        }
        Ok(total)
    }

    /// `search/export`: one kind, newest created first, after `(created_at, id)`.
    pub async fn search_export(
        &mut self,
        plan: &Plan,
        kind: Kind,
        vis: Option<&Visibility>,
        after: Option<(i64, Id)>,
        limit: i64,
    ) -> Result<Vec<Hit>> {
        let mut args = vec![];
        let mut s = self.sql(&mut args);
        let (tab, a) = table(kind);
        let mut w = s.where_for(kind, plan, vis);
        if let Some((c, id)) = after {
            let c = s.p(Val::Int(c));
            let id = s.p(Val::Int(id));
            w = format!("{w} AND ({a}.created_at, {a}.id) < ({c}, {id})");
        }
        let sql = format!(
            "SELECT CAST({} AS BIGINT), {a}.id, {a}.created_at FROM {tab} {a} WHERE {w} ORDER BY {a}.created_at DESC, {a}.id DESC LIMIT {}",
            kind_code(kind),
            limit.clamp(1, 1001)
        );
        let rows = self.all(&sql, &args).await?;
        rows.iter().map(decode_hit).collect()
    }

    /// Time-based change stream: records with `start <= updated_at <= horizon`, oldest first,
    /// `limit` of them or more: a page never ends inside a second, so the next page can start
    /// at the second after its last record and see every change exactly once.
    /// Returns the changes and whether the stream is exhausted up to the horizon.
    pub async fn changes_since<D: Doc>(
        &mut self,
        start: i64,
        horizon: i64,
        limit: i64,
        include_deleted: bool,
    ) -> Result<(Vec<Change<D>>, bool)> {
        let (del_col, del_cond) = change_cols::<D>(include_deleted);
        let from = format!(
            "SELECT id, data, updated_at, change_seq, {del_col} FROM {} WHERE 1=1{del_cond}",
            D::TABLE
        );
        self.whole_seconds(
            &from,
            "updated_at",
            start,
            horizon,
            limit,
            decode_change::<D>,
            |c| c.updated_at,
        )
        .await
    }

    /// One page of a time-ordered stream (`from` is a `SELECT … WHERE …` to extend): rows with
    /// `start <= {time} <= horizon`, oldest first, at least `limit` of them unless the stream
    /// ends, never ending inside a second: a page that would is cut before that second, or,
    /// when it holds nothing else, takes the whole second. Returns the rows and whether the
    /// stream is exhausted up to the horizon.
    #[allow(clippy::too_many_arguments)]
    async fn whole_seconds<T>(
        &mut self,
        from: &str,
        time: &str,
        start: i64,
        horizon: i64,
        limit: i64,
        decode: impl Fn(&Row) -> Result<T>,
        at: impl Fn(&T) -> i64,
    ) -> Result<(Vec<T>, bool)> {
        let limit = limit.clamp(1, 1000);
        let rows = self
            .all(
                &format!(
                    "{from} AND {time} >= $1 AND {time} <= $2 ORDER BY {time}, id LIMIT {}",
                    limit + 1
                ),
                &[Val::Int(start), Val::Int(horizon)],
            )
            .await?;
        let mut out = rows.iter().map(&decode).collect::<Result<Vec<_>>>()?;
        if out.len() as i64 <= limit {
            return Ok((out, true));
        }
        let next = out.pop().map(|x| at(&x));
        let last = out.last().map(&at);
        if next == last {
            let second = last.unwrap_or(start);
            out.retain(|x| at(x) < second);
            if out.is_empty() {
                let rows = self
                    .all(
                        &format!("{from} AND {time} = $1 ORDER BY id"),
                        &[Val::Int(second)],
                    )
                    .await?;
                out = rows.iter().map(&decode).collect::<Result<Vec<_>>>()?;
            }
        }
        Ok((out, false))
    }

    /// Cursor change stream: records changed after `(change_seq, id)` with
    /// `updated_at >= start`, in commit order. On PostgreSQL only transactions older than
    /// every running one are read, so nothing can later commit behind the cursor.
    pub async fn changes_after<D: Doc>(
        &mut self,
        start: i64,
        after: (i64, Id),
        limit: i64,
        include_deleted: bool,
    ) -> Result<(Vec<Change<D>>, bool)> {
        let limit = limit.clamp(1, 1000);
        let (del_col, del_cond) = change_cols::<D>(include_deleted);
        let settled = if self.is_postgres() {
            " AND change_seq < pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
        } else {
            ""
        };
        let rows = self
            .all(
                &format!(
                    "SELECT id, data, updated_at, change_seq, {del_col} FROM {} \
                     WHERE (change_seq, id) > ($1, $2) AND updated_at >= $3{settled}{del_cond} \
                     ORDER BY change_seq, id LIMIT {}",
                    D::TABLE,
                    limit + 1
                ),
                &[Val::Int(after.0), Val::Int(after.1), Val::Int(start)],
            )
            .await?;
        let mut out = rows
            .iter()
            .map(decode_change::<D>)
            .collect::<Result<Vec<_>>>()?;
        let more = out.len() as i64 > limit;
        out.truncate(limit as usize);
        Ok((out, !more))
    }

    /// Audits (for `incremental/ticket_events`) with `start <= created_at <= horizon`, whole
    /// seconds per page as [`Conn::changes_since`].
    pub async fn audits_since(
        &mut self,
        start: i64,
        horizon: i64,
        limit: i64,
    ) -> Result<(Vec<opsdesk_core::ticket::Audit>, bool)> {
        self.whole_seconds(
            "SELECT id, ticket_id, author_id, created_at, via, metadata, events FROM ticket_audits WHERE 1=1",
            "created_at",
            start,
            horizon,
            limit,
            crate::tickets::decode_audit,
            |a| a.created_at.as_second(),
        )
        .await
    }
}

fn change_cols<D: Doc>(include_deleted: bool) -> (&'static str, &'static str) {
    if D::SOFT_DELETED {
        let cond = if include_deleted {
            ""
        } else {
            " AND deleted_at IS NULL"
        };
        ("deleted_at", cond)
    } else {
        ("NULL", "")
    }
}

fn decode_change<D: Doc>(r: &Row) -> Result<Change<D>> {
    Ok(Change {
        doc: decode(r)?,
        updated_at: r.i64(2)?,
        change_seq: r.i64(3)?,
        deleted: r.opt_i64(4)?.is_some(),
    })
}

/// `setweight(to_tsvector('simple', $n), 'A') || …` for the fields of a record.
fn tsvector(fields: &[String], args: &mut Vec<Val>) -> String {
    if fields.is_empty() {
        return "NULL".into();
    }
    fields
        .iter()
        .zip(WEIGHTS)
        .map(|(f, w)| {
            args.push(Val::Text(f.clone()));
            format!("setweight(to_tsvector('simple', ${}), '{w}')", args.len())
        })
        .collect::<Vec<_>>()
        .join(" || ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_queries_in_both_syntaxes() {
        let w = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(text_query(false, &w(&["disk"]), true, None), "\"disk\" *");
        assert_eq!(
            text_query(false, &w(&["disk", "full"]), false, Some(0)),
            "f0 : \"disk full\""
        );
        assert_eq!(text_query(true, &w(&["disk"]), true, None), "'disk':*");
        assert_eq!(
            text_query(true, &w(&["disk", "full"]), false, Some(0)),
            "'disk':A <-> 'full':A"
        );
        assert_eq!(
            text_query(true, &w(&["disk", "fu"]), true, Some(2)),
            "'disk':C <-> 'fu':*C"
        );
    }
}
