//! What the admin-configured records (triggers, macros, views, fields) share: their common
//! attributes, who may see and write them (restrictions), and writing them.

use opsdesk_core::fields::{TicketField, TicketForm};
use opsdesk_core::model::{GroupMembership, Id};
use opsdesk_core::rules::{Automation, Macro, Trigger, View};
use opsdesk_core::sla::SlaPolicy;
use opsdesk_core::{Invalid, Timestamp};
use opsdesk_store::{Cond, Conn, Doc, Page, Val};
use serde_json::Value;

use crate::{Actor, AppError, Result};

/// The attributes every rule record (trigger, macro, view) shares, as an update carries them.
pub(crate) struct CommonInput<'a> {
    pub title: &'a Option<String>,
    pub description: &'a Option<String>,
    pub active: Option<bool>,
    pub position: Option<i64>,
}

/// The same attributes on the record being written.
pub struct CommonFields<'a> {
    pub title: &'a mut String,
    pub raw_title: &'a mut String,
    pub description: &'a mut Option<String>,
    pub active: &'a mut bool,
    pub position: &'a mut i64,
}

/// Apply and check the shared attributes (a new record needs a title).
pub(crate) fn apply_common(
    input: CommonInput,
    rec: CommonFields,
    creating: bool,
    inv: &mut Invalid,
) {
    if creating && input.title.is_none() {
        inv.blank("title", "Title");
    }
    if let Some(t) = input.title {
        opsdesk_core::model::check_text(t, "title", "Title", 255, inv);
        *rec.title = t.trim().to_string();
        *rec.raw_title = rec.title.clone();
    }
    if let Some(d) = input.description {
        *rec.description = Some(d.clone());
    }
    if let Some(a) = input.active {
        *rec.active = a;
    }
    if let Some(p) = input.position {
        *rec.position = p;
    }
}

/// Whether a shared (`null`), group or personal restriction lets this user see a record.
pub(crate) async fn restriction_allows(
    c: &mut Conn,
    actor: &Actor,
    restriction: &Option<Value>,
) -> Result<bool> {
    if actor.is_admin() {
        return Ok(true);
    }
    let Some(r) = restriction else {
        return Ok(true);
    };
    match r.get("type").and_then(Value::as_str) {
        Some("User") => Ok(r.get("id").and_then(Value::as_i64) == Some(actor.id())),
        Some("Group") => {
            let mut ids: Vec<Id> = r
                .get("ids")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default();
            ids.extend(r.get("id").and_then(Value::as_i64));
            let mine: Vec<GroupMembership> = c
                .list(
                    &[Cond::Eq("user_id", Val::Int(actor.id()))],
                    &Page::All { limit: 1000 },
                )
                .await?
                .items;
            Ok(mine.iter().any(|m| ids.contains(&m.group_id)))
        }
        _ => Ok(false),
    }
}

/// Check a restriction's shape; agents may only use their own personal one.
pub(crate) fn check_restriction(
    actor: &Actor,
    restriction: &Option<Value>,
    what: &str,
    inv: &mut Invalid,
) -> Result<()> {
    if let Some(r) = restriction {
        let ok = match r.get("type").and_then(Value::as_str) {
            Some("User") => r.get("id").and_then(Value::as_i64).is_some(),
            Some("Group") => {
                r.get("id").and_then(Value::as_i64).is_some()
                    || r.get("ids")
                        .and_then(Value::as_array)
                        .is_some_and(|a| !a.is_empty() && a.iter().all(|x| x.is_i64()))
            }
            _ => false,
        };
        if !ok {
            inv.invalid(
                "restriction",
                "Restriction",
                "must be {\"type\": \"User\", \"id\"} or {\"type\": \"Group\", \"ids\": [...]}",
            );
        }
    }
    if !actor.is_admin() {
        let personal = restriction.as_ref().is_some_and(|r| {
            r.get("type").and_then(Value::as_str) == Some("User")
                && r.get("id").and_then(Value::as_i64) == Some(actor.id())
        });
        if !personal {
            return Err(AppError::Forbidden(format!("Agents may only create and change their personal {what} (restriction {{\"type\": \"User\", \"id\": <their id>}})")));
        }
    }
    Ok(())
}

/// Insert a new record or replace an existing one.
pub(crate) async fn save_doc<D: Doc>(
    tx: &mut opsdesk_store::Conn,
    mut d: D,
    exists: bool,
) -> Result<D> {
    if exists {
        tx.update(&d).await?;
    } else {
        tx.insert(&mut d).await?;
    }
    Ok(d)
}

/// Records an admin puts in order: they are listed by `position` (`…/reorder`, the admin
/// lists' move up and down).
pub trait Listed: Doc + Clone {
    /// The record's name: `<name>_ids` in a reorder, the noun in messages (and, for rules, the
    /// JSON envelope's key).
    const NAME: &'static str;
    fn position(&self) -> i64;
    fn set_position(&mut self, p: i64, now: Timestamp);
}

/// [`Listed`] for records whose `position` and `updated_at` are fields.
macro_rules! listed {
    ($($t:ty => $name:literal),* $(,)?) => {$(
        impl Listed for $t {
            const NAME: &'static str = $name;
            fn position(&self) -> i64 {
                self.position
            }
            fn set_position(&mut self, p: i64, now: Timestamp) {
                self.position = p;
                self.updated_at = now;
            }
        }
    )*};
}

listed!(
    Trigger => "trigger",
    Automation => "automation",
    Macro => "macro",
    View => "view",
    SlaPolicy => "sla_policy",
    TicketField => "ticket_field",
    TicketForm => "ticket_form",
);

/// `…/reorder`: the given ids take positions 1, 2, …; the others keep their order after them.
/// Unknown ids are refused (422 naming `<name>_ids`).
pub(crate) async fn reorder<D: Listed>(
    tx: &mut opsdesk_store::Conn,
    ids: &[Id],
    now: Timestamp,
) -> Result<Vec<D>> {
    let mut all = tx.list::<D>(&[], &Page::All { limit: 10_000 }).await?.items;
    all.sort_by_key(|d| (d.position(), d.id()));
    for id in ids {
        if !all.iter().any(|d| d.id() == *id) {
            return Err(Invalid::one(
                &format!("{}_ids", D::NAME),
                "InvalidValue",
                format!("{}: {id} does not exist", D::NAME),
            )
            .into());
        }
    }
    let mut order: Vec<Id> = ids.to_vec();
    let mut seen = std::collections::HashSet::new();
    order.retain(|i| seen.insert(*i));
    order.extend(all.iter().map(|d| d.id()).filter(|i| !ids.contains(i)));
    let mut out = vec![];
    for (pos, id) in order.iter().enumerate() {
        if let Some(mut d) = all.iter().find(|d| d.id() == *id).cloned() {
            if d.position() != pos as i64 + 1 {
                d.set_position(pos as i64 + 1, now);
                tx.update(&d).await?;
            }
            out.push(d);
        }
    }
    Ok(out)
}

impl crate::App {
    /// Reorder records that are only listed in position order (macros, views, ticket fields
    /// and forms): the given ids take positions 1, 2, …, the others follow, in one
    /// transaction.
    pub(crate) async fn reorder_listed<D: Listed>(
        &self,
        actor: &crate::Actor,
        ids: &[Id],
    ) -> Result<Vec<D>> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let out = reorder::<D>(&mut tx, ids, self.now()).await?;
        tx.commit().await?;
        Ok(out)
    }
}
