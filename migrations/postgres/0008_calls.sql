-- argent calls (PostgreSQL): call tasks the agent requests for a collector, and whether a
-- logged telephone contact was a conversation (Regulation F 1006.14(b)(2): no call within
-- 7 days after a telephone conversation about the debt).
ALTER TABLE contact_log ADD COLUMN conversation BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE call_tasks (
    id          TEXT PRIMARY KEY,
    call_id     TEXT NOT NULL UNIQUE,           -- the tool call that requested it
    customer_id TEXT NOT NULL,
    reason      TEXT NOT NULL,
    script      TEXT NOT NULL,
    not_before  TIMESTAMPTZ,
    status      TEXT NOT NULL CHECK (status IN ('open', 'done')),
    created_at  TIMESTAMPTZ NOT NULL,
    done_at     TIMESTAMPTZ
);
CREATE INDEX call_tasks_open ON call_tasks(status, created_at, id);
CREATE INDEX call_tasks_customer ON call_tasks(customer_id, created_at);
