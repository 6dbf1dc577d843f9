//! Zendesk's search language: the tokenizer shared by indexing and querying, the query
//! parser, and the typed plan the store turns into SQL.
//!
//! Pure: the plan still names people, groups and organisations the way the user wrote them
//! ([`Who::Text`]); the application resolves those to ids ([`Who::Ids`]) before the store
//! sees the plan. See `docs/search.md` for the language and where it differs from Zendesk.

use std::fmt;

use crate::model::Role;
use crate::ticket::{Priority, Status, TicketType};

/// Longest token kept in the index (longer runs are cut, as both backends would).
pub const MAX_TOKEN_CHARS: usize = 64;
/// Indexed text per field is cut after this many bytes (a 1 MB e-mail thread still indexes
/// its first part).
pub const MAX_INDEX_BYTES: usize = 100_000;
/// Longest query accepted.
pub const MAX_QUERY_CHARS: usize = 1_000;
/// Most terms in one query.
pub const MAX_TERMS: usize = 30;

/// Words of `text` as the index holds them: lower-case runs of letters and digits. Both
/// backends index this output (SQLite FTS5 and PostgreSQL's `simple` configuration split it
/// the same way), so a query means the same on either.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut n = 0;
    for ch in text.chars() {
        if ch.is_alphanumeric() {
            if n < MAX_TOKEN_CHARS {
                cur.extend(ch.to_lowercase());
                n += 1;
            }
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            n = 0;
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The text to index for `parts`: their tokens joined by spaces, bounded.
pub fn index_text<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for p in parts {
        for t in tokens(p) {
            if out.len() + t.len() + 1 > MAX_INDEX_BYTES {
                return out;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&t);
        }
    }
    out
}

/// A parse or meaning error, with the character offset in the query where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryError {
    pub position: usize,
    pub message: String,
}

impl fmt::Display for QueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at character {})", self.message, self.position)
    }
}

fn err<T>(position: usize, message: impl Into<String>) -> Result<T, QueryError> {
    Err(QueryError {
        position,
        message: message.into(),
    })
}

/// The comparison between a keyword and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `:`
    Eq,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => ":",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
        }
    }
}

/// One term of a query as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    /// Character offset of the term in the query.
    pub position: usize,
    pub negated: bool,
    /// `None` for free text.
    pub key: Option<String>,
    pub op: Op,
    pub value: String,
    /// The value was a "quoted phrase".
    pub quoted: bool,
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negated {
            f.write_str("-")?;
        }
        if let Some(k) = &self.key {
            write!(f, "{k}{}", self.op.as_str())?;
        }
        if self.quoted {
            write!(f, "\"{}\"", self.value)
        } else {
            f.write_str(&self.value)
        }
    }
}

/// Split a query into terms. Whitespace separates terms; `-` before a term negates it;
/// `key:value`, `key<value`, `key<=value`, `key>value`, `key>=value` are keyword terms; double
/// quotes make a phrase (inside them nothing is special).
pub fn parse(query: &str) -> Result<Vec<Term>, QueryError> {
    let chars: Vec<char> = query.chars().collect();
    if chars.len() > MAX_QUERY_CHARS {
        return err(
            MAX_QUERY_CHARS,
            format!("the query is longer than {MAX_QUERY_CHARS} characters"),
        );
    }
    let mut terms = vec![];
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut negated = false;
        if chars[i] == '-' && i + 1 < chars.len() && !chars[i + 1].is_whitespace() {
            negated = true;
            i += 1;
        }
        // A keyword is a run of [A-Za-z0-9_.] followed by an operator.
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '_' | '.'))
        {
            j += 1;
        }
        let mut key = None;
        let mut op = Op::Eq;
        if j > i && j < chars.len() && matches!(chars[j], ':' | '<' | '>') {
            let k: String = chars[i..j].iter().collect();
            let (o, len) = match (chars[j], chars.get(j + 1)) {
                (':', _) => (Op::Eq, 1),
                ('<', Some('=')) => (Op::Le, 2),
                ('>', Some('=')) => (Op::Ge, 2),
                ('<', _) => (Op::Lt, 1),
                _ => (Op::Gt, 1),
            };
            key = Some(k.to_ascii_lowercase());
            op = o;
            i = j + len;
            if i >= chars.len() || chars[i].is_whitespace() {
                return err(start, format!("'{k}{}' needs a value", o.as_str()));
            }
        }
        let (value, quoted) = if chars[i] == '"' {
            let open = i;
            i += 1;
            let from = i;
            while i < chars.len() && chars[i] != '"' {
                i += 1;
            }
            if i >= chars.len() {
                return err(open, "a quoted phrase is not closed");
            }
            let v: String = chars[from..i].iter().collect();
            i += 1;
            if i < chars.len() && !chars[i].is_whitespace() {
                return err(i, "a closing quote must be followed by a space");
            }
            (v, true)
        } else {
            let from = i;
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '"' {
                    return err(i, "a quote inside a word; put the whole phrase in quotes");
                }
                i += 1;
            }
            (chars[from..i].iter().collect::<String>(), false)
        };
        if key.is_none() && !quoted && negated && value.is_empty() {
            return err(start, "'-' must be followed by a term");
        }
        terms.push(Term {
            position: start,
            negated,
            key,
            op,
            value,
            quoted,
        });
        if terms.len() > MAX_TERMS {
            return err(start, format!("a query may have at most {MAX_TERMS} terms"));
        }
    }
    Ok(terms)
}

