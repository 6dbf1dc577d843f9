-- Web interface sign-ins (docs/web.md). A session cookie holds a random token; only its
-- SHA-256 is stored, beside the CSRF token the session's forms must echo. Kept in the
-- database so any node can serve any request.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    csrf TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX web_sessions_user ON web_sessions (user_id);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);
-- One-time sign-in links mailed to portal users: usable once, before expires_at.
CREATE TABLE login_links (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX login_links_expiry ON login_links (expires_at);
