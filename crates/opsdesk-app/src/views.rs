//! Views: saved ticket filters. The `all` conditions on indexed columns (status, priority,
//! type, group, assignee, requester, organisation) become SQL; the rest are evaluated with the
//! rules engine on those candidates, so a view is always exactly its conditions.

use opsdesk_core::model::{Id, Role};
use opsdesk_core::rules::{self, Condition, Conditions, Facts, View, ViewExecution, VIEW_COLUMNS};
use opsdesk_core::ticket::{Priority, Status, Ticket};
use opsdesk_core::ticket_metrics::TicketMetrics;
use opsdesk_core::Invalid;
use opsdesk_store::{Cond, Page, Val};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::records::{check_restriction, restriction_allows};
use crate::{Actor, App, AppError, Result};

/// The most candidate tickets a view evaluates in memory after its SQL filter.
pub const MAX_CANDIDATES: i64 = 50_000;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ViewInput {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub position: Option<i64>,
    #[serde(default)]
    pub conditions: Option<Conditions>,
    #[serde(default)]
    pub all: Option<Vec<Condition>>,
    #[serde(default)]
    pub any: Option<Vec<Condition>>,
    /// Zendesk's write shape: `{"columns": ["status", …], "group_by", "sort_by", "sort_order"}`.
    #[serde(default)]
    pub output: Option<Value>,
    /// The read shape, echoed back by clients.
    #[serde(default)]
    pub execution: Option<Value>,
    #[serde(default, deserialize_with = "opsdesk_core::ticket::double_option")]
    pub restriction: Option<Option<Value>>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// One page of a view.
pub struct ViewPage {
    pub view: View,
    pub tickets: Vec<Ticket>,
    pub count: i64,
}

fn execution_from(v: &Value) -> ViewExecution {
    let columns = v
        .get("columns")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|c| {
                    let id = c.get("id").cloned().unwrap_or_else(|| c.clone());
                    let key = id
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| id.to_string());
                    let title = VIEW_COLUMNS
                        .iter()
                        .find(|(k, _)| *k == key)
                        .map(|(_, t)| t.to_string())
                        .unwrap_or_else(|| key.clone());
                    json!({"id": id, "title": title})
                })
                .collect()
        })
        .unwrap_or_default();
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    ViewExecution {
        columns,
        group_by: s("group_by"),
        group_order: s("group_order"),
        sort_by: s("sort_by"),
        sort_order: s("sort_order"),
    }
}

fn ids_for(field: &str, value: &Value, actor: &Actor) -> Option<Val> {
    match value {
        Value::String(s) if s == "current_user" => Some(Val::Int(actor.id())),
        Value::String(s) if s.is_empty() => None,
        Value::Null => None,
        Value::Number(n) => n.as_i64().map(Val::Int),
        Value::String(s) => s.parse().ok().map(Val::Int).or_else(|| {
            let _ = field;
            Some(Val::Int(-1))
        }),
        _ => Some(Val::Int(-1)),
    }
}

/// SQL for the `all` conditions that map to indexed columns (the rest are checked in memory).
fn sql_conditions(cs: &Conditions, actor: &Actor) -> Vec<Cond> {
    let mut out = vec![];
    for c in &cs.all {
        let v = c.value.as_str().unwrap_or("");
        match (c.field.as_str(), c.operator.as_str()) {
            ("status", op) => {
                let Some(x) = Status::parse(v) else { continue };
                let set: Vec<Val> = Status::ALL
                    .iter()
                    .filter(|s| match op {
                        "is" => **s == x,
                        "is_not" => **s != x,
                        "less_than" => s.rank() < x.rank(),
                        "greater_than" => s.rank() > x.rank(),
                        _ => true,
                    })
                    .map(|s| Val::from(s.as_str()))
                    .collect();
                out.push(Cond::In("status", set));
            }
            ("priority", op @ ("is" | "less_than" | "greater_than")) => {
                if v.is_empty() {
                    if op == "is" {
                        out.push(Cond::IsNull("priority"));
                    }
                    continue;
                }
                let Some(x) = Priority::parse(v) else {
                    continue;
                };
                let set: Vec<Val> = Priority::ALL
                    .iter()
                    .filter(|p| match op {
                        "is" => **p == x,
                        "less_than" => (**p as u8) < (x as u8),
                        _ => (**p as u8) > (x as u8),
                    })
                    .map(|p| Val::from(p.as_str()))
                    .collect();
                out.push(Cond::In("priority", set));
            }
            ("type", "is") if !v.is_empty() => {
                out.push(Cond::Eq("ticket_type", Val::from(v.to_lowercase())))
            }
            (f @ ("group_id" | "assignee_id" | "requester_id" | "organization_id"), "is") => {
                let col: &'static str = match f {
                    "group_id" => "group_id",
                    "assignee_id" => "assignee_id",
                    "requester_id" => "requester_id",
                    _ => "organization_id",
                };
                match ids_for(f, &c.value, actor) {
                    Some(id) => out.push(Cond::Eq(col, id)),
                    None => out.push(Cond::IsNull(col)),
                }
            }
            _ => {}
        }
    }
    out
}

