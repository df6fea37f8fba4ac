-- clickloop service schema v3, SQLite: how min_impressions_per_item gates the schedule. 'every': every
-- live item must have had that many impressions; 'mean': the live items' mean must (contexts served by
-- Thompson sampling, which starves the items it is sure are worse: they might never get there).

ALTER TABLE contexts ADD COLUMN impressions_gate TEXT NOT NULL DEFAULT 'every'
    CHECK (impressions_gate IN ('every', 'mean'));
UPDATE contexts SET impressions_gate = 'mean' WHERE json_extract(config, '$.serving') = 'thompson';
