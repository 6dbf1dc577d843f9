-- Search and incremental exports.
--
-- change_seq orders every change of a ticket, user or organisation for the cursor exports: the
-- writer sets it to the table's largest value plus one while it holds the write lock, so it
-- follows commit order. Rows from before this migration keep 0 and are ordered by id.
ALTER TABLE tickets ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE organizations ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;
CREATE INDEX tickets_change ON tickets (change_seq, id);
CREATE INDEX users_change ON users (change_seq, id);
CREATE INDEX organizations_change ON organizations (change_seq, id);
CREATE INDEX tickets_created ON tickets (created_at, id);
CREATE INDEX users_created ON users (created_at, id);
CREATE INDEX organizations_created ON organizations (created_at, id);

-- Full text: contentless FTS5 tables keyed by the record's id (the text is already tokenized
-- by opsdesk_core::search, so unicode61 only splits on the spaces it put there). Columns
-- f0..f3 are the record's searchable fields in the order its Doc::search_text gives them.
CREATE VIRTUAL TABLE tickets_fts USING fts5(f0, f1, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 0');
CREATE VIRTUAL TABLE users_fts USING fts5(f0, f1, f2, f3, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 0');
CREATE VIRTUAL TABLE organizations_fts USING fts5(f0, f1, f2, f3, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 0');
CREATE VIRTUAL TABLE ticket_comments_fts USING fts5(f0, content='', contentless_delete=1, tokenize='unicode61 remove_diacritics 0');
