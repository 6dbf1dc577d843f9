//! Search (`search`, `search/count`, `search/export`) and the incremental exports.
//!
//! The query is parsed and planned in opsdesk-core; here the plan's people, groups and
//! organisations are resolved to ids, end-users are limited to what they may see, and the
//! store runs it. See docs/search.md.

use opsdesk_core::model::{Group, Id, Organization, User};
use opsdesk_core::search::{self, Filter, Kind, Plan, PlanContext, SortKey, TextField, Who};
use opsdesk_core::ticket::{Audit, Ticket};
use opsdesk_store::{Change, Cond, Conn, Hit, OrgField, Page, UserField, Val, Visibility};

use crate::{Actor, App, AppError, Result};

/// Zendesk returns at most this many results per query through offset pages.
pub const RESULT_LIMIT: i64 = 1_000;
/// Incremental exports leave out the most recent minute by default, as Zendesk does, so that
/// a change committing a moment late is never skipped by the time-based stream
/// (`serve --export-hold-back`).
pub const HOLD_BACK_SECS: i64 = 60;
/// Most names a person, group or organisation reference may resolve to.
const MAX_REFS: i64 = 1_000;

/// A search result, read.
#[derive(Debug, Clone)]
pub enum Found {
    Ticket(Ticket),
    User(User),
    Organization(Organization),
}

/// Sorting given as parameters (`sort_by`, `sort_order`) rather than in the query.
#[derive(Debug, Clone, Copy, Default)]
pub struct SortParams {
    pub sort_by: Option<SortKey>,
    pub descending: Option<bool>,
}

fn invalid(e: search::QueryError) -> AppError {
    AppError::InvalidQuery(e.to_string())
}

impl App {
    /// Parse, plan and resolve a query for `actor`.
    async fn plan_for(
        &self,
        c: &mut Conn,
        actor: &Actor,
        query: &str,
        kind: Option<Kind>,
        sort: SortParams,
    ) -> Result<(Plan, Option<Visibility>)> {
        let user_fields: Vec<UserField> = c.list(&[], &Page::All { limit: 10_000 }).await?.items;
        let org_fields: Vec<OrgField> = c.list(&[], &Page::All { limit: 10_000 }).await?.items;
        let cx = PlanContext {
            now: self.clock.now().as_second(),
            user_field_keys: user_fields.into_iter().map(|f| f.0.key).collect(),
            organization_field_keys: org_fields.into_iter().map(|f| f.0.key).collect(),
        };
        let mut plan = Plan::from_query(query, kind, &cx).map_err(invalid)?;
        plan.set_sort(sort.sort_by, sort.descending)
            .map_err(invalid)?;
        // Resolve people, groups and organisations; remember which filter each came from.
        let mut refs: Vec<(bool, bool, Who)> = vec![];
        for cl in &plan.clauses {
            for f in &cl.any {
                let (is_group, is_org, w) = match f {
                    Filter::Person(_, w) => (false, false, w),
                    Filter::Group(w) => (true, false, w),
                    Filter::Organization(w) => (false, true, w),
                    _ => continue,
                };
                refs.push((is_group, is_org, w.clone()));
            }
        }
        let mut resolved = vec![];
        for (is_group, is_org, w) in refs {
            resolved.push(match w {
                Who::Me => Who::Ids(vec![actor.id()]),
                Who::Text(t) if is_group => Who::Ids(self.group_ids(c, &t).await?),
                Who::Text(t) if is_org => Who::Ids(self.org_ids(c, &t).await?),
                Who::Text(t) => Who::Ids(self.user_ids(c, &t).await?),
                other => other,
            });
        }
        for (slot, r) in plan.refs_mut().zip(resolved) {
            *slot = r;
        }
        let vis = if actor.is_staff() {
            None
        } else {
            let member: Vec<Id> = c
                .memberships_of(actor.id())
                .await?
                .iter()
                .map(|m| m.organization_id)
                .collect();
            Some(Visibility {
                user_id: actor.id(),
                ticket_org_ids: crate::tickets::visible_orgs(c, &actor.user).await?,
                member_org_ids: member,
            })
        };
        Ok((plan, vis))
    }

    /// Users a name or e-mail refers to: the identity with that e-mail, else users whose name
    /// has these words (the last a prefix, as Zendesk's "partial name").
    async fn user_ids(&self, c: &mut Conn, text: &str) -> Result<Vec<Id>> {
        if text.contains('@') {
            return Ok(c
                .user_by_email(text)
                .await?
                .map(|u| u.id)
                .into_iter()
                .collect());
        }
        let words = search::tokens(text);
        if words.is_empty() {
            return Ok(vec![]);
        }
        let plan = name_plan(Kind::User, words);
        Ok(ids(c.search(&plan, None, MAX_REFS, 0).await?))
    }

    async fn org_ids(&self, c: &mut Conn, text: &str) -> Result<Vec<Id>> {
        if let Some(o) = c
            .find::<Organization>(&[Cond::Eq("name_key", Val::from(text.trim().to_lowercase()))])
            .await?
        {
            return Ok(vec![o.id]);
        }
        let words = search::tokens(text);
        if words.is_empty() {
            return Ok(vec![]);
        }
        let plan = name_plan(Kind::Organization, words);
        Ok(ids(c.search(&plan, None, MAX_REFS, 0).await?))
    }

    async fn group_ids(&self, c: &mut Conn, text: &str) -> Result<Vec<Id>> {
        let want = text.trim().to_lowercase();
        let groups: Vec<Group> = c.list(&[], &Page::All { limit: 10_000 }).await?.items;
        Ok(groups
            .into_iter()
            .filter(|g| g.name.to_lowercase() == want)
            .map(|g| g.id)
            .collect())
    }

