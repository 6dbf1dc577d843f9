-- When the SLA scheduler must next look at a ticket: the earlier of its next breach and the
-- warning before it (`serve --sla-warning-minutes`). The scheduler seeks this index.
ALTER TABLE ticket_slas ADD COLUMN next_due_at BIGINT;
UPDATE ticket_slas SET next_due_at = next_breach_at;
CREATE INDEX ticket_slas_next_due ON ticket_slas (next_due_at);
