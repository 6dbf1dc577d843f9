-- PostgreSQL only (ticket_words holds each ticket's own fields and keeps its vector out of
-- line); SQLite has no ticket_words. Kept so both backends list the same migrations.
SELECT 1;
