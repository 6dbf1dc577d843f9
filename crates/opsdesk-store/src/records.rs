//! Document mappings for people and configuration records, plus credentials.

use opsdesk_core::fields::{CustomField, TicketField, TicketForm};
use opsdesk_core::model::{
    normalize_email, Group, GroupMembership, Id, Identity, JobStatus, Organization,
    OrganizationMembership, User,
};
use opsdesk_core::search::index_text;
use serde::{Deserialize, Serialize};

use crate::db::{Conn, Val};
use crate::docs::{doc_record, Cond, Doc};
use crate::{Result, StoreError};

fn secs(t: opsdesk_core::Timestamp) -> Val {
    Val::Int(t.as_second())
}

doc_record!(
    User,
    "users",
    [
        "email",
        "name_key",
        "role",
        "organization_id",
        "external_id",
        "active",
        "created_at",
        "updated_at"
    ],
    |u| [
        Val::from(u.email.as_deref().map(normalize_email)),
        Val::from(u.name.to_lowercase()),
        Val::from(u.role.as_str()),
        Val::from(u.organization_id),
        Val::from(u.external_id.clone()),
        Val::from(u.active),
        secs(u.created_at),
        secs(u.updated_at)
    ],
    searched
        | u
        | [
            index_text([u.name.as_str()]),
            index_text(
                [
                    u.email.as_deref(),
                    u.phone.as_deref(),
                    u.external_id.as_deref(),
                    u.alias.as_deref()
                ]
                .into_iter()
                .flatten()
                .chain(u.tags.iter().map(String::as_str))
            ),
            index_text(u.notes.as_deref()),
            index_text(u.details.as_deref())
        ]
);

doc_record!(
    Identity,
    "user_identities",
    [
        "user_id",
        "kind",
        "value",
        "is_primary",
        "created_at",
        "updated_at"
    ],
    |i| [
        Val::Int(i.user_id),
        Val::from(i.kind.as_str()),
        Val::from(normalize_email(&i.value)),
        Val::from(i.primary),
        secs(i.created_at),
        secs(i.updated_at)
    ]
);

doc_record!(
    Organization,
    "organizations",
    ["name_key", "external_id", "created_at", "updated_at"],
    |o| [
        Val::from(o.name.trim().to_lowercase()),
        Val::from(o.external_id.clone()),
        secs(o.created_at),
        secs(o.updated_at)
    ],
    searched
        | o
        | [
            index_text([o.name.as_str()]),
            index_text(
                o.domain_names
                    .iter()
                    .chain(o.tags.iter())
                    .map(String::as_str)
                    .chain(o.external_id.as_deref())
            ),
            index_text(o.notes.as_deref()),
            index_text(o.details.as_deref())
        ]
);

doc_record!(
    OrganizationMembership,
    "organization_memberships",
    [
        "user_id",
        "organization_id",
        "is_default",
        "created_at",
        "updated_at"
    ],
    |m| [
        Val::Int(m.user_id),
        Val::Int(m.organization_id),
        Val::from(m.default),
        secs(m.created_at),
        secs(m.updated_at)
    ]
);

doc_record!(
    Group,
    "agent_groups",
    ["name_key", "created_at", "updated_at"],
    |g| [
        Val::from(g.name.trim().to_lowercase()),
        secs(g.created_at),
        secs(g.updated_at)
    ]
);

doc_record!(
    GroupMembership,
    "group_memberships",
    [
        "user_id",
        "group_id",
        "is_default",
        "created_at",
        "updated_at"
    ],
    |m| [
        Val::Int(m.user_id),
        Val::Int(m.group_id),
        Val::from(m.default),
        secs(m.created_at),
        secs(m.updated_at)
    ]
);

doc_record!(
    TicketField,
    "ticket_fields",
    ["position", "created_at", "updated_at"],
    |f| [Val::Int(f.position), secs(f.created_at), secs(f.updated_at)]
);

doc_record!(
    TicketForm,
    "ticket_forms",
    ["position", "created_at", "updated_at"],
    |f| [Val::Int(f.position), secs(f.created_at), secs(f.updated_at)]
);

