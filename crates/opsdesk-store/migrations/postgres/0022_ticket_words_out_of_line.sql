-- ticket_words: a row for every ticket, holding its own fields too, with the comments' vector
-- out of line (docs/search.md, "The index").
--
-- `head` is the ticket's own fields as tickets.search_vec has them (A the subject; B tags,
-- custom field values and external id), so free text over a ticket's fields and comments is
-- one narrow table: `a b` is one statement whose GIN scans meet in a bitmap, instead of a
-- list of ids per word, and no wide `tickets` page is read for a subject match.
-- tickets.search_vec and its index stay, for nodes on an older binary; this binary no longer
-- reads them for tickets (a later migration may drop the index).
--
-- A word's matches are read from the GIN index and then, one heap tuple per matching ticket,
-- checked for visibility. With the vector in the row that is a page of about five tickets
-- (1.5 GB at a million tickets); out of line about forty share a page (206 MB). PostgreSQL moves a
-- value out of line only when the whole tuple is over 2 kB (toast_tuple_target, already 128,
-- then says how far to go), so every write also sets `spill`: 2,100 spaces, which push the
-- tuple over that mark and then compress to 35 bytes in the row (STORAGE MAIN, as `head`,
-- which stays in the row), while `vec` (STORAGE EXTERNAL: uncompressed, so a phrase's
-- recheck reads it without inflating it) goes to the TOAST table. A query whose comment words
-- carry no weight or phrase needs no recheck and never reads it.
--
-- The table is copied rather than updated in place, so the old wide pages are returned at once
-- and the indexes are built once. The locks come first, so no comment or ticket written while
-- the copy runs is left out of it: tickets can be read but not written, and ticket_words is
-- neither read nor written until the migration commits. `tickets` first, in the order writers
-- take them (a ticket's row, then its ticket_words row), so a writer between the two finishes
-- instead of deadlocking with the migration.
LOCK TABLE tickets IN SHARE MODE;
LOCK TABLE ticket_words IN ACCESS EXCLUSIVE MODE;
CREATE TABLE ticket_words_next (
    ticket_id BIGINT NOT NULL,
    words BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    vec tsvector NOT NULL,
    head tsvector,
    spill TEXT
) WITH (toast_tuple_target = 128);
-- No statistics for the vectors. With them, the planner prices `vec @@ q` as cheap and a common
-- word as matching most rows, so it reads the table sequentially, or takes one word's bitmap
-- and checks the others as a filter: either way it reads a vector from the TOAST table per
-- row (5.9 s at 1M tickets for the commonest word, against 0.21 s by its bitmap). Without
-- them every word is estimated as selective, so each term is a GIN bitmap, ANDed and ORed
-- (two common words, `neba:*` and `pofa:*`, one statement: 190-270 ms instead of 330-450),
-- and no vector is read but to check a phrase or a weight.
ALTER TABLE ticket_words_next
    ALTER COLUMN vec SET STORAGE EXTERNAL,
    ALTER COLUMN head SET STORAGE MAIN,
    ALTER COLUMN spill SET STORAGE MAIN,
    ALTER COLUMN vec SET STATISTICS 0,
    ALTER COLUMN head SET STATISTICS 0;
INSERT INTO ticket_words_next (ticket_id, words, bytes, vec, head, spill)
    SELECT t.id, COALESCE(w.words, 0), COALESCE(w.bytes, 0), COALESCE(w.vec, ''::tsvector),
           t.search_vec, repeat(' ', 2100)
    FROM tickets t LEFT JOIN ticket_words w ON w.ticket_id = t.id;
DROP TABLE ticket_words;
ALTER TABLE ticket_words_next RENAME TO ticket_words;
ALTER TABLE ticket_words ADD PRIMARY KEY (ticket_id);
CREATE INDEX ticket_words_search ON ticket_words USING GIN (vec);
CREATE INDEX ticket_words_head ON ticket_words USING GIN (head);