/// What a search returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Ticket,
    User,
    Organization,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Ticket, Kind::User, Kind::Organization];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ticket => "ticket",
            Kind::User => "user",
            Kind::Organization => "organization",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s.trim().to_ascii_lowercase())
    }
}

/// Which indexed text a text term looks in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// Tickets: subject and every comment; users: every indexed field; organisations: name,
    /// details, notes, domains, tags.
    Any,
    Subject,
    /// The ticket's first comment.
    Description,
    /// Any comment.
    Comment,
    Name,
    Notes,
    Details,
}

/// A person, group or organisation as written, then as resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// `me`
    Me,
    /// `none`: the field is empty.
    None,
    /// A name or e-mail the application must look up.
    Text(String),
    /// Resolved: any of these (empty when nothing matched).
    Ids(Vec<i64>),
}

/// The people fields of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonField {
    Requester,
    Assignee,
    Submitter,
    /// Wrote a comment on the ticket.
    Commenter,
    /// Copied (CC) or following.
    Cc,
}

/// The instants a search can compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeField {
    Created,
    Updated,
    Solved,
    DueDate,
}

/// One condition of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Words (a phrase when more than one) in a text field; with `prefix`, the last word
    /// matches any word it begins.
    Text {
        field: TextField,
        words: Vec<String>,
        prefix: bool,
    },
    Status(Vec<Status>),
    /// `None` inside the list is "no priority".
    Priority(Vec<Option<Priority>>),
    TicketType(Vec<Option<TicketType>>),
    Person(PersonField, Who),
    Organization(Who),
    Group(Who),
    /// A tag; a trailing `*` matches any tag it begins. `None` is "no tags".
    Tag(Option<String>),
    Via(String),
    /// `[from, to)` in Unix seconds; either side open.
    Time {
        field: TimeField,
        from: Option<i64>,
        to: Option<i64>,
    },
    CustomField {
        id: i64,
        value: Option<String>,
    },
    FieldValue(String),
    HasAttachment(bool),
    /// Users: e-mail (a `*` anywhere is a wildcard).
    Email(String),
    Role(Role),
    ExternalId(String),
    /// Tickets: the form id; users and organisations: a custom field by key.
    Form(i64),
    RecordField {
        key: String,
        value: Option<String>,
    },
    IsPublic(bool),
}

impl Filter {
    /// Whether the filter means anything for `kind` (a plan drops kinds it does not fit).
    pub fn fits(&self, kind: Kind) -> bool {
        use Filter::*;
        match self {
            Text { field, .. } => match field {
                TextField::Any => true,
                TextField::Subject | TextField::Description | TextField::Comment => {
                    kind == Kind::Ticket
                }
                TextField::Name | TextField::Notes | TextField::Details => kind != Kind::Ticket,
            },
            Status(_)
            | Priority(_)
            | TicketType(_)
            | Person(..)
            | Group(_)
            | Via(_)
            | CustomField { .. }
            | FieldValue(_)
            | HasAttachment(_)
            | Form(_)
            | IsPublic(_) => kind == Kind::Ticket,
            Time { field, .. } => {
                matches!(field, TimeField::Created | TimeField::Updated) || kind == Kind::Ticket
            }
            Organization(_) => kind != Kind::Organization,
            Tag(_) | ExternalId(_) => true,
            Email(_) | Role(_) => kind == Kind::User,
            RecordField { .. } => kind != Kind::Ticket,
        }
    }
}

/// One term of a plan: the filter, or its negation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clause {
    pub negated: bool,
    /// Any of these (the same keyword given more than once with `:` is an OR for the
    /// single-valued fields, as in Zendesk).
    pub any: Vec<Filter>,
}

/// Result order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortKey {
    Created,
    Updated,
    Priority,
    Status,
    TicketType,
}

impl SortKey {
    pub fn parse(s: &str) -> Option<SortKey> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "created" | "created_at" => SortKey::Created,
            "updated" | "updated_at" => SortKey::Updated,
            "priority" => SortKey::Priority,
            "status" => SortKey::Status,
            "ticket_type" | "type" => SortKey::TicketType,
            _ => return None,
        })
    }
}