doc_record!(
    opsdesk_core::rules::Trigger,
    "triggers",
    ["position", "active", "created_at", "updated_at"],
    |t| [
        Val::Int(t.position),
        Val::from(t.active),
        secs(t.created_at),
        secs(t.updated_at)
    ]
);

doc_record!(
    opsdesk_core::rules::Macro,
    "macros",
    ["position", "active", "created_at", "updated_at"],
    |t| [
        Val::Int(t.position),
        Val::from(t.active),
        secs(t.created_at),
        secs(t.updated_at)
    ]
);

doc_record!(
    opsdesk_core::rules::Automation,
    "automations",
    ["position", "active", "created_at", "updated_at"],
    |t| [
        Val::Int(t.position),
        Val::from(t.active),
        secs(t.created_at),
        secs(t.updated_at)
    ]
);

doc_record!(
    opsdesk_core::outbox::Webhook,
    "webhooks",
    ["name_key", "status", "created_at", "updated_at"],
    |w| [
        Val::from(w.name.to_lowercase()),
        Val::from(w.status.as_str()),
        secs(w.created_at),
        secs(w.updated_at)
    ]
);

doc_record!(
    opsdesk_core::business_hours::ScheduleRecord,
    "schedules",
    ["created_at", "updated_at"],
    |s| [secs(s.created_at), secs(s.updated_at)]
);

doc_record!(
    opsdesk_core::sla::SlaPolicy,
    "sla_policies",
    ["position", "created_at", "updated_at"],
    |p| [Val::Int(p.position), secs(p.created_at), secs(p.updated_at)]
);

doc_record!(
    opsdesk_core::rules::View,
    "views",
    ["position", "active", "created_at", "updated_at"],
    |t| [
        Val::Int(t.position),
        Val::from(t.active),
        secs(t.created_at),
        secs(t.updated_at)
    ]
);

/// A user field (stored in `user_fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UserField(pub CustomField);
/// An organisation field (stored in `organization_fields`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct OrgField(pub CustomField);

macro_rules! field_doc {
    ($ty:ty, $table:expr) => {
        impl Doc for $ty {
            const TABLE: &'static str = $table;
            const COLUMNS: &'static [&'static str] =
                &["field_key", "position", "created_at", "updated_at"];
            fn id(&self) -> Id {
                self.0.id
            }
            fn set_id(&mut self, id: Id) {
                self.0.id = id;
            }
            fn values(&self) -> Vec<Val> {
                vec![
                    Val::from(self.0.key.as_str()),
                    Val::Int(self.0.position),
                    secs(self.0.created_at),
                    secs(self.0.updated_at),
                ]
            }
        }
    };
}
field_doc!(UserField, "user_fields");
field_doc!(OrgField, "organization_fields");

/// What authentication needs to know about a user.
#[derive(Debug, Clone)]
pub struct UserAuth {
    pub user: User,
    pub password_hash: Option<String>,
}

/// An API token row (the token itself is never stored, only its hash).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredToken {
    pub id: Id,
    pub user_id: Id,
    pub description: Option<String>,
    pub created_at: i64,
}

impl Conn {
    /// The user whose email identity is `email` (case-insensitive).
    pub async fn user_by_email(&mut self, email: &str) -> Result<Option<User>> {
        let row = self
            .opt(
                "SELECT u.id, u.data FROM user_identities i JOIN users u ON u.id = i.user_id \
                 WHERE i.kind = 'email' AND i.value = $1",
                &[Val::from(normalize_email(email))],
            )
            .await?;
        match row {
            Some(r) => Ok(Some(crate::docs::decode(&r)?)),
            None => Ok(None),
        }
    }

    pub async fn user_auth_by_email(&mut self, email: &str) -> Result<Option<UserAuth>> {
        let row = self
            .opt(
                "SELECT u.id, u.data, u.password_hash FROM user_identities i JOIN users u ON u.id = i.user_id \
                 WHERE i.kind = 'email' AND i.value = $1",
                &[Val::from(normalize_email(email))],
            )
            .await?;
        match row {
            Some(r) => Ok(Some(UserAuth {
                user: crate::docs::decode(&r)?,
                password_hash: r.opt_str(2)?,
            })),
            None => Ok(None),
        }
    }

