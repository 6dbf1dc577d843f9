-- Full text of a ticket's comments in one row per ticket (docs/search.md, "The index"), so a
-- word's matches are one entry per ticket and reading them touches a narrow table rather than
-- one comment row (with its JSON document) per match. Weights say where a word was: A the
-- public description (first comment), B a later public comment, C an internal description, D
-- a later internal comment; comments are separated by lexemes '|0', '|1'…, which no query can
-- name, so a phrase never spans two comments. `words` and `bytes` bound the vector (positions
-- stop at 16,383 and a tsvector holds 1 MB); a comment that would pass either, or give a
-- word more than the 256 positions a lexeme keeps, stays on its own row in
-- ticket_comments.search_vec, as do comments written by an older binary during a rolling
-- upgrade. toast_tuple_target asks for the vector out of line (PostgreSQL applies it only to
-- tuples over 2 kB, so most stay in the row).
-- Rows are written from Rust (search::index_comments); the migration's hook fills them, sets
-- search_vec to NULL for every comment it moved, and then indexes what is left.
CREATE TABLE ticket_words (
    ticket_id BIGINT PRIMARY KEY,
    words BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    vec tsvector NOT NULL
) WITH (toast_tuple_target = 128);
CREATE INDEX ticket_words_search ON ticket_words USING GIN (vec);
DROP INDEX ticket_comments_search;