/// A query ready for the store: the kinds it can return, the clauses every result meets, and
/// the order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub kinds: Vec<Kind>,
    pub clauses: Vec<Clause>,
    pub sort: SortKey,
    pub descending: bool,
}

/// Context a plan needs: the current instant and the custom-field keys of users and
/// organisations (so `plan:premium` is a field and not a typo).
#[derive(Debug, Clone, Default)]
pub struct PlanContext {
    pub now: i64,
    pub user_field_keys: Vec<String>,
    pub organization_field_keys: Vec<String>,
}

fn word_filter(
    field: TextField,
    value: &str,
    quoted: bool,
    pos: usize,
) -> Result<Filter, QueryError> {
    let (v, star) = match value.strip_suffix('*') {
        Some(v) if !quoted => (v, true),
        _ => (value, false),
    };
    if !quoted && v.contains('*') {
        return err(pos, "a wildcard '*' may only end a word");
    }
    let words = tokens(v);
    if words.is_empty() {
        return err(
            pos,
            format!("'{value}' has no letters or digits to search for"),
        );
    }
    if star && words.last().is_some_and(|w| w.chars().count() < 2) {
        return err(
            pos,
            "a wildcard needs at least two characters before the '*'",
        );
    }
    // An unquoted free-text word matches words it begins (Zendesk: "top" finds
    // "Toppings"); a keyword's value does only with an explicit '*' ("subject:photo*").
    Ok(Filter::Text {
        field,
        words,
        prefix: star || (field == TextField::Any && !quoted),
    })
}

fn ordinal<T: Copy + PartialEq>(all: &[T], v: T, op: Op) -> Vec<T> {
    let i = all.iter().position(|x| *x == v).unwrap_or(0);
    all.iter()
        .enumerate()
        .filter(|(j, _)| match op {
            Op::Eq => *j == i,
            Op::Lt => *j < i,
            Op::Le => *j <= i,
            Op::Gt => *j > i,
            Op::Ge => *j >= i,
        })
        .map(|(_, x)| *x)
        .collect()
}

const DAY: i64 = 86_400;

/// `created>2026-01-01`, `created<2026-01-01T10:00:00Z`, `created>4hours`: the `[from, to)`
/// range the comparison selects. A date is a whole UTC day; a relative value counts back from
/// now, and `>` means "more recent than" (`created>4hours`: created within the last four hours).
pub fn time_range(value: &str, op: Op, now: i64) -> Option<(Option<i64>, Option<i64>)> {
    let v = value.trim().to_ascii_lowercase();
    if let Some((n, unit)) = relative(&v) {
        let at = now.saturating_sub(n.saturating_mul(unit));
        // Relative values are instants in the past; `>` is "after that instant".
        return Some(match op {
            Op::Gt | Op::Ge => (Some(at), None),
            Op::Lt | Op::Le => (None, Some(at)),
            // `created:2days` is the day-long window that many units ago.
            Op::Eq => (Some(at - unit.min(DAY)), Some(at)),
        });
    }
    let (start, len) = if let Ok(d) = jiff::civil::Date::strptime("%Y-%m-%d", &v) {
        let t = d
            .to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_second();
        (t, DAY)
    } else {
        let t = crate::clock::parse(value.trim())?.as_second();
        (t, 1)
    };
    Some(match op {
        Op::Eq => (Some(start), Some(start + len)),
        Op::Gt => (Some(start + len), None),
        Op::Ge => (Some(start), None),
        Op::Lt => (None, Some(start)),
        Op::Le => (None, Some(start + len)),
    })
}

fn relative(v: &str) -> Option<(i64, i64)> {
    let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() || digits.len() > 9 {
        return None;
    }
    let n: i64 = digits.parse().ok()?;
    let unit = match &v[digits.len()..] {
        "minute" | "minutes" | "min" | "mins" => 60,
        "hour" | "hours" => 3_600,
        "day" | "days" => DAY,
        "week" | "weeks" => 7 * DAY,
        "month" | "months" => 30 * DAY,
        "year" | "years" => 365 * DAY,
        _ => return None,
    };
    Some((n, unit))
}

fn who(value: &str) -> Who {
    match value.trim().to_ascii_lowercase().as_str() {
        "me" => Who::Me,
        "none" => Who::None,
        _ => match value.trim().parse::<i64>() {
            Ok(id) => Who::Ids(vec![id]),
            Err(_) => Who::Text(value.trim().to_string()),
        },
    }
}

fn is_none(v: &str) -> bool {
    v.eq_ignore_ascii_case("none")
}

fn eq_only(t: &Term, key: &str) -> Result<(), QueryError> {
    if t.op != Op::Eq {
        return err(
            t.position,
            format!("'{key}' takes ':' only, not '{}'", t.op.as_str()),
        );
    }
    Ok(())
}

