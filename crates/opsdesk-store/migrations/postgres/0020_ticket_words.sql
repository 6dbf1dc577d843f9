-- Full text of a ticket's comments in one row per ticket (docs/search.md, "The index"), so a
-- word's matches are one entry per ticket and reading them touches a narrow table rather than
-- one comment row (with its JSON document) per match. Weights say where a word was: A the
-- public description (first comment), B a later public comment, C an internal description, D
-- a later internal comment; comments are separated by the lexeme '|', which no query can
-- name, so a phrase never spans two comments. `words` and `bytes` bound the vector (positions
-- stop at 16,383 and a tsvector at 1 MB): a comment that would pass either limit is indexed
-- on its own row instead, in ticket_comments.overflow_vec. The vector is kept out of line
-- (toast_tuple_target) so the heap pages a GIN match reads hold hundreds of tickets.
-- Rows are written from Rust (search::index_comments); the migration's hook fills them.
CREATE TABLE ticket_words (
    ticket_id BIGINT PRIMARY KEY,
    words BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    vec tsvector NOT NULL
) WITH (toast_tuple_target = 128);
CREATE INDEX ticket_words_search ON ticket_words USING GIN (vec);
ALTER TABLE ticket_comments DROP COLUMN search_vec;
ALTER TABLE ticket_comments ADD COLUMN overflow_vec tsvector;
CREATE INDEX ticket_comments_overflow ON ticket_comments USING GIN (overflow_vec) WHERE overflow_vec IS NOT NULL;
