-- argent agent schema (SQLite): audit trail, tool calls, approval queue, outbox, contact
-- log, runs. Instants are RFC 3339 TEXT in UTC (microsecond precision), JSON is TEXT.

-- The audit trail: append-only and hash-chained. `canonical` is the exact text that was
-- hashed (hash = sha256(prev_hash || canonical)); the other columns are indexes over it
-- and are checked against it by `audit_verify`.
CREATE TABLE audit_events (
    seq         INTEGER PRIMARY KEY,
    at          TEXT NOT NULL,
    run_id      TEXT,
    customer_id TEXT,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rule_ids    TEXT NOT NULL DEFAULT '',       -- ",rule.a,rule.b," from the payload
    canonical   TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_customer ON audit_events(customer_id, seq);
CREATE INDEX audit_events_run ON audit_events(run_id, seq);
CREATE INDEX audit_events_at ON audit_events(at);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: UPDATE refused');
END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only: DELETE refused');
END;

-- The chain's head: one row, updated first by every append, which serializes appenders.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head cannot be deleted');
END;
CREATE TRIGGER audit_head_forward_only BEFORE UPDATE ON audit_head WHEN NEW.seq < OLD.seq
BEGIN
    SELECT RAISE(ABORT, 'audit_head only moves forward');
END;

-- One row per tool call the model made: the idempotency key of every side effect.
CREATE TABLE tool_calls (
    call_id     TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    arguments   TEXT NOT NULL,                  -- exactly as the model sent them
    status      TEXT NOT NULL,
    result      TEXT,                           -- JSON
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX tool_calls_run ON tool_calls(run_id);

CREATE TABLE approvals (
    id            TEXT PRIMARY KEY,
    call_id       TEXT NOT NULL UNIQUE,
    run_id        TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    tool          TEXT NOT NULL,
    action        TEXT NOT NULL,                -- JSON
    decision      TEXT NOT NULL,                -- JSON
    context       TEXT NOT NULL,                -- JSON
    priority      INTEGER NOT NULL,
    amount_minor  INTEGER NOT NULL,
    currency      TEXT NOT NULL,
    required_role TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at    TEXT NOT NULL,
    decided_at    TEXT,
    decided_by    TEXT,
    decided_role  TEXT,
    note          TEXT,
    final_action  TEXT                          -- JSON
);
CREATE INDEX approvals_queue ON approvals(status, priority DESC, created_at, id);
CREATE INDEX approvals_customer ON approvals(customer_id);

CREATE TABLE outbox (
    id          TEXT PRIMARY KEY,
    call_id     TEXT NOT NULL UNIQUE,
    customer_id TEXT NOT NULL,
    to_addr     TEXT NOT NULL,
    subject     TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'sent')),
    sent_at     TEXT
);
CREATE INDEX outbox_pending ON outbox(status, created_at, id);
CREATE INDEX outbox_customer ON outbox(customer_id);

CREATE TABLE contact_log (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    customer_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    at          TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    UNIQUE (call_id, channel)
);
CREATE INDEX contact_log_customer ON contact_log(customer_id, at);

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    run_trigger    TEXT NOT NULL,               -- JSON
    status         TEXT NOT NULL,
    step           INTEGER NOT NULL,
    tokens         INTEGER NOT NULL,
    state          TEXT NOT NULL,               -- JSON checkpoint
    model          TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    lease_owner    TEXT,
    lease_until    TEXT
);
CREATE INDEX runs_status ON runs(status, created_at, id);
CREATE INDEX runs_customer ON runs(customer_id);
