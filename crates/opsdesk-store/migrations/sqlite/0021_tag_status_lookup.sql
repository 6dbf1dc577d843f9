-- PostgreSQL only (a PL/pgSQL plan for the 0018 trigger); SQLite plans each trigger statement
-- when it runs. Kept so both backends list the same migrations.
SELECT 1;
