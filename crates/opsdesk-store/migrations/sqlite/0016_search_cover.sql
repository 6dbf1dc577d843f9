-- Structured searches (docs/search.md, "The index"): `status<solved assignee:5 tags:x`, `status:open
-- tags:x`, `group:3 status<solved` read only live tickets and
-- order them by updated_at. These indexes hold every column those queries read, for live
-- tickets only, so the candidates are counted and sorted without reading a ticket row (whose
-- JSON document makes each read a page of its own). deleted_at is in the key so SQLite sees
-- the index as covering.
CREATE INDEX tickets_live_status ON tickets (status, updated_at, deleted_at) WHERE deleted_at IS NULL;
CREATE INDEX tickets_live_assignee ON tickets (assignee_id, status, updated_at, deleted_at) WHERE deleted_at IS NULL;
CREATE INDEX tickets_live_group ON tickets (group_id, status, updated_at, deleted_at) WHERE deleted_at IS NULL;
