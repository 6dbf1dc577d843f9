-- Free-text searches (docs/search.md, "Free text and tags") take the soft-deleted tickets out of the
-- full-text index's matches: this lists them without reading the live ones.
CREATE INDEX tickets_deleted ON tickets (deleted_at, id) WHERE deleted_at IS NOT NULL;
