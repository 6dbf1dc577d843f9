-- The email channel: files attached to comments (from inbound mail or the uploads API), and
-- one row per inbound message, which makes ingest idempotent (the message key is unique) and
-- threads replies by Message-ID.
CREATE TABLE attachments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    token TEXT NOT NULL UNIQUE,
    upload_token TEXT,
    ticket_id BIGINT,
    comment_id BIGINT,
    public BIGINT NOT NULL,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    content BLOB
);
CREATE INDEX attachments_upload ON attachments (upload_token);
CREATE INDEX attachments_ticket ON attachments (ticket_id, id);

CREATE TABLE inbound_emails (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    message_key TEXT NOT NULL UNIQUE,
    message_id TEXT,
    ticket_id BIGINT,
    state TEXT NOT NULL,
    from_address TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX inbound_emails_message_id ON inbound_emails (message_id);
CREATE INDEX inbound_emails_ticket ON inbound_emails (ticket_id, id);
CREATE INDEX inbound_emails_state ON inbound_emails (state, id);
CREATE INDEX inbound_emails_from ON inbound_emails (from_address, created_at);

-- Instance-wide text values made once (the key that signs reply addresses and Message-IDs).
CREATE TABLE instance_values (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
