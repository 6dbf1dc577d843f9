//! Users, identities, organisations and their memberships, groups and group memberships.

use std::collections::BTreeMap;

use opsdesk_core::model::{
    check_tags, normalize_email, normalize_tags, valid_email, Group, GroupMembership, Id, Identity,
    Organization, OrganizationMembership, Role, User,
};
use opsdesk_core::ticket::double_option;
use opsdesk_core::Invalid;
use opsdesk_store::{Cond, Conn, OrgField, Page, Paged, UserField, Val};
use serde::Deserialize;
use serde_json::Value;

use crate::{Actor, App, AppError, Result};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct UserInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub email: Option<Option<String>>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub verified: Option<bool>,
    #[serde(default)]
    pub suspended: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    pub phone: Option<Option<String>>,
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub iana_time_zone: Option<String>,
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default)]
    pub locale_id: Option<i64>,
    #[serde(default, deserialize_with = "double_option")]
    pub organization_id: Option<Option<Id>>,
    #[serde(default, deserialize_with = "double_option")]
    pub default_group_id: Option<Option<Id>>,
    #[serde(default, deserialize_with = "double_option")]
    pub external_id: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub alias: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub details: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub notes: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub signature: Option<Option<String>>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub user_fields: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    pub only_private_comments: Option<bool>,
    #[serde(default)]
    pub ticket_restriction: Option<Option<String>>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OrganizationInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    pub external_id: Option<Option<String>>,
    #[serde(default)]
    pub domain_names: Option<Vec<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub details: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub notes: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub group_id: Option<Option<Id>>,
    #[serde(default)]
    pub shared_tickets: Option<bool>,
    #[serde(default)]
    pub shared_comments: Option<bool>,
    #[serde(default)]
    pub tags: Option<Vec<String>>,
    #[serde(default)]
    pub organization_fields: Option<BTreeMap<String, Value>>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct GroupInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: Option<bool>,
    #[serde(default)]
    pub is_public: Option<bool>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MembershipInput {
    #[serde(default)]
    pub user_id: Option<Id>,
    #[serde(default)]
    pub organization_id: Option<Id>,
    #[serde(default)]
    pub group_id: Option<Id>,
    #[serde(default)]
    pub default: Option<bool>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// Filters for listing users.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub roles: Vec<Role>,
    pub organization_id: Option<Id>,
    pub group_id: Option<Id>,
    pub external_id: Option<String>,
}

