-- PostgreSQL only (one full-text row per ticket, ticket_words): SQLite's FTS rowids already
-- carry the ticket id of each comment (search::comment_rowid). Kept so both backends list
-- the same migrations.
SELECT 1;