    /// One offset page of results and the total count. Zendesk's limit: `page * per_page`
    /// may not pass 1,000.
    pub async fn search(
        &self,
        actor: &Actor,
        query: &str,
        kind: Option<Kind>,
        sort: SortParams,
        page: i64,
        per_page: i64,
    ) -> Result<(Vec<Found>, i64)> {
        let per_page = per_page.clamp(1, 100);
        let page = page.max(1);
        if page.saturating_mul(per_page) > RESULT_LIMIT {
            return Err(AppError::InvalidQuery(
                "Requested response size was greater than Search Response Limits".into(),
            ));
        }
        let mut c = self.store.read().await?;
        let (plan, vis) = self.plan_for(&mut c, actor, query, kind, sort).await?;
        let (hits, count) = c
            .search_page(&plan, vis.as_ref(), per_page, (page - 1) * per_page)
            .await?;
        let found = self.read_hits(&mut c, &hits).await?;
        Ok((found, count))
    }

    pub async fn search_count(
        &self,
        actor: &Actor,
        query: &str,
        kind: Option<Kind>,
    ) -> Result<i64> {
        let mut c = self.store.read().await?;
        let (plan, vis) = self
            .plan_for(&mut c, actor, query, kind, SortParams::default())
            .await?;
        Ok(c.search_count(&plan, vis.as_ref()).await?)
    }

    /// `search/export`: one type (required), newest created first, cursor after
    /// `(created_at, id)`. Returns the page and the cursor of its last result when more follow.
    pub async fn search_export(
        &self,
        actor: &Actor,
        query: &str,
        kind: Kind,
        after: Option<(i64, Id)>,
        size: i64,
    ) -> Result<(Vec<Found>, Option<(i64, Id)>)> {
        let size = size.clamp(1, 1000);
        let mut c = self.store.read().await?;
        let (plan, vis) = self
            .plan_for(&mut c, actor, query, Some(kind), SortParams::default())
            .await?;
        let mut hits = c
            .search_export(&plan, kind, vis.as_ref(), after, size + 1)
            .await?;
        let more = hits.len() as i64 > size;
        hits.truncate(size as usize);
        let next = if more {
            hits.last().map(|h| (h.sort, h.id))
        } else {
            None
        };
        Ok((self.read_hits(&mut c, &hits).await?, next))
    }

    /// Read the records behind hits, in hit order (records deleted since are skipped).
    async fn read_hits(&self, c: &mut Conn, hits: &[Hit]) -> Result<Vec<Found>> {
        let of =
            |k: Kind| -> Vec<Id> { hits.iter().filter(|h| h.kind == k).map(|h| h.id).collect() };
        let mut tickets: Vec<Ticket> = c.get_many(&of(Kind::Ticket)).await?;
        self.mark_incidents(c, &mut tickets).await?;
        let users: Vec<User> = c.get_many(&of(Kind::User)).await?;
        let orgs: Vec<Organization> = c.get_many(&of(Kind::Organization)).await?;
        Ok(hits
            .iter()
            .filter_map(|h| match h.kind {
                Kind::Ticket => tickets
                    .iter()
                    .find(|t| t.id == h.id)
                    .cloned()
                    .map(Found::Ticket),
                Kind::User => users
                    .iter()
                    .find(|t| t.id == h.id)
                    .cloned()
                    .map(Found::User),
                Kind::Organization => orgs
                    .iter()
                    .find(|t| t.id == h.id)
                    .cloned()
                    .map(Found::Organization),
            })
            .collect())
    }

    /// The newest instant a time-based export may include.
    pub fn export_horizon(&self) -> i64 {
        self.clock.now().as_second() - self.export_hold_back_secs
    }

    /// `incremental/{tickets,users,organizations}` (time-based). Admins only, as Zendesk.
    pub async fn changes_since<D: opsdesk_store::Doc>(
        &self,
        actor: &Actor,
        start: i64,
        per_page: i64,
        include_deleted: bool,
    ) -> Result<(Vec<Change<D>>, bool)> {
        actor.require_admin()?;
        let mut c = self.store.read().await?;
        Ok(
            c.changes_since(start, self.export_horizon(), per_page, include_deleted)
                .await?,
        )
    }

    /// `incremental/{tickets,users,organizations}/cursor`.
    pub async fn changes_after<D: opsdesk_store::Doc>(
        &self,
        actor: &Actor,
        start: i64,
        after: (i64, Id),
        per_page: i64,
        include_deleted: bool,
    ) -> Result<(Vec<Change<D>>, bool)> {
        actor.require_admin()?;
        let mut c = self.store.read().await?;
        Ok(c.changes_after(start, after, per_page, include_deleted)
            .await?)
    }

    /// `incremental/ticket_events`: audits, time-based.
    pub async fn audits_since(
        &self,
        actor: &Actor,
        start: i64,
        per_page: i64,
    ) -> Result<(Vec<Audit>, bool)> {
        actor.require_admin()?;
        let mut c = self.store.read().await?;
        Ok(c.audits_since(start, self.export_horizon(), per_page)
            .await?)
    }
}

fn name_plan(kind: Kind, words: Vec<String>) -> Plan {
    Plan {
        kinds: vec![kind],
        clauses: vec![opsdesk_core::search::Clause {
            negated: false,
            any: vec![Filter::Text {
                field: TextField::Name,
                words,
                prefix: true,
            }],
        }],
        sort: SortKey::Created,
        descending: false,
    }
}

fn ids(hits: Vec<Hit>) -> Vec<Id> {
    hits.into_iter().map(|h| h.id).collect()
}
