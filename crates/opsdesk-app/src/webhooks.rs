//! Webhooks (`/api/v2/webhooks`): where `notification_webhook` actions send requests, with
//! their signing secrets and the record of every invocation (the outbox rows).

use opsdesk_core::model::Id;
use opsdesk_core::outbox::Webhook;
use opsdesk_core::rules::{Automation, Trigger};
use opsdesk_core::Invalid;
use opsdesk_store::{Cond, Page, Paged, Val};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::{Actor, App, AppError, Result};

#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebhookInput {
    pub name: Option<String>,
    pub description: Option<String>,
    pub status: Option<String>,
    pub endpoint: Option<String>,
    pub http_method: Option<String>,
    pub request_format: Option<String>,
    pub subscriptions: Option<Vec<String>>,
    /// `null` removes authentication.
    #[serde(default, deserialize_with = "opsdesk_core::ticket::double_option")]
    pub authentication: Option<Option<Value>>,
    pub custom_headers: Option<serde_json::Map<String, Value>>,
    /// `{"secret": "...", "algorithm": "SHA256"}` to choose the secret.
    pub signing_secret: Option<Value>,
}

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
const FORMATS: &[&str] = &["json", "xml", "form_encoded"];

fn new_secret() -> String {
    crate::auth::new_token()
}

fn check(w: &Webhook, inv: &mut Invalid) {
    opsdesk_core::model::check_text(&w.name, "name", "Name", 255, inv);
    if w.name.trim().is_empty() {
        inv.blank("name", "Name");
    }
    match reqwest::Url::parse(&w.endpoint) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {}
        _ => inv.invalid("endpoint", "Endpoint", "must be an http or https URL"),
    }
    if !METHODS.contains(&w.http_method.as_str()) {
        inv.invalid(
            "http_method",
            "HTTP method",
            "must be GET, POST, PUT, PATCH or DELETE",
        );
    }
    if !FORMATS.contains(&w.request_format.as_str()) {
        inv.invalid(
            "request_format",
            "Request format",
            "must be json, xml or form_encoded",
        );
    }
    if !matches!(w.status.as_str(), "active" | "inactive") {
        inv.invalid("status", "Status", "must be active or inactive");
    }
    for s in &w.subscriptions {
        if s != "conditional_ticket_events" {
            inv.invalid(
                "subscriptions",
                "Subscriptions",
                &format!("'{s}' is not supported; webhooks are called by trigger and automation actions (conditional_ticket_events)"),
            );
        }
    }
    if let Some(a) = &w.authentication {
        let data = a.get("data").cloned().unwrap_or(Value::Null);
        let has = |k: &str| {
            data.get(k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        };
        let ok = match a.get("type").and_then(Value::as_str) {
            Some("basic_auth") => has("username") && has("password"),
            Some("bearer_token") => has("token"),
            Some("api_key") => has("name") && has("value"),
            _ => false,
        };
        if !ok {
            inv.invalid("authentication", "Authentication", "must be {\"type\": \"basic_auth\", \"data\": {\"username\", \"password\"}}, {\"type\": \"bearer_token\", \"data\": {\"token\"}} or {\"type\": \"api_key\", \"data\": {\"name\", \"value\"}}");
        }
    }
    for (k, v) in &w.custom_headers {
        let reserved = k.to_ascii_lowercase().starts_with("x-zendesk")
            || matches!(
                k.to_ascii_lowercase().as_str(),
                "content-type" | "authorization" | "host" | "content-length"
            );
        if reserved
            || !v.is_string()
            || reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
        {
            inv.invalid(
                "custom_headers",
                "Custom headers",
                &format!("'{k}' must be a header name that is not reserved, with a string value"),
            );
        }
    }
}