fn boolean(t: &Term, key: &str) -> Result<bool, QueryError> {
    eq_only(t, key)?;
    match t.value.to_ascii_lowercase().as_str() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => err(t.position, format!("'{key}' takes true or false")),
    }
}

/// Turn parsed terms into a plan. `kind` is `filter[type]` (or `type:` in the query).
pub fn plan(terms: &[Term], kind: Option<Kind>, cx: &PlanContext) -> Result<Plan, QueryError> {
    let mut kind = kind;
    let mut sort = None;
    let mut descending = None;
    let mut clauses: Vec<(Option<String>, usize, Clause)> = vec![];
    for t in terms {
        let pos = t.position;
        let Some(key) = t.key.as_deref() else {
            let f = word_filter(TextField::Any, &t.value, t.quoted, pos)?;
            clauses.push((
                None,
                pos,
                Clause {
                    negated: t.negated,
                    any: vec![f],
                },
            ));
            continue;
        };
        let v = t.value.trim();
        let f = match key {
            "type" => {
                eq_only(t, key)?;
                let k = Kind::parse(v).ok_or_else(|| QueryError {
                    position: pos,
                    message: format!(
                        "type:{v} is not searchable; use ticket, user or organization"
                    ),
                })?;
                if t.negated || kind.is_some_and(|x| x != k) {
                    return err(pos, "a query searches one type at a time");
                }
                kind = Some(k);
                continue;
            }
            "order_by" => {
                eq_only(t, key)?;
                sort = Some(SortKey::parse(v).ok_or_else(|| QueryError {
                    position: pos,
                    message: format!(
                        "order_by:{v} is not a sort field; use created, updated, priority, status or ticket_type"
                    ),
                })?);
                continue;
            }
            "sort" => {
                eq_only(t, key)?;
                descending = Some(match v.to_ascii_lowercase().as_str() {
                    "asc" => false,
                    "desc" => true,
                    _ => return err(pos, "sort takes asc or desc"),
                });
                continue;
            }
            "status" => {
                let s = Status::parse(v).ok_or_else(|| QueryError {
                    position: pos,
                    message: format!("'{v}' is not a ticket status"),
                })?;
                Filter::Status(ordinal(&Status::ALL, s, t.op))
            }
            "priority" if is_none(v) => {
                eq_only(t, key)?;
                Filter::Priority(vec![None])
            }
            "priority" => {
                let p = Priority::parse(v).ok_or_else(|| QueryError {
                    position: pos,
                    message: format!("'{v}' is not a priority (low, normal, high, urgent, none)"),
                })?;
                Filter::Priority(
                    ordinal(&Priority::ALL, p, t.op)
                        .into_iter()
                        .map(Some)
                        .collect(),
                )
            }
            "ticket_type" => {
                eq_only(t, key)?;
                if is_none(v) {
                    Filter::TicketType(vec![None])
                } else {
                    Filter::TicketType(vec![Some(TicketType::parse(v).ok_or_else(|| {
                        QueryError {
                            position: pos,
                            message: format!(
                            "'{v}' is not a ticket type (question, incident, problem, task, none)"
                        ),
                        }
                    })?)])
                }
            }
            "requester" | "assignee" | "submitter" | "commenter" | "cc" => {
                eq_only(t, key)?;
                let field = match key {
                    "requester" => PersonField::Requester,
                    "assignee" => PersonField::Assignee,
                    "submitter" => PersonField::Submitter,
                    "commenter" => PersonField::Commenter,
                    _ => PersonField::Cc,
                };
                let w = who(v);
                if w == Who::None && field != PersonField::Assignee {
                    return err(
                        pos,
                        format!("{key}:none never matches; only assignee can be none"),
                    );
                }
                Filter::Person(field, w)
            }
            "organization" => {
                eq_only(t, key)?;
                Filter::Organization(who(v))
            }
            "group" => {
                eq_only(t, key)?;
                Filter::Group(who(v))
            }
            "tags" | "tag" => {
                eq_only(t, key)?;
                if is_none(v) {
                    Filter::Tag(None)
                } else if t.quoted && v.split_whitespace().count() > 1 {
                    // tags:"a b" is both tags (Zendesk's AND inside one keyword).
                    for tag in v.split_whitespace() {
                        clauses.push((
                            None,
                            pos,
                            Clause {
                                negated: t.negated,
                                any: vec![Filter::Tag(Some(tag.to_lowercase()))],
                            },
                        ));
                    }
                    continue;
                } else {
                    let tag = v.to_lowercase();
                    if tag.trim_end_matches('*').contains('*') {
                        return err(pos, "a wildcard '*' may only end a tag");
                    }
                    if tag.ends_with('*') && tag.chars().count() < 3 {
                        return err(
                            pos,
                            "a wildcard needs at least two characters before the '*'",
                        );
                    }
                    Filter::Tag(Some(tag))
                }
            }
            "via" => {
                eq_only(t, key)?;
                Filter::Via(match v.to_ascii_lowercase().as_str() {
                    "mail" => "email".to_string(),
                    "web_form" | "webform" => "web".to_string(),
                    other => other.to_string(),
                })
            }
            "created" | "updated" | "solved" | "due_date" => {
                let field = match key {
                    "created" => TimeField::Created,
                    "updated" => TimeField::Updated,
                    "solved" => TimeField::Solved,
                    _ => TimeField::DueDate,
                };
                let (from, to) = time_range(v, t.op, cx.now).ok_or_else(|| QueryError {
                    position: pos,
                    message: format!(
                        "'{v}' is not a date (2026-01-31, 2026-01-31T10:00:00Z) or a relative time (4hours, 2days, 1week)"
                    ),
                })?;
                Filter::Time { field, from, to }
            }
            "subject" | "description" | "comment" | "name" | "notes" | "details" => {
                eq_only(t, key)?;
                let field = match key {
                    "subject" => TextField::Subject,
                    "description" => TextField::Description,
                    "comment" => TextField::Comment,
                    "name" => TextField::Name,
                    "notes" => TextField::Notes,
                    _ => TextField::Details,
                };
                word_filter(field, v, t.quoted, pos)?
            }
            "fieldvalue" => {
                eq_only(t, key)?;
                Filter::FieldValue(v.to_string())
            }
            "has_attachment" => Filter::HasAttachment(boolean(t, key)?),
            "is_public" => Filter::IsPublic(boolean(t, key)?),
            "email" => {
                eq_only(t, key)?;
                Filter::Email(v.to_lowercase())
            }
            "role" => {
                eq_only(t, key)?;
                Filter::Role(match v.to_ascii_lowercase().as_str() {
                    "end-user" | "end_user" | "enduser" | "user" => Role::EndUser,
                    "agent" => Role::Agent,
                    "admin" => Role::Admin,
                    _ => return err(pos, format!("'{v}' is not a role (end-user, agent, admin)")),
                })
            }
            "external_id" => {
                eq_only(t, key)?;
                Filter::ExternalId(v.to_string())
            }
            "form" | "ticket_form_id" => {
                eq_only(t, key)?;
                Filter::Form(v.parse().map_err(|_| QueryError {
                    position: pos,
                    message: format!("{key}: takes a ticket form id"),
                })?)
            }
            k if k.starts_with("custom_field_") => {
                eq_only(t, key)?;
                let id = k["custom_field_".len()..].parse().map_err(|_| QueryError {
                    position: pos,
                    message: format!("'{k}' is not custom_field_<id>"),
                })?;
                Filter::CustomField {
                    id,
                    value: (!is_none(v)).then(|| v.to_string()),
                }
            }
            k if cx.user_field_keys.iter().any(|x| x == k)
                || cx.organization_field_keys.iter().any(|x| x == k) =>
            {
                eq_only(t, key)?;
                Filter::RecordField {
                    key: k.to_string(),
                    value: (!is_none(v)).then(|| v.to_string()),
                }
            }
            k => {
                return err(
                    pos,
                    format!(
                        "'{k}{}' is not a search keyword; put the text in quotes to search for it",
                        t.op.as_str()
                    ),
                )
            }
        };
        // A keyword repeated with ':' on a single-valued field, or tags, widens the match
        // (either value, as Zendesk); everything else narrows it.
        let widen = !t.negated
            && t.op == Op::Eq
            && matches!(
                f,
                Filter::Status(_)
                    | Filter::Priority(_)
                    | Filter::TicketType(_)
                    | Filter::Person(
                        PersonField::Requester | PersonField::Assignee | PersonField::Submitter,
                        _
                    )
                    | Filter::Organization(_)
                    | Filter::Group(_)
                    | Filter::Via(_)
                    | Filter::Tag(Some(_))
                    | Filter::Form(_)
                    | Filter::Role(_)
            );
        if widen {
            let k = Some(key.to_string());
            if let Some((_, _, c)) = clauses.iter_mut().find(|(kk, _, c)| *kk == k && !c.negated) {
                c.any.push(f);
                continue;
            }
            clauses.push((
                k,
                pos,
                Clause {
                    negated: false,
                    any: vec![f],
                },
            ));
        } else {
            clauses.push((
                None,
                pos,
                Clause {
                    negated: t.negated,
                    any: vec![f],
                },
            ));
        }
    }
    if let Some(k) = kind {
        if let Some((_, pos, _)) = clauses
            .iter()
            .find(|(_, _, c)| !c.any.iter().all(|f| f.fits(k)))
        {
            return err(
                *pos,
                format!(
                    "a keyword in this query does not apply to type:{}",
                    k.as_str()
                ),
            );
        }
    }
    let clauses: Vec<Clause> = clauses.into_iter().map(|(_, _, c)| c).collect();
    let fits = |k: Kind| clauses.iter().all(|c| c.any.iter().all(|f| f.fits(k)));
    let kinds: Vec<Kind> = match kind {
        Some(k) => vec![k],
        None => Kind::ALL.into_iter().filter(|k| fits(*k)).collect(),
    };
    if kinds.is_empty() {
        return err(0, "no type of record fits every keyword of this query");
    }
    let mut plan = Plan {
        kinds,
        clauses,
        sort: SortKey::Updated,
        descending: true,
    };
    plan.set_sort(sort, descending)?;
    Ok(plan)
}

