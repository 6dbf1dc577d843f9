-- KPI facts (docs/kpi.md): one row per countable thing that happened to a ticket (created,
-- solved, reopened, a public reply or internal note by staff, a first or next reply with its
-- minutes, a resolution, an SLA target met or missed). Derived from audits and metric events
-- in the same transaction as the write (`opsdesk kpi rebuild` derives them again). `day` is
-- the local day (days since 1970-01-01) in the KPI time zone; the ticket's attributes (and its
-- organisation's plan and region) are its current ones and move with it.
CREATE TABLE kpi_facts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_id BIGINT NOT NULL,
    time BIGINT NOT NULL,
    day BIGINT NOT NULL,
    kind TEXT NOT NULL,
    agent_id BIGINT,
    metric TEXT,
    calendar BIGINT,
    business BIGINT,
    flags BIGINT NOT NULL,
    assignee_id BIGINT,
    group_id BIGINT,
    organization_id BIGINT,
    form_id BIGINT,
    priority TEXT,
    channel TEXT NOT NULL,
    -- The organisation's plan (field support_level) and region (org_region), kept in step
    -- when the organisation changes.
    plan TEXT,
    region TEXT
);
-- Reports read a kind over a range of days: this index holds every column they use, in
-- (kind, day) order, so they scan it alone, in sequence, never the table.
CREATE INDEX kpi_facts_kind_day ON kpi_facts (kind, day, calendar, business, flags, agent_id,
    assignee_id, group_id, organization_id, form_id, priority, channel, plan, region, metric);
CREATE INDEX kpi_facts_ticket ON kpi_facts (ticket_id);
CREATE INDEX kpi_facts_agent ON kpi_facts (agent_id, kind, day);
CREATE INDEX kpi_facts_organization ON kpi_facts (organization_id);
-- Rebuilding a ticket's SLA facts reads its metric events.
CREATE INDEX ticket_metric_events_ticket ON ticket_metric_events (ticket_id, id);

-- Daily counts per dimension: for every fact, one row per dimension (dim '' is the total),
-- with how many facts and how many carry each flag. Count reports read days, not facts. Kept
-- in step with kpi_facts in the same transactions. NULL values and metrics are ''. Each key is
-- split into 16 shards (ticket id mod 16), so concurrent writes on PostgreSQL do not queue
-- for one row; reports add the shards up.
CREATE TABLE kpi_daily (
    kind TEXT NOT NULL,
    dim TEXT NOT NULL,
    day BIGINT NOT NULL,
    value TEXT NOT NULL,
    metric TEXT NOT NULL,
    shard BIGINT NOT NULL,
    n BIGINT NOT NULL,
    f1 BIGINT NOT NULL,
    f2 BIGINT NOT NULL,
    f4 BIGINT NOT NULL,
    PRIMARY KEY (kind, dim, day, value, metric, shard)
);
