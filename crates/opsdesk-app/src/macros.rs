//! Macros: actions agents apply to a ticket. `apply` previews the result without saving; the
//! agent's next ticket update saves it (with its own audit, as any update).

use std::collections::HashMap;

use opsdesk_core::clock;
use opsdesk_core::model::{Group, Id, Organization, User};
use opsdesk_core::placeholders;
use opsdesk_core::rules::{self, Action, Facts, Macro, SideEffect};
use opsdesk_core::ticket::Ticket;
use opsdesk_core::Invalid;
use opsdesk_store::{Cond, Conn, Page, Val};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::records::{check_restriction, restriction_allows};
use crate::{html, Actor, App, AppError, Result};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct MacroInput {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub actions: Option<Vec<Action>>,
    #[serde(default, deserialize_with = "opsdesk_core::ticket::double_option")]
    pub restriction: Option<Option<Value>>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// What a macro would do: the ticket after its actions and the comment it would add.
#[derive(Debug, Clone)]
pub struct MacroPreview {
    pub ticket: Ticket,
    /// Only the fields the macro sets (for `macros/{id}/apply` without a ticket).
    pub changes: serde_json::Map<String, Value>,
    pub comment: Option<Value>,
}

fn first_name(n: &str) -> String {
    n.split_whitespace().next().unwrap_or("").to_string()
}

fn last_name(n: &str) -> String {
    n.split_whitespace().skip(1).collect::<Vec<_>>().join(" ")
}

impl App {
    /// Values for `{{…}}` placeholders about a ticket and the acting user.
    pub(crate) async fn placeholder_values(
        &self,
        c: &mut Conn,
        t: &Ticket,
        actor: &Actor,
    ) -> Result<HashMap<String, String>> {
        let mut v = HashMap::new();
        let mut put = |k: &str, val: String| {
            v.insert(k.to_string(), val);
        };
        put("ticket.id", t.id.to_string());
        put("ticket.title", t.subject.clone().unwrap_or_default());
        put("ticket.description", t.description.clone());
        put("ticket.status", t.status.as_str().to_string());
        put(
            "ticket.priority",
            t.priority
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
        );
        put(
            "ticket.ticket_type",
            t.ticket_type
                .map(|p| p.as_str().to_string())
                .unwrap_or_default(),
        );
        put("ticket.tags", t.tags.join(" "));
        put("ticket.via", t.via.channel.clone());
        put("ticket.created_at", clock::format(t.created_at));
        put("ticket.updated_at", clock::format(t.updated_at));
        put(
            "ticket.url",
            format!("{}/agent/tickets/{}", self.public_url, t.id),
        );
        put(
            "ticket.link",
            format!("{}/agent/tickets/{}", self.public_url, t.id),
        );
        for (prefix, user) in [
            ("ticket.requester", Some(t.requester_id)),
            ("ticket.assignee", t.assignee_id),
            ("current_user", Some(actor.id())),
        ] {
            let u = match user {
                Some(id) if id == actor.id() => Some(actor.user.clone()),
                Some(id) => c.get::<User>(id).await?,
                None => None,
            };
            if let Some(u) = u {
                put(&format!("{prefix}.name"), u.name.clone());
                put(&format!("{prefix}.first_name"), first_name(&u.name));
                put(&format!("{prefix}.last_name"), last_name(&u.name));
                put(
                    &format!("{prefix}.email"),
                    u.email.clone().unwrap_or_default(),
                );
                put(&format!("{prefix}.id"), u.id.to_string());
            }
        }
        if let Some(o) = match t.organization_id {
            Some(o) => c.get::<Organization>(o).await?,
            None => None,
        } {
            put("ticket.organization.name", o.name.clone());
            put("ticket.organization.id", o.id.to_string());
            put(
                "ticket.organization.notes",
                o.notes.clone().unwrap_or_default(),
            );
            put(
                "ticket.organization.details",
                o.details.clone().unwrap_or_default(),
            );
        }
        if let Some(g) = match t.group_id {
            Some(g) => c.get::<Group>(g).await?,
            None => None,
        } {
            put("ticket.group.name", g.name.clone());
        }
        if t.id > 0 {
            let comments = c
                .comments(
                    t.id,
                    true,
                    &Page::Cursor {
                        size: 1,
                        after: None,
                        before: None,
                        order: opsdesk_store::Order::Desc,
                    },
                )
                .await?;
            if let Some(last) = comments.items.first() {
                put("ticket.latest_public_comment", last.body.clone());
                put("ticket.latest_comment", last.body.clone());
            }
        }
        Ok(v)
    }

    async fn visible_macro(&self, c: &mut Conn, actor: &Actor, m: &Macro) -> Result<bool> {
        restriction_allows(c, actor, &m.restriction).await
    }
}

impl App {
    /// The macros this agent may use (admins: all), by position.
    pub async fn list_macros(&self, actor: &Actor, active_only: bool) -> Result<Vec<Macro>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let conds = if active_only {
            vec![Cond::Eq("active", Val::Int(1))]
        } else {
            vec![]
        };
        let mut all = c
            .list::<Macro>(&conds, &Page::All { limit: 10_000 })
            .await?
            .items;
        all.sort_by_key(|m| (m.position, m.id));
        let mut out = vec![];
        for m in all {
            if self.visible_macro(&mut c, actor, &m).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub async fn get_macro(&self, actor: &Actor, id: Id) -> Result<Macro> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let m: Macro = c.get(id).await?.ok_or(AppError::NotFound)?;
        if !self.visible_macro(&mut c, actor, &m).await? {
            return Err(AppError::NotFound);
        }
        Ok(m)
    }

    /// Agents may write their personal macros; shared and group macros are for admins.
    pub async fn save_macro(
        &self,
        actor: &Actor,
        id: Option<Id>,
        input: MacroInput,
    ) -> Result<Macro> {
        actor.require_staff()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut m = match id {
            Some(id) => {
                let m: Macro = tx.get(id).await?.ok_or(AppError::NotFound)?;
                if !self.visible_macro(&mut tx, actor, &m).await? {
                    return Err(AppError::NotFound);
                }
                m
            }
            None => {
                let count = tx.count::<Macro>(&[]).await?;
                Macro {
                    id: 0,
                    title: String::new(),
                    raw_title: String::new(),
                    description: None,
                    active: true,
                    position: count + 1,
                    actions: vec![],
                    restriction: None,
                    default: false,
                    created_at: now,
                    updated_at: now,
                }
            }
        };
        let mut inv = Invalid::new();
        crate::records::apply_common(
            crate::records::CommonInput {
                title: &input.title,
                description: &input.description,
                active: input.active,
                position: input.position,
            },
            crate::records::CommonFields {
                title: &mut m.title,
                raw_title: &mut m.raw_title,
                description: &mut m.description,
                active: &mut m.active,
                position: &mut m.position,
            },
            id.is_none(),
            &mut inv,
        );
        if let Some(a) = &input.actions {
            m.actions = a.clone();
        }
        if let Some(r) = &input.restriction {
            m.restriction = r.clone();
        }
        check_restriction(actor, &m.restriction, "macros", &mut inv)?;
        if let Err(e) = rules::validate_actions(&m.actions) {
            for (k, v) in e.details {
                inv.details.entry(k).or_default().extend(v);
            }
        }
        inv.into_result()?;
        m.updated_at = now;
        let m = crate::records::save_doc(&mut tx, m, id.is_some()).await?;
        tx.commit().await?;
        Ok(m)
    }

    /// `macros/reorder`: the given ids take positions 1, 2, …; the others keep their order
    /// after them (one transaction).
    pub async fn reorder_macros(&self, actor: &Actor, ids: &[Id]) -> Result<Vec<Macro>> {
        self.reorder_listed(actor, ids).await
    }

    pub async fn delete_macro(&self, actor: &Actor, id: Id) -> Result<()> {
        let m = self.get_macro(actor, id).await?;
        if !actor.is_admin()
            && m.restriction
                .as_ref()
                .and_then(|r| r.get("id"))
                .and_then(Value::as_i64)
                != Some(actor.id())
        {
            return Err(AppError::Forbidden(
                "Agents may only delete their personal macros".into(),
            ));
        }
        let mut tx = self.store.write().await?;
        tx.delete::<Macro>(id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// What applying a macro would do (to a ticket, or to an empty one). Saves nothing.
    pub async fn apply_macro(
        &self,
        actor: &Actor,
        macro_id: Id,
        ticket_id: Option<Id>,
    ) -> Result<MacroPreview> {
        let m = self.get_macro(actor, macro_id).await?;
        let mut c = self.store.read().await?;
        let base = match ticket_id {
            Some(id) => c.ticket(id).await?.ok_or(AppError::NotFound)?,
            None => Ticket::blank(0, opsdesk_core::ticket::Via::api(), self.now()),
        };
        let facts = Facts {
            previous: Some(base.clone()),
            comment: None,
            current_user: actor.id(),
            current_role: actor.user.role,
            requester_fields: Default::default(),
            organization_fields: Default::default(),
            now: Some(self.now()),
            metrics: None,
            schedule: None,
            next_breach_at: None,
            sla_event: None,
        };
        let mut t = base.clone();
        let effects = rules::apply(&m.actions, &mut t, &facts);
        let values = self.placeholder_values(&mut c, &t, actor).await?;
        let mut changes = serde_json::Map::new();
        let before = serde_json::to_value(&base).unwrap_or(Value::Null);
        let after = serde_json::to_value(&t).unwrap_or(Value::Null);
        if let (Value::Object(b), Value::Object(a)) = (&before, &after) {
            for (k, v) in a {
                if b.get(k) != Some(v) {
                    changes.insert(k.clone(), v.clone());
                }
            }
        }
        let comment = effects.iter().rev().filter_map(|fx| match fx {
            SideEffect::Comment { body, html, public } => Some((body, html, public)),
            _ => None,
        }).map(|(body, is_html, public)| {
            let text = placeholders::render(body, &values);
            let (plain, html_body) = if *is_html { (html::html_to_text(&html::sanitize(&text)), html::sanitize(&text)) } else { (text.clone(), html::text_to_html(&text)) };
            json!({"body": plain, "html_body": html_body, "public": public, "scoped_body": [["channel:all", plain]]})
        }).next();
        Ok(MacroPreview {
            ticket: t,
            changes,
            comment,
        })
    }
}
