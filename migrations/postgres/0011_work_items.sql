-- argent work items (PostgreSQL): due work for the workers — a procedure step for one account,
-- enqueued by the scheduler (`argent tick`) and claimed by workers with a lease.
-- `dedupe_key` makes enqueueing idempotent: the same key twice, from one process or two,
-- is one row. `id` is derived from the key, so it is the same whoever enqueues first.
CREATE TABLE work_items (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (length(kind) > 0),
    dedupe_key  TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    payload     TEXT NOT NULL,                  -- JSON
    due_at      TIMESTAMPTZ NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('queued', 'leased', 'done', 'failed', 'cancelled')),
    attempts    BIGINT NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    run_id      TEXT,
    result      TEXT,                          -- JSON, when finished
    last_error  TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX work_items_claim ON work_items(status, due_at, id);
CREATE INDEX work_items_lease ON work_items(status, lease_until);
CREATE INDEX work_items_customer ON work_items(customer_id, created_at);
