-- opsdesk initial schema. Records are JSON documents in `data`; the other columns exist for
-- lookups, ordering and constraints. Instants are Unix seconds (UTC).

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    email TEXT,
    name_key TEXT NOT NULL,
    role TEXT NOT NULL,
    organization_id BIGINT,
    external_id TEXT,
    active BIGINT NOT NULL,
    password_hash TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_external_id ON users (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX users_email ON users (email);
CREATE INDEX users_organization ON users (organization_id, id);
CREATE INDEX users_role ON users (role, id);
CREATE INDEX users_updated ON users (updated_at, id);
CREATE INDEX users_name ON users (name_key);

CREATE TABLE user_identities (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    is_primary BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX user_identities_value ON user_identities (kind, value);
CREATE INDEX user_identities_user ON user_identities (user_id, id);

CREATE TABLE api_tokens (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX api_tokens_hash ON api_tokens (token_hash);

CREATE TABLE organizations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    name_key TEXT NOT NULL,
    external_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX organizations_name ON organizations (name_key);
CREATE UNIQUE INDEX organizations_external_id ON organizations (external_id) WHERE external_id IS NOT NULL;
CREATE INDEX organizations_updated ON organizations (updated_at, id);

CREATE TABLE organization_memberships (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    organization_id BIGINT NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    is_default BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX organization_memberships_pair ON organization_memberships (user_id, organization_id);
CREATE INDEX organization_memberships_org ON organization_memberships (organization_id, id);

CREATE TABLE agent_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    name_key TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX agent_groups_name ON agent_groups (name_key);

CREATE TABLE group_memberships (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id BIGINT NOT NULL REFERENCES agent_groups (id) ON DELETE CASCADE,
    is_default BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX group_memberships_pair ON group_memberships (user_id, group_id);
CREATE INDEX group_memberships_group ON group_memberships (group_id, id);

CREATE TABLE ticket_fields (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE ticket_forms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE user_fields (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    field_key TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX user_fields_key ON user_fields (field_key);

CREATE TABLE organization_fields (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    field_key TEXT NOT NULL,
    position BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX organization_fields_key ON organization_fields (field_key);

CREATE TABLE tickets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    requester_id BIGINT NOT NULL,
    submitter_id BIGINT NOT NULL,
    assignee_id BIGINT,
    group_id BIGINT,
    organization_id BIGINT,
    status TEXT NOT NULL,
    priority TEXT,
    ticket_type TEXT,
    problem_id BIGINT,
    external_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT,
    deleted_by BIGINT
);
CREATE INDEX tickets_requester ON tickets (requester_id, id);
CREATE INDEX tickets_organization ON tickets (organization_id, id);
CREATE INDEX tickets_assignee ON tickets (assignee_id, status);
CREATE INDEX tickets_group ON tickets (group_id, status);
CREATE INDEX tickets_status ON tickets (status, updated_at);
CREATE INDEX tickets_updated ON tickets (updated_at, id);
CREATE INDEX tickets_problem ON tickets (problem_id) WHERE problem_id IS NOT NULL;
CREATE INDEX tickets_external_id ON tickets (external_id) WHERE external_id IS NOT NULL;

-- Append-only: rows are inserted, never updated or deleted.
CREATE TABLE ticket_audits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id BIGINT NOT NULL,
    author_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    via TEXT NOT NULL,
    metadata TEXT NOT NULL,
    events TEXT NOT NULL
);
CREATE INDEX ticket_audits_ticket ON ticket_audits (ticket_id, id);
CREATE INDEX ticket_audits_created ON ticket_audits (created_at, id);

-- Comments are also append-only; their id is the id of their audit's Comment event.
CREATE TABLE ticket_comments (
    id BIGINT PRIMARY KEY,
    ticket_id BIGINT NOT NULL,
    audit_id BIGINT NOT NULL,
    author_id BIGINT NOT NULL,
    public BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX ticket_comments_ticket ON ticket_comments (ticket_id, id);
CREATE INDEX ticket_comments_author ON ticket_comments (author_id, created_at);

CREATE TABLE job_statuses (
    id TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
