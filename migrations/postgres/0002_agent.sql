-- argent agent schema (PostgreSQL): audit trail, tool calls, approval queue, outbox,
-- contact log, runs. JSON is TEXT (the audit's canonical text must stay byte-exact).

-- The audit trail: append-only and hash-chained. `canonical` is the exact text that was
-- hashed (hash = sha256(prev_hash || canonical)); the other columns are indexes over it
-- and are checked against it by `audit_verify`.
CREATE TABLE audit_events (
    seq         BIGINT PRIMARY KEY,
    at          TIMESTAMPTZ NOT NULL,
    run_id      TEXT,
    customer_id TEXT,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rule_ids    TEXT NOT NULL DEFAULT '',
    canonical   TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_events_customer ON audit_events(customer_id, seq);
CREATE INDEX audit_events_run ON audit_events(run_id, seq);
CREATE INDEX audit_events_at ON audit_events(at);

CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP;
END
$$;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- The chain's head: one row, updated first by every append; its row lock serializes
-- appenders.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_head_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'audit_head cannot be deleted';
    END IF;
    IF NEW.seq < OLD.seq THEN
        RAISE EXCEPTION 'audit_head only moves forward';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER audit_head_guard BEFORE UPDATE OR DELETE ON audit_head
    FOR EACH ROW EXECUTE FUNCTION audit_head_guard();

-- One row per tool call the model made: the idempotency key of every side effect.
CREATE TABLE tool_calls (
    call_id     TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    name        TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    status      TEXT NOT NULL,
    result      TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX tool_calls_run ON tool_calls(run_id);

CREATE TABLE approvals (
    id            TEXT PRIMARY KEY,
    call_id       TEXT NOT NULL UNIQUE,
    run_id        TEXT NOT NULL,
    customer_id   TEXT NOT NULL,
    tool          TEXT NOT NULL,
    action        TEXT NOT NULL,
    decision      TEXT NOT NULL,
    context       TEXT NOT NULL,
    priority      BIGINT NOT NULL,
    amount_minor  BIGINT NOT NULL,
    currency      TEXT NOT NULL,
    required_role TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at    TIMESTAMPTZ NOT NULL,
    decided_at    TIMESTAMPTZ,
    decided_by    TEXT,
    decided_role  TEXT,
    note          TEXT,
    final_action  TEXT
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
    created_at  TIMESTAMPTZ NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'sent')),
    sent_at     TIMESTAMPTZ
);
CREATE INDEX outbox_pending ON outbox(status, created_at, id);
CREATE INDEX outbox_customer ON outbox(customer_id);

CREATE TABLE contact_log (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id TEXT NOT NULL,
    channel     TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    call_id     TEXT NOT NULL,
    UNIQUE (call_id, channel)
);
CREATE INDEX contact_log_customer ON contact_log(customer_id, at);

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL,
    run_trigger    TEXT NOT NULL,
    status         TEXT NOT NULL,
    step           BIGINT NOT NULL,
    tokens         BIGINT NOT NULL,
    state          TEXT NOT NULL,
    model          TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    lease_owner    TEXT,
    lease_until    TIMESTAMPTZ
);
CREATE INDEX runs_status ON runs(status, created_at, id);
CREATE INDEX runs_customer ON runs(customer_id);
