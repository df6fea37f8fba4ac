-- clickloop service schema v2, PostgreSQL: the last failed iteration of each context, so that an operator
-- can see why a context has no new pool (written by the worker, cleared by the next applied iteration).

ALTER TABLE contexts ADD COLUMN last_error TEXT;
ALTER TABLE contexts ADD COLUMN last_error_at DOUBLE PRECISION;
-- failed iterations in a row since the last applied one (the worker's back-off and sampling seeds)
ALTER TABLE contexts ADD COLUMN iteration_failures INTEGER NOT NULL DEFAULT 0;
