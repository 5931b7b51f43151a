-- argent eval runs (SQLite): each run of an eval set, started from the web or the CLI,
-- with what was evaluated and, once finished, the report and its comparison with a
-- baseline run. The store does not interpret the report: `summary`, `report` and
-- `comparison` are JSON TEXT written by argent-evals. Instants are RFC 3339 TEXT in UTC.

CREATE TABLE eval_runs (
    id          TEXT PRIMARY KEY,
    label       TEXT NOT NULL,
    -- The model label, e.g. `offline`, `replay`, `openai:gpt-4o-mini`.
    model       TEXT NOT NULL,
    -- What was evaluated, free text: `active`, `draft policy us-consumer v3`, ...
    subject     TEXT NOT NULL,
    -- The draft document under test, if any.
    doc_kind    TEXT,
    doc_name    TEXT,
    doc_version INTEGER,
    -- The run this one is compared with.
    baseline_id TEXT REFERENCES eval_runs(id) ON DELETE SET NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    started_by  TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    summary     TEXT,
    report      TEXT,
    comparison  TEXT,
    error       TEXT
);
CREATE INDEX eval_runs_started ON eval_runs(started_at);