fn opt_text(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

fn not_found_if_none<T>(v: Option<T>) -> Result<T> {
    v.ok_or(AppError::NotFound)
}

/// Validate custom values (`user_fields` / `organization_fields`) against their definitions.
fn check_custom(
    defs: &[opsdesk_core::fields::CustomField],
    input: &BTreeMap<String, Value>,
    target: &mut BTreeMap<String, Value>,
    field: &str,
    inv: &mut Invalid,
) {
    for (k, v) in input {
        match defs.iter().find(|d| &d.key == k) {
            None => inv.invalid(field, k, "is not a defined field"),
            Some(d) => match opsdesk_core::fields::check_value(
                &d.field_type,
                &d.custom_field_options,
                d.regexp_for_validation.as_deref(),
                &d.title,
                v,
            ) {
                Ok(v) => {
                    target.insert(k.clone(), v);
                }
                Err(m) => inv.add(field, "InvalidValue", m),
            },
        }
    }
}

impl App {
    // ---- users ---------------------------------------------------------------------------

    pub async fn list_users(
        &self,
        actor: &Actor,
        f: &UserFilter,
        page: &Page,
    ) -> Result<Paged<User>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let mut conds = vec![];
        if !f.roles.is_empty() {
            conds.push(Cond::In(
                "role",
                f.roles.iter().map(|r| Val::from(r.as_str())).collect(),
            ));
        }
        if let Some(o) = f.organization_id {
            conds.push(Cond::Eq("organization_id", Val::Int(o)));
        }
        if let Some(e) = &f.external_id {
            conds.push(Cond::Eq("external_id", Val::from(e.as_str())));
        }
        if let Some(g) = f.group_id {
            let ms: Vec<GroupMembership> = c
                .list(
                    &[Cond::Eq("group_id", Val::Int(g))],
                    &Page::All { limit: 100_000 },
                )
                .await?
                .items;
            conds.push(Cond::In(
                "id",
                ms.iter().map(|m| Val::Int(m.user_id)).collect(),
            ));
        }
        Ok(c.list::<User>(&conds, page).await?)
    }

    pub async fn get_user(&self, actor: &Actor, id: Id) -> Result<User> {
        if !actor.is_staff() && actor.id() != id {
            return Err(AppError::Forbidden(
                "You may only view your own profile".into(),
            ));
        }
        let mut c = self.store.read().await?;
        not_found_if_none(c.get::<User>(id).await?)
    }

    pub async fn users_by_ids(&self, ids: &[Id]) -> Result<Vec<User>> {
        let mut c = self.store.read().await?;
        Ok(c.get_many::<User>(ids).await?)
    }

    pub async fn user_identities(&self, actor: &Actor, user_id: Id) -> Result<Vec<Identity>> {
        if !actor.is_staff() && actor.id() != user_id {
            return Err(AppError::Forbidden(
                "You may only view your own identities".into(),
            ));
        }
        let mut c = self.store.read().await?;
        not_found_if_none(c.get::<User>(user_id).await?)?;
        Ok(c.identities_of(user_id).await?)
    }

    /// `users/search?query=` (name, email, external id; `email:` / `name:` / `external_id:`
    /// prefixes) or `?email=` / `?external_id=`.
    pub async fn search_users(
        &self,
        actor: &Actor,
        query: Option<&str>,
        email: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<Vec<User>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        if let Some(e) = email {
            return Ok(c.user_by_email(e).await?.into_iter().collect());
        }
        if let Some(x) = external_id {
            return Ok(c
                .find::<User>(&[Cond::Eq("external_id", Val::from(x))])
                .await?
                .into_iter()
                .collect());
        }
        let q = query.unwrap_or("").trim();
        if q.is_empty() {
            return Ok(vec![]);
        }
        if q.len() > 500 {
            return Err(AppError::BadRequest("query is too long".into()));
        }
        let q = q.trim_matches('"');
        if let Some(e) = q.strip_prefix("email:") {
            let e = e.trim().trim_matches('"');
            if e.contains('*') {
                return Ok(c
                    .search_users(&like_pattern(e, false).replace('*', "%"), 100)
                    .await?);
            }
            return Ok(c.user_by_email(e).await?.into_iter().collect());
        }
        if let Some(x) = q.strip_prefix("external_id:") {
            return Ok(c
                .find::<User>(&[Cond::Eq("external_id", Val::from(x.trim()))])
                .await?
                .into_iter()
                .collect());
        }
        let term = q.strip_prefix("name:").unwrap_or(q).trim();
        if valid_email(term) {
            if let Some(u) = c.user_by_email(term).await? {
                return Ok(vec![u]);
            }
        }
        Ok(c.search_users(&like_pattern(term, true), 100).await?)
    }

    pub async fn create_user(&self, actor: &Actor, input: UserInput) -> Result<User> {
        actor.require_admin()?;
        if input
            .name
            .as_deref()
            .map(str::trim)
            .unwrap_or("")
            .is_empty()
        {
            return Err(Invalid::one("name", "BlankValue", "Name: cannot be blank").into());
        }
        let mut tx = self.store.write().await?;
        let u = self.create_user_tx(&mut tx, input).await?;
        tx.commit().await?;
        Ok(u)
    }

    /// Create a user inside a transaction (also used for requesters created on the fly).
    pub(crate) async fn create_user_tx(&self, tx: &mut Conn, input: UserInput) -> Result<User> {
        let now = self.now();
        let mut inv = Invalid::new();
        let role = match input.role.as_deref() {
            None => Role::EndUser,
            Some(r) => Role::parse(r).unwrap_or_else(|| {
                inv.invalid(
                    "role",
                    "Role",
                    &format!("'{r}' is not one of end-user, agent, admin"),
                );
                Role::EndUser
            }),
        };
        let email = input
            .email
            .clone()
            .flatten()
            .map(|e| normalize_email(&e))
            .filter(|e| !e.is_empty());
        let name = input
            .name
            .clone()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .or_else(|| {
                email
                    .as_ref()
                    .map(|e| e.split('@').next().unwrap_or(e).to_string())
            });
        let Some(name) = name else {
            inv.blank("name", "Name");
            return Err(inv.into());
        };
        let mut user = User::new(name, None, role, now);
        if let Some(e) = &email {
            if !valid_email(e) {
                inv.invalid("email", "Email", &format!("{e} is not properly formatted"));
            } else if tx.user_by_email(e).await?.is_some() {
                inv.add(
                    "email",
                    "DuplicateValue",
                    format!("Email: {e} is already being used by another user"),
                );
            }
            user.email = Some(e.clone());
        }
        if role.is_staff() && email.is_none() {
            inv.blank("email", "Email");
        }
        self.apply_user_input(tx, &mut user, &input, &mut inv)
            .await?;
        inv.into_result()?;
        tx.insert(&mut user).await?;
        if let Some(e) = &email {
            let mut ident = Identity::email(user.id, e.clone(), user.verified, now);
            tx.insert(&mut ident).await?;
        }
        if let Some(org) = user.organization_id {
            let mut m = OrganizationMembership {
                id: 0,
                user_id: user.id,
                organization_id: org,
                organization_name: None,
                default: true,
                view_tickets: true,
                created_at: now,
                updated_at: now,
            };
            tx.insert(&mut m).await?;
        }
        if let Some(p) = &input.password {
            crate::auth::check_password(p)?;
            let h = crate::auth::hash_password(p)?;
            tx.set_password_hash(user.id, Some(&h)).await?;
        }
        Ok(user)
    }

    async fn apply_user_input(
        &self,
        tx: &mut Conn,
        user: &mut User,
        input: &UserInput,
        inv: &mut Invalid,
    ) -> Result<()> {
        if let Some(n) = &input.name {
            opsdesk_core::model::check_text(n, "name", "Name", 255, inv);
            user.name = n.trim().to_string();
        }
        if let Some(r) = &input.role {
            match Role::parse(r) {
                Some(r) => user.set_role(r),
                None => inv.invalid(
                    "role",
                    "Role",
                    &format!("'{r}' is not one of end-user, agent, admin"),
                ),
            }
        }
        if let Some(v) = input.verified {
            user.verified = v;
        }
        if let Some(v) = input.suspended {
            user.suspended = v;
        }
        if let Some(v) = &input.phone {
            user.phone = opt_text(v.clone());
        }
        if let Some(tz) = &input.iana_time_zone.clone().or(input.time_zone.clone()) {
            if jiff::tz::TimeZone::get(tz).is_ok() {
                user.iana_time_zone = tz.clone();
                user.time_zone = tz.clone();
            } else {
                inv.invalid(
                    "time_zone",
                    "Time zone",
                    &format!("'{tz}' is not a known time zone"),
                );
            }
        }
        if let Some(l) = &input.locale {
            user.locale = l.clone();
        }
        if let Some(l) = input.locale_id {
            user.locale_id = l;
        }
        if let Some(v) = &input.external_id {
            let v = opt_text(v.clone());
            if v.as_ref().is_some_and(|x| x.chars().count() > 255) {
                inv.invalid(
                    "external_id",
                    "External id",
                    "is too long (maximum is 255 characters)",
                );
            }
            if let Some(x) = &v {
                if let Some(other) = tx
                    .find::<User>(&[Cond::Eq("external_id", Val::from(x.as_str()))])
                    .await?
                {
                    if other.id != user.id {
                        inv.add(
                            "external_id",
                            "DuplicateValue",
                            "External: has already been taken",
                        );
                    }
                }
            }
            user.external_id = v;
        }
        if let Some(v) = &input.alias {
            user.alias = opt_text(v.clone());
        }
        if let Some(v) = &input.details {
            user.details = v.clone();
        }
        if let Some(v) = &input.notes {
            user.notes = v.clone();
        }
        if let Some(v) = &input.signature {
            user.signature = v.clone();
        }
        if let Some(v) = input.only_private_comments {
            user.only_private_comments = v;
        }
        if let Some(v) = &input.ticket_restriction {
            match v.as_deref() {
                None | Some("organization") | Some("requested") | Some("groups")
                | Some("assigned") => user.ticket_restriction = v.clone(),
                Some(o) => inv.invalid(
                    "ticket_restriction",
                    "Ticket restriction",
                    &format!("'{o}' is not valid"),
                ),
            }
        }
        if let Some(t) = &input.tags {
            user.tags = normalize_tags(t);
            check_tags(&user.tags, "tags", inv);
        }
        if let Some(uf) = &input.user_fields {
            let defs: Vec<UserField> = tx.list(&[], &Page::All { limit: 10_000 }).await?.items;
            let defs: Vec<_> = defs.into_iter().map(|f| f.0).collect();
            check_custom(&defs, uf, &mut user.user_fields, "user_fields", inv);
        }
        if let Some(o) = &input.organization_id {
            if let Some(o) = o {
                if tx.get::<Organization>(*o).await?.is_none() {
                    inv.invalid(
                        "organization_id",
                        "Organization",
                        &format!("{o} does not exist"),
                    );
                }
            }
            user.organization_id = *o;
        }
        if let Some(g) = &input.default_group_id {
            if let Some(g) = g {
                if tx.get::<Group>(*g).await?.is_none() {
                    inv.invalid(
                        "default_group_id",
                        "Default group",
                        &format!("{g} does not exist"),
                    );
                }
            }
            user.default_group_id = *g;
        }
        Ok(())
    }

    pub async fn update_user(&self, actor: &Actor, id: Id, input: UserInput) -> Result<User> {
        if !actor.is_admin() {
            // Users may change only their own profile basics; everything that affects what
            // they can see or do is for admins.
            let i = &input;
            let restricted = i.role.is_some()
                || i.email.is_some()
                || i.verified.is_some()
                || i.suspended.is_some()
                || i.organization_id.is_some()
                || i.default_group_id.is_some()
                || i.external_id.is_some()
                || i.details.is_some()
                || i.notes.is_some()
                || i.tags.is_some()
                || i.user_fields.is_some()
                || i.only_private_comments.is_some()
                || i.ticket_restriction.is_some()
                || i.password.is_some();
            if actor.id() != id || restricted {
                actor.require_admin()?;
            }
        }
        let mut tx = self.store.write().await?;
        let mut user = not_found_if_none(tx.get::<User>(id).await?)?;
        let old_org = user.organization_id;
        let old_role = user.role;
        let mut inv = Invalid::new();
        self.apply_user_input(&mut tx, &mut user, &input, &mut inv)
            .await?;
        if let Some(e) = &input.email {
            let e = e
                .clone()
                .map(|e| normalize_email(&e))
                .filter(|e| !e.is_empty());
            match &e {
                Some(e) if !valid_email(e) => {
                    inv.invalid("email", "Email", &format!("{e} is not properly formatted"))
                }
                Some(e) => {
                    if let Some(other) = tx.user_by_email(e).await? {
                        if other.id != id {
                            inv.add(
                                "email",
                                "DuplicateValue",
                                format!("Email: {e} is already being used by another user"),
                            );
                        }
                    }
                }
                None => {
                    if user.role.is_staff() {
                        inv.blank("email", "Email");
                    }
                }
            }
            if inv.is_empty() && e != user.email {
                let now = self.now();
                // Demote the old primary identity; add or promote the new one.
                for mut i in tx.identities_of(id).await? {
                    let is_new = Some(&i.value) == e.as_ref();
                    if i.primary != is_new {
                        i.primary = is_new;
                        i.updated_at = now;
                        tx.update(&i).await?;
                    }
                }
                if let Some(e) = &e {
                    if !tx.identities_of(id).await?.iter().any(|i| &i.value == e) {
                        let mut ident = Identity::email(id, e.clone(), false, now);
                        tx.insert(&mut ident).await?;
                    }
                }
                user.email = e;
            }
        }
        if old_role.is_staff() && !user.role.is_staff() {
            // An end-user cannot hold assignments or group memberships.
            let assigned = tx.int("SELECT COUNT(*) FROM tickets WHERE assignee_id = $1 AND status NOT IN ('solved', 'closed') AND deleted_at IS NULL", &[Val::Int(id)]).await?;
            if assigned > 0 {
                inv.invalid(
                    "role",
                    "Role",
                    &format!(
                        "this agent has {assigned} unsolved assigned tickets; reassign them first"
                    ),
                );
            } else {
                tx.exec(
                    "DELETE FROM group_memberships WHERE user_id = $1",
                    &[Val::Int(id)],
                )
                .await?;
                user.default_group_id = None;
            }
        }
        inv.into_result()?;
        user.updated_at = self.now();
        tx.update(&user).await?;
        if user.organization_id != old_org {
            if let Some(org) = user.organization_id {
                self.ensure_org_membership(&mut tx, id, org, true).await?;
            }
        }
        if let Some(p) = &input.password {
            crate::auth::check_password(p)?;
            let h = crate::auth::hash_password(p)?;
            tx.set_password_hash(id, Some(&h)).await?;
        }
        tx.commit().await?;
        Ok(user)
    }

    /// `users/create_or_update`: match by email (then external_id); update or create.
    pub async fn create_or_update_user(
        &self,
        actor: &Actor,
        input: UserInput,
    ) -> Result<(User, bool)> {
        actor.require_admin()?;
        let existing = {
            let mut c = self.store.read().await?;
            let mut found = None;
            if let Some(Some(e)) = &input.email {
                found = c.user_by_email(e).await?;
            }
            if found.is_none() {
                if let Some(Some(x)) = &input.external_id {
                    found = c
                        .find::<User>(&[Cond::Eq("external_id", Val::from(x.as_str()))])
                        .await?;
                }
            }
            found
        };
        match existing {
            Some(u) => Ok((self.update_user(actor, u.id, input).await?, false)),
            None => match self.create_user(actor, input.clone()).await {
                // Another request created the same user meanwhile: this one updates it.
                Err(AppError::Invalid(i))
                    if i.details
                        .values()
                        .flatten()
                        .any(|e| e.error == "DuplicateValue") =>
                {
                    // Look in a write transaction: it sees what the other request wrote even
                    // before its group commit is durable.
                    let found = match &input.email {
                        Some(Some(e)) => {
                            let mut tx = self.store.write().await?;
                            let u = tx.user_by_email(e).await?;
                            tx.commit().await?;
                            u
                        }
                        _ => None,
                    };
                    match found {
                        Some(u) => Ok((self.update_user(actor, u.id, input).await?, false)),
                        None => Err(AppError::Invalid(i)),
                    }
                }
                other => Ok((other?, true)),
            },
        }
    }

    /// Delete a user: Zendesk keeps the record, inactive, so tickets keep their people.
    pub async fn delete_user(&self, actor: &Actor, id: Id) -> Result<User> {
        actor.require_admin()?;
        if actor.id() == id {
            return Err(Invalid::one("base", "InvalidValue", "You cannot delete yourself").into());
        }
        let mut tx = self.store.write().await?;
        let mut user = not_found_if_none(tx.get::<User>(id).await?)?;
        user.active = false;
        user.updated_at = self.now();
        tx.update(&user).await?;
        tx.exec("DELETE FROM api_tokens WHERE user_id = $1", &[Val::Int(id)])
            .await?;
        tx.set_password_hash(id, None).await?;
        tx.commit().await?;
        Ok(user)
    }

    // ---- organisations -------------------------------------------------------------------

    pub async fn list_organizations(
        &self,
        actor: &Actor,
        page: &Page,
    ) -> Result<Paged<Organization>> {
        let mut c = self.store.read().await?;
        if !actor.is_staff() {
            let ids: Vec<Val> = c
                .memberships_of(actor.id())
                .await?
                .iter()
                .map(|m| Val::Int(m.organization_id))
                .collect();
            return Ok(c.list(&[Cond::In("id", ids)], page).await?);
        }
        Ok(c.list(&[], page).await?)
    }

    pub async fn get_organization(&self, actor: &Actor, id: Id) -> Result<Organization> {
        let mut c = self.store.read().await?;
        if !actor.is_staff()
            && !c
                .memberships_of(actor.id())
                .await?
                .iter()
                .any(|m| m.organization_id == id)
        {
            return Err(AppError::Forbidden(
                "You may only view your own organization".into(),
            ));
        }
        not_found_if_none(c.get(id).await?)
    }

    pub async fn organizations_by_ids(&self, ids: &[Id]) -> Result<Vec<Organization>> {
        let mut c = self.store.read().await?;
        Ok(c.get_many(ids).await?)
    }

    pub async fn search_organizations(
        &self,
        actor: &Actor,
        name: Option<&str>,
        external_id: Option<&str>,
    ) -> Result<Vec<Organization>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let mut conds = vec![];
        if let Some(n) = name {
            conds.push(Cond::Eq("name_key", Val::from(n.trim().to_lowercase())));
        }
        if let Some(x) = external_id {
            conds.push(Cond::Eq("external_id", Val::from(x)));
        }
        if conds.is_empty() {
            return Err(AppError::BadRequest("give name or external_id".into()));
        }
        Ok(c.list(&conds, &Page::All { limit: 100 }).await?.items)
    }

    async fn apply_org_input(
        &self,
        tx: &mut Conn,
        o: &mut Organization,
        input: &OrganizationInput,
        inv: &mut Invalid,
    ) -> Result<()> {
        if let Some(n) = &input.name {
            opsdesk_core::model::check_text(n, "name", "Name", 255, inv);
            let n = n.trim().to_string();
            if let Some(other) = tx
                .find::<Organization>(&[Cond::Eq("name_key", Val::from(n.to_lowercase()))])
                .await?
            {
                if other.id != o.id {
                    inv.add("name", "DuplicateValue", "Name: has already been taken");
                }
            }
            o.name = n;
        }
        if let Some(v) = &input.external_id {
            o.external_id = opt_text(v.clone());
            if o.external_id
                .as_ref()
                .is_some_and(|x| x.chars().count() > 255)
            {
                inv.invalid(
                    "external_id",
                    "External id",
                    "is too long (maximum is 255 characters)",
                );
            }
            if let Some(x) = &o.external_id {
                if let Some(other) = tx
                    .find::<Organization>(&[Cond::Eq("external_id", Val::from(x.as_str()))])
                    .await?
                {
                    if other.id != o.id {
                        inv.add(
                            "external_id",
                            "DuplicateValue",
                            "External: has already been taken",
                        );
                    }
                }
            }
        }
        if let Some(d) = &input.domain_names {
            let mut out: Vec<String> = vec![];
            for d in d.iter().flat_map(|d| d.split([' ', ','])) {
                let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
                if d.is_empty() {
                    continue;
                }
                if !d.contains('.')
                    || d.chars()
                        .any(|c| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
                {
                    inv.invalid(
                        "domain_names",
                        "Domain names",
                        &format!("'{d}' is not a valid domain"),
                    );
                } else if !out.contains(&d) {
                    out.push(d);
                }
            }
            o.domain_names = out;
        }
        if let Some(v) = &input.details {
            o.details = v.clone();
        }
        if let Some(v) = &input.notes {
            o.notes = v.clone();
        }
        if let Some(g) = &input.group_id {
            if let Some(g) = g {
                if tx.get::<Group>(*g).await?.is_none() {
                    inv.invalid("group_id", "Group", &format!("{g} does not exist"));
                }
            }
            o.group_id = *g;
        }
        if let Some(v) = input.shared_tickets {
            o.shared_tickets = v;
        }
        if let Some(v) = input.shared_comments {
            o.shared_comments = v;
        }
        if let Some(t) = &input.tags {
            o.tags = normalize_tags(t);
            check_tags(&o.tags, "tags", inv);
        }
        if let Some(f) = &input.organization_fields {
            let defs: Vec<OrgField> = tx.list(&[], &Page::All { limit: 10_000 }).await?.items;
            let defs: Vec<_> = defs.into_iter().map(|f| f.0).collect();
            check_custom(
                &defs,
                f,
                &mut o.organization_fields,
                "organization_fields",
                inv,
            );
        }
        Ok(())
    }

    pub async fn create_organization(
        &self,
        actor: &Actor,
        input: OrganizationInput,
    ) -> Result<Organization> {
        actor.require_admin()?;
        let now = self.now();
        let mut o = Organization {
            id: 0,
            name: String::new(),
            external_id: None,
            domain_names: vec![],
            details: None,
            notes: None,
            group_id: None,
            shared_tickets: false,
            shared_comments: false,
            tags: vec![],
            organization_fields: BTreeMap::new(),
            created_at: now,
            updated_at: now,
        };
        let mut inv = Invalid::new();
        if input.name.is_none() {
            inv.blank("name", "Name");
        }
        let mut tx = self.store.write().await?;
        self.apply_org_input(&mut tx, &mut o, &input, &mut inv)
            .await?;
        inv.into_result()?;
        tx.insert(&mut o).await?;
        tx.commit().await?;
        Ok(o)
    }

    pub async fn update_organization(
        &self,
        actor: &Actor,
        id: Id,
        input: OrganizationInput,
    ) -> Result<Organization> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        tx.lock_organization(id, true).await?;
        let mut o = not_found_if_none(tx.get::<Organization>(id).await?)?;
        let before = o.clone();
        let mut inv = Invalid::new();
        self.apply_org_input(&mut tx, &mut o, &input, &mut inv)
            .await?;
        inv.into_result()?;
        o.updated_at = self.now();
        tx.update(&o).await?;
        self.kpi_organization_changed(&mut tx, &before, &o).await?;
        tx.commit().await?;
        Ok(o)
    }

    pub async fn create_or_update_organization(
        &self,
        actor: &Actor,
        input: OrganizationInput,
    ) -> Result<(Organization, bool)> {
        actor.require_admin()?;
        let existing = {
            let mut c = self.store.read().await?;
            let mut found = None;
            if let Some(Some(x)) = &input.external_id {
                found = c
                    .find::<Organization>(&[Cond::Eq("external_id", Val::from(x.as_str()))])
                    .await?;
            }
            if found.is_none() {
                if let Some(n) = &input.name {
                    found = c
                        .find::<Organization>(&[Cond::Eq(
                            "name_key",
                            Val::from(n.trim().to_lowercase()),
                        )])
                        .await?;
                }
            }
            found
        };
        match existing {
            Some(o) => Ok((self.update_organization(actor, o.id, input).await?, false)),
            None => match self.create_organization(actor, input.clone()).await {
                // Another request created the same organisation meanwhile: this one updates it.
                Err(AppError::Invalid(i))
                    if i.details
                        .values()
                        .flatten()
                        .any(|e| e.error == "DuplicateValue") =>
                {
                    // Look in a write transaction: it sees what the other request wrote.
                    let mut c = self.store.write().await?;
                    let mut found = None;
                    if let Some(Some(x)) = &input.external_id {
                        found = c
                            .find::<Organization>(&[Cond::Eq("external_id", Val::from(x.as_str()))])
                            .await?;
                    }
                    if found.is_none() {
                        if let Some(n) = &input.name {
                            found = c
                                .find::<Organization>(&[Cond::Eq(
                                    "name_key",
                                    Val::from(n.trim().to_lowercase()),
                                )])
                                .await?;
                        }
                    }
                    c.commit().await?;
                    match found {
                        Some(o) => Ok((self.update_organization(actor, o.id, input).await?, false)),
                        None => Err(AppError::Invalid(i)),
                    }
                }
                other => Ok((other?, true)),
            },
        }
    }

    pub async fn delete_organization(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        tx.lock_organization(id, true).await?;
        not_found_if_none(tx.get::<Organization>(id).await?)?;
        let open = tx.int("SELECT COUNT(*) FROM tickets WHERE organization_id = $1 AND status <> 'closed' AND deleted_at IS NULL", &[Val::Int(id)]).await?;
        if open > 0 {
            return Err(Invalid::one("base", "InvalidValue", format!("Organization: has {open} tickets that are not closed; move or close them first")).into());
        }
        let users: Vec<User> = tx
            .list(
                &[Cond::Eq("organization_id", Val::Int(id))],
                &Page::All { limit: 1_000_000 },
            )
            .await?
            .items;
        for mut u in users {
            u.organization_id = None;
            tx.update(&u).await?;
        }
        tx.exec(
            "DELETE FROM organization_memberships WHERE organization_id = $1",
            &[Val::Int(id)],
        )
        .await?;
        // Its closed tickets keep the organisation's id but no longer its plan or region.
        tx.set_kpi_org(id, None, None).await?;
        tx.delete::<Organization>(id).await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- organisation memberships --------------------------------------------------------

    pub async fn list_org_memberships(
        &self,
        actor: &Actor,
        user_id: Option<Id>,
        org_id: Option<Id>,
        page: &Page,
    ) -> Result<Paged<OrganizationMembership>> {
        if !actor.is_staff() && user_id != Some(actor.id()) {
            actor.require_staff()?;
        }
        let mut conds = vec![];
        if let Some(u) = user_id {
            conds.push(Cond::Eq("user_id", Val::Int(u)));
        }
        if let Some(o) = org_id {
            conds.push(Cond::Eq("organization_id", Val::Int(o)));
        }
        let mut c = self.store.read().await?;
        Ok(c.list(&conds, page).await?)
    }

    pub async fn get_org_membership(
        &self,
        actor: &Actor,
        id: Id,
    ) -> Result<OrganizationMembership> {
        let mut c = self.store.read().await?;
        let m: OrganizationMembership = not_found_if_none(c.get(id).await?)?;
        if !actor.is_staff() && m.user_id != actor.id() {
            actor.require_staff()?;
        }
        Ok(m)
    }

    async fn ensure_org_membership(
        &self,
        tx: &mut Conn,
        user_id: Id,
        org_id: Id,
        make_default: bool,
    ) -> Result<OrganizationMembership> {
        let now = self.now();
        let existing: Vec<OrganizationMembership> = tx.memberships_of(user_id).await?;
        if let Some(m) = existing.iter().find(|m| m.organization_id == org_id) {
            if make_default && !m.default {
                // Keep exactly one default membership, the one asked for.
                for mut o in existing.iter().cloned() {
                    let want = o.organization_id == org_id;
                    if o.default != want {
                        o.default = want;
                        o.updated_at = now;
                        tx.update(&o).await?;
                    }
                }
                let mut m = m.clone();
                m.default = true;
                return Ok(m);
            }
            return Ok(m.clone());
        }
        let org: Organization = tx.get(org_id).await?.ok_or_else(|| {
            AppError::Invalid(Invalid::one(
                "organization_id",
                "InvalidValue",
                format!("Organization: {org_id} does not exist"),
            ))
        })?;
        let default = make_default || existing.is_empty();
        if default {
            for mut m in existing {
                if m.default {
                    m.default = false;
                    m.updated_at = now;
                    tx.update(&m).await?;
                }
            }
        }
        let mut m = OrganizationMembership {
            id: 0,
            user_id,
            organization_id: org_id,
            organization_name: Some(org.name),
            default,
            view_tickets: true,
            created_at: now,
            updated_at: now,
        };
        tx.insert(&mut m).await?;
        Ok(m)
    }

    pub async fn create_org_membership(
        &self,
        actor: &Actor,
        input: MembershipInput,
    ) -> Result<OrganizationMembership> {
        actor.require_admin()?;
        let mut inv = Invalid::new();
        let (Some(user_id), Some(org_id)) = (input.user_id, input.organization_id) else {
            if input.user_id.is_none() {
                inv.blank("user_id", "User");
            }
            if input.organization_id.is_none() {
                inv.blank("organization_id", "Organization");
            }
            return Err(inv.into());
        };
        let mut tx = self.store.write().await?;
        let mut user = tx.get::<User>(user_id).await?.ok_or_else(|| {
            Invalid::one(
                "user_id",
                "InvalidValue",
                format!("User: {user_id} does not exist"),
            )
        })?;
        if tx
            .memberships_of(user_id)
            .await?
            .iter()
            .any(|m| m.organization_id == org_id)
        {
            return Err(Invalid::one(
                "user_id",
                "DuplicateValue",
                "User: is already a member of this organization",
            )
            .into());
        }
        let m = self
            .ensure_org_membership(&mut tx, user_id, org_id, input.default.unwrap_or(false))
            .await?;
        if m.default && user.organization_id != Some(org_id) {
            user.organization_id = Some(org_id);
            user.updated_at = self.now();
            tx.update(&user).await?;
        }
        tx.commit().await?;
        Ok(m)
    }

    pub async fn delete_org_membership(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let m: OrganizationMembership = not_found_if_none(tx.get(id).await?)?;
        tx.delete::<OrganizationMembership>(id).await?;
        if let Some(mut user) = tx.get::<User>(m.user_id).await? {
            if user.organization_id == Some(m.organization_id) {
                let rest = tx.memberships_of(m.user_id).await?;
                user.organization_id = rest.first().map(|r| r.organization_id);
                if let Some(mut r) = rest.into_iter().next() {
                    r.default = true;
                    tx.update(&r).await?;
                }
                user.updated_at = self.now();
                tx.update(&user).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    // ---- groups --------------------------------------------------------------------------

    pub async fn list_groups(&self, actor: &Actor, page: &Page) -> Result<Paged<Group>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        Ok(c.list(&[], page).await?)
    }

    pub async fn get_group(&self, actor: &Actor, id: Id) -> Result<Group> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        not_found_if_none(c.get(id).await?)
    }

    pub async fn groups_by_ids(&self, ids: &[Id]) -> Result<Vec<Group>> {
        let mut c = self.store.read().await?;
        Ok(c.get_many(ids).await?)
    }

    pub async fn save_group(
        &self,
        actor: &Actor,
        id: Option<Id>,
        input: GroupInput,
    ) -> Result<Group> {
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut g = match id {
            Some(id) => not_found_if_none(tx.get::<Group>(id).await?)?,
            None => Group {
                id: 0,
                name: String::new(),
                description: String::new(),
                default: false,
                deleted: false,
                is_public: true,
                created_at: now,
                updated_at: now,
            },
        };
        let mut inv = Invalid::new();
        if id.is_none() && input.name.is_none() {
            inv.blank("name", "Name");
        }
        if let Some(n) = &input.name {
            opsdesk_core::model::check_text(n, "name", "Name", 255, &mut inv);
            if let Some(other) = tx
                .find::<Group>(&[Cond::Eq("name_key", Val::from(n.trim().to_lowercase()))])
                .await?
            {
                if other.id != g.id {
                    inv.add("name", "DuplicateValue", "Name: has already been taken");
                }
            }
            g.name = n.trim().to_string();
        }
        if let Some(d) = &input.description {
            g.description = d.clone();
        }
        if let Some(p) = input.is_public {
            g.is_public = p;
        }
        inv.into_result()?;
        if tx.count::<Group>(&[]).await? == 0 && id.is_none() {
            g.default = true;
        }
        if input.default == Some(true) && !g.default {
            let all: Vec<Group> = tx.list(&[], &Page::All { limit: 100_000 }).await?.items;
            for mut o in all.into_iter().filter(|o| o.default) {
                o.default = false;
                o.updated_at = now;
                tx.update(&o).await?;
            }
            g.default = true;
        }
        g.updated_at = now;
        if id.is_some() {
            tx.update(&g).await?;
        } else {
            tx.insert(&mut g).await?;
        }
        tx.commit().await?;
        Ok(g)
    }

    pub async fn delete_group(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        not_found_if_none(tx.get::<Group>(id).await?)?;
        let open = tx.int("SELECT COUNT(*) FROM tickets WHERE group_id = $1 AND status <> 'closed' AND deleted_at IS NULL", &[Val::Int(id)]).await?;
        if open > 0 {
            return Err(Invalid::one(
                "base",
                "InvalidValue",
                format!("Group: has {open} tickets that are not closed; reassign them first"),
            )
            .into());
        }
        // Members whose default group this was get another of their groups (or none).
        let members: Vec<GroupMembership> = tx
            .list(
                &[Cond::Eq("group_id", Val::Int(id))],
                &Page::All { limit: 100_000 },
            )
            .await?
            .items;
        tx.exec(
            "DELETE FROM group_memberships WHERE group_id = $1",
            &[Val::Int(id)],
        )
        .await?;
        for m in members {
            if let Some(mut u) = tx.get::<User>(m.user_id).await? {
                if u.default_group_id == Some(id) {
                    let rest: Vec<GroupMembership> = tx
                        .list(
                            &[Cond::Eq("user_id", Val::Int(u.id))],
                            &Page::All { limit: 1 },
                        )
                        .await?
                        .items;
                    u.default_group_id = rest.first().map(|r| r.group_id);
                    if let Some(mut r) = rest.into_iter().next() {
                        r.default = true;
                        tx.update(&r).await?;
                    }
                    u.updated_at = self.now();
                    tx.update(&u).await?;
                }
            }
        }
        tx.delete::<Group>(id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn list_group_memberships(
        &self,
        actor: &Actor,
        user_id: Option<Id>,
        group_id: Option<Id>,
        page: &Page,
    ) -> Result<Paged<GroupMembership>> {
        actor.require_staff()?;
        let mut conds = vec![];
        if let Some(u) = user_id {
            conds.push(Cond::Eq("user_id", Val::Int(u)));
        }
        if let Some(g) = group_id {
            conds.push(Cond::Eq("group_id", Val::Int(g)));
        }
        let mut c = self.store.read().await?;
        Ok(c.list(&conds, page).await?)
    }

    pub async fn get_group_membership(&self, actor: &Actor, id: Id) -> Result<GroupMembership> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        not_found_if_none(c.get(id).await?)
    }

    pub async fn create_group_membership(
        &self,
        actor: &Actor,
        input: MembershipInput,
    ) -> Result<GroupMembership> {
        actor.require_admin()?;
        let mut inv = Invalid::new();
        let (Some(user_id), Some(group_id)) = (input.user_id, input.group_id) else {
            if input.user_id.is_none() {
                inv.blank("user_id", "User");
            }
            if input.group_id.is_none() {
                inv.blank("group_id", "Group");
            }
            return Err(inv.into());
        };
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut user = tx.get::<User>(user_id).await?.ok_or_else(|| {
            Invalid::one(
                "user_id",
                "InvalidValue",
                format!("User: {user_id} does not exist"),
            )
        })?;
        if !user.role.is_staff() {
            return Err(Invalid::one(
                "user_id",
                "InvalidValue",
                "User: only agents and admins can be group members",
            )
            .into());
        }
        if tx.get::<Group>(group_id).await?.is_none() {
            return Err(Invalid::one(
                "group_id",
                "InvalidValue",
                format!("Group: {group_id} does not exist"),
            )
            .into());
        }
        let existing: Vec<GroupMembership> = tx
            .list(
                &[Cond::Eq("user_id", Val::Int(user_id))],
                &Page::All { limit: 10_000 },
            )
            .await?
            .items;
        if existing.iter().any(|m| m.group_id == group_id) {
            return Err(Invalid::one(
                "user_id",
                "DuplicateValue",
                "User: is already a member of this group",
            )
            .into());
        }
        let default = existing.is_empty() || input.default == Some(true);
        if default {
            for mut m in existing.into_iter().filter(|m| m.default) {
                m.default = false;
                m.updated_at = now;
                tx.update(&m).await?;
            }
            user.default_group_id = Some(group_id);
            user.updated_at = now;
            tx.update(&user).await?;
        }
        let mut m = GroupMembership {
            id: 0,
            user_id,
            group_id,
            default,
            created_at: now,
            updated_at: now,
        };
        tx.insert(&mut m).await?;
        tx.commit().await?;
        Ok(m)
    }

    pub async fn delete_group_membership(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let m: GroupMembership = not_found_if_none(tx.get(id).await?)?;
        tx.delete::<GroupMembership>(id).await?;
        if m.default {
            if let Some(mut user) = tx.get::<User>(m.user_id).await? {
                let rest: Vec<GroupMembership> = tx
                    .list(
                        &[Cond::Eq("user_id", Val::Int(m.user_id))],
                        &Page::All { limit: 1 },
                    )
                    .await?
                    .items;
                user.default_group_id = rest.first().map(|r| r.group_id);
                if let Some(mut r) = rest.into_iter().next() {
                    r.default = true;
                    tx.update(&r).await?;
                }
                tx.update(&user).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Whether `user_id` is a member of `group_id`.
    pub(crate) async fn in_group(tx: &mut Conn, user_id: Id, group_id: Id) -> Result<bool> {
        Ok(tx
            .count::<GroupMembership>(&[
                Cond::Eq("user_id", Val::Int(user_id)),
                Cond::Eq("group_id", Val::Int(group_id)),
            ])
            .await?
            > 0)
    }
}

/// A LIKE pattern for `term` (escaping nothing: `%`/`_` in user terms are rare and harmless).
fn like_pattern(term: &str, contains: bool) -> String {
    // The user's text is matched literally: escape LIKE's own wildcards (ESCAPE '\').
    let t = term
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    if contains {
        format!("%{t}%")
    } else {
        t
    }
}

impl App {
    /// Create a user from the command line (bootstrap: no acting user yet).
    pub async fn create_user_cli(&self, tx: &mut Conn, input: UserInput) -> Result<User> {
        self.create_user_tx(tx, input).await
    }
}
