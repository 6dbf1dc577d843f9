//! opsdesk use cases. Every public method takes the acting user ([`Actor`]), checks what that
//! user may do, validates input, and runs one store transaction. Handlers call exactly one.

pub mod attachments;
pub mod auth;
pub mod automations;
pub mod business_hours;
pub mod fields;
pub mod html;
pub mod kpi;
pub mod limits;
pub mod macros;
pub mod mail;
pub mod outbox;
pub mod people;
mod records;
pub use records::Listed;
pub mod rules;
pub mod search;
pub mod sessions;
pub mod sla;
pub mod spool;
pub mod ticket_metrics;
pub mod tickets;
pub mod views;
pub mod webhooks;
pub mod workers;

use std::sync::Arc;

use opsdesk_core::model::User;
use opsdesk_core::{Clock, Invalid};
use opsdesk_store::{Store, StoreError};

pub use opsdesk_store::{Order, Page, Paged};

/// What a use case can answer besides success. The HTTP layer maps each to Zendesk's envelope.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("invalid: {0}")]
    Invalid(Invalid),
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("unauthorized")]
    Unauthorized,
    /// A safe update lost a race (HTTP 409).
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A search query that cannot be read or run (Zendesk: 422 `invalid`).
    #[error("invalid search: {0}")]
    InvalidQuery(String),
    #[error("service unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(c) => {
                let (field, label) = conflict_field(&c);
                AppError::Invalid(Invalid::one(
                    field,
                    "DuplicateValue",
                    format!("{label}: has already been taken"),
                ))
            }
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            StoreError::Rejected(m) => {
                tracing::info!(error = %m, "value refused by the database");
                AppError::Invalid(Invalid::one(
                    "base",
                    "InvalidValue",
                    "A value is too long or malformed for storage",
                ))
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<Invalid> for AppError {
    fn from(i: Invalid) -> Self {
        AppError::Invalid(i)
    }
}

impl From<opsdesk_core::DomainError> for AppError {
    fn from(e: opsdesk_core::DomainError) -> Self {
        match e {
            opsdesk_core::DomainError::Invalid(i) => AppError::Invalid(i),
        }
    }
}

fn conflict_field(constraint: &str) -> (&'static str, &'static str) {
    let c = constraint.to_ascii_lowercase();
    if c.contains("identit") || c.contains("email") {
        ("email", "Email")
    } else if c.contains("external_id") {
        ("external_id", "External")
    } else if c.contains("name") {
        ("name", "Name")
    } else if c.contains("key") {
        ("key", "Key")
    } else if c.contains("pair") {
        ("user_id", "User")
    } else {
        ("base", "Record")
    }
}

pub type Result<T, E = AppError> = std::result::Result<T, E>;

/// The authenticated user a request acts as.
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: User,
}

impl Actor {
    pub fn id(&self) -> i64 {
        self.user.id
    }
    pub fn is_staff(&self) -> bool {
        self.user.role.is_staff()
    }
    pub fn is_admin(&self) -> bool {
        self.user.role == opsdesk_core::model::Role::Admin
    }
    pub fn require_staff(&self) -> Result<()> {
        if self.is_staff() {
            Ok(())
        } else {
            Err(AppError::Forbidden("You do not have access to this page. Please contact the account owner of this help desk for further help.".into()))
        }
    }
    pub fn require_admin(&self) -> Result<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(AppError::Forbidden("You do not have access to this page. Please contact the account owner of this help desk for further help.".into()))
        }
    }
}

/// Request context recorded in audit metadata.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub client: Option<String>,
    pub ip_address: Option<String>,
    /// More of the audit's `metadata.system` (inbound mail: `message_id`, `suppress_email_to`).
    pub system: Option<serde_json::Value>,
}

impl Origin {
    /// A request's origin for audit metadata: its `User-Agent` (the first 200 characters)
    /// and the first `X-Forwarded-For` hop (as Zendesk records it; informational only).
    pub fn of_client(user_agent: Option<&str>, forwarded_for: Option<&str>) -> Origin {
        Origin {
            client: user_agent.map(|s| s.chars().take(200).collect()),
            ip_address: forwarded_for
                .and_then(|s| s.split(',').next())
                .map(|s| s.trim().to_string()),
            system: None,
        }
    }
}

/// The application: the store, the clock, and small caches.
#[derive(Clone)]
pub struct App {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    auth_cache: Arc<auth::AuthCache>,
    rules_cache: Arc<rules::RulesCache>,
    /// Where people reach this instance (`{{ticket.url}}`, links in notifications).
    pub public_url: String,
    /// For webhook deliveries.
    http: reqwest::Client,
    /// This process's name in job leases (unique per start).
    pub node_id: String,
    pub automation: automations::AutomationConfig,
    /// Seconds of most recent changes the time-based exports leave out (`search::HOLD_BACK_SECS`).
    pub export_hold_back_secs: i64,
    pub heartbeats: Arc<workers::Heartbeats>,
    sla_cache: Arc<sla::SlaCache>,
    /// How long before an SLA breach the scheduler records a `warning` event and runs the
    /// triggers (0: no warnings; `serve --sla-warning-minutes`).
    pub sla_warning_secs: i64,
    /// The per-file attachment limit (uploads and inbound mail).
    pub max_attachment_bytes: usize,
    /// The email channel's settings (`serve --support-address …`).
    pub mail: Arc<mail::MailConfig>,
    /// Where accepted inbound mail waits for ingest (`DATA_DIR/mail-spool`).
    pub spool: Option<Arc<spool::Spool>>,
    /// Wakes the ingest worker when a message is spooled.
    pub mail_wakeup: Arc<tokio::sync::Notify>,
    /// Sends outgoing mail; without one, email waits in the outbox.
    pub mailer: Option<Arc<dyn mail::Mailer>>,
    mail_key: Arc<std::sync::OnceLock<Vec<u8>>>,
}

impl App {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> App {
        App {
            store,
            clock,
            auth_cache: Arc::new(auth::AuthCache::default()),
            rules_cache: Arc::new(rules::RulesCache::default()),
            public_url: "http://127.0.0.1:8080".into(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap_or_default(),
            node_id: format!("{}-{}", std::process::id(), rand::random::<u32>()),
            automation: automations::AutomationConfig::default(),
            export_hold_back_secs: search::HOLD_BACK_SECS,
            heartbeats: Arc::new(workers::Heartbeats::default()),
            sla_cache: Arc::new(sla::SlaCache::default()),
            sla_warning_secs: 0,
            max_attachment_bytes: attachments::DEFAULT_MAX_BYTES,
            mail: Arc::new(mail::MailConfig::default()),
            spool: None,
            mail_wakeup: Arc::new(tokio::sync::Notify::new()),
            mailer: None,
            mail_key: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// Set the public URL (`opsdesk serve --public-url`).
    pub fn with_public_url(mut self, url: &str) -> App {
        self.public_url = url.trim_end_matches('/').to_string();
        self
    }

    pub fn now(&self) -> opsdesk_core::Timestamp {
        self.clock.now()
    }

    /// Migrate the database and make sure the records every instance has exist
    /// (the system ticket fields).
    pub async fn prepare(&self) -> Result<Vec<String>> {
        let done = self.store.migrate().await?;
        fields::ensure_system_fields(self).await?;
        self.load_mail_key().await?;
        self.check_kpi_facts().await?;
        Ok(done)
    }
}
