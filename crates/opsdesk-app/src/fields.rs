//! Ticket fields, ticket forms, user fields and organisation fields (admin configuration).

use std::collections::BTreeMap;

use opsdesk_core::fields::{
    check_options, check_regexp, CustomField, FieldOption, TicketField, TicketForm,
    SYSTEM_TICKET_FIELD_TYPES, TICKET_FIELD_TYPES, USER_ORG_FIELD_TYPES,
};
use opsdesk_core::model::Id;
use opsdesk_core::ticket::double_option;
use opsdesk_core::Invalid;
use opsdesk_store::{OrgField, Page, Paged, UserField};
use serde::Deserialize;
use serde_json::Value;

use crate::records::save_doc;
use crate::{Actor, App, AppError, Result};

/// A field definition as posted (ticket, user or organisation field).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FieldInput {
    #[serde(default, rename = "type")]
    pub field_type: Option<String>,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub agent_description: Option<String>,
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub required: Option<bool>,
    #[serde(default)]
    pub collapsed_for_agents: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub regexp_for_validation: Option<Option<String>>,
    #[serde(default)]
    pub title_in_portal: Option<String>,
    #[serde(default)]
    pub visible_in_portal: Option<bool>,
    #[serde(default)]
    pub editable_in_portal: Option<bool>,
    #[serde(default)]
    pub required_in_portal: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub tag: Option<Option<String>>,
    #[serde(default)]
    pub custom_field_options: Option<Vec<FieldOption>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct FormInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub default: Option<bool>,
    #[serde(default)]
    pub end_user_visible: Option<bool>,
    #[serde(default)]
    pub ticket_field_ids: Option<Vec<Id>>,
    #[serde(default)]
    pub agent_conditions: Option<Vec<Value>>,
    #[serde(default)]
    pub end_user_conditions: Option<Vec<Value>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Which custom-field table a user/organisation field operation addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    User,
    Organization,
}

/// Give options without an id (or with a repeated or out-of-range one) a fresh id, unique in
/// the field: `field id * 1000 + n`.
fn assign_option_ids(opts: &mut [FieldOption], seed: Id) {
    const MAX_ID: Id = 1 << 52;
    let mut seen = std::collections::HashSet::new();
    let mut next = seed.saturating_mul(1000);
    for o in opts.iter_mut() {
        if o.id <= 0 || o.id > MAX_ID || !seen.insert(o.id) {
            o.id = 0;
        }
    }
    for o in opts.iter_mut() {
        if o.id == 0 {
            loop {
                next = next.saturating_add(1);
                if seen.insert(next) {
                    break;
                }
            }
            o.id = next;
        }
    }
}

pub(crate) async fn ensure_system_fields(app: &App) -> Result<()> {
    let mut tx = app.store.write().await?;
    let existing: Vec<TicketField> = tx.list(&[], &Page::All { limit: 10_000 }).await?.items;
    let now = app.now();
    for (i, ty) in SYSTEM_TICKET_FIELD_TYPES.iter().enumerate() {
        if existing.iter().any(|f| f.field_type == *ty) {
            continue;
        }
        let title = match *ty {
            "subject" => "Subject",
            "description" => "Description",
            "status" => "Status",
            "tickettype" => "Type",
            "priority" => "Priority",
            "group" => "Group",
            _ => "Assignee",
        };
        let mut f = TicketField {
            id: 0,
            field_type: ty.to_string(),
            title: title.into(),
            raw_title: title.into(),
            description: String::new(),
            raw_description: String::new(),
            agent_description: None,
            position: i as i64,
            active: true,
            required: matches!(*ty, "subject" | "description"),
            collapsed_for_agents: false,
            regexp_for_validation: None,
            title_in_portal: title.into(),
            raw_title_in_portal: title.into(),
            visible_in_portal: matches!(*ty, "subject" | "description"),
            editable_in_portal: matches!(*ty, "subject" | "description"),
            required_in_portal: matches!(*ty, "subject" | "description"),
            tag: None,
            custom_field_options: vec![],
            removable: false,
            key: None,
            created_at: now,
            updated_at: now,
        };
        tx.insert(&mut f).await?;
    }
    tx.commit().await?;
    Ok(())
}

impl App {
    pub async fn list_ticket_fields(
        &self,
        actor: &Actor,
        page: &Page,
    ) -> Result<Paged<TicketField>> {
        let _ = page; // the list is small: always whole, sorted by position
        let mut c = self.store.read().await?;
        let mut p = c
            .list::<TicketField>(&[], &Page::All { limit: 10_000 })
            .await?;
        if !actor.is_staff() {
            p.items.retain(|f| f.visible_in_portal && f.active);
        }
        p.items.sort_by_key(|f| (f.position, f.id));
        Ok(p)
    }