fn sort_key(t: &Ticket, by: &str) -> (i64, String) {
    match by {
        "created" | "created_at" => (t.created_at.as_second(), String::new()),
        "updated" | "updated_at" => (t.updated_at.as_second(), String::new()),
        "status" => (t.status.rank() as i64, String::new()),
        "priority" => (t.priority.map(|p| p as i64 + 1).unwrap_or(0), String::new()),
        "subject" => (0, t.subject.clone().unwrap_or_default().to_lowercase()),
        "due_date" => (
            t.due_at.map(|d| d.as_second()).unwrap_or(i64::MAX),
            String::new(),
        ),
        _ => (t.id, String::new()),
    }
}

impl App {
    pub async fn list_views(&self, actor: &Actor, active_only: bool) -> Result<Vec<View>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let conds = if active_only {
            vec![Cond::Eq("active", Val::Int(1))]
        } else {
            vec![]
        };
        let mut all = c
            .list::<View>(&conds, &Page::All { limit: 10_000 })
            .await?
            .items;
        all.sort_by_key(|v| (v.position, v.id));
        let mut out = vec![];
        for v in all {
            if restriction_allows(&mut c, actor, &v.restriction).await? {
                out.push(v);
            }
        }
        Ok(out)
    }

    pub async fn get_view(&self, actor: &Actor, id: Id) -> Result<View> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let v: View = c.get(id).await?.ok_or(AppError::NotFound)?;
        if !restriction_allows(&mut c, actor, &v.restriction).await? {
            return Err(AppError::NotFound);
        }
        Ok(v)
    }

    pub async fn save_view(&self, actor: &Actor, id: Option<Id>, input: ViewInput) -> Result<View> {
        actor.require_staff()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut v = match id {
            Some(id) => {
                let v: View = tx.get(id).await?.ok_or(AppError::NotFound)?;
                if !restriction_allows(&mut tx, actor, &v.restriction).await? {
                    return Err(AppError::NotFound);
                }
                v
            }
            None => {
                let count = tx.count::<View>(&[]).await?;
                View {
                    id: 0,
                    title: String::new(),
                    raw_title: String::new(),
                    description: None,
                    active: true,
                    position: count + 1,
                    conditions: Conditions::default(),
                    execution: execution_from(
                        &json!({"columns": ["subject", "requester", "created", "status"]}),
                    ),
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
                title: &mut v.title,
                raw_title: &mut v.raw_title,
                description: &mut v.description,
                active: &mut v.active,
                position: &mut v.position,
            },
            id.is_none(),
            &mut inv,
        );
        if let Some(c) = input.conditions.clone() {
            v.conditions = c;
        } else if input.all.is_some() || input.any.is_some() {
            v.conditions = Conditions {
                all: input.all.clone().unwrap_or_default(),
                any: input.any.clone().unwrap_or_default(),
            };
        }
        if let Some(o) = input.output.as_ref().or(input.execution.as_ref()) {
            v.execution = execution_from(o);
        }
        if let Some(r) = &input.restriction {
            v.restriction = r.clone();
        }
        check_restriction(actor, &v.restriction, "views", &mut inv)?;
        if let Err(e) = rules::validate_view(&v.conditions, &v.execution) {
            for (k, d) in e.details {
                inv.details.entry(k).or_default().extend(d);
            }
        }
        inv.into_result()?;
        v.updated_at = now;
        let v = crate::records::save_doc(&mut tx, v, id.is_some()).await?;
        tx.commit().await?;
        Ok(v)
    }

    pub async fn delete_view(&self, actor: &Actor, id: Id) -> Result<()> {
        let v = self.get_view(actor, id).await?;
        let mut inv = Invalid::new();
        check_restriction(actor, &v.restriction, "views", &mut inv)?;
        let mut tx = self.store.write().await?;
        tx.delete::<View>(id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The tickets a view's conditions select, sorted as it says; one offset page of them.
    pub async fn execute_view(
        &self,
        actor: &Actor,
        id: Id,
        page: i64,
        per_page: i64,
        sort_by: Option<&str>,
        sort_order: Option<&str>,
    ) -> Result<ViewPage> {
        let view = self.get_view(actor, id).await?;
        let all = self.view_tickets(actor, &view.conditions).await?;
        let count = all.len() as i64;
        let by = sort_by
            .or(view.execution.sort_by.as_deref())
            .unwrap_or("id")
            .to_string();
        let desc = sort_order.or(view.execution.sort_order.as_deref()) == Some("desc");
        let mut all = all;
        // Ties keep id order whichever way the view sorts.
        all.sort_by(|a, b| {
            let o = sort_key(a, &by).cmp(&sort_key(b, &by));
            let o = if desc { o.reverse() } else { o };
            o.then(a.id.cmp(&b.id))
        });
        let per = per_page.clamp(1, 100);
        let start = usize::try_from((page.max(1) - 1).saturating_mul(per)).unwrap_or(usize::MAX);
        let tickets = all.into_iter().skip(start).take(per as usize).collect();
        Ok(ViewPage {
            view,
            tickets,
            count,
        })
    }

    /// How many tickets a view selects.
    pub async fn count_view(&self, actor: &Actor, id: Id) -> Result<i64> {
        let view = self.get_view(actor, id).await?;
        if view.conditions.any.is_empty()
            && view.conditions.all.iter().all(|c| {
                !sql_conditions(
                    &Conditions {
                        all: vec![c.clone()],
                        any: vec![],
                    },
                    actor,
                )
                .is_empty()
            })
        {
            // Every condition is SQL: count with the index, no rows read.
            let mut c = self.store.read().await?;
            let mut conds = sql_conditions(&view.conditions, actor);
            conds.push(Cond::IsNull("deleted_at"));
            return Ok(c.count::<Ticket>(&conds).await?);
        }
        Ok(self.view_tickets(actor, &view.conditions).await?.len() as i64)
    }

    async fn view_tickets(&self, actor: &Actor, cs: &Conditions) -> Result<Vec<Ticket>> {
        let mut c = self.store.read().await?;
        let conds = sql_conditions(cs, actor);
        let candidates = c
            .tickets(
                &conds,
                &Page::All {
                    limit: MAX_CANDIDATES + 1,
                },
            )
            .await?
            .items;
        if candidates.len() as i64 > MAX_CANDIDATES {
            return Err(AppError::Invalid(Invalid::one(
                "conditions",
                "InvalidValue",
                format!("This view selects more than {MAX_CANDIDATES} tickets before its other conditions; narrow it with status, group, assignee, requester or organization conditions"),
            )));
        }
        let mut facts = Facts::at_rest(
            actor.id(),
            if actor.is_admin() {
                Role::Admin
            } else {
                Role::Agent
            },
        );
        if !rules::uses_time(cs) {
            return Ok(candidates
                .into_iter()
                .filter(|t| rules::evaluate(cs, t, &facts).is_ok())
                .collect());
        }
        // Time conditions read each ticket's timestamps.
        facts.now = Some(self.now());
        let mut out = vec![];
        for chunk in candidates.chunks(500) {
            let ids: Vec<Id> = chunk.iter().map(|t| t.id).collect();
            let ms: Vec<TicketMetrics> = c.get_many(&ids).await?;
            for t in chunk {
                facts.metrics = Some(
                    ms.iter()
                        .find(|m| m.id == t.id)
                        .cloned()
                        .unwrap_or_else(|| TicketMetrics::from_ticket(t)),
                );
                if rules::evaluate(cs, t, &facts).is_ok() {
                    out.push(t.clone());
                }
            }
        }
        Ok(out)
    }
}