    pub async fn set_password_hash(&mut self, user_id: Id, hash: Option<&str>) -> Result<()> {
        let n = self
            .exec(
                "UPDATE users SET password_hash = $1 WHERE id = $2",
                &[Val::from(hash), Val::Int(user_id)],
            )
            .await?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    pub async fn identities_of(&mut self, user_id: Id) -> Result<Vec<Identity>> {
        let rows = self
            .all(
                "SELECT id, data FROM user_identities WHERE user_id = $1 ORDER BY id",
                &[Val::Int(user_id)],
            )
            .await?;
        rows.iter().map(crate::docs::decode).collect()
    }

    /// Users whose primary email, any identity, or name matches `term` (a `%`-pattern on the
    /// lower-cased value), by id.
    pub async fn search_users(&mut self, pattern: &str, limit: i64) -> Result<Vec<User>> {
        let rows = self
            .all(
                &format!(
                    "SELECT id, data FROM users WHERE name_key LIKE $1 ESCAPE '\\' OR id IN \
                     (SELECT user_id FROM user_identities WHERE value LIKE $1 ESCAPE '\\') ORDER BY id LIMIT {}",
                    limit.clamp(1, 10_000)
                ),
                &[Val::from(pattern.to_lowercase())],
            )
            .await?;
        rows.iter().map(crate::docs::decode).collect()
    }

    pub async fn insert_token(
        &mut self,
        user_id: Id,
        hash: &str,
        description: Option<&str>,
        now: i64,
    ) -> Result<Id> {
        self.int(
            "INSERT INTO api_tokens (user_id, token_hash, description, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
            &[Val::Int(user_id), Val::from(hash), Val::from(description), Val::Int(now)],
        )
        .await
    }

    /// The user holding the token with this hash.
    pub async fn user_by_token_hash(&mut self, hash: &str) -> Result<Option<User>> {
        let row = self
            .opt(
                "SELECT u.id, u.data FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
                &[Val::from(hash)],
            )
            .await?;
        match row {
            Some(r) => Ok(Some(crate::docs::decode(&r)?)),
            None => Ok(None),
        }
    }

    pub async fn tokens_of(&mut self, user_id: Id) -> Result<Vec<StoredToken>> {
        let rows = self
            .all("SELECT id, user_id, description, created_at FROM api_tokens WHERE user_id = $1 ORDER BY id", &[Val::Int(user_id)])
            .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredToken {
                    id: r.i64(0)?,
                    user_id: r.i64(1)?,
                    description: r.opt_str(2)?,
                    created_at: r.i64(3)?,
                })
            })
            .collect()
    }

    pub async fn delete_token(&mut self, id: Id) -> Result<bool> {
        Ok(self
            .exec("DELETE FROM api_tokens WHERE id = $1", &[Val::Int(id)])
            .await?
            > 0)
    }

    /// Organisation memberships of a user.
    pub async fn memberships_of(&mut self, user_id: Id) -> Result<Vec<OrganizationMembership>> {
        Ok(self
            .list(
                &[Cond::Eq("user_id", Val::Int(user_id))],
                &crate::Page::All { limit: 10_000 },
            )
            .await?
            .items)
    }

    /// The current rules version (bumped on every trigger change).
    pub async fn rules_version(&mut self) -> Result<i64> {
        self.int(
            "SELECT value FROM settings WHERE name = 'rules_version'",
            &[],
        )
        .await
    }

    pub async fn bump_rules_version(&mut self) -> Result<()> {
        self.exec(
            "UPDATE settings SET value = value + 1 WHERE name = 'rules_version'",
            &[],
        )
        .await?;
        Ok(())
    }

    pub async fn put_job_status(&mut self, j: &JobStatus) -> Result<()> {
        let data = serde_json::to_string(j).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.exec(
            "INSERT INTO job_statuses (id, data, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            &[
                Val::from(j.id.as_str()),
                Val::Text(data),
                Val::Int(j.created_at.as_second()),
            ],
        )
        .await?;
        Ok(())
    }

    pub async fn job_status(&mut self, id: &str) -> Result<Option<JobStatus>> {
        match self
            .opt(
                "SELECT data FROM job_statuses WHERE id = $1",
                &[Val::from(id)],
            )
            .await?
        {
            Some(r) => Ok(Some(r.json(0)?)),
            None => Ok(None),
        }
    }
}
