//! Triggers: administration (CRUD, order, definitions) and running them inside every ticket
//! write, in the same transaction.

use std::sync::{Arc, RwLock};

use opsdesk_core::model::{Group, Id, Organization, User};
use opsdesk_core::rules::{
    self, Action, Automation, CommentFacts, Conditions, Facts, SideEffect, Trigger,
};
use opsdesk_core::ticket::{change_events, Audit, Comment, Status, Ticket, Via};
use opsdesk_core::Invalid;
use opsdesk_store::{Cond, Conn, Page, Val};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{html, Actor, App, AppError, Result};

/// Active triggers compiled for the engine, with the rules version they came from and when
/// that version was last confirmed against the database.
#[derive(Default)]
pub struct RulesCache {
    inner: RwLock<Option<CachedRules>>,
}

/// (rules version, the compiled active triggers, when the version was last confirmed).
type CachedRules = (i64, Arc<Vec<rules::Rule>>, std::time::Instant);

/// How long a node trusts its compiled triggers before checking the rules version again. A
/// change made on this node clears the cache at once; other nodes see it within this time.
const RULES_RECHECK: std::time::Duration = std::time::Duration::from_secs(1);

impl RulesCache {
    fn clear(&self) {
        if let Ok(mut g) = self.inner.write() {
            *g = None;
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct TriggerInput {
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
    /// Older clients post `all`/`any` at the top level.
    #[serde(default)]
    pub all: Option<Vec<rules::Condition>>,
    #[serde(default)]
    pub any: Option<Vec<rules::Condition>>,
    #[serde(default)]
    pub actions: Option<Vec<Action>>,
    #[serde(default)]
    pub category_id: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

/// What the triggers did to one write.
pub(crate) struct RuleOutcome {
    pub ticket: Ticket,
    /// Change and Comment events, each with `via` naming its trigger.
    pub events: Vec<Value>,
    pub comments: Vec<Comment>,
    pub trace: Value,
}

/// `application/x-www-form-urlencoded` encoding of a value.
fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub(crate) fn rule_via(id: Id, title: &str, rel: &str) -> Value {
    json!({"channel": "rule", "source": {"from": {"id": id, "title": title, "deleted": false}, "to": {}, "rel": rel}})
}

/// A rule record administered through the same endpoints shape: triggers and automations.
pub trait RuleRecord: crate::Listed + 'static {
    const KIND: rules::RuleKind;
    /// The most active records of this kind.
    const MAX_ACTIVE: i64;
    fn blank(now: opsdesk_core::Timestamp, position: i64) -> Self;
    fn common(&mut self) -> crate::records::CommonFields<'_>;
    fn active(&self) -> bool;
    fn rule(&self) -> rules::Rule;
    fn set_rule(&mut self, conditions: Conditions, actions: Vec<Action>);
    fn set_category(&mut self, _category: Option<String>) {}
    fn touch(&mut self, now: opsdesk_core::Timestamp);
}

/// The parts of [`RuleRecord`] that triggers and automations share field for field.
macro_rules! rule_record_fields {
    () => {
        fn common(&mut self) -> crate::records::CommonFields<'_> {
            crate::records::CommonFields {
                title: &mut self.title,
                raw_title: &mut self.raw_title,
                description: &mut self.description,
                active: &mut self.active,
                position: &mut self.position,
            }
        }
        fn active(&self) -> bool {
            self.active
        }
        fn rule(&self) -> rules::Rule {
            Self::rule(self)
        }
        fn set_rule(&mut self, conditions: Conditions, actions: Vec<Action>) {
            self.conditions = conditions;
            self.actions = actions;
        }
        fn touch(&mut self, now: opsdesk_core::Timestamp) {
            self.updated_at = now;
        }
    };
}

impl RuleRecord for Trigger {
    const KIND: rules::RuleKind = rules::RuleKind::Trigger;
    const MAX_ACTIVE: i64 = 7000;
    fn blank(now: opsdesk_core::Timestamp, position: i64) -> Self {
        Trigger {
            id: 0,
            title: String::new(),
            raw_title: String::new(),
            description: None,
            active: true,
            position,
            conditions: Conditions::default(),
            actions: vec![],
            category_id: None,
            default: false,
            created_at: now,
            updated_at: now,
        }
    }
    fn set_category(&mut self, category: Option<String>) {
        self.category_id = category;
    }
    rule_record_fields!();
}

impl RuleRecord for Automation {
    const KIND: rules::RuleKind = rules::RuleKind::Automation;
    const MAX_ACTIVE: i64 = 500;
    fn blank(now: opsdesk_core::Timestamp, position: i64) -> Self {
        Automation {
            id: 0,
            title: String::new(),
            raw_title: String::new(),
            description: None,
            active: true,
            position,
            conditions: Conditions::default(),
            actions: vec![],
            default: false,
            created_at: now,
            updated_at: now,
        }
    }
    rule_record_fields!();
}

fn sorted<R: RuleRecord>(mut v: Vec<R>) -> Vec<R> {
    v.sort_by_key(|t| (t.position(), t.id()));
    v
}

impl App {
    // ---- administration (triggers and automations) -------------------------------------

    pub async fn list_rules<R: RuleRecord>(
        &self,
        actor: &Actor,
        active_only: bool,
    ) -> Result<Vec<R>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let conds = if active_only {
            vec![Cond::Eq("active", Val::Int(1))]
        } else {
            vec![]
        };
        Ok(sorted(
            c.list::<R>(&conds, &Page::All { limit: 10_000 })
                .await?
                .items,
        ))
    }

    pub async fn get_rule<R: RuleRecord>(&self, actor: &Actor, id: Id) -> Result<R> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.get(id).await?.ok_or(AppError::NotFound)
    }

