-- The 0018 trigger read a new tag row's status with `WHERE t.id = … AND t.deleted_at IS NULL`.
-- PL/pgSQL keeps a generic plan per session; planned while `tickets` was nearly empty and
-- before any ANALYZE, that plan scanned a whole partial index (whose predicate is
-- `deleted_at IS NULL`) and filtered on the id, so each tag insert read every live ticket
-- (measured: 140 instead of 700 tickets/s by 36,000 tickets with autovacuum off). Asking for
-- the row by id alone leaves only the id indexes to choose from.
CREATE OR REPLACE FUNCTION ticket_tags_take_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.status := (SELECT CASE WHEN t.deleted_at IS NULL THEN t.status END FROM tickets t WHERE t.id = NEW.ticket_id);
    RETURN NEW;
END
$$;
