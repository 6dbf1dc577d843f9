-- Each ticket's SLA as last computed, with the next breach indexed for the scheduler, and the
-- metric events (apply_sla, activate, pause, fulfill, breach) for the incremental export.
CREATE TABLE ticket_slas (
    id BIGINT PRIMARY KEY,
    data TEXT NOT NULL,
    next_breach_at BIGINT,
    updated_at BIGINT NOT NULL
);
CREATE INDEX ticket_slas_next_breach ON ticket_slas (next_breach_at);

CREATE TABLE ticket_metric_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id BIGINT NOT NULL,
    time BIGINT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX ticket_metric_events_time ON ticket_metric_events (time, id);