    pub async fn save_rule<R: RuleRecord>(
        &self,
        actor: &Actor,
        id: Option<Id>,
        input: TriggerInput,
    ) -> Result<R> {
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let mut t = match id {
            Some(id) => tx.get::<R>(id).await?.ok_or(AppError::NotFound)?,
            None => {
                let count = tx.count::<R>(&[]).await?;
                R::blank(now, count + 1)
            }
        };
        let was_active = id.is_some() && t.active();
        let mut inv = Invalid::new();
        crate::records::apply_common(
            crate::records::CommonInput {
                title: &input.title,
                description: &input.description,
                active: input.active,
                position: input.position,
            },
            t.common(),
            id.is_none(),
            &mut inv,
        );
        if let Some(c) = &input.category_id {
            t.set_category(Some(c.clone()));
        }
        let current = t.rule();
        let conditions = if let Some(c) = input.conditions.clone() {
            c
        } else if input.all.is_some() || input.any.is_some() {
            Conditions {
                all: input.all.clone().unwrap_or_default(),
                any: input.any.clone().unwrap_or_default(),
            }
        } else {
            current.conditions
        };
        let actions = input.actions.clone().unwrap_or(current.actions);
        if let Err(e) = rules::validate(&conditions, &actions, R::KIND) {
            for (k, v) in e.details {
                inv.details.entry(k).or_default().extend(v);
            }
        }
        for sid in rules::schedule_ids(&actions) {
            if tx
                .get::<opsdesk_core::business_hours::ScheduleRecord>(sid)
                .await?
                .is_none()
            {
                inv.add(
                    "actions",
                    "InvalidValue",
                    format!("set_schedule: schedule {sid} does not exist"),
                );
            }
        }
        for w in rules::webhook_ids(&actions) {
            if tx.get::<opsdesk_core::outbox::Webhook>(w).await?.is_none() {
                inv.add(
                    "actions",
                    "InvalidValue",
                    format!("notification_webhook: webhook {w} does not exist"),
                );
            }
        }
        if t.active()
            && !was_active
            && tx.count::<R>(&[Cond::Eq("active", Val::Int(1))]).await? >= R::MAX_ACTIVE
        {
            inv.add(
                "base",
                "InvalidValue",
                format!("at most {} active {}s", R::MAX_ACTIVE, R::NAME),
            );
        }
        inv.into_result()?;
        t.set_rule(conditions, actions);
        t.touch(now);
        let t = crate::records::save_doc(&mut tx, t, id.is_some()).await?;
        tx.bump_rules_version().await?;
        tx.commit().await?;
        self.rules_cache.clear();
        Ok(t)
    }

    pub async fn delete_rule<R: RuleRecord>(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        if !tx.delete::<R>(id).await? {
            return Err(AppError::NotFound);
        }
        tx.bump_rules_version().await?;
        tx.commit().await?;
        self.rules_cache.clear();
        Ok(())
    }