impl Plan {
    /// Parse and plan in one step.
    pub fn from_query(
        query: &str,
        kind: Option<Kind>,
        cx: &PlanContext,
    ) -> Result<Plan, QueryError> {
        let terms = parse(query)?;
        plan(&terms, kind, cx)
    }

    /// Order by `sort` and/or direction `descending` (from `order_by:`/`sort:` or the
    /// `sort_by`/`sort_order` parameters); ticket-only keys need a ticket-only plan.
    pub fn set_sort(
        &mut self,
        sort: Option<SortKey>,
        descending: Option<bool>,
    ) -> Result<(), QueryError> {
        if let Some(s) = sort {
            if !matches!(s, SortKey::Created | SortKey::Updated) && self.kinds != [Kind::Ticket] {
                return err(
                    0,
                    "order_by:priority, status and ticket_type need type:ticket",
                );
            }
            self.sort = s;
        }
        if let Some(d) = descending {
            self.descending = d;
        }
        Ok(())
    }

    /// Every unresolved person, group or organisation reference, for the application to look up.
    pub fn refs_mut(&mut self) -> impl Iterator<Item = &mut Who> {
        self.clauses
            .iter_mut()
            .flat_map(|c| c.any.iter_mut())
            .filter_map(|f| match f {
                Filter::Person(_, w) | Filter::Organization(w) | Filter::Group(w) => Some(w),
                _ => None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx() -> PlanContext {
        PlanContext {
            now: 1_800_000_000,
            user_field_keys: vec!["plan".into()],
            organization_field_keys: vec!["support_level".into()],
        }
    }

    fn p(q: &str) -> Plan {
        Plan::from_query(q, None, &cx()).unwrap_or_else(|e| panic!("{q}: {e}"))
    }

    fn e(q: &str) -> QueryError {
        match Plan::from_query(q, None, &cx()) {
            Ok(p) => panic!("{q} planned: {p:?}"),
            Err(e) => e,
        }
    }

    fn one(q: &str) -> Filter {
        let pl = p(q);
        assert_eq!(pl.clauses.len(), 1, "{q}");
        assert_eq!(pl.clauses[0].any.len(), 1, "{q}");
        pl.clauses[0].any[0].clone()
    }

    #[test]
    fn tokens_are_lowercase_alphanumeric_runs() {
        assert_eq!(
            tokens("Hello, World! a.b@Example.COM 42x"),
            vec!["hello", "world", "a", "b", "example", "com", "42x"]
        );
        assert_eq!(tokens("Größe über-alles"), vec!["größe", "über", "alles"]);
        assert_eq!(tokens("  ...  "), Vec::<String>::new());
        assert_eq!(tokens(&"x".repeat(100))[0].len(), MAX_TOKEN_CHARS);
        assert_eq!(index_text(["Re: Foo", "bar-baz"]), "re foo bar baz");
    }

    #[test]
    fn terms_keep_keywords_operators_phrases_and_negation() {
        let ts =
            parse(r#"type:ticket status<solved -tags:vip "exact phrase" created>=2026-01-01 word"#)
                .unwrap();
        let shown: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
        assert_eq!(
            shown,
            vec![
                "type:ticket",
                "status<solved",
                "-tags:vip",
                "\"exact phrase\"",
                "created>=2026-01-01",
                "word"
            ]
        );
        assert!(ts[2].negated);
        assert_eq!(ts[1].op, Op::Lt);
        assert_eq!(ts[4].op, Op::Ge);
        assert_eq!(ts[3].position, 36);
        // A quoted keyword value.
        let ts = parse(r#"subject:"disk full""#).unwrap();
        assert_eq!(
            (ts[0].key.as_deref(), ts[0].value.as_str(), ts[0].quoted),
            (Some("subject"), "disk full", true)
        );
    }

    #[test]
    fn parse_round_trips_through_display() {
        for q in [
            "type:ticket status<solved",
            "-tags:vip \"a b\" c*",
            "created>4hours priority>=high requester:a@b.example",
        ] {
            let ts = parse(q).unwrap();
            let again = ts
                .iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" ");
            assert_eq!(
                parse(&again)
                    .unwrap()
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>(),
                ts.iter().map(|t| t.to_string()).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn each_keyword_plans_to_its_filter() {
        assert_eq!(one("status:open"), Filter::Status(vec![Status::Open]));
        assert_eq!(
            one("status<solved"),
            Filter::Status(vec![
                Status::New,
                Status::Open,
                Status::Pending,
                Status::Hold
            ])
        );
        assert_eq!(
            one("status>=solved"),
            Filter::Status(vec![Status::Solved, Status::Closed])
        );
        assert_eq!(
            one("priority>normal"),
            Filter::Priority(vec![Some(Priority::High), Some(Priority::Urgent)])
        );
        assert_eq!(one("priority:none"), Filter::Priority(vec![None]));
        assert_eq!(
            one("ticket_type:incident"),
            Filter::TicketType(vec![Some(TicketType::Incident)])
        );
        assert_eq!(
            one("assignee:none"),
            Filter::Person(PersonField::Assignee, Who::None)
        );
        assert_eq!(
            one("assignee:me"),
            Filter::Person(PersonField::Assignee, Who::Me)
        );
        assert_eq!(
            one("requester:12"),
            Filter::Person(PersonField::Requester, Who::Ids(vec![12]))
        );
        assert_eq!(
            one("submitter:a@b.example"),
            Filter::Person(PersonField::Submitter, Who::Text("a@b.example".into()))
        );
        assert_eq!(
            one("organization:Acme"),
            Filter::Organization(Who::Text("Acme".into()))
        );
        assert_eq!(one("group:none"), Filter::Group(Who::None));
        assert_eq!(one("tags:VIP"), Filter::Tag(Some("vip".into())));
        assert_eq!(one("tags:none"), Filter::Tag(None));
        assert_eq!(one("tags:prem*"), Filter::Tag(Some("prem*".into())));
        assert_eq!(one("via:mail"), Filter::Via("email".into()));
        assert_eq!(
            one("subject:\"disk full\""),
            Filter::Text {
                field: TextField::Subject,
                words: vec!["disk".into(), "full".into()],
                prefix: false
            }
        );
        let text = |f, w: &str, prefix| Filter::Text {
            field: f,
            words: vec![w.to_string()],
            prefix,
        };
        assert_eq!(one("subject:disk"), text(TextField::Subject, "disk", false));
        assert_eq!(one("disk"), text(TextField::Any, "disk", true));
        assert_eq!(one("\"disk\""), text(TextField::Any, "disk", false));
        assert_eq!(p("tags:\"a b\"").clauses.len(), 2);
        assert_eq!(
            one("comment:restart*"),
            Filter::Text {
                field: TextField::Comment,
                words: vec!["restart".into()],
                prefix: true
            }
        );
        assert_eq!(
            one("custom_field_360:gold"),
            Filter::CustomField {
                id: 360,
                value: Some("gold".into())
            }
        );
        assert_eq!(
            one("custom_field_360:none"),
            Filter::CustomField {
                id: 360,
                value: None
            }
        );
        assert_eq!(one("fieldvalue:12345"), Filter::FieldValue("12345".into()));
        assert_eq!(one("has_attachment:true"), Filter::HasAttachment(true));
        assert_eq!(
            one("email:*@example.com"),
            Filter::Email("*@example.com".into())
        );
        assert_eq!(one("role:agent"), Filter::Role(Role::Agent));
        assert_eq!(
            one("plan:premium"),
            Filter::RecordField {
                key: "plan".into(),
                value: Some("premium".into())
            }
        );
        assert_eq!(one("form:7"), Filter::Form(7));
    }

    #[test]
    fn times_are_day_windows_or_relative_instants() {
        let now = cx().now;
        let d = 1_767_225_600; // 2026-01-01T00:00:00Z
        assert_eq!(
            one("created:2026-01-01"),
            Filter::Time {
                field: TimeField::Created,
                from: Some(d),
                to: Some(d + DAY)
            }
        );
        assert_eq!(
            one("created>2026-01-01"),
            Filter::Time {
                field: TimeField::Created,
                from: Some(d + DAY),
                to: None
            }
        );
        assert_eq!(
            one("created>=2026-01-01"),
            Filter::Time {
                field: TimeField::Created,
                from: Some(d),
                to: None
            }
        );
        assert_eq!(
            one("updated<2026-01-01"),
            Filter::Time {
                field: TimeField::Updated,
                from: None,
                to: Some(d)
            }
        );
        assert_eq!(
            one("updated<=2026-01-01"),
            Filter::Time {
                field: TimeField::Updated,
                from: None,
                to: Some(d + DAY)
            }
        );
        assert_eq!(
            one("created>4hours"),
            Filter::Time {
                field: TimeField::Created,
                from: Some(now - 4 * 3600),
                to: None
            }
        );
        assert_eq!(
            one("solved<2days"),
            Filter::Time {
                field: TimeField::Solved,
                from: None,
                to: Some(now - 2 * DAY)
            }
        );
        assert_eq!(
            one("due_date<1week"),
            Filter::Time {
                field: TimeField::DueDate,
                from: None,
                to: Some(now - 7 * DAY)
            }
        );
        assert_eq!(
            one("created>2026-01-01T10:00:00Z"),
            Filter::Time {
                field: TimeField::Created,
                from: Some(d + 36_001),
                to: None
            }
        );
    }

    #[test]
    fn repeated_keywords_widen_single_valued_fields_and_narrow_tags() {
        let pl = p("status:open status:pending");
        assert_eq!(pl.clauses.len(), 1);
        assert_eq!(
            pl.clauses[0].any,
            vec![
                Filter::Status(vec![Status::Open]),
                Filter::Status(vec![Status::Pending])
            ]
        );
        // tags:a tags:b is either tag (Zendesk); tags:"a b" is both.
        let pl = p("tags:a tags:b");
        assert_eq!(pl.clauses.len(), 1);
        assert_eq!(pl.clauses[0].any.len(), 2);
        let pl = p("-tags:a -tags:b");
        assert_eq!(pl.clauses.len(), 2);
        let pl = p("-tags:a word");
        assert!(pl.clauses[0].negated);
        assert_eq!(
            pl.clauses[1].any,
            vec![Filter::Text {
                field: TextField::Any,
                words: vec!["word".into()],
                prefix: true
            }]
        );
    }

    #[test]
    fn kinds_follow_the_keywords_and_type() {
        assert_eq!(p("status:open").kinds, vec![Kind::Ticket]);
        assert_eq!(p("role:agent").kinds, vec![Kind::User]);
        assert_eq!(p("name:acme").kinds, vec![Kind::User, Kind::Organization]);
        assert_eq!(p("acme").kinds, Kind::ALL.to_vec());
        assert_eq!(p("type:organization acme").kinds, vec![Kind::Organization]);
        assert_eq!(p("type:user tags:x").kinds, vec![Kind::User]);
        let pl = p("type:ticket order_by:priority sort:asc");
        assert_eq!((pl.sort, pl.descending), (SortKey::Priority, false));
        assert_eq!(p("x").sort, SortKey::Updated);
    }

    #[test]
    fn bad_queries_say_where() {
        let cases: &[(&str, usize, &str)] = &[
            ("status:opne", 0, "not a ticket status"),
            ("word \"open phrase", 5, "not closed"),
            ("subject:", 0, "needs a value"),
            ("x type:nothing", 2, "not searchable"),
            ("type:user status:open", 10, "does not apply to type:user"),
            ("bogus:1", 0, "not a search keyword"),
            ("created>yesterdayish", 0, "not a date"),
            ("priority:extreme", 0, "not a priority"),
            ("order_by:colour", 0, "not a sort field"),
            ("sort:sideways", 0, "asc or desc"),
            ("has_attachment:maybe", 0, "true or false"),
            ("a*b", 0, "may only end"),
            ("a*", 0, "at least two"),
            ("role:agent status:open", 0, "no type of record"),
            ("requester:none", 0, "never matches"),
            ("tags<vip", 0, "':' only"),
            ("...", 0, "no letters"),
            ("x\"y\"", 1, "quote inside"),
            ("status:open order_by:priority role:agent", 0, "no type"),
        ];
        for (q, pos, msg) in cases {
            let e = e(q);
            assert!(e.message.contains(msg), "{q}: {e}");
            assert_eq!(e.position, *pos, "{q}: {e}");
        }
        assert!(e(&"a ".repeat(600)).message.contains("longer than"));
        assert!(e(&"a ".repeat(40)).message.contains("at most"));
    }

    proptest::proptest! {
        #[test]
        fn any_input_parses_or_errs_without_panic(q in "\\PC{0,80}") {
            let _ = Plan::from_query(&q, None, &cx());
        }

        #[test]
        fn printed_terms_reparse_to_the_same_terms(q in "[a-z:<>=\" *-]{0,40}") {
            if let Ok(ts) = parse(&q) {
                let printed = ts.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(" ");
                let again = parse(&printed).expect("printed terms parse");
                let strip = |v: &[Term]| v.iter().map(|t| (t.negated, t.key.clone(), t.op, t.value.clone(), t.quoted)).collect::<Vec<_>>();
                proptest::prop_assert_eq!(strip(&ts), strip(&again));
            }
        }
    }
}