    pub async fn all_ticket_fields(&self) -> Result<Vec<TicketField>> {
        let mut c = self.store.read().await?;
        Ok(c.list::<TicketField>(&[], &Page::All { limit: 10_000 })
            .await?
            .items)
    }

    pub async fn get_ticket_field(&self, actor: &Actor, id: Id) -> Result<TicketField> {
        let mut c = self.store.read().await?;
        let f: TicketField = c.get(id).await?.ok_or(AppError::NotFound)?;
        if !actor.is_staff() && !f.visible_in_portal {
            return Err(AppError::NotFound);
        }
        Ok(f)
    }

    pub async fn save_ticket_field(
        &self,
        actor: &Actor,
        id: Option<Id>,
        input: FieldInput,
    ) -> Result<TicketField> {
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut inv = Invalid::new();
        let mut f = match id {
            Some(id) => tx.get::<TicketField>(id).await?.ok_or(AppError::NotFound)?,
            None => {
                let ty = input.field_type.clone().unwrap_or_default();
                if ty.is_empty() {
                    inv.blank("type", "Type");
                } else if !TICKET_FIELD_TYPES.contains(&ty.as_str()) {
                    inv.invalid(
                        "type",
                        "Type",
                        &format!("'{ty}' is not one of {}", TICKET_FIELD_TYPES.join(", ")),
                    );
                }
                let position = tx.count::<TicketField>(&[]).await?;
                TicketField {
                    id: 0,
                    field_type: ty,
                    title: String::new(),
                    raw_title: String::new(),
                    description: String::new(),
                    raw_description: String::new(),
                    agent_description: None,
                    position,
                    active: true,
                    required: false,
                    collapsed_for_agents: false,
                    regexp_for_validation: None,
                    title_in_portal: String::new(),
                    raw_title_in_portal: String::new(),
                    visible_in_portal: false,
                    editable_in_portal: false,
                    required_in_portal: false,
                    tag: None,
                    custom_field_options: vec![],
                    removable: true,
                    key: None,
                    created_at: now,
                    updated_at: now,
                }
            }
        };
        if let (Some(t), Some(_)) = (&input.field_type, id) {
            if *t != f.field_type {
                inv.invalid("type", "Type", "cannot be changed");
            }
        }
        if id.is_none() && input.title.is_none() {
            inv.blank("title", "Title");
        }
        if let Some(t) = &input.title {
            opsdesk_core::model::check_text(t, "title", "Title", 255, &mut inv);
            f.title = t.trim().to_string();
            f.raw_title = f.title.clone();
            if f.title_in_portal.is_empty() {
                f.title_in_portal = f.title.clone();
                f.raw_title_in_portal = f.title.clone();
            }
        }
        if let Some(d) = &input.description {
            f.description = d.clone();
            f.raw_description = d.clone();
        }
        if let Some(d) = &input.agent_description {
            f.agent_description = Some(d.clone());
        }
        if let Some(p) = input.position {
            f.position = p;
        }
        if let Some(v) = input.active {
            f.active = v;
        }
        if let Some(v) = input.required {
            f.required = v;
        }
        if let Some(v) = input.collapsed_for_agents {
            f.collapsed_for_agents = v;
        }
        if let Some(v) = &input.title_in_portal {
            f.title_in_portal = v.clone();
            f.raw_title_in_portal = v.clone();
        }
        if let Some(v) = input.visible_in_portal {
            f.visible_in_portal = v;
        }
        if let Some(v) = input.editable_in_portal {
            f.editable_in_portal = v;
        }
        if let Some(v) = input.required_in_portal {
            f.required_in_portal = v;
        }
        if let Some(v) = &input.tag {
            f.tag = v
                .clone()
                .filter(|t| !t.trim().is_empty())
                .map(|t| t.trim().to_lowercase());
        }
        if let Some(v) = &input.regexp_for_validation {
            f.regexp_for_validation = v.clone();
        }
        if let Some(o) = &input.custom_field_options {
            f.custom_field_options = o.clone();
        }
        if !f.is_system() {
            check_options(&f.field_type, &mut f.custom_field_options, &mut inv);
            check_regexp(f.regexp_for_validation.as_deref(), &f.field_type, &mut inv);
        }
        inv.into_result()?;
        f.updated_at = now;
        if id.is_some() {
            assign_option_ids(&mut f.custom_field_options, f.id);
            tx.update(&f).await?;
        } else {
            tx.insert(&mut f).await?;
            assign_option_ids(&mut f.custom_field_options, f.id);
            tx.update(&f).await?;
        }
        tx.commit().await?;
        Ok(f)
    }

