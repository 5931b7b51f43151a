-- argent work queues (sqlite): tasks and escalations for people, their comments, and who owns
-- a case. A task belongs to a role (owner_role) and optionally to one user (assignee); it
-- goes open -> in_progress (assigned) -> done | cancelled, and a closed task has an
-- outcome (the CHECK ties the two). Every change is one conditional UPDATE audited in the
-- same transaction (argent-store tasks.rs). Case statuses gain in_progress and rejected
-- (argent_core::CaseStatus; the column was never constrained).
CREATE TABLE tasks (
    id          TEXT PRIMARY KEY,
    kind        TEXT NOT NULL CHECK (kind IN ('escalation', 'account_manager_alert',
                    'credit_hold_review', 'follow_up', 'other')),
    customer_id TEXT NOT NULL REFERENCES customers(id),
    owner_role  TEXT NOT NULL CHECK (owner_role IN ('collector', 'manager', 'compliance',
                    'admin')),
    assignee    TEXT,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    due_at      TEXT,
    status      TEXT NOT NULL CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    outcome     TEXT,
    -- What created it: a tool call id, an approval id, a procedure work id.
    source      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    CHECK ((status IN ('done', 'cancelled')) = (outcome IS NOT NULL))
);
CREATE INDEX tasks_queue ON tasks(status, owner_role, due_at);
CREATE INDEX tasks_assignee ON tasks(assignee, status);
CREATE INDEX tasks_customer ON tasks(customer_id, created_at);

CREATE TABLE task_comments (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id     TEXT NOT NULL REFERENCES tasks(id),
    author      TEXT NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX task_comments_task ON task_comments(task_id, id);

-- The person working a case (set when someone takes it: open -> in_progress).
ALTER TABLE cases ADD COLUMN owner TEXT;
CREATE INDEX cases_status ON cases(status, opened_at);
