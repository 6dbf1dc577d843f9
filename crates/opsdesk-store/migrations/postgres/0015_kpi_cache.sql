-- Duration statistics of closed periods (docs/kpi.md, "Speed"). Exact percentiles cannot be
-- added up from days, so a report that reads a whole, closed day, week or month keeps the
-- figures it computed: per kinds, dimension, bucket [first_day, end_day) and value.
--
-- A cached row is valid while the daily counts it was computed beside are untouched: every
-- write to a kpi_daily row raises its version `v`, and rows are never deleted except by a
-- full rebuild, so between rebuilds the sum of `v` over a bucket's rows only ever grows. A
-- report compares the sum it reads now with `vsum`, and computes again what changed. A
-- rebuild clears facts, daily counts and kept figures, and raises the generation: figures
-- computed before it are not kept after it.
ALTER TABLE kpi_daily ADD COLUMN v BIGINT NOT NULL DEFAULT 0;
CREATE TABLE kpi_stat_cache (
    kinds TEXT NOT NULL,
    dim TEXT NOT NULL,
    first_day BIGINT NOT NULL,
    end_day BIGINT NOT NULL,
    value TEXT NOT NULL,
    vsum BIGINT NOT NULL,
    n_calendar BIGINT NOT NULL,
    sum_calendar BIGINT NOT NULL,
    median_calendar BIGINT,
    p90_calendar BIGINT,
    n_business BIGINT NOT NULL,
    sum_business BIGINT NOT NULL,
    median_business BIGINT,
    p90_business BIGINT,
    PRIMARY KEY (kinds, dim, first_day, end_day, value)
);
CREATE TABLE kpi_cache_generation (
    id BIGINT PRIMARY KEY,
    generation BIGINT NOT NULL
);
INSERT INTO kpi_cache_generation (id, generation) VALUES (1, 0);
