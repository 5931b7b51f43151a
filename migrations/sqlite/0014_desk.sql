-- argent collections desk (SQLite): what the workers' plain-write procedure steps leave.
--
-- credit_holds: a hold on a customer's credit (the `credit_hold` step, or a manager), read
-- by the ERP export. At most one active hold per customer (partial unique index); a hold
-- is cleared, never deleted: when the balance is paid (the worker's sweep) or by a manager.
-- `work_id` is the work item that placed it (unique: a step places at most one hold).
CREATE TABLE credit_holds (
    id           TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    status       TEXT NOT NULL CHECK (status IN ('active', 'cleared')),
    reason       TEXT NOT NULL,
    placed_by    TEXT NOT NULL,
    placed_at    TEXT NOT NULL,
    work_id      TEXT UNIQUE,
    cleared_by   TEXT,
    cleared_at   TEXT,
    clear_reason TEXT
);
CREATE UNIQUE INDEX credit_holds_one_active ON credit_holds(customer_id) WHERE status = 'active';
CREATE INDEX credit_holds_status ON credit_holds(status, placed_at);

-- referrals: a proposed hand-over of an account to a collection agency (the
-- `agency_referral` step), pending until a manager approves or rejects it, with its
-- documentation package (invoices, payments, contact history, audit extract) as JSON and
-- the package's SHA-256. `work_id` unique: a step makes at most one referral.
CREATE TABLE referrals (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL REFERENCES customers(id),
    status         TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    reason         TEXT NOT NULL,
    package        TEXT NOT NULL,
    package_sha256 TEXT NOT NULL,
    work_id        TEXT UNIQUE,
    created_by     TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    decided_by     TEXT,
    decided_at     TEXT,
    note           TEXT
);
CREATE INDEX referrals_status ON referrals(status, created_at);
CREATE INDEX referrals_customer ON referrals(customer_id);
