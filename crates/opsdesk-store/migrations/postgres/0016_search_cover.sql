-- Structured searches (docs/search.md, "The index"): `status<solved assignee:5 tags:x`, `status:open
-- tags:x`, `group:3 status<solved` read only live tickets and
-- order them by updated_at. These indexes hold every column those queries read, for live
-- tickets only (the id included), so PostgreSQL can answer them with index-only scans once
-- the visibility map is current (autovacuum).
CREATE INDEX tickets_live_status ON tickets (status, updated_at) INCLUDE (id) WHERE deleted_at IS NULL;
CREATE INDEX tickets_live_assignee ON tickets (assignee_id, status, updated_at) INCLUDE (id) WHERE deleted_at IS NULL;
CREATE INDEX tickets_live_group ON tickets (group_id, status, updated_at) INCLUDE (id) WHERE deleted_at IS NULL;