/// What the API shows of a webhook (the secret and credentials stay hidden).
pub fn render(w: &Webhook) -> Value {
    let auth = w.authentication.as_ref().map(|a| {
        json!({"type": a.get("type"), "add_position": a.get("add_position").cloned().unwrap_or(json!("header"))})
    });
    json!({
        "id": w.id.to_string(),
        "name": w.name,
        "description": w.description,
        "status": w.status,
        "endpoint": w.endpoint,
        "http_method": w.http_method,
        "request_format": w.request_format,
        "subscriptions": w.subscriptions,
        "authentication": auth,
        "custom_headers": w.custom_headers,
        "created_at": opsdesk_core::clock::format(w.created_at),
        "created_by": w.created_by.to_string(),
        "updated_at": opsdesk_core::clock::format(w.updated_at),
        "updated_by": w.updated_by.to_string(),
    })
}

impl App {
    pub async fn list_webhooks(
        &self,
        actor: &Actor,
        name_contains: Option<&str>,
        status: Option<&str>,
        page: &Page,
    ) -> Result<Paged<Webhook>> {
        actor.require_admin()?;
        let mut conds = vec![];
        if let Some(n) = name_contains {
            let pat = format!("%{}%", n.to_lowercase().replace(['\\', '%', '_'], ""));
            conds.push(Cond::Like("name_key", Val::Text(pat)));
        }
        if let Some(s) = status {
            conds.push(Cond::Eq("status", Val::from(s)));
        }
        let mut c = self.store.read().await?;
        Ok(c.list(&conds, page).await?)
    }

    pub async fn get_webhook(&self, actor: &Actor, id: Id) -> Result<Webhook> {
        actor.require_admin()?;
        let mut c = self.store.read().await?;
        c.get(id).await?.ok_or(AppError::NotFound)
    }

    /// Create (`id` None) or change a webhook; `patch`: absent attributes keep their value
    /// (PATCH); otherwise they take their defaults (PUT replaces the webhook).
    pub async fn save_webhook(
        &self,
        actor: &Actor,
        id: Option<Id>,
        input: WebhookInput,
        patch: bool,
    ) -> Result<Webhook> {
        actor.require_admin()?;
        let now = self.now();
        let mut tx = self.store.write().await?;
        let old = match id {
            Some(id) => Some(tx.get::<Webhook>(id).await?.ok_or(AppError::NotFound)?),
            None => None,
        };
        let base = match (&old, patch) {
            (Some(o), true) => o.clone(),
            (o, _) => Webhook {
                id: o.as_ref().map_or(0, |o| o.id),
                name: String::new(),
                description: None,
                status: "active".into(),
                endpoint: String::new(),
                http_method: "POST".into(),
                request_format: "json".into(),
                subscriptions: vec!["conditional_ticket_events".into()],
                authentication: None,
                custom_headers: Default::default(),
                signing_secret: o
                    .as_ref()
                    .map_or_else(new_secret, |o| o.signing_secret.clone()),
                created_by: o.as_ref().map_or(actor.id(), |o| o.created_by),
                updated_by: actor.id(),
                created_at: o.as_ref().map_or(now, |o| o.created_at),
                updated_at: now,
            },
        };
        let mut w = base;
        if let Some(v) = input.name {
            w.name = v.trim().to_string();
        }
        if let Some(v) = input.description {
            w.description = Some(v);
        }
        if let Some(v) = input.status {
            w.status = v;
        }
        if let Some(v) = input.endpoint {
            w.endpoint = v.trim().to_string();
        }
        if let Some(v) = input.http_method {
            w.http_method = v.to_uppercase();
        }
        if let Some(v) = input.request_format {
            w.request_format = v;
        }
        if let Some(v) = input.subscriptions {
            w.subscriptions = v;
        }
        if let Some(v) = input.authentication {
            w.authentication = v;
        }
        if let Some(v) = input.custom_headers {
            w.custom_headers = v;
        }
        let mut inv = Invalid::new();
        if let Some(s) = input.signing_secret {
            match s.get("secret").and_then(Value::as_str) {
                Some(sec) if sec.len() >= 16 && sec.len() <= 256 => w.signing_secret = sec.into(),
                _ => inv.invalid(
                    "signing_secret",
                    "Signing secret",
                    "must be {\"secret\": \"…\"} with 16 to 256 characters",
                ),
            }
        }
        w.updated_by = actor.id();
        w.updated_at = now;
        check(&w, &mut inv);
        inv.into_result()?;
        let w = crate::records::save_doc(&mut tx, w, old.is_some()).await?;
        tx.commit().await?;
        Ok(w)
    }

