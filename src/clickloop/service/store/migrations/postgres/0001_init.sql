-- clickloop service schema v1, PostgreSQL. Timestamps: DOUBLE PRECISION epoch seconds (UTC). Opaque JSON: JSONB.

CREATE TABLE contexts (
    context_id TEXT PRIMARY KEY,
    config JSONB NOT NULL,
    -- mirrored from config.schedule so the due query stays plain SQL
    every_n_impressions BIGINT NOT NULL DEFAULT 0,
    every_seconds DOUBLE PRECISION NOT NULL DEFAULT 0,
    min_impressions_per_item INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    iteration INTEGER,
    last_iteration_at DOUBLE PRECISION,
    impressions_since_iteration INTEGER NOT NULL DEFAULT 0,
    impressions_total BIGINT NOT NULL DEFAULT 0,
    iteration_requested_at DOUBLE PRECISION,
    leased_by TEXT,
    lease_until DOUBLE PRECISION
);

CREATE TABLE items (
    context_id TEXT NOT NULL REFERENCES contexts (context_id),
    item_id TEXT NOT NULL,
    text TEXT NOT NULL,
    provenance JSONB NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('live', 'pending', 'rejected', 'dropped')),
    iteration_created INTEGER NOT NULL,
    ordinal INTEGER NOT NULL,
    dropped_at INTEGER,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (context_id, item_id)
);

CREATE TABLE iterations (
    context_id TEXT NOT NULL REFERENCES contexts (context_id),
    iteration INTEGER NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (context_id, iteration)
);

-- membership of pool IP_i and the counters of each item in iteration i
CREATE TABLE pool_items (
    context_id TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    impressions BIGINT NOT NULL DEFAULT 0,
    clicks BIGINT NOT NULL DEFAULT 0 CHECK (clicks >= 0 AND clicks <= impressions),
    PRIMARY KEY (context_id, iteration, item_id),
    FOREIGN KEY (context_id, iteration) REFERENCES iterations (context_id, iteration),
    FOREIGN KEY (context_id, item_id) REFERENCES items (context_id, item_id)
);

CREATE TABLE impressions (
    impression_id TEXT PRIMARY KEY,
    context_id TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    item_ids TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX impressions_by_expiry ON impressions (expires_at);

CREATE TABLE events (
    event_id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    client_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    context_id TEXT NOT NULL,
    impression_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    dwell_ms INTEGER CHECK (dwell_ms >= 0),
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (client_id, idempotency_key),
    UNIQUE (impression_id, item_id)
);

-- outcome: accepted | duplicate | rejected:<reason>
CREATE TABLE event_counts (
    context_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (context_id, outcome)
);

CREATE TABLE llm_cache (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    response TEXT NOT NULL, -- TEXT: may hold non-standard JSON (-Infinity logprobs)
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE llm_usage (
    context_id TEXT NOT NULL,
    iteration INTEGER NOT NULL,
    role TEXT NOT NULL,
    calls INTEGER NOT NULL,
    cache_hits INTEGER NOT NULL,
    prompt_tokens BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (context_id, iteration, role)
);

CREATE TABLE api_keys (
    key_id TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'client')),
    context_ids JSONB,
    label TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    revoked_at DOUBLE PRECISION
);
