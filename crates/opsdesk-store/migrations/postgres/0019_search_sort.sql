-- Free-text and tag searches (docs/search.md, "Free text and tags") read the sort times of
-- their matches by id from this index (index-only once the visibility map is current)
-- instead of the ticket rows.
CREATE INDEX tickets_sort ON tickets (id) INCLUDE (updated_at, created_at);
