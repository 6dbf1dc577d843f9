-- Structured searches by tag and status (docs/search.md, "Free text and tags"): each tag row
-- carries its ticket's status while the ticket is live (NULL once it is soft-deleted), so
-- `status:open tags:x` is one range of one index and counts from the index alone.
-- Triggers keep it in step with every new tag row (whichever binary writes it) and every
-- write of tickets.status and tickets.deleted_at.
ALTER TABLE ticket_tags ADD COLUMN status TEXT;
UPDATE ticket_tags g SET status = t.status FROM tickets t WHERE t.id = g.ticket_id AND t.deleted_at IS NULL;
CREATE INDEX ticket_tags_status ON ticket_tags (tag, status, ticket_id);
CREATE FUNCTION ticket_tags_follow_ticket() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE ticket_tags SET status = CASE WHEN NEW.deleted_at IS NULL THEN NEW.status END
    WHERE ticket_id = NEW.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER tickets_tag_status_insert AFTER INSERT ON tickets
    FOR EACH ROW EXECUTE FUNCTION ticket_tags_follow_ticket();
CREATE TRIGGER tickets_tag_status_update AFTER UPDATE OF status, deleted_at ON tickets
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
    EXECUTE FUNCTION ticket_tags_follow_ticket();
CREATE FUNCTION ticket_tags_take_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.status := (SELECT t.status FROM tickets t WHERE t.id = NEW.ticket_id AND t.deleted_at IS NULL);
    RETURN NEW;
END
$$;
CREATE TRIGGER ticket_tags_status_insert BEFORE INSERT ON ticket_tags
    FOR EACH ROW EXECUTE FUNCTION ticket_tags_take_status();