    /// Delete a webhook no rule calls (a rule that names it must be changed first).
    pub async fn delete_webhook(&self, actor: &Actor, id: Id) -> Result<()> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        tx.get::<Webhook>(id).await?.ok_or(AppError::NotFound)?;
        let all = Page::All { limit: 10_000 };
        let mut users: Vec<String> = vec![];
        for t in tx.list::<Trigger>(&[], &all).await?.items {
            if opsdesk_core::rules::webhook_ids(&t.actions).contains(&id) {
                users.push(format!("trigger {} ({})", t.id, t.title));
            }
        }
        for a in tx.list::<Automation>(&[], &all).await?.items {
            if opsdesk_core::rules::webhook_ids(&a.actions).contains(&id) {
                users.push(format!("automation {} ({})", a.id, a.title));
            }
        }
        if !users.is_empty() {
            return Err(Invalid::one(
                "base",
                "InvalidValue",
                format!(
                    "This webhook is used by {}; remove it from them first",
                    users.join(", ")
                ),
            )
            .into());
        }
        tx.delete::<Webhook>(id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The signing secret, or a new one (`reset`).
    pub async fn webhook_secret(&self, actor: &Actor, id: Id, reset: bool) -> Result<String> {
        actor.require_admin()?;
        let mut tx = self.store.write().await?;
        let mut w: Webhook = tx.get(id).await?.ok_or(AppError::NotFound)?;
        if reset {
            w.signing_secret = new_secret();
            w.updated_at = self.now();
            w.updated_by = actor.id();
            tx.update(&w).await?;
        }
        tx.commit().await?;
        Ok(w.signing_secret)
    }

    /// `POST /api/v2/webhooks/test`: send one request now to an existing webhook or to the
    /// given settings, and answer with what came back. Nothing is queued or stored.
    pub async fn test_webhook(
        &self,
        actor: &Actor,
        id: Option<Id>,
        settings: Option<WebhookInput>,
        payload: Option<String>,
    ) -> Result<Value> {
        actor.require_admin()?;
        let mut w = match id {
            Some(id) => self.get_webhook(actor, id).await?,
            None => Webhook {
                id: 0,
                name: "test".into(),
                description: None,
                status: "active".into(),
                endpoint: String::new(),
                http_method: "POST".into(),
                request_format: "json".into(),
                subscriptions: vec![],
                authentication: None,
                custom_headers: Default::default(),
                // Zendesk signs test requests with a published test secret.
                signing_secret: "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==".into(),
                created_by: actor.id(),
                updated_by: actor.id(),
                created_at: self.now(),
                updated_at: self.now(),
            },
        };
        if let Some(s) = settings {
            if let Some(v) = s.endpoint {
                w.endpoint = v;
            }
            if let Some(v) = s.http_method {
                w.http_method = v.to_uppercase();
            }
            if let Some(v) = s.request_format {
                w.request_format = v;
            }
            if let Some(v) = s.authentication {
                w.authentication = v;
            }
            if let Some(v) = s.custom_headers {
                w.custom_headers = v;
            }
        }
        let mut inv = Invalid::new();
        if w.name.is_empty() {
            w.name = "test".into();
        }
        check(&w, &mut inv);
        inv.into_result()?;
        Ok(self
            .try_webhook(&w, payload.unwrap_or_else(|| "{}".into()))
            .await)
    }
}
