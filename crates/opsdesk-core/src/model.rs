//! People and configuration records. Each struct serialises to Zendesk's API shape
//! (the HTTP layer adds `url`); the store keeps the same JSON beside its index columns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::clock::{ts, ts_opt, Timestamp};
use crate::error::Invalid;

pub type Id = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Role {
    #[serde(rename = "end-user")]
    EndUser,
    #[serde(rename = "agent")]
    Agent,
    #[serde(rename = "admin")]
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::EndUser => "end-user",
            Role::Agent => "agent",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "end-user" | "end_user" | "enduser" => Some(Role::EndUser),
            "agent" => Some(Role::Agent),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
    pub fn is_staff(self) -> bool {
        matches!(self, Role::Agent | Role::Admin)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: Id,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    pub active: bool,
    pub verified: bool,
    pub suspended: bool,
    pub phone: Option<String>,
    pub time_zone: String,
    pub iana_time_zone: String,
    pub locale: String,
    pub locale_id: i64,
    pub organization_id: Option<Id>,
    pub default_group_id: Option<Id>,
    pub external_id: Option<String>,
    pub alias: Option<String>,
    pub details: Option<String>,
    pub notes: Option<String>,
    pub signature: Option<String>,
    pub tags: Vec<String>,
    pub user_fields: BTreeMap<String, Value>,
    pub restricted_agent: bool,
    pub ticket_restriction: Option<String>,
    pub only_private_comments: bool,
    pub shared: bool,
    pub moderator: bool,
    pub two_factor_auth_enabled: bool,
    pub photo: Option<Value>,
    #[serde(with = "ts_opt", default)]
    pub last_login_at: Option<Timestamp>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

impl User {
    pub fn new(name: String, email: Option<String>, role: Role, now: Timestamp) -> User {
        User {
            id: 0,
            name,
            email,
            role,
            active: true,
            verified: false,
            suspended: false,
            phone: None,
            time_zone: "UTC".into(),
            iana_time_zone: "Etc/UTC".into(),
            locale: "en-US".into(),
            locale_id: 1,
            organization_id: None,
            default_group_id: None,
            external_id: None,
            alias: None,
            details: None,
            notes: None,
            signature: None,
            tags: vec![],
            user_fields: BTreeMap::new(),
            restricted_agent: role == Role::EndUser,
            ticket_restriction: ticket_restriction_for(role),
            only_private_comments: false,
            shared: false,
            moderator: role == Role::Admin,
            two_factor_auth_enabled: false,
            photo: None,
            last_login_at: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// Keep role-derived fields consistent after a role change.
    pub fn set_role(&mut self, role: Role) {
        self.role = role;
        self.restricted_agent = role == Role::EndUser;
        self.ticket_restriction = ticket_restriction_for(role);
        self.moderator = role == Role::Admin;
    }
}

fn ticket_restriction_for(role: Role) -> Option<String> {
    match role {
        Role::EndUser => Some("requested".into()),
        _ => None,
    }
}

/// A user identity (email address). A user's `email` is its primary email identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    pub id: Id,
    pub user_id: Id,
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
    pub verified: bool,
    pub primary: bool,
    /// Zendesk's `deliverable_state`: `deliverable`, or `undeliverable` after a bounce.
    #[serde(default = "deliverable")]
    pub deliverable_state: String,
    /// Bounces recorded against this address.
    #[serde(default)]
    pub undeliverable_count: i64,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

fn deliverable() -> String {
    "deliverable".into()
}

impl Identity {
    /// A primary email identity.
    pub fn email(user_id: Id, value: String, verified: bool, now: Timestamp) -> Identity {
        Identity {
            id: 0,
            user_id,
            kind: "email".into(),
            value,
            verified,
            primary: true,
            deliverable_state: deliverable(),
            undeliverable_count: 0,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Organization {
    pub id: Id,
    pub name: String,
    pub external_id: Option<String>,
    pub domain_names: Vec<String>,
    pub details: Option<String>,
    pub notes: Option<String>,
    pub group_id: Option<Id>,
    pub shared_tickets: bool,
    pub shared_comments: bool,
    pub tags: Vec<String>,
    pub organization_fields: BTreeMap<String, Value>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrganizationMembership {
    pub id: Id,
    pub user_id: Id,
    pub organization_id: Id,
    pub organization_name: Option<String>,
    pub default: bool,
    pub view_tickets: bool,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub id: Id,
    pub name: String,
    pub description: String,
    pub default: bool,
    pub deleted: bool,
    pub is_public: bool,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupMembership {
    pub id: Id,
    pub user_id: Id,
    pub group_id: Id,
    pub default: bool,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

/// Status of a bulk job (`create_many`, `update_many`, `destroy_many`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobStatus {
    pub id: String,
    pub job_type: String,
    pub total: i64,
    pub progress: i64,
    pub status: String,
    pub message: Option<String>,
    pub results: Vec<Value>,
    #[serde(with = "ts")]
    pub created_at: Timestamp,
    #[serde(with = "ts")]
    pub updated_at: Timestamp,
}

/// Normalise an email address for lookups and uniqueness.
pub fn normalize_email(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

/// A deliberately simple email syntax check (one `@`, something on both sides, a dot in the domain).
pub fn valid_email(s: &str) -> bool {
    let s = s.trim();
    if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
        }
        None => false,
    }
}

/// Normalise a tag list the way Zendesk does: lower-case, spaces split tags, no duplicates,
/// order of first appearance kept.
pub fn normalize_tags<I, S>(tags: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        for part in t.as_ref().split(|c: char| c.is_whitespace() || c == ',') {
            let p = part.trim().to_lowercase();
            if !p.is_empty() && seen.insert(p.clone()) {
                out.push(p);
            }
        }
    }
    out
}

/// Validate a tag list (length limits) and report on `field`.
pub fn check_tags(tags: &[String], field: &str, inv: &mut Invalid) {
    if tags.len() > 1000 {
        inv.invalid(field, "Tags", "too many tags (max 1000)");
    }
    if tags.iter().any(|t| t.chars().count() > 255) {
        inv.invalid(field, "Tags", "a tag is longer than 255 characters");
    }
}

/// Check a required, bounded text value.
pub fn check_text(value: &str, field: &str, label: &str, max: usize, inv: &mut Invalid) {
    if value.trim().is_empty() {
        inv.blank(field, label);
    } else if value.chars().count() > max {
        inv.invalid(
            field,
            label,
            &format!("is too long (maximum is {max} characters)"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_normalise() {
        assert_eq!(
            normalize_tags(["Foo bar", "foo", "BAZ,qux"]),
            vec!["foo", "bar", "baz", "qux"]
        );
        assert!(normalize_tags(["  "]).is_empty());
    }

    #[test]
    fn emails() {
        assert!(valid_email("a@b.co"));
        assert!(!valid_email("a@b"));
        assert!(!valid_email("ab.co"));
        assert!(!valid_email("a b@c.de"));
        assert!(!valid_email("a@@c.de"));
        assert_eq!(normalize_email(" A@B.Co "), "a@b.co");
    }

    #[test]
    fn roles_round_trip() {
        for r in [Role::EndUser, Role::Agent, Role::Admin] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
