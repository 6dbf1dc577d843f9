//! Tickets and requests: create, update (with audits), read with visibility rules, tags,
//! bulk jobs.

use std::collections::BTreeMap;

use opsdesk_core::clock;
use opsdesk_core::fields::{check_value, tags_for_value, TicketField};
use opsdesk_core::model::{
    check_tags, normalize_tags, Group, GroupMembership, Id, JobStatus, Organization, User,
};
use opsdesk_core::ticket::{
    change_events, creation_events, Audit, CcChange, Comment, CommentInput, Priority, Status,
    Ticket, TicketInput, TicketType, Via,
};
use opsdesk_core::Invalid;
use opsdesk_store::{Cond, Conn, Page, Paged, Val};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::people::UserInput;
use crate::{html, Actor, App, AppError, Origin, Result};

/// The most people (CCs, followers, collaborators) and custom field values one write may name.
pub const MAX_PEOPLE: usize = 100;

/// The most records one bulk call may carry (Zendesk's limit).
pub const BULK_LIMIT: usize = 100;

/// Filters for ticket lists (`/tickets`, `/users/{id}/tickets/requested`, …).
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub requester_id: Option<Id>,
    pub assignee_id: Option<Id>,
    pub organization_id: Option<Id>,
    pub group_id: Option<Id>,
    pub external_id: Option<String>,
    pub statuses: Vec<Status>,
    /// Only tickets without an assignee.
    pub unassigned: bool,
}

/// How `tickets/{id}/tags` changes tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagMode {
    Set,
    Add,
    Remove,
}

/// What an end-user may change on their request.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestInput {
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub comment: Option<CommentInput>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub priority: Option<String>,
    #[serde(default, rename = "type")]
    pub ticket_type: Option<String>,
    #[serde(default)]
    pub solved: Option<bool>,
    #[serde(default)]
    pub collaborators: Option<Vec<Value>>,
    #[serde(default)]
    pub email_ccs: Option<Vec<CcChange>>,
    #[serde(default)]
    pub custom_fields: Option<Vec<opsdesk_core::ticket::CustomFieldInput>>,
    #[serde(default)]
    pub ticket_form_id: Option<Id>,
    #[serde(default)]
    pub requester: Option<opsdesk_core::ticket::RequesterInput>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

fn closed_error() -> AppError {
    AppError::Invalid(Invalid::one(
        "status",
        "ClosedPreventsUpdate",
        "Status: closed prevents ticket update",
    ))
}

fn new_job_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// The organisations whose tickets an end-user may see (member of, and shared or the user's
/// restriction says so).
pub(crate) async fn visible_orgs(c: &mut Conn, user: &User) -> Result<Vec<Id>> {
    let ms = c.memberships_of(user.id).await?;
    if ms.is_empty() {
        return Ok(vec![]);
    }
    let orgs: Vec<Organization> = c
        .get_many(&ms.iter().map(|m| m.organization_id).collect::<Vec<_>>())
        .await?;
    Ok(orgs
        .into_iter()
        .filter(|o| o.shared_tickets || user.ticket_restriction.as_deref() == Some("organization"))
        .map(|o| o.id)
        .collect())
}

fn involved(user: &User, t: &Ticket) -> bool {
    t.requester_id == user.id
        || t.collaborator_ids.contains(&user.id)
        || t.email_cc_ids.contains(&user.id)
}

fn comment_body(c: &CommentInput) -> (String, String, String) {
    let (html_body, plain) = match (&c.html_body, c.body.as_ref().or(c.value.as_ref())) {
        (Some(h), _) if !h.trim().is_empty() => {
            let clean = html::sanitize(h);
            let plain = html::html_to_text(&clean);
            (clean, plain)
        }
        (_, Some(b)) => (html::text_to_html(b), b.clone()),
        _ => (String::new(), String::new()),
    };
    let body = c
        .body
        .clone()
        .or(c.value.clone())
        .filter(|b| !b.trim().is_empty())
        .unwrap_or_else(|| plain.clone());
    (body, html_body, plain)
}

fn comment_event(c: &Comment) -> Value {
    json!({
        "type": "Comment",
        "author_id": c.author_id,
        "body": c.body,
        "html_body": c.html_body,
        "plain_body": c.plain_body,
        "public": c.public,
        "attachments": c.attachments,
    })
}

/// The audit metadata key holding the author's role when they wrote it, so a KPI rebuild
/// judges their replies as the live write did (docs/kpi.md).
pub const AUTHOR_ROLE: &str = "author_role";

fn metadata(origin: &Origin, custom: Option<&Value>) -> Value {
    let mut system = json!({"client": origin.client, "ip_address": origin.ip_address});
    if let (Some(Value::Object(extra)), Value::Object(s)) = (&origin.system, &mut system) {
        s.extend(extra.clone());
    }
    json!({
        "system": system,
        "custom": custom.cloned().unwrap_or_else(|| json!({})),
    })
}

impl App {
    // ---- reading -------------------------------------------------------------------------

    /// Whether `actor` may see `t` (staff: all; end-users: theirs and shared organisations').
    pub(crate) async fn can_view(&self, c: &mut Conn, actor: &Actor, t: &Ticket) -> Result<bool> {
        if actor.is_staff() {
            return Ok(true);
        }
        // A ticket opened with an internal note is private: end-users never see it.
        if !t.is_public {
            return Ok(false);
        }
        if involved(&actor.user, t) {
            return Ok(true);
        }
        Ok(match t.organization_id {
            Some(o) => visible_orgs(c, &actor.user).await?.contains(&o),
            None => false,
        })
    }

    pub(crate) async fn mark_incidents(&self, c: &mut Conn, ts: &mut [Ticket]) -> Result<()> {
        let problems: Vec<Id> = ts
            .iter()
            .filter(|t| t.ticket_type == Some(TicketType::Problem))
            .map(|t| t.id)
            .collect();
        if problems.is_empty() {
            return Ok(());
        }
        let with = c.problems_with_incidents(&problems).await?;
        for t in ts.iter_mut() {
            t.has_incidents = with.contains(&t.id);
        }
        Ok(())
    }

