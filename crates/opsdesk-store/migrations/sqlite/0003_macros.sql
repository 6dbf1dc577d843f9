-- Macros: actions agents apply to tickets (previewed, then saved by the agent's update).
CREATE TABLE macros (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data TEXT NOT NULL,
    position BIGINT NOT NULL,
    active BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX macros_position ON macros (active, position, id);
