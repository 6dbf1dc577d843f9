-- Search and incremental exports.
--
-- change_seq orders every change of a ticket, user or organisation for the cursor exports: it
-- is the writing transaction's id (pg_current_xact_id), and the export only reads rows whose
-- transaction is older than every transaction still running (pg_snapshot_xmin), so a slow
-- writer can never commit behind a reader's cursor. Rows from before this migration keep 0.
ALTER TABLE tickets ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tickets_change ON tickets (change_seq, id);
CREATE INDEX users_change ON users (change_seq, id);
CREATE INDEX organizations_change ON organizations (change_seq, id);
CREATE INDEX tickets_created ON tickets (created_at, id);
CREATE INDEX users_created ON users (created_at, id);
CREATE INDEX organizations_created ON organizations (created_at, id);

-- Full text: a tsvector per record, built with the 'simple' configuration from text already
-- tokenized by opsdesk_core::search; fields f0..f3 carry weights A..D so a keyword can
-- restrict a match to one field.
ALTER TABLE tickets ADD COLUMN search_vec tsvector;
ALTER TABLE users ADD COLUMN search_vec tsvector;
ALTER TABLE organizations ADD COLUMN search_vec tsvector;
ALTER TABLE ticket_comments ADD COLUMN search_vec tsvector;
CREATE INDEX tickets_search ON tickets USING GIN (search_vec);
CREATE INDEX users_search ON users USING GIN (search_vec);
CREATE INDEX organizations_search ON organizations USING GIN (search_vec);
CREATE INDEX ticket_comments_search ON ticket_comments USING GIN (search_vec);
