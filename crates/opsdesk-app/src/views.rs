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
    /// With `group_by`: every group of the whole selection in order,
    /// `{"id", "name", "count"}`.
    pub groups: Vec<Value>,
    /// The next SLA breach (UTC seconds) of the page's tickets that have one, when the view
    /// shows or sorts by `sla_next_breach_at`.
    pub next_breach: std::collections::HashMap<Id, i64>,
}

fn blank_view(now: opsdesk_core::Timestamp, position: i64) -> View {
    View {
        id: 0,
        title: String::new(),
        raw_title: String::new(),
        description: None,
        active: true,
        position,
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

/// Apply what a create or update carries (Zendesk's write shape `all`/`any`/`output`, or the
/// read shape `conditions`/`execution`).
fn apply_view_input(v: &mut View, input: &ViewInput, creating: bool, inv: &mut Invalid) {
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
        creating,
        inv,
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
}

/// The value a view groups a ticket under: an ordering key and the group's id.
fn group_key(t: &Ticket, by: &str) -> (i64, Value) {
    let id = |v: Option<Id>| (v.unwrap_or(i64::MIN), v.map_or(Value::Null, Value::from));
    match by {
        "status" => (t.status.rank() as i64, json!(t.status.as_str())),
        "priority" => (
            t.priority.map(|p| p as i64 + 1).unwrap_or(0),
            json!(t.priority.map(|p| p.as_str())),
        ),
        "type" => (
            t.ticket_type.map(|p| p as i64 + 1).unwrap_or(0),
            json!(t.ticket_type.map(|p| p.as_str())),
        ),
        "assignee" => id(t.assignee_id),
        "group" => id(t.group_id),
        "requester" => id(Some(t.requester_id)),
        "organization" => id(t.organization_id),
        // Dates group by UTC day.
        "created" | "updated" | "due_date" => {
            let at = match by {
                "created" => Some(t.created_at),
                "updated" => Some(t.updated_at),
                _ => t.due_at,
            };
            match at {
                Some(a) => {
                    let day = a.as_second().div_euclid(86_400);
                    (day, json!(opsdesk_core::clock::format(a)[..10].to_string()))
                }
                None => (i64::MAX, Value::Null),
            }
        }
        _ => (0, Value::Null),
    }
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
            ("current_tags", op @ ("includes" | "not_includes")) => {
                let tags = opsdesk_core::model::normalize_tags([v.to_string()]);
                out.push(Cond::InSelect {
                    col: "id",
                    select: "SELECT ticket_id FROM ticket_tags WHERE tag",
                    values: tags.into_iter().map(Val::Text).collect(),
                    negate: op == "not_includes",
                });
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
                blank_view(now, count + 1)
            }
        };
        let mut inv = Invalid::new();
        apply_view_input(&mut v, &input, id.is_none(), &mut inv);
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

    /// `views/reorder`: the given ids take positions 1, 2, …; the others keep their order
    /// after them (one transaction).
    pub async fn reorder_views(&self, actor: &Actor, ids: &[Id]) -> Result<Vec<View>> {
        self.reorder_listed(actor, ids).await
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
        self.run_view(actor, view, page, per_page, sort_by, sort_order)
            .await
    }

    /// `views/preview`: a view that is not saved, checked as a save would check it, run as
    /// `execute` runs a saved one.
    pub async fn preview_view(
        &self,
        actor: &Actor,
        input: ViewInput,
        page: i64,
        per_page: i64,
    ) -> Result<ViewPage> {
        actor.require_staff()?;
        let mut v = blank_view(self.now(), 0);
        let mut inv = Invalid::new();
        apply_view_input(&mut v, &input, true, &mut inv);
        if input.title.is_none() {
            // A preview needs no title.
            inv.details.remove("title");
        }
        if let Err(e) = rules::validate_view(&v.conditions, &v.execution) {
            for (k, d) in e.details {
                inv.details.entry(k).or_default().extend(d);
            }
        }
        inv.into_result()?;
        self.run_view(actor, v, page, per_page, None, None).await
    }

    async fn run_view(
        &self,
        actor: &Actor,
        view: View,
        page: i64,
        per_page: i64,
        sort_by: Option<&str>,
        sort_order: Option<&str>,
    ) -> Result<ViewPage> {
        let all = self.view_tickets(actor, &view.conditions).await?;
        let count = all.len() as i64;
        let by = sort_by
            .or(view.execution.sort_by.as_deref())
            .unwrap_or("id")
            .to_string();
        let desc = sort_order.or(view.execution.sort_order.as_deref()) == Some("desc");
        let group = view.execution.group_by.clone();
        let group_desc = view.execution.group_order.as_deref() == Some("desc");
        let mut all = all;
        let shows_breach = view
            .execution
            .columns
            .iter()
            .any(|c| c.get("id").and_then(Value::as_str) == Some("sla_next_breach_at"));
        // Time to the next breach: soonest first, tickets without one last.
        let breaches = if by == "sla_next_breach_at" {
            let ids: Vec<Id> = all.iter().map(|t| t.id).collect();
            self.store.read().await?.next_breaches(&ids).await?
        } else {
            Default::default()
        };
        // Tickets with no breach ahead come last in either order.
        let order = |a: &Ticket, b: &Ticket| {
            if by == "sla_next_breach_at" {
                match (breaches.get(&a.id), breaches.get(&b.id)) {
                    (Some(x), Some(y)) if desc => y.cmp(x),
                    (Some(x), Some(y)) => x.cmp(y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (None, None) => std::cmp::Ordering::Equal,
                }
            } else {
                let o = sort_key(a, &by).cmp(&sort_key(b, &by));
                if desc {
                    o.reverse()
                } else {
                    o
                }
            }
        };
        // Groups first (in group order), then the sort; ties keep id order.
        all.sort_by(|a, b| {
            let g = match &group {
                Some(g) => {
                    let o = group_key(a, g).0.cmp(&group_key(b, g).0);
                    if group_desc {
                        o.reverse()
                    } else {
                        o
                    }
                }
                None => std::cmp::Ordering::Equal,
            };
            let o = order(a, b);
            g.then(o).then(a.id.cmp(&b.id))
        });
        let groups = match &group {
            Some(g) => self.view_groups(&all, g).await?,
            None => vec![],
        };
        let per = per_page.clamp(1, 100);
        let start = usize::try_from((page.max(1) - 1).saturating_mul(per)).unwrap_or(usize::MAX);
        let tickets: Vec<Ticket> = all.into_iter().skip(start).take(per as usize).collect();
        let next_breach = if !breaches.is_empty() {
            tickets
                .iter()
                .filter_map(|t| breaches.get(&t.id).map(|b| (t.id, *b)))
                .collect()
        } else if shows_breach {
            let ids: Vec<Id> = tickets.iter().map(|t| t.id).collect();
            self.store.read().await?.next_breaches(&ids).await?
        } else {
            Default::default()
        };
        Ok(ViewPage {
            view,
            tickets,
            count,
            groups,
            next_breach,
        })
    }

    /// The groups of sorted tickets, in order, with names for people, groups, organisations.
    async fn view_groups(&self, sorted: &[Ticket], by: &str) -> Result<Vec<Value>> {
        let mut groups: Vec<(Value, i64)> = vec![];
        for t in sorted {
            let (_, id) = group_key(t, by);
            match groups.last_mut() {
                Some((last, n)) if *last == id => *n += 1,
                _ => groups.push((id, 1)),
            }
        }
        let ids: Vec<Id> = groups.iter().filter_map(|(id, _)| id.as_i64()).collect();
        let mut c = self.store.read().await?;
        let names: std::collections::HashMap<Id, String> = match by {
            "assignee" | "requester" => c
                .get_many::<opsdesk_core::model::User>(&ids)
                .await?
                .into_iter()
                .map(|u| (u.id, u.name))
                .collect(),
            "group" => c
                .get_many::<opsdesk_core::model::Group>(&ids)
                .await?
                .into_iter()
                .map(|g| (g.id, g.name))
                .collect(),
            "organization" => c
                .get_many::<opsdesk_core::model::Organization>(&ids)
                .await?
                .into_iter()
                .map(|o| (o.id, o.name))
                .collect(),
            _ => Default::default(),
        };
        Ok(groups
            .into_iter()
            .map(|(id, n)| {
                let name = match &id {
                    Value::Null => "-".to_string(),
                    Value::Number(x) => x
                        .as_i64()
                        .and_then(|i| names.get(&i).cloned())
                        .unwrap_or_else(|| x.to_string()),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                json!({"id": id, "name": name, "count": n})
            })
            .collect())
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
        if rules::uses_schedule(cs) {
            facts.now = Some(self.now());
            facts.schedule = self.schedule(&mut c).await?;
        }
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
            let slas: Vec<opsdesk_core::sla::TicketSla> = if rules::uses_sla(cs) {
                c.get_many(&ids).await?
            } else {
                vec![]
            };
            for t in chunk {
                facts.next_breach_at = slas
                    .iter()
                    .find(|s| s.id == t.id)
                    .and_then(|s| s.next_breach_at);
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
