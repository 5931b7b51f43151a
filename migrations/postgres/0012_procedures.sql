-- argent procedures (PostgreSQL): dunning procedures become a third kind of versioned
-- document, and each account's place in its procedure is stored.

-- 1. documents.kind accepts 'procedure' (the guard trigger does not fire on ALTER TABLE).
ALTER TABLE documents DROP CONSTRAINT documents_kind_check;
ALTER TABLE documents ADD CONSTRAINT documents_kind_check
    CHECK (kind IN ('prompt', 'policy', 'procedure'));

-- 2. Where each account stands in its procedure (argent_procedure::State), written by the
--    scheduler (`argent tick`). One row per customer the scheduler has planned.
CREATE TABLE procedure_state (
    customer_id       TEXT PRIMARY KEY,
    status            TEXT NOT NULL CHECK (status IN ('idle', 'active', 'paused', 'finished', 'unassigned')),
    procedure         TEXT,
    version           BIGINT NOT NULL DEFAULT 0 CHECK (version >= 0),
    cycle             BIGINT NOT NULL DEFAULT 0 CHECK (cycle >= 0),
    anchor_due        DATE,
    cycle_started     DATE,
    current_step      TEXT,
    current_index     BIGINT,
    current_at        TIMESTAMPTZ,
    last_step_at      TIMESTAMPTZ,
    next_step         TEXT,
    next_at           TIMESTAMPTZ,
    paused_reason     TEXT,
    detail            TEXT,
    followed_promises TEXT NOT NULL DEFAULT '[]',   -- JSON array of promise ids
    updated_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX procedure_state_summary ON procedure_state(procedure, status, current_step);
