-- Structured searches by tag and status (docs/search.md, "Free text and tags"): each tag row
-- carries its ticket's status while the ticket is live (NULL once it is soft-deleted), so
-- `status:open tags:x` is one range of one index and counts without reading tickets.
-- Triggers keep it in step with every new tag row (whichever binary writes it) and every
-- write of tickets.status and tickets.deleted_at.
ALTER TABLE ticket_tags ADD COLUMN status TEXT;
UPDATE ticket_tags SET status = (SELECT t.status FROM tickets t WHERE t.id = ticket_tags.ticket_id AND t.deleted_at IS NULL);
CREATE INDEX ticket_tags_status ON ticket_tags (tag, status, ticket_id);
CREATE TRIGGER tickets_tag_status_insert AFTER INSERT ON tickets
BEGIN
    UPDATE ticket_tags SET status = CASE WHEN NEW.deleted_at IS NULL THEN NEW.status END
    WHERE ticket_id = NEW.id;
END;
CREATE TRIGGER tickets_tag_status_update AFTER UPDATE OF status, deleted_at ON tickets
WHEN OLD.status IS NOT NEW.status OR OLD.deleted_at IS NOT NEW.deleted_at
BEGIN
    UPDATE ticket_tags SET status = CASE WHEN NEW.deleted_at IS NULL THEN NEW.status END
    WHERE ticket_id = NEW.id;
END;
CREATE TRIGGER ticket_tags_status_insert AFTER INSERT ON ticket_tags
WHEN NEW.status IS NULL
BEGIN
    UPDATE ticket_tags SET status = (SELECT t.status FROM tickets t WHERE t.id = NEW.ticket_id AND t.deleted_at IS NULL)
    WHERE tag = NEW.tag AND ticket_id = NEW.ticket_id;
END;