    /// A ticket through the tickets API (agents and admins).
    pub async fn get_ticket(&self, actor: &Actor, id: Id) -> Result<Ticket> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let t = c.ticket(id).await?.ok_or(AppError::NotFound)?;
        let mut v = [t];
        self.mark_incidents(&mut c, &mut v).await?;
        let [t] = v;
        Ok(t)
    }

    pub async fn list_tickets(
        &self,
        actor: &Actor,
        f: &TicketFilter,
        page: &Page,
    ) -> Result<Paged<Ticket>> {
        actor.require_staff()?;
        let mut conds = vec![];
        if let Some(v) = f.requester_id {
            conds.push(Cond::Eq("requester_id", Val::Int(v)));
        }
        if let Some(v) = f.assignee_id {
            conds.push(Cond::Eq("assignee_id", Val::Int(v)));
        }
        if let Some(v) = f.organization_id {
            conds.push(Cond::Eq("organization_id", Val::Int(v)));
        }
        if let Some(v) = f.group_id {
            conds.push(Cond::Eq("group_id", Val::Int(v)));
        }
        if let Some(v) = &f.external_id {
            conds.push(Cond::Eq("external_id", Val::from(v.as_str())));
        }
        if !f.statuses.is_empty() {
            conds.push(Cond::In(
                "status",
                f.statuses.iter().map(|s| Val::from(s.as_str())).collect(),
            ));
        }
        if f.unassigned {
            conds.push(Cond::IsNull("assignee_id"));
        }
        let mut c = self.store.read().await?;
        let mut p = c.tickets(&conds, page).await?;
        self.mark_incidents(&mut c, &mut p.items).await?;
        Ok(p)
    }

    pub async fn tickets_by_ids(&self, actor: &Actor, ids: &[Id]) -> Result<Vec<Ticket>> {
        actor.require_staff()?;
        if ids.len() > BULK_LIMIT {
            return Err(AppError::BadRequest(format!("at most {BULK_LIMIT} ids")));
        }
        let mut c = self.store.read().await?;
        let mut p = c
            .tickets(
                &[Cond::In("id", ids.iter().map(|i| Val::Int(*i)).collect())],
                &Page::All {
                    limit: BULK_LIMIT as i64,
                },
            )
            .await?;
        self.mark_incidents(&mut c, &mut p.items).await?;
        Ok(p.items)
    }

    pub async fn incidents(
        &self,
        actor: &Actor,
        problem_id: Id,
        page: &Page,
    ) -> Result<Paged<Ticket>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.ticket(problem_id).await?.ok_or(AppError::NotFound)?;
        Ok(
            c.tickets(&[Cond::Eq("problem_id", Val::Int(problem_id))], page)
                .await?,
        )
    }

    pub async fn ticket_comments(
        &self,
        actor: &Actor,
        id: Id,
        page: &Page,
    ) -> Result<Paged<Comment>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.ticket(id).await?.ok_or(AppError::NotFound)?;
        Ok(c.comments(id, false, page).await?)
    }

    pub async fn ticket_audits(&self, actor: &Actor, id: Id, page: &Page) -> Result<Paged<Audit>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.ticket(id).await?.ok_or(AppError::NotFound)?;
        Ok(c.audits(id, page).await?)
    }

    pub async fn ticket_audit(&self, actor: &Actor, id: Id, audit_id: Id) -> Result<Audit> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.audit(id, audit_id).await?.ok_or(AppError::NotFound)
    }

    /// Rebuild a ticket from its audits (the projection check).
    pub async fn replay_ticket(&self, id: Id) -> Result<Option<Ticket>> {
        let mut c = self.store.read().await?;
        let audits = c.all_audits(id).await?;
        Ok(opsdesk_core::ticket::replay(id, &audits))
    }

    pub async fn ticket_tags(&self, actor: &Actor, id: Id) -> Result<Vec<String>> {
        Ok(self.get_ticket(actor, id).await?.tags)
    }

    // ---- writing -------------------------------------------------------------------------

    /// Find or create the user a `{"name","email"}` or id or email refers to.
    async fn resolve_person(
        &self,
        tx: &mut Conn,
        v: &Value,
        field: &str,
        inv: &mut Invalid,
    ) -> Result<Option<User>> {
        let (email, name, id) = match v {
            Value::Number(n) => (None, None, n.as_i64()),
            Value::String(s) => (Some(s.clone()), None, None),
            Value::Object(m) => (
                m.get("email").and_then(Value::as_str).map(str::to_string),
                m.get("name").and_then(Value::as_str).map(str::to_string),
                m.get("id").and_then(Value::as_i64),
            ),
            _ => (None, None, None),
        };
        if let Some(id) = id {
            let u = tx.get_shared::<User>(id).await?;
            if u.is_none() {
                inv.invalid(field, field, &format!("user {id} does not exist"));
            }
            return Ok(u);
        }
        let Some(email) = email else {
            inv.invalid(field, field, "needs an id or an email");
            return Ok(None);
        };
        if let Some(u) = tx.user_by_email(&email).await? {
            return Ok(Some(u));
        }
        if !opsdesk_core::model::valid_email(&email) {
            inv.invalid(
                field,
                "Email",
                &format!("{email} is not properly formatted"),
            );
            return Ok(None);
        }
        let u = self
            .create_user_tx(
                tx,
                UserInput {
                    name,
                    email: Some(Some(email)),
                    role: Some("end-user".into()),
                    ..Default::default()
                },
            )
            .await?;
        Ok(Some(u))
    }

    async fn user_ids_exist(
        &self,
        tx: &mut Conn,
        ids: &[Id],
        field: &str,
        staff_only: bool,
        inv: &mut Invalid,
    ) -> Result<Vec<Id>> {
        let mut out: Vec<Id> = vec![];
        let users: Vec<User> = tx.get_many(ids).await?;
        for id in ids {
            match users.iter().find(|u| u.id == *id) {
                None => inv.invalid(field, field, &format!("user {id} does not exist")),
                Some(u) if staff_only && !u.role.is_staff() => {
                    inv.invalid(field, field, &format!("user {id} is not an agent"))
                }
                Some(_) => {
                    if !out.contains(id) {
                        out.push(*id)
                    }
                }
            }
        }
        Ok(out)
    }

    /// Apply `email_ccs` / `followers` changes (`{"user_id"|"user_email", "action"}`) and keep
    /// `collaborator_ids` their union when the client did not set it.
    async fn apply_cc_changes(
        &self,
        tx: &mut Conn,
        t: &mut Ticket,
        email_ccs: Option<&Vec<CcChange>>,
        followers: Option<&Vec<CcChange>>,
        inv: &mut Invalid,
    ) -> Result<()> {
        for (field, list) in [("email_ccs", email_ccs), ("followers", followers)] {
            if list.is_some_and(|l| l.len() > MAX_PEOPLE) {
                return Err(Invalid::one(
                    field,
                    "TooManyValues",
                    format!("{field}: at most {MAX_PEOPLE} entries"),
                )
                .into());
            }
        }
        for (changes, is_followers) in [(email_ccs, false), (followers, true)] {
            let Some(changes) = changes else { continue };
            for ch in changes {
                let v = match (&ch.user_id, &ch.user_email) {
                    (Some(id), _) => json!(id),
                    (None, Some(e)) => json!({"email": e, "name": ch.user_name}),
                    _ => {
                        inv.invalid(
                            if is_followers {
                                "followers"
                            } else {
                                "email_ccs"
                            },
                            "CC",
                            "needs user_id or user_email",
                        );
                        continue;
                    }
                };
                let Some(u) = self
                    .resolve_person(
                        tx,
                        &v,
                        if is_followers {
                            "followers"
                        } else {
                            "email_ccs"
                        },
                        inv,
                    )
                    .await?
                else {
                    continue;
                };
                let list = if is_followers {
                    &mut t.follower_ids
                } else {
                    &mut t.email_cc_ids
                };
                if ch.action.as_deref() == Some("delete") {
                    list.retain(|x| *x != u.id);
                } else if !list.contains(&u.id) {
                    if is_followers && !u.role.is_staff() {
                        inv.invalid("followers", "Followers", "must be agents");
                        continue;
                    }
                    list.push(u.id);
                }
            }
        }
        if t.collaborator_ids.is_empty()
            && (!t.email_cc_ids.is_empty() || !t.follower_ids.is_empty())
        {
            let mut all = t.email_cc_ids.clone();
            for f in &t.follower_ids {
                if !all.contains(f) {
                    all.push(*f);
                }
            }
            t.collaborator_ids = all;
        }
        Ok(())
    }

    /// Apply a create/update input to `t`. Reference checks run against `tx`.
    async fn apply_ticket_input(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        t: &mut Ticket,
        input: &TicketInput,
        creating: bool,
        inv: &mut Invalid,
    ) -> Result<()> {
        // Bound every list before any work, so no request can hold the writer for long.
        let people = [
            (
                "collaborator_ids",
                input.collaborator_ids.as_ref().map_or(0, Vec::len),
            ),
            (
                "collaborators",
                input.collaborators.as_ref().map_or(0, Vec::len),
            ),
            (
                "email_cc_ids",
                input.email_cc_ids.as_ref().map_or(0, Vec::len),
            ),
            ("email_ccs", input.email_ccs.as_ref().map_or(0, Vec::len)),
            (
                "follower_ids",
                input.follower_ids.as_ref().map_or(0, Vec::len),
            ),
            ("followers", input.followers.as_ref().map_or(0, Vec::len)),
            (
                "custom_fields",
                input
                    .custom_fields
                    .as_ref()
                    .or(input.fields.as_ref())
                    .map_or(0, Vec::len),
            ),
        ];
        for (field, n) in people {
            if n > MAX_PEOPLE {
                return Err(Invalid::one(
                    field,
                    "TooManyValues",
                    format!("{field}: at most {MAX_PEOPLE} entries"),
                )
                .into());
            }
        }
        for (field, tags) in [
            ("tags", &input.tags),
            ("additional_tags", &input.additional_tags),
            ("remove_tags", &input.remove_tags),
        ] {
            if let Some(tags) = tags {
                if tags.len() > 1000 || tags.iter().map(String::len).sum::<usize>() > 64 * 1024 {
                    return Err(Invalid::one(
                        field,
                        "TooManyValues",
                        format!("{field}: at most 1000 tags, 64 KiB in all"),
                    )
                    .into());
                }
            }
        }
        if let Some(x) = input.external_id.as_ref().and_then(|x| x.as_ref()) {
            if x.chars().count() > 255 {
                inv.invalid(
                    "external_id",
                    "External id",
                    "is too long (maximum is 255 characters)",
                );
            }
        }
        let subject = input.subject.clone().or(input.raw_subject.clone());
        if let Some(s) = subject {
            let s = s.trim().to_string();
            if s.chars().count() > 255 {
                inv.invalid(
                    "subject",
                    "Subject",
                    "is too long (maximum is 255 characters)",
                );
            }
            t.subject = if s.is_empty() { None } else { Some(s) };
            t.raw_subject = t.subject.clone();
        }
        // People.
        let requester_changed_to = if let Some(r) = &input.requester {
            let v = json!({"name": r.name, "email": r.email});
            self.resolve_person(tx, &v, "requester", inv).await?
        } else if let Some(id) = input.requester_id {
            let u = tx.get_shared::<User>(id).await?;
            if u.is_none() {
                inv.invalid(
                    "requester_id",
                    "Requester",
                    &format!("user {id} does not exist"),
                );
            }
            u
        } else {
            None
        };
        if let Some(u) = &requester_changed_to {
            if t.requester_id != u.id {
                t.requester_id = u.id;
                if input.organization_id.is_none() {
                    t.organization_id = u.organization_id;
                }
            }
        }
        if creating && t.requester_id == 0 {
            t.requester_id = actor.id();
            if input.organization_id.is_none() {
                t.organization_id = actor.user.organization_id;
            }
        }
        if creating {
            t.submitter_id = actor.id();
            if let Some(s) = input.submitter_id {
                if tx.get_shared::<User>(s).await?.is_none() {
                    inv.invalid(
                        "submitter_id",
                        "Submitter",
                        &format!("user {s} does not exist"),
                    );
                } else {
                    t.submitter_id = s;
                }
            }
        }
        if let Some(o) = &input.organization_id {
            if let Some(o) = o {
                if tx.get_shared::<Organization>(*o).await?.is_none() {
                    inv.invalid(
                        "organization_id",
                        "Organization",
                        &format!("{o} does not exist"),
                    );
                } else if !tx
                    .memberships_of(t.requester_id)
                    .await?
                    .iter()
                    .any(|m| m.organization_id == *o)
                {
                    inv.invalid(
                        "organization_id",
                        "Organization",
                        "the requester is not a member of this organization",
                    );
                }
            }
            t.organization_id = *o;
        }
        // Assignment.
        let mut assignee_given = false;
        if let Some(email) = &input.assignee_email {
            assignee_given = true;
            match tx.user_by_email(email).await? {
                Some(u) if u.role.is_staff() && u.active => t.assignee_id = Some(u.id),
                Some(_) => inv.invalid("assignee_email", "Assignee", "must be an agent"),
                None => inv.invalid(
                    "assignee_email",
                    "Assignee",
                    &format!("no user with email {email}"),
                ),
            }
        } else if let Some(a) = &input.assignee_id {
            assignee_given = true;
            if let Some(a) = a {
                match tx.get_shared::<User>(*a).await? {
                    Some(u) if u.role.is_staff() && u.active => {}
                    Some(_) => inv.invalid("assignee_id", "Assignee", "must be an active agent"),
                    None => inv.invalid(
                        "assignee_id",
                        "Assignee",
                        &format!("user {a} does not exist"),
                    ),
                }
            }
            t.assignee_id = *a;
        }
        if let Some(g) = &input.group_id {
            if let Some(g) = g {
                if tx.get_shared::<Group>(*g).await?.is_none() {
                    inv.invalid("group_id", "Group", &format!("{g} does not exist"));
                }
            }
            t.group_id = *g;
        }
        if inv.is_empty() {
            if let (Some(a), Some(g)) = (t.assignee_id, t.group_id) {
                if !App::in_group(tx, a, g).await? {
                    if assignee_given {
                        inv.invalid("assignee_id", "Assignee", "is not a member of the group");
                    } else {
                        // The group changed under the assignee: unassign, as Zendesk does.
                        t.assignee_id = None;
                    }
                }
            } else if let (Some(a), None) = (t.assignee_id, t.group_id) {
                let ms: Vec<GroupMembership> = tx
                    .list(
                        &[Cond::Eq("user_id", Val::Int(a))],
                        &Page::All { limit: 100 },
                    )
                    .await?
                    .items;
                t.group_id = ms
                    .iter()
                    .find(|m| m.default)
                    .or(ms.first())
                    .map(|m| m.group_id);
            }
        }
        // Classification.
        if let Some(s) = &input.status {
            match Status::parse(s) {
                Some(s) => t.status = s,
                None => inv.invalid(
                    "status",
                    "Status",
                    &format!("'{s}' is not one of new, open, pending, hold, solved, closed"),
                ),
            }
        }
        if let Some(p) = &input.priority {
            t.priority = match p.as_deref() {
                None | Some("") => None,
                Some(p) => Priority::parse(p).or_else(|| {
                    inv.invalid(
                        "priority",
                        "Priority",
                        &format!("'{p}' is not one of low, normal, high, urgent"),
                    );
                    None
                }),
            };
        }
        if let Some(ty) = &input.ticket_type {
            t.ticket_type = match ty.as_deref() {
                None | Some("") => None,
                Some(x) => TicketType::parse(x).or_else(|| {
                    inv.invalid(
                        "type",
                        "Type",
                        &format!("'{x}' is not one of question, incident, problem, task"),
                    );
                    None
                }),
            };
        }
        if let Some(p) = &input.problem_id {
            if let Some(p) = p {
                match tx.ticket(*p).await? {
                    Some(pt) if pt.ticket_type == Some(TicketType::Problem) && pt.id != t.id => {}
                    Some(_) => inv.invalid(
                        "problem_id",
                        "Problem",
                        &format!("ticket {p} is not a problem"),
                    ),
                    None => inv.invalid(
                        "problem_id",
                        "Problem",
                        &format!("ticket {p} does not exist"),
                    ),
                }
            }
            t.problem_id = *p;
        }
        if t.problem_id.is_some() && t.ticket_type != Some(TicketType::Incident) {
            if input.problem_id.is_some() {
                inv.invalid(
                    "problem_id",
                    "Problem",
                    "only incidents can be linked to a problem",
                );
            } else {
                t.problem_id = None;
            }
        }
        if let Some(d) = &input.due_at {
            t.due_at = match d.as_deref() {
                None | Some("") => None,
                Some(s) => clock::parse(s).or_else(|| {
                    inv.invalid("due_at", "Due date", &format!("'{s}' is not a date"));
                    None
                }),
            };
        }
        if let Some(x) = &input.external_id {
            t.external_id = x.clone().filter(|s| !s.is_empty());
        }
        if let Some(r) = &input.recipient {
            t.recipient = Some(r.clone()).filter(|s| !s.is_empty());
        }
        if let Some(b) = &input.brand_id {
            t.brand_id = *b;
        }
        if let Some(f) = &input.ticket_form_id {
            if let Some(f) = f {
                if tx
                    .get::<opsdesk_core::fields::TicketForm>(*f)
                    .await?
                    .is_none()
                {
                    inv.invalid(
                        "ticket_form_id",
                        "Ticket form",
                        &format!("{f} does not exist"),
                    );
                }
            }
            t.ticket_form_id = *f;
        }
        // Tags and custom fields.
        if let Some(tags) = &input.tags {
            t.tags = normalize_tags(tags);
        }
        if let Some(add) = &input.additional_tags {
            for tag in normalize_tags(add) {
                if !t.tags.contains(&tag) {
                    t.tags.push(tag);
                }
            }
        }
        if let Some(rm) = &input.remove_tags {
            let rm = normalize_tags(rm);
            t.tags.retain(|x| !rm.contains(x));
        }
        let cf = input.custom_fields.as_ref().or(input.fields.as_ref());
        if let Some(cf) = cf {
            let defs: Vec<TicketField> = tx.list(&[], &Page::All { limit: 10_000 }).await?.items;
            for v in cf {
                let Some(d) = defs.iter().find(|d| d.id == v.id && !d.is_system()) else {
                    inv.invalid(
                        "custom_fields",
                        "Custom fields",
                        &format!("field {} does not exist", v.id),
                    );
                    continue;
                };
                match check_value(
                    &d.field_type,
                    &d.custom_field_options,
                    d.regexp_for_validation.as_deref(),
                    &d.title,
                    &v.value,
                ) {
                    Ok(nv) => {
                        let old = t.custom_field(d.id).cloned().unwrap_or(Value::Null);
                        let old_tags = tags_for_value(&d.field_type, d.tag.as_deref(), &old);
                        t.tags.retain(|x| !old_tags.contains(x));
                        for tag in tags_for_value(&d.field_type, d.tag.as_deref(), &nv) {
                            if !t.tags.contains(&tag) {
                                t.tags.push(tag);
                            }
                        }
                        t.set_custom_field(d.id, nv);
                    }
                    Err(m) => inv.add(&format!("custom_fields_{}", d.id), "InvalidValue", m),
                }
            }
            t.custom_fields.retain(|c| !c.value.is_null());
        }
        check_tags(&t.tags, "tags", inv);
        // Collaborators, CCs, followers.
        if let Some(ids) = &input.collaborator_ids {
            t.collaborator_ids = self
                .user_ids_exist(tx, ids, "collaborator_ids", false, inv)
                .await?;
        }
        if let Some(list) = &input.collaborators {
            let mut out = vec![];
            for v in list {
                if let Some(u) = self.resolve_person(tx, v, "collaborators", inv).await? {
                    if !out.contains(&u.id) {
                        out.push(u.id);
                    }
                }
            }
            t.collaborator_ids = out;
        }
        if let Some(ids) = &input.email_cc_ids {
            t.email_cc_ids = self
                .user_ids_exist(tx, ids, "email_cc_ids", false, inv)
                .await?;
        }
        if let Some(ids) = &input.follower_ids {
            t.follower_ids = self
                .user_ids_exist(tx, ids, "follower_ids", true, inv)
                .await?;
        }
        self.apply_cc_changes(
            tx,
            t,
            input.email_ccs.as_ref(),
            input.followers.as_ref(),
            inv,
        )
        .await?;
        // Status rules.
        if t.assignee_id.is_some() && t.status == Status::New {
            t.status = Status::Open;
        }
        if matches!(t.status, Status::Solved | Status::Closed) && t.assignee_id.is_none() {
            if actor.is_staff() {
                t.assignee_id = Some(actor.id());
                if t.group_id.is_none() {
                    t.group_id = actor.user.default_group_id;
                }
            } else {
                inv.add(
                    "assignee_id",
                    "BlankValue",
                    "Assignee: is required when solving",
                );
            }
        }
        Ok(())
    }

    pub(crate) fn build_comment(
        &self,
        actor: &Actor,
        input: &CommentInput,
        via: &Via,
        author: Id,
        default_public: bool,
        attachments: Vec<Value>,
    ) -> Option<Comment> {
        let (body, html_body, plain) = comment_body(input);
        if body.trim().is_empty() && plain.trim().is_empty() {
            return None;
        }
        let public = if actor.is_staff() {
            input.public.unwrap_or(default_public)
        } else {
            true
        };
        Some(Comment {
            id: 0,
            kind: "Comment".into(),
            ticket_id: 0,
            audit_id: 0,
            author_id: author,
            body,
            html_body,
            plain_body: plain,
            public,
            attachments,
            via: via.clone(),
            metadata: json!({}),
            created_at: self.now(),
        })
    }

    /// The comment's author (an agent may write on someone's behalf) and its attachments (the
    /// uploads its tokens name).
    async fn comment_author(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        c: &CommentInput,
        inv: &mut Invalid,
    ) -> Result<(Id, Vec<Value>)> {
        let files = self.comment_uploads(tx, actor, c, inv).await?;
        let author = match c.author_id {
            Some(a) if actor.is_staff() && a != actor.id() => {
                if tx.get_shared::<User>(a).await?.is_none() {
                    inv.invalid(
                        "comment",
                        "Comment author",
                        &format!("user {a} does not exist"),
                    );
                }
                a
            }
            _ => actor.id(),
        };
        Ok((author, files))
    }

    /// Create a ticket (tickets API: agents and admins; requests use [`App::create_request`]).
    pub async fn create_ticket(
        &self,
        actor: &Actor,
        input: TicketInput,
        via: Via,
        origin: &Origin,
    ) -> Result<(Ticket, Audit)> {
        actor.require_staff()?;
        let mut tx = self.store.write().await?;
        let r = self
            .create_ticket_tx(&mut tx, actor, input, via, origin)
            .await?;
        tx.commit().await?;
        Ok(r)
    }

    pub(crate) async fn create_ticket_tx(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        input: TicketInput,
        via: Via,
        origin: &Origin,
    ) -> Result<(Ticket, Audit)> {
        let now = self.now();
        let mut inv = Invalid::new();
        let mut comment_in = input.comment.clone().unwrap_or_default();
        if comment_in.body.is_none() && comment_in.html_body.is_none() && comment_in.value.is_none()
        {
            comment_in.body = input.description.clone();
        }
        let mut t = Ticket::blank(0, via.clone(), now);
        t.is_public = comment_in.public.unwrap_or(true) || !actor.is_staff();
        self.apply_ticket_input(tx, actor, &mut t, &input, true, &mut inv)
            .await?;
        // The submitter authors the first comment unless the comment names its author.
        if comment_in.author_id.is_none() && t.submitter_id != actor.id() {
            comment_in.author_id = Some(t.submitter_id);
        }
        let (author, files) = self
            .comment_author(tx, actor, &comment_in, &mut inv)
            .await?;
        let comment = self.build_comment(actor, &comment_in, &via, author, true, files);
        if comment.is_none() {
            inv.blank("description", "Description");
        }
        inv.into_result()?;
        let mut comments: Vec<Comment> = comment.into_iter().collect();
        t.description = comments[0].body.clone();
        if t.subject.is_none() {
            // Zendesk derives a subject from the description when none is given.
            let first: String = t
                .description
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(80)
                .collect();
            t.subject = Some(first).filter(|s| !s.trim().is_empty());
            t.raw_subject = t.subject.clone();
        }
        t.id = tx.next_ticket_id().await?;
        let mut events = creation_events(&t);
        events.push(comment_event(&comments[0]));
        let outcome = self
            .run_triggers(tx, actor, None, t.clone(), comments.first(), None)
            .await?;
        events.extend(outcome.events);
        comments.extend(outcome.comments);
        let mut t = outcome.ticket;
        t.updated_at = now;
        let mut meta = metadata(origin, input.metadata.as_ref());
        if !outcome.trace.is_null() {
            meta["trigger_trace"] = outcome.trace;
        }
        meta[AUTHOR_ROLE] = json!(actor.user.role.as_str());
        let mut audit = Audit {
            id: 0,
            ticket_id: 0,
            author_id: actor.id(),
            via,
            metadata: meta,
            events,
            created_at: now,
        };
        tx.create_ticket(&mut t, &mut audit, &mut comments).await?;
        self.after_ticket_write(tx, actor, None, &t, &audit).await?;
        tracing::debug!(ticket.id = t.id, audit.id = audit.id, "ticket created");
        Ok((t, audit))
    }

    /// Update a ticket; returns the new ticket and the audit (None when nothing changed).
    pub async fn update_ticket(
        &self,
        actor: &Actor,
        id: Id,
        input: TicketInput,
        origin: &Origin,
    ) -> Result<(Ticket, Option<Audit>)> {
        self.update_ticket_via(actor, id, input, Via::api(), origin)
            .await
    }

    /// [`App::update_ticket`] through another channel (the web interface's `web`).
    pub async fn update_ticket_via(
        &self,
        actor: &Actor,
        id: Id,
        input: TicketInput,
        via: Via,
        origin: &Origin,
    ) -> Result<(Ticket, Option<Audit>)> {
        actor.require_staff()?;
        let mut tx = self.store.write().await?;
        let r = self
            .update_ticket_tx(&mut tx, actor, id, input, via, origin)
            .await?;
        tx.commit().await?;
        Ok(r)
    }

    async fn update_ticket_tx(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        id: Id,
        input: TicketInput,
        via: Via,
        origin: &Origin,
    ) -> Result<(Ticket, Option<Audit>)> {
        let old = tx.ticket_for_update(id).await?.ok_or(AppError::NotFound)?;
        if old.status == Status::Closed {
            return Err(closed_error());
        }
        if input.safe_update == Some(true) {
            let stamp = input.updated_stamp.as_deref().and_then(clock::parse);
            if stamp != Some(old.updated_at) {
                return Err(AppError::Conflict("Safe Update prevented the update due to outdated ticket data. Please fetch the latest ticket data and try again.".into()));
            }
        }
        let mut t = old.clone();
        let mut inv = Invalid::new();
        self.apply_ticket_input(tx, actor, &mut t, &input, false, &mut inv)
            .await?;
        let comment_in = input.comment.clone().unwrap_or_default();
        let (author, files) = self
            .comment_author(tx, actor, &comment_in, &mut inv)
            .await?;
        inv.into_result()?;
        let comment = self.build_comment(actor, &comment_in, &via, author, true, files);
        self.save_update(
            tx,
            actor,
            old,
            t,
            comment,
            via,
            origin,
            input.metadata.as_ref(),
        )
        .await
    }

    pub(crate) async fn save_update(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        old: Ticket,
        t: Ticket,
        comment: Option<Comment>,
        via: Via,
        origin: &Origin,
        custom: Option<&Value>,
    ) -> Result<(Ticket, Option<Audit>)> {
        let mut events = change_events(&old, &t);
        let comments: Vec<Comment> = comment.into_iter().collect();
        for c in &comments {
            events.push(comment_event(c));
        }
        self.save_with_events(tx, actor, old, t, events, comments, via, origin, custom)
            .await
    }

    /// Write an update whose events are known (the request's, or an automation's), after
    /// running the triggers on it.
    pub(crate) async fn save_with_events(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        old: Ticket,
        mut t: Ticket,
        mut events: Vec<Value>,
        mut comments: Vec<Comment>,
        via: Via,
        origin: &Origin,
        custom: Option<&Value>,
    ) -> Result<(Ticket, Option<Audit>)> {
        if events.is_empty() {
            return Ok((old, None));
        }
        let outcome = self
            .run_triggers(tx, actor, Some(&old), t.clone(), comments.first(), None)
            .await?;
        events.extend(outcome.events);
        comments.extend(outcome.comments);
        t = outcome.ticket;
        self.write_update(
            tx,
            actor,
            old,
            t,
            events,
            comments,
            via,
            metadata(origin, custom),
            outcome.trace,
        )
        .await
    }

    /// Write an update whose events (the request's and the triggers') are final: the audit,
    /// the ticket, and what follows every write.
    pub(crate) async fn write_update(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        old: Ticket,
        mut t: Ticket,
        events: Vec<Value>,
        mut comments: Vec<Comment>,
        via: Via,
        mut meta: Value,
        trace: Value,
    ) -> Result<(Ticket, Option<Audit>)> {
        let now = self.now();
        t.updated_at = now;
        if !trace.is_null() {
            meta["trigger_trace"] = trace;
        }
        meta[AUTHOR_ROLE] = json!(actor.user.role.as_str());
        let mut audit = Audit {
            id: 0,
            ticket_id: t.id,
            author_id: actor.id(),
            via,
            metadata: meta,
            events,
            created_at: now,
        };
        tx.save_ticket(&t, &mut audit, &mut comments).await?;
        self.after_ticket_write(tx, actor, Some(&old), &t, &audit)
            .await?;
        tracing::debug!(ticket.id = t.id, audit.id = audit.id, "ticket updated");
        Ok((t, Some(audit)))
    }

    /// Set, add or remove tags (`tickets/{id}/tags`). Returns the tags after.
    pub async fn change_tags(
        &self,
        actor: &Actor,
        id: Id,
        tags: Vec<String>,
        mode: TagMode,
        origin: &Origin,
    ) -> Result<Vec<String>> {
        let input = match mode {
            TagMode::Set => TicketInput {
                tags: Some(tags),
                ..Default::default()
            },
            TagMode::Add => TicketInput {
                additional_tags: Some(tags),
                ..Default::default()
            },
            TagMode::Remove => TicketInput {
                remove_tags: Some(tags),
                ..Default::default()
            },
        };
        Ok(self.update_ticket(actor, id, input, origin).await?.0.tags)
    }

    /// Soft-delete a ticket (restorable from `deleted_tickets`).
    pub async fn delete_ticket(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_staff()?;
        let mut tx = self.store.write().await?;
        if !tx
            .soft_delete_ticket(id, actor.id(), self.now().as_second())
            .await?
        {
            return Err(AppError::NotFound);
        }
        tx.delete_kpi_facts(id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn deleted_tickets(
        &self,
        actor: &Actor,
        page: i64,
        per_page: i64,
    ) -> Result<Vec<(Ticket, i64, i64)>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        // One more than asked, so the caller knows whether another page follows.
        Ok(
            c.deleted_tickets(per_page + 1, (page.max(1) - 1).saturating_mul(per_page))
                .await?,
        )
    }

    pub async fn restore_ticket(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_staff()?;
        let mut tx = self.store.write().await?;
        if !tx.restore_ticket(id).await? {
            return Err(AppError::NotFound);
        }
        self.rebuild_ticket_kpis(&mut tx, id, &mut Default::default())
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn purge_ticket(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_staff()?;
        let mut tx = self.store.write().await?;
        if !tx.purge_ticket(id).await? {
            return Err(AppError::NotFound);
        }
        tx.delete_kpi_facts(id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- bulk jobs -----------------------------------------------------------------------

    async fn finish_job(&self, job_type: &str, results: Vec<Value>) -> Result<JobStatus> {
        let now = self.now();
        let n = results.len() as i64;
        let failed = results
            .iter()
            .filter(|r| r.get("success") == Some(&Value::Bool(false)))
            .count();
        let job = JobStatus {
            id: new_job_id(),
            job_type: job_type.into(),
            total: n,
            progress: n,
            status: "completed".into(),
            message: Some(
                format!("Completed at {}", clock::format(now))
                    + &if failed > 0 {
                        format!(" ({failed} failed)")
                    } else {
                        String::new()
                    },
            ),
            results,
            created_at: now,
            updated_at: now,
        };
        let mut tx = self.store.write().await?;
        tx.put_job_status(&job).await?;
        tx.commit().await?;
        metrics::counter!("jobs_total", "type" => job_type.to_string()).increment(1);
        metrics::counter!("job_items_total", "type" => job_type.to_string(), "result" => "ok")
            .increment((n as usize - failed) as u64);
        metrics::counter!("job_items_total", "type" => job_type.to_string(), "result" => "failed")
            .increment(failed as u64);
        Ok(job)
    }

    fn check_bulk(n: usize) -> Result<()> {
        if n == 0 {
            return Err(AppError::Invalid(Invalid::one(
                "tickets",
                "BlankValue",
                "Tickets: cannot be empty",
            )));
        }
        if n > BULK_LIMIT {
            return Err(AppError::Invalid(Invalid::one(
                "tickets",
                "InvalidValue",
                format!("Tickets: at most {BULK_LIMIT} per request"),
            )));
        }
        Ok(())
    }

    fn failure(index: usize, id: Option<Id>, e: &AppError) -> Value {
        let (error, details) = match e {
            AppError::Invalid(i) => ("RecordInvalid", i.to_string()),
            AppError::NotFound => ("RecordNotFound", "Not found".to_string()),
            AppError::Forbidden(m) => ("Forbidden", m.clone()),
            other => ("Failed", other.to_string()),
        };
        json!({"index": index, "id": id, "success": false, "error": error, "details": details})
    }

    /// `tickets/create_many`: each ticket in its own transaction; results per index.
    pub async fn create_many(
        &self,
        actor: &Actor,
        inputs: Vec<TicketInput>,
        origin: &Origin,
    ) -> Result<JobStatus> {
        actor.require_staff()?;
        App::check_bulk(inputs.len())?;
        let mut results = vec![];
        for (i, input) in inputs.into_iter().enumerate() {
            match self.create_ticket(actor, input, Via::api(), origin).await {
                Ok((t, _)) => results
                    .push(json!({"index": i, "id": t.id, "status": "Created", "success": true})),
                Err(AppError::Unavailable(m)) => return Err(AppError::Unavailable(m)),
                Err(e) => results.push(App::failure(i, None, &e)),
            }
        }
        self.finish_job("bulk_create", results).await
    }

    /// `tickets/update_many`: the same change to many ids, or one change per ticket.
    pub async fn update_many(
        &self,
        actor: &Actor,
        changes: Vec<(Id, TicketInput)>,
        origin: &Origin,
    ) -> Result<JobStatus> {
        actor.require_staff()?;
        App::check_bulk(changes.len())?;
        let mut results = vec![];
        for (i, (id, input)) in changes.into_iter().enumerate() {
            match self.update_ticket(actor, id, input, origin).await {
                Ok(_) => results.push(json!({"index": i, "id": id, "action": "update", "status": "Updated", "success": true})),
                Err(AppError::Unavailable(m)) => return Err(AppError::Unavailable(m)),
                Err(e) => results.push(App::failure(i, Some(id), &e)),
            }
        }
        self.finish_job("bulk_update", results).await
    }

    pub async fn destroy_many(&self, actor: &Actor, ids: Vec<Id>) -> Result<JobStatus> {
        actor.require_staff()?;
        App::check_bulk(ids.len())?;
        let mut results = vec![];
        for (i, id) in ids.into_iter().enumerate() {
            match self.delete_ticket(actor, id).await {
                Ok(()) => results.push(json!({"index": i, "id": id, "action": "delete", "status": "Deleted", "success": true})),
                Err(AppError::Unavailable(m)) => return Err(AppError::Unavailable(m)),
                Err(e) => results.push(App::failure(i, Some(id), &e)),
            }
        }
        self.finish_job("bulk_delete", results).await
    }

    pub async fn job_status(&self, actor: &Actor, id: &str) -> Result<JobStatus> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.job_status(id).await?.ok_or(AppError::NotFound)
    }

    // ---- requests (the end-user's view) --------------------------------------------------

    /// The requests an end-user may see: their own and their shared organisations'; with
    /// `organization`, only that organisation's (empty when it is not visible to them).
    pub async fn list_requests(
        &self,
        actor: &Actor,
        statuses: &[Status],
        organization: Option<Id>,
        page: &Page,
    ) -> Result<Paged<Ticket>> {
        let mut c = self.store.read().await?;
        let mut orgs = visible_orgs(&mut c, &actor.user).await?;
        let mut conds = vec![];
        match organization {
            Some(o) => {
                orgs.retain(|x| *x == o);
                conds.push(Cond::In(
                    "organization_id",
                    orgs.iter().map(|o| Val::Int(*o)).collect(),
                ));
            }
            None => conds.push(Cond::Any(vec![
                Cond::In(
                    "organization_id",
                    orgs.iter().map(|o| Val::Int(*o)).collect(),
                ),
                Cond::Eq("requester_id", Val::Int(actor.id())),
            ])),
        }
        if !statuses.is_empty() {
            conds.push(Cond::In(
                "status",
                statuses.iter().map(|s| Val::from(s.as_str())).collect(),
            ));
        }
        let mut p = c.tickets(&conds, page).await?;
        // Private tickets (opened with an internal note) are not the end-user's to see.
        p.items.retain(|t| t.is_public);
        Ok(p)
    }

    /// Ids of the custom fields end-users may see.
    pub async fn portal_field_ids(&self) -> Result<Vec<Id>> {
        let mut c = self.store.read().await?;
        let defs: Vec<TicketField> = c.list(&[], &Page::All { limit: 10_000 }).await?.items;
        Ok(defs
            .into_iter()
            .filter(|d| d.active && d.visible_in_portal)
            .map(|d| d.id)
            .collect())
    }

    pub async fn get_request(&self, actor: &Actor, id: Id) -> Result<Ticket> {
        let mut c = self.store.read().await?;
        let t = c.ticket(id).await?.ok_or(AppError::NotFound)?;
        if !self.can_view(&mut c, actor, &t).await? {
            return Err(AppError::NotFound);
        }
        Ok(t)
    }

    pub async fn request_comments(
        &self,
        actor: &Actor,
        id: Id,
        page: &Page,
    ) -> Result<Paged<Comment>> {
        self.get_request(actor, id).await?;
        let mut c = self.store.read().await?;
        Ok(c.comments(id, true, page).await?)
    }

    pub async fn create_request(
        &self,
        actor: &Actor,
        input: RequestInput,
        via: Via,
        origin: &Origin,
    ) -> Result<(Ticket, Audit)> {
        let mut inv = Invalid::new();
        if input
            .subject
            .as_deref()
            .map(str::trim)
            .unwrap_or("")
            .is_empty()
        {
            inv.blank("subject", "Subject");
        }
        if !actor.is_staff() {
            // End-users may set only the fields and forms the portal offers them.
            let mut c = self.store.read().await?;
            if let Some(cf) = &input.custom_fields {
                let defs: Vec<TicketField> = c.list(&[], &Page::All { limit: 10_000 }).await?.items;
                for v in cf {
                    if !defs.iter().any(|d| {
                        d.id == v.id && d.active && d.visible_in_portal && d.editable_in_portal
                    }) {
                        inv.invalid(
                            "custom_fields",
                            "Custom fields",
                            &format!("field {} cannot be set by end-users", v.id),
                        );
                    }
                }
            }
            if let Some(f) = input.ticket_form_id {
                let form: Option<opsdesk_core::fields::TicketForm> = c.get(f).await?;
                if !form.is_some_and(|f| f.active && f.end_user_visible) {
                    inv.invalid(
                        "ticket_form_id",
                        "Ticket form",
                        &format!("{f} is not available to end-users"),
                    );
                }
            }
        }
        inv.into_result()?;
        let mut comment = input.comment.clone().unwrap_or_default();
        comment.public = Some(true);
        comment.author_id = None;
        let t = TicketInput {
            subject: input.subject.clone(),
            comment: Some(comment),
            description: input.description.clone(),
            priority: input.priority.clone().map(Some),
            ticket_type: input.ticket_type.clone().map(Some),
            collaborators: input.collaborators.clone(),
            custom_fields: input.custom_fields.clone(),
            ticket_form_id: input.ticket_form_id.map(Some),
            requester: if actor.is_staff() {
                input.requester.clone()
            } else {
                None
            },
            ..Default::default()
        };
        let mut tx = self.store.write().await?;
        // End-users act through their own record; the input check still treats them as such.
        let r = self
            .create_ticket_tx(&mut tx, actor, t, via, origin)
            .await?;
        tx.commit().await?;
        Ok(r)
    }

    /// An end-user's update through a channel (`api`, `web`): a public comment, CCs, or
    /// marking their request solved.
    pub async fn update_request(
        &self,
        actor: &Actor,
        id: Id,
        input: RequestInput,
        via: Via,
        origin: &Origin,
    ) -> Result<(Ticket, Option<Audit>)> {
        let mut tx = self.store.write().await?;
        let old = tx.ticket_for_update(id).await?.ok_or(AppError::NotFound)?;
        if !self.can_view(&mut tx, actor, &old).await? {
            return Err(AppError::NotFound);
        }
        if old.status == Status::Closed {
            return Err(closed_error());
        }
        if !actor.is_staff() && !involved(&actor.user, &old) {
            // Organisation members may comment only when the organisation shares comments.
            let org: Option<Organization> = match old.organization_id {
                Some(o) => tx.get_shared(o).await?,
                None => None,
            };
            if !org.is_some_and(|o| o.shared_comments) {
                return Err(AppError::Forbidden(
                    "You may not comment on this request".into(),
                ));
            }
        }
        let mut t = old.clone();
        let mut inv = Invalid::new();
        let mut comment = input.comment.clone().unwrap_or_default();
        comment.public = Some(true);
        comment.author_id = None;
        let files = self
            .comment_uploads(&mut tx, actor, &comment, &mut inv)
            .await?;
        let comment = self.build_comment(actor, &comment, &via, actor.id(), true, files);
        if input.email_ccs.is_some() {
            self.apply_cc_changes(&mut tx, &mut t, input.email_ccs.as_ref(), None, &mut inv)
                .await?;
        }
        if input.solved == Some(true) {
            if t.requester_id != actor.id() || t.ticket_type == Some(TicketType::Problem) {
                inv.invalid(
                    "solved",
                    "Solved",
                    "only the requester can solve a request, and not a problem ticket",
                );
            } else if t.assignee_id.is_none() {
                inv.invalid(
                    "solved",
                    "Solved",
                    "a request can be solved only once it is assigned",
                );
            } else {
                t.status = Status::Solved;
            }
        } else if comment.is_some() && matches!(t.status, Status::Pending | Status::Solved) {
            // A requester's reply reopens a pending or solved ticket.
            t.status = Status::Open;
        }
        inv.into_result()?;
        let r = self
            .save_update(&mut tx, actor, old, t, comment, via, origin, None)
            .await?;
        tx.commit().await?;
        Ok(r)
    }
}
