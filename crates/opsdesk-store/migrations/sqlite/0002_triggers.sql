-- Ticket triggers, and a version counter every node checks to refresh its compiled rules.
CREATE TABLE triggers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    position BIGINT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX triggers_position ON triggers (active, position, id);

CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO settings (name, value) VALUES ('rules_version', 1);
