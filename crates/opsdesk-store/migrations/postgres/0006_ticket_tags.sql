-- One row per (ticket, tag): views and counts on tags use the index instead of reading tickets.
CREATE TABLE ticket_tags (
    tag TEXT NOT NULL,
    ticket_id BIGINT NOT NULL,
    PRIMARY KEY (tag, ticket_id)
);
CREATE INDEX ticket_tags_ticket ON ticket_tags (ticket_id);
INSERT INTO ticket_tags (ticket_id, tag) SELECT DISTINCT id, jsonb_array_elements_text((data::jsonb)->'tags') FROM tickets;