    pub async fn delete_ticket_field(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let f: TicketField = tx.get(id).await?.ok_or(AppError::NotFound)?;
        if !f.removable {
            return Err(Invalid::one(
                "base",
                "InvalidValue",
                format!("{}: system fields cannot be deleted", f.title),
            )
            .into());
        }
        tx.delete::<TicketField>(id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- forms ---------------------------------------------------------------------------

    pub async fn list_ticket_forms(&self, actor: &Actor, page: &Page) -> Result<Paged<TicketForm>> {
        let _ = page; // the list is small: always whole, sorted by position
        let mut c = self.store.read().await?;
        let mut p = c
            .list::<TicketForm>(&[], &Page::All { limit: 10_000 })
            .await?;
        if !actor.is_staff() {
            p.items.retain(|f| f.end_user_visible && f.active);
        }
        p.items.sort_by_key(|f| (f.position, f.id));
        Ok(p)
    }

    pub async fn get_ticket_form(&self, actor: &Actor, id: Id) -> Result<TicketForm> {
        let mut c = self.store.read().await?;
        let f: TicketForm = c.get(id).await?.ok_or(AppError::NotFound)?;
        if !(actor.is_staff() || f.active && f.end_user_visible) {
            return Err(AppError::NotFound);
        }
        Ok(f)
    }

    pub async fn save_ticket_form(
        &self,
        actor: &Actor,
        id: Option<Id>,
        input: FormInput,
    ) -> Result<TicketForm> {
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut inv = Invalid::new();
        let mut f = match id {
            Some(id) => tx.get::<TicketForm>(id).await?.ok_or(AppError::NotFound)?,
            None => {
                let position = tx.count::<TicketForm>(&[]).await?;
                TicketForm {
                    id: 0,
                    name: String::new(),
                    raw_name: String::new(),
                    display_name: String::new(),
                    raw_display_name: String::new(),
                    position,
                    active: true,
                    default: position == 0,
                    end_user_visible: true,
                    in_all_brands: true,
                    restricted_brand_ids: vec![],
                    ticket_field_ids: vec![],
                    agent_conditions: vec![],
                    end_user_conditions: vec![],
                    created_at: now,
                    updated_at: now,
                }
            }
        };
        if id.is_none() && input.name.is_none() {
            inv.blank("name", "Name");
        }
        if let Some(n) = &input.name {
            opsdesk_core::model::check_text(n, "name", "Name", 255, &mut inv);
            f.name = n.trim().to_string();
            f.raw_name = f.name.clone();
            if f.display_name.is_empty() {
                f.display_name = f.name.clone();
                f.raw_display_name = f.name.clone();
            }
        }
        if let Some(n) = &input.display_name {
            f.display_name = n.clone();
            f.raw_display_name = n.clone();
        }
        if let Some(p) = input.position {
            f.position = p;
        }
        if let Some(v) = input.active {
            f.active = v;
        }
        if let Some(v) = input.end_user_visible {
            f.end_user_visible = v;
        }
        if let Some(ids) = &input.ticket_field_ids {
            let known: Vec<TicketField> = tx.get_many(ids).await?;
            for i in ids {
                if !known.iter().any(|k| k.id == *i) {
                    inv.invalid(
                        "ticket_field_ids",
                        "Ticket fields",
                        &format!("{i} does not exist"),
                    );
                }
            }
            f.ticket_field_ids = ids.clone();
        }
        if let Some(c) = &input.agent_conditions {
            f.agent_conditions = c.clone();
        }
        if let Some(c) = &input.end_user_conditions {
            f.end_user_conditions = c.clone();
        }
        inv.into_result()?;
        if input.default == Some(true) && !f.default {
            let all: Vec<TicketForm> = tx.list(&[], &Page::All { limit: 10_000 }).await?.items;
            for mut o in all.into_iter().filter(|o| o.default) {
                o.default = false;
                tx.update(&o).await?;
            }
            f.default = true;
        }
        f.updated_at = now;
        if id.is_some() {
            tx.update(&f).await?;
        } else {
            tx.insert(&mut f).await?;
        }
        tx.commit().await?;
        Ok(f)
    }

    /// The ticket fields in a new order (positions 1, 2, … for the given ids, the rest after).
    pub async fn reorder_ticket_fields(
        &self,
        actor: &Actor,
        ids: &[Id],
    ) -> Result<Vec<TicketField>> {
        self.reorder_listed(actor, ids).await
    }

    /// The ticket forms in a new order (as the portal offers them).
    pub async fn reorder_ticket_forms(&self, actor: &Actor, ids: &[Id]) -> Result<Vec<TicketForm>> {
        self.reorder_listed(actor, ids).await
    }

    pub async fn delete_ticket_form(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let f: TicketForm = tx.get(id).await?.ok_or(AppError::NotFound)?;
        if f.default {
            return Err(Invalid::one(
                "base",
                "InvalidValue",
                "The default ticket form cannot be deleted",
            )
            .into());
        }
        tx.delete::<TicketForm>(id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- user and organisation fields ----------------------------------------------------

    pub async fn list_custom_fields(
        &self,
        actor: &Actor,
        kind: FieldKind,
    ) -> Result<Vec<CustomField>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let mut v: Vec<CustomField> = match kind {
            FieldKind::User => c
                .list::<UserField>(&[], &Page::All { limit: 10_000 })
                .await?
                .items
                .into_iter()
                .map(|f| f.0)
                .collect(),
            FieldKind::Organization => c
                .list::<OrgField>(&[], &Page::All { limit: 10_000 })
                .await?
                .items
                .into_iter()
                .map(|f| f.0)
                .collect(),
        };
        v.sort_by_key(|f| (f.position, f.id));
        Ok(v)
    }

    pub async fn get_custom_field(
        &self,
        actor: &Actor,
        kind: FieldKind,
        id: Id,
    ) -> Result<CustomField> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        match kind {
            FieldKind::User => c.get::<UserField>(id).await?.map(|f| f.0),
            FieldKind::Organization => c.get::<OrgField>(id).await?.map(|f| f.0),
        }
        .ok_or(AppError::NotFound)
    }

    pub async fn save_custom_field(
        &self,
        actor: &Actor,
        kind: FieldKind,
        id: Option<Id>,
        input: FieldInput,
    ) -> Result<CustomField> {
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut inv = Invalid::new();
        let existing = match (kind, id) {
            (_, None) => None,
            (FieldKind::User, Some(id)) => {
                Some(tx.get::<UserField>(id).await?.ok_or(AppError::NotFound)?.0)
            }
            (FieldKind::Organization, Some(id)) => {
                Some(tx.get::<OrgField>(id).await?.ok_or(AppError::NotFound)?.0)
            }
        };
        let mut f = match existing {
            Some(f) => f,
            None => {
                let ty = input.field_type.clone().unwrap_or_default();
                if ty.is_empty() {
                    inv.blank("type", "Type");
                } else if !USER_ORG_FIELD_TYPES.contains(&ty.as_str()) {
                    inv.invalid(
                        "type",
                        "Type",
                        &format!("'{ty}' is not one of {}", USER_ORG_FIELD_TYPES.join(", ")),
                    );
                }
                let key = input.key.clone().unwrap_or_default();
                if key.is_empty() {
                    inv.blank("key", "Key");
                } else if !key
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    || key.len() > 64
                {
                    inv.invalid(
                        "key",
                        "Key",
                        "may contain only lower-case letters, digits and underscores",
                    );
                }
                CustomField {
                    id: 0,
                    key,
                    field_type: ty,
                    title: String::new(),
                    raw_title: String::new(),
                    description: String::new(),
                    raw_description: String::new(),
                    position: 0,
                    active: true,
                    system: false,
                    regexp_for_validation: None,
                    tag: None,
                    custom_field_options: vec![],
                    created_at: now,
                    updated_at: now,
                }
            }
        };
        if id.is_some() {
            if let Some(k) = &input.key {
                if *k != f.key {
                    inv.invalid("key", "Key", "cannot be changed");
                }
            }
        }
        if id.is_none() && input.title.is_none() {
            inv.blank("title", "Title");
        }
        if let Some(t) = &input.title {
            opsdesk_core::model::check_text(t, "title", "Title", 255, &mut inv);
            f.title = t.trim().to_string();
            f.raw_title = f.title.clone();
        }
        if let Some(d) = &input.description {
            f.description = d.clone();
            f.raw_description = d.clone();
        }
        if let Some(p) = input.position {
            f.position = p;
        }
        if let Some(v) = input.active {
            f.active = v;
        }
        if let Some(v) = &input.tag {
            f.tag = v.clone();
        }
        if let Some(v) = &input.regexp_for_validation {
            f.regexp_for_validation = v.clone();
        }
        if let Some(o) = &input.custom_field_options {
            f.custom_field_options = o.clone();
        }
        check_options(&f.field_type, &mut f.custom_field_options, &mut inv);
        check_regexp(f.regexp_for_validation.as_deref(), &f.field_type, &mut inv);
        inv.into_result()?;
        f.updated_at = now;
        let saved = match kind {
            FieldKind::User => save_doc(&mut tx, UserField(f), id.is_some()).await?.0,
            FieldKind::Organization => save_doc(&mut tx, OrgField(f), id.is_some()).await?.0,
        };
        tx.commit().await?;
        Ok(saved)
    }

    pub async fn delete_custom_field(&self, actor: &Actor, kind: FieldKind, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let gone = match kind {
            FieldKind::User => tx.delete::<UserField>(id).await?,
            FieldKind::Organization => tx.delete::<OrgField>(id).await?,
        };
        if !gone {
            return Err(AppError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }
}