    /// `…/reorder`: the given ids take positions 1, 2, …; others keep theirs after them.
    pub async fn reorder_rules<R: RuleRecord>(&self, actor: &Actor, ids: &[Id]) -> Result<Vec<R>> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let out = crate::records::reorder::<R>(&mut tx, ids, self.now()).await?;
        tx.bump_rules_version().await?;
        tx.commit().await?;
        self.rules_cache.clear();
        Ok(out)
    }

    /// `triggers/definitions`: every condition field with its operators, every action field.
    pub fn rule_definitions(&self, kind: rules::RuleKind) -> Value {
        let trigger = kind == rules::RuleKind::Trigger;
        let conditions: Vec<Value> = rules::condition_fields()
            .into_iter()
            .filter(|(f, _)| trigger || !rules::trigger_only(f))
            .map(|(f, ops)| {
                let mut ops: Vec<&str> = ops.to_vec();
                if trigger && ["status", "priority", "type", "group_id", "assignee_id", "requester_id", "organization_id", "ticket_form_id"].contains(&f) {
                    ops.extend(rules::CHANGE_OPERATORS);
                }
                let values: Value = match f {
                    "status" => json!(Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
                    "priority" => json!(["low", "normal", "high", "urgent"]),
                    "type" => json!(["question", "incident", "problem", "task"]),
                    "update_type" => json!(["Create", "Change"]),
                    "comment_is_public" => json!(["true", "false", "not_relevant"]),
                    "ticket_is_public" => json!(["public", "private"]),
                    "role" => json!(["end_user", "agent", "admin"]),
                    "via_id" | "current_via_id" => json!(["web", "email", "api", "rule"]),
                    _ => Value::Null,
                };
                json!({"subject": f, "title": f, "operators": ops.iter().map(|o| json!({"value": o, "title": o})).collect::<Vec<_>>(), "values": values, "group": "ticket", "nullable": matches!(f, "assignee_id" | "group_id" | "organization_id" | "priority" | "type")})
            })
            .chain([
                json!({"subject": "custom_fields_<id>", "title": "Ticket field", "operators": ["is", "is_not", "present", "not_present", "includes", "not_includes", "changed", "not_changed", "value", "not_value", "value_previous", "not_value_previous"], "group": "ticket"}),
                json!({"subject": "requester.custom_fields_<key>", "title": "Requester field", "operators": ["is", "is_not", "present", "not_present", "includes", "not_includes"], "group": "requester"}),
                json!({"subject": "organization.custom_fields_<key>", "title": "Organization field", "operators": ["is", "is_not", "present", "not_present", "includes", "not_includes"], "group": "organization"}),
            ])
            .collect();
        let actions: Vec<Value> = rules::ACTION_FIELDS
            .iter()
            .map(|f| json!({"subject": f, "title": f}))
            .chain([json!({"subject": "custom_fields_<id>", "title": "Ticket field"})])
            .collect();
        let mut all = conditions.clone();
        if !trigger {
            // Time conditions: in `all` only.
            all.extend(rules::TIME_FIELDS.iter().map(|f| {
                json!({"subject": f, "title": f, "operators": rules::TIME_OPERATORS.iter().map(|o| json!({"value": o, "title": o})).collect::<Vec<_>>(), "values": "hours", "group": "time"})
            }));
        }
        json!({"definitions": {"conditions_all": all, "conditions_any": conditions, "actions": actions}})
    }

    /// The trigger traces of a ticket's audits: which triggers fired on each update and, for
    /// each that did not, the first condition that did not hold.
    /// For one ticket, each active automation evaluated now: whether it would act at the next
    /// run and, if not, the first condition that does not hold.
    pub async fn automations_explain(&self, actor: &Actor, ticket_id: Id) -> Result<Vec<Value>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let t = c.ticket(ticket_id).await?.ok_or(AppError::NotFound)?;
        let mut autos = c
            .list::<Automation>(
                &[Cond::Eq("active", Val::Int(1))],
                &Page::All { limit: 10_000 },
            )
            .await?
            .items;
        autos.sort_by_key(|a| (a.position, a.id));
        let m = c
            .get::<opsdesk_core::ticket_metrics::TicketMetrics>(ticket_id)
            .await?
            .unwrap_or_else(|| opsdesk_core::ticket_metrics::TicketMetrics::from_ticket(&t));
        let mut facts = Facts::at_rest(-1, opsdesk_core::model::Role::Admin);
        facts.now = Some(self.now());
        facts.metrics = Some(m);
        facts.schedule = self.schedule_of(&mut c, &t).await?;
        facts.next_breach_at = c
            .ticket_sla(ticket_id)
            .await?
            .and_then(|s| s.next_breach_at);
        Ok(autos
            .iter()
            .map(|a| {
                if t.status == Status::Closed {
                    return json!({"id": a.id, "title": a.title, "would_act": false, "failed": "closed tickets are not examined"});
                }
                match rules::evaluate(&a.conditions, &t, &facts) {
                    Ok(()) => json!({"id": a.id, "title": a.title, "would_act": true}),
                    Err(f) => json!({"id": a.id, "title": a.title, "would_act": false, "failed": rules::describe(&a.conditions, f)}),
                }
            })
            .collect())
    }

    pub async fn rule_trace(&self, actor: &Actor, ticket_id: Id) -> Result<Vec<Value>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        c.ticket(ticket_id).await?.ok_or(AppError::NotFound)?;
        let audits = c.all_audits(ticket_id).await?;
        drop(c);
        self.trigger_traces(actor, &audits).await
    }

    /// [`App::rule_trace`] for audits the caller has already read (the ticket page).
    pub async fn trigger_traces(&self, actor: &Actor, audits: &[Audit]) -> Result<Vec<Value>> {
        actor.require_staff()?;
        let mut c = self.store.read().await?;
        let defs: Vec<rules::Rule> = c
            .list::<Trigger>(&[], &Page::All { limit: 10_000 })
            .await?
            .items
            .iter()
            .map(Trigger::rule)
            .collect();
        Ok(audits
            .iter()
            .map(|a| {
                let mut trace = a.metadata.get("trigger_trace").cloned().unwrap_or(Value::Null);
                if let Some(compact) = trace.get("not_fired").and_then(Value::as_str).map(str::to_string) {
                    // Described with the triggers as they are now.
                    trace["not_fired"] = Value::Array(rules::expand_not_fired(&compact, &defs));
                }
                json!({"audit_id": a.id, "created_at": opsdesk_core::clock::format(a.created_at), "author_id": a.author_id, "trigger_trace": trace})
            })
            .collect())
    }

    // ---- running -------------------------------------------------------------------------

    /// The active triggers, compiled once per rules version. The version is checked at most
    /// once a second (a change on this node clears the cache at once; other nodes see it
    /// within a second), which keeps that read out of most write transactions.
    pub(crate) async fn active_rules(&self, tx: &mut Conn) -> Result<Arc<Vec<rules::Rule>>> {
        if let Ok(g) = self.rules_cache.inner.read() {
            if let Some((_, r, at)) = g.as_ref() {
                if at.elapsed() < RULES_RECHECK {
                    return Ok(r.clone());
                }
            }
        }
        let version = tx.rules_version().await?;
        if let Ok(mut g) = self.rules_cache.inner.write() {
            if let Some((v, r, at)) = g.as_mut() {
                if *v == version {
                    *at = std::time::Instant::now();
                    return Ok(r.clone());
                }
            }
        }
        let all = sorted(
            tx.list::<Trigger>(
                &[Cond::Eq("active", Val::Int(1))],
                &Page::All { limit: 10_000 },
            )
            .await?
            .items,
        );
        let compiled: Arc<Vec<rules::Rule>> = Arc::new(all.iter().map(Trigger::rule).collect());
        if let Ok(mut g) = self.rules_cache.inner.write() {
            *g = Some((version, compiled.clone(), std::time::Instant::now()));
        }
        Ok(compiled)
    }

    /// Run the trigger cycle on a ticket about to be written.
    pub(crate) async fn run_triggers(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        previous: Option<&Ticket>,
        ticket: Ticket,
        comment: Option<&Comment>,
        sla_event: Option<&str>,
    ) -> Result<RuleOutcome> {
        let mut triggers = self.active_rules(tx).await?;
        if sla_event.is_some() {
            // The scheduler's run: only the triggers that react to SLA events, so one that
            // matches any update does not fire on every warning.
            let reacting: Vec<rules::Rule> = triggers
                .iter()
                .filter(|r| rules::uses_sla_event(&r.conditions))
                .cloned()
                .collect();
            triggers = Arc::new(reacting);
        }
        if triggers.is_empty() {
            return Ok(RuleOutcome {
                ticket,
                events: vec![],
                comments: vec![],
                trace: Value::Null,
            });
        }
        let needs = |p: &str| {
            triggers.iter().any(|r| {
                r.conditions
                    .all
                    .iter()
                    .chain(&r.conditions.any)
                    .any(|c| c.field.starts_with(p))
            })
        };
        let mut facts = Facts {
            previous: previous.cloned(),
            comment: comment.map(|c| CommentFacts {
                public: c.public,
                body: c.body.clone(),
            }),
            current_user: actor.id(),
            current_role: actor.user.role,
            requester_fields: Default::default(),
            organization_fields: Default::default(),
            now: Some(self.now()),
            metrics: None,
            schedule: None,
            next_breach_at: None,
            sla_event: sla_event.map(str::to_string),
        };
        if needs("requester.") {
            if let Some(u) = tx.get_shared::<User>(ticket.requester_id).await? {
                facts.requester_fields = u.user_fields.into_iter().collect();
            }
        }
        if needs("in_business_hours") {
            facts.schedule = self.schedule_of(tx, &ticket).await?;
        }
        if needs("organization.") {
            if let Some(o) = match ticket.organization_id {
                Some(o) => tx.get_shared::<Organization>(o).await?,
                None => None,
            } {
                facts.organization_fields = o.organization_fields.into_iter().collect();
            }
        }
        let start = ticket.clone();
        let cycle_started = std::time::Instant::now();
        let result = rules::run_cycle(&triggers, ticket, &facts);
        metrics::counter!("rules_trigger_cycles_total").increment(1);
        metrics::counter!("rules_triggers_fired_total").increment(result.firings.len() as u64);
        metrics::histogram!("rules_trigger_cycle_seconds")
            .record(cycle_started.elapsed().as_secs_f64());
        if result.bounded {
            tracing::warn!(ticket.id = start.id, "trigger cycle stopped at its bound");
        }
        let mut trace = result.trace;
        let mut t = result.ticket;
        let warnings = self.keep_valid(tx, &start, &mut t).await?;
        if !warnings.is_empty() {
            trace["warnings"] = json!(warnings);
        }
        let (events, comments) = self
            .firing_events(tx, actor, start, &t, &result.firings, "trigger", comment)
            .await?;
        Ok(RuleOutcome {
            ticket: t,
            events,
            comments,
            trace,
        })
    }

    /// Rules name agents, groups, forms and fields that may have gone since the rule was
    /// written: undo what would make the ticket invalid, and say what was undone. `start` is
    /// the ticket before the rules ran.
    pub(crate) async fn keep_valid(
        &self,
        tx: &mut Conn,
        start: &Ticket,
        t: &mut Ticket,
    ) -> Result<Vec<String>> {
        let mut warnings = vec![];
        if t.assignee_id != start.assignee_id {
            if let Some(a) = t.assignee_id {
                if !tx
                    .get::<User>(a)
                    .await?
                    .is_some_and(|u| u.role.is_staff() && u.active)
                {
                    warnings.push(format!(
                        "assignee {a} is not an active agent; assignment not changed"
                    ));
                    t.assignee_id = start.assignee_id;
                }
            }
        }
        if t.schedule_id != start.schedule_id {
            if let Some(s) = t.schedule_id {
                if tx
                    .get::<opsdesk_core::business_hours::ScheduleRecord>(s)
                    .await?
                    .is_none()
                {
                    warnings.push(format!("schedule {s} does not exist; schedule not changed"));
                    t.schedule_id = start.schedule_id;
                }
            }
        }
        if t.group_id != start.group_id {
            if let Some(g) = t.group_id {
                if tx.get_shared::<Group>(g).await?.is_none() {
                    warnings.push(format!("group {g} does not exist; group not changed"));
                    t.group_id = start.group_id;
                }
            }
        }
        if t.collaborator_ids != start.collaborator_ids {
            let added: Vec<Id> = t
                .collaborator_ids
                .iter()
                .copied()
                .filter(|i| !start.collaborator_ids.contains(i))
                .collect();
            let known: Vec<User> = tx.get_many(&added).await?;
            let before = t.collaborator_ids.len();
            t.collaborator_ids
                .retain(|i| start.collaborator_ids.contains(i) || known.iter().any(|u| u.id == *i));
            if t.collaborator_ids.len() != before {
                warnings.push("a CC named by a trigger does not exist; not added".to_string());
            }
        }
        if t.ticket_form_id != start.ticket_form_id {
            if let Some(f) = t.ticket_form_id {
                if tx
                    .get::<opsdesk_core::fields::TicketForm>(f)
                    .await?
                    .is_none()
                {
                    warnings.push(format!("ticket form {f} does not exist; form not changed"));
                    t.ticket_form_id = start.ticket_form_id;
                }
            }
        }
        if t.custom_fields != start.custom_fields {
            let defs: Vec<opsdesk_core::fields::TicketField> =
                tx.list(&[], &Page::All { limit: 10_000 }).await?.items;
            let changed: Vec<(Id, Value)> = t
                .custom_fields
                .iter()
                .filter(|c| start.custom_field(c.id) != Some(&c.value))
                .map(|c| (c.id, c.value.clone()))
                .collect();
            for (id, value) in changed {
                let ok = defs.iter().find(|d| d.id == id && !d.is_system()).map(|d| {
                    opsdesk_core::fields::check_value(
                        &d.field_type,
                        &d.custom_field_options,
                        d.regexp_for_validation.as_deref(),
                        &d.title,
                        &value,
                    )
                });
                match ok {
                    Some(Ok(v)) => t.set_custom_field(id, v),
                    Some(Err(m)) => {
                        warnings.push(format!("{m}; field not changed"));
                        t.set_custom_field(
                            id,
                            start.custom_field(id).cloned().unwrap_or(Value::Null),
                        );
                    }
                    None => {
                        warnings.push(format!("field {id} does not exist; not set"));
                        t.set_custom_field(
                            id,
                            start.custom_field(id).cloned().unwrap_or(Value::Null),
                        );
                    }
                }
            }
            t.custom_fields.retain(|c| !c.value.is_null());
        }
        if matches!(t.status, Status::Solved | Status::Closed)
            && t.assignee_id.is_none()
            && t.status != start.status
        {
            warnings.push(
                "a ticket cannot be solved without an assignee; status not changed".to_string(),
            );
            t.status = start.status;
        }
        if t.assignee_id.is_some() && t.status == Status::New {
            t.status = Status::Open;
        }
        Ok(warnings)
    }

    /// The audit events (and comments) of rule firings: each firing's field changes, comments,
    /// notifications and webhook calls, attributed to its rule (`rel`: trigger or automation).
    /// Notification (`Notification`) and webhook (`External`) events are turned into outbox
    /// messages when the audit is written ([`App::enqueue_from_audit`]).
    pub(crate) async fn firing_events(
        &self,
        tx: &mut Conn,
        actor: &Actor,
        start: Ticket,
        t: &Ticket,
        firings: &[rules::Firing],
        rel: &str,
        current: Option<&Comment>,
    ) -> Result<(Vec<Value>, Vec<Comment>)> {
        let mut events = vec![];
        let mut comments = vec![];
        let has_effects = firings.iter().any(|f| !f.effects.is_empty());
        let mut values = if has_effects {
            self.placeholder_values(tx, t, actor).await?
        } else {
            Default::default()
        };
        // The comment this write adds is not stored yet when triggers run: it is the latest.
        if let Some(c) = current.filter(|_| has_effects) {
            values.insert("ticket.latest_comment".into(), c.body.clone());
            if c.public {
                values.insert("ticket.latest_public_comment".into(), c.body.clone());
            }
        }
        let mut prev = start;
        for (i, f) in firings.iter().enumerate() {
            let via = rule_via(f.rule_id, &f.title, rel);
            // The last firing's "after" is corrected to the final ticket.
            let after = if i + 1 == firings.len() { t } else { &f.after };
            for mut e in change_events(&prev, after) {
                e["via"] = via.clone();
                events.push(e);
            }
            prev = after.clone();
            for fx in &f.effects {
                match fx {
                    SideEffect::Comment {
                        body,
                        html: is_html,
                        public,
                    } => {
                        let body = &opsdesk_core::placeholders::render(body, &values);
                        let (plain, html_body) = if *is_html {
                            (
                                html::html_to_text(&html::sanitize(body)),
                                html::sanitize(body),
                            )
                        } else {
                            (body.clone(), html::text_to_html(body))
                        };
                        let c = Comment {
                            id: 0,
                            kind: "Comment".into(),
                            ticket_id: t.id,
                            audit_id: 0,
                            author_id: t.assignee_id.unwrap_or(actor.id()),
                            body: plain.clone(),
                            html_body,
                            plain_body: plain,
                            public: *public,
                            attachments: vec![],
                            via: Via {
                                channel: "rule".into(),
                                source: via["source"].clone(),
                            },
                            metadata: json!({}),
                            created_at: self.now(),
                        };
                        let mut e = json!({"type": "Comment", "author_id": c.author_id, "body": c.body, "html_body": c.html_body, "plain_body": c.plain_body, "public": c.public, "attachments": []});
                        e["via"] = via.clone();
                        events.push(e);
                        comments.push(c);
                    }
                    SideEffect::Notify { to, subject, body } => {
                        let recipients = self.recipients(tx, t, to).await?;
                        if recipients.is_empty() {
                            continue;
                        }
                        events.push(json!({
                            "type": "Notification",
                            "subject": opsdesk_core::placeholders::render(subject, &values),
                            "body": opsdesk_core::placeholders::render(body, &values),
                            "recipients": recipients,
                            "via": via,
                        }));
                    }
                    SideEffect::Webhook { webhook_id, body } => {
                        // Each value is escaped for the webhook's format after its filters,
                        // so a subject with quotes keeps a JSON body valid and a form body
                        // cannot gain parameters.
                        let format = tx
                            .get::<opsdesk_core::outbox::Webhook>(*webhook_id)
                            .await?
                            .map(|w| w.request_format)
                            .unwrap_or_else(|| "json".into());
                        let escape = move |v: &str| -> String {
                            match format.as_str() {
                                "form_encoded" => percent_encode(v),
                                "xml" => v
                                    .replace('&', "&amp;")
                                    .replace('<', "&lt;")
                                    .replace('>', "&gt;")
                                    .replace('"', "&quot;")
                                    .replace('\'', "&apos;"),
                                _ => {
                                    let j = serde_json::to_string(v).unwrap_or_default();
                                    j[1..j.len().saturating_sub(1).max(1)].to_string()
                                }
                            }
                        };
                        let rendered =
                            opsdesk_core::placeholders::render_with(body, &values, &escape);
                        events.push(json!({
                            "type": "External",
                            "resource": webhook_id.to_string(),
                            "body": rendered,
                            "via": via,
                        }));
                    }
                }
            }
        }
        Ok((events, comments))
    }

    /// The users a notification goes to (active users with an email), at most 1,000.
    async fn recipients(
        &self,
        tx: &mut Conn,
        t: &Ticket,
        to: &rules::Recipient,
    ) -> Result<Vec<Id>> {
        use rules::Recipient;
        let ids: Vec<Id> = match to {
            Recipient::User(id) => vec![*id],
            Recipient::RequesterAndCcs => {
                let mut v = vec![t.requester_id];
                v.extend(t.email_cc_ids.iter().chain(&t.collaborator_ids).copied());
                v
            }
            Recipient::Group(g) => tx
                .list::<opsdesk_core::model::GroupMembership>(
                    &[Cond::Eq("group_id", Val::Int(*g))],
                    &Page::All { limit: 1000 },
                )
                .await?
                .items
                .into_iter()
                .map(|m| m.user_id)
                .collect(),
            Recipient::AllAgents => tx
                .list::<User>(
                    &[
                        Cond::In("role", vec![Val::from("agent"), Val::from("admin")]),
                        Cond::Eq("active", Val::Int(1)),
                    ],
                    &Page::All { limit: 1000 },
                )
                .await?
                .items
                .into_iter()
                .map(|u| u.id)
                .collect(),
        };
        let mut seen = std::collections::HashSet::new();
        let ids: Vec<Id> = ids
            .into_iter()
            .filter(|i| *i > 0 && seen.insert(*i))
            .collect();
        let users: Vec<User> = tx.get_many(&ids).await?;
        Ok(ids
            .into_iter()
            .filter(|i| {
                users
                    .iter()
                    .any(|u| u.id == *i && u.active && u.email.is_some())
            })
            .take(1000)
            .collect())
    }
}
