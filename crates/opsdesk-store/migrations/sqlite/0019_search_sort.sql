-- Free-text and tag searches (docs/search.md, "Free text and tags") read the sort times of
-- their matches by id from this compact index instead of the ticket rows.
CREATE INDEX tickets_sort ON tickets (id, updated_at, created_at);
