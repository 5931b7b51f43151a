-- argent dashboard snapshots (SQLite): the manager dashboard's figures, taken once per day
-- (keyed by the date they are as of) by the scheduler's tick, `argent snapshot` and the
-- simulated days of `argent demo`, so the dashboard can draw trends.
--
-- dashboard_snapshots: one row per date; its primary key makes taking a snapshot
-- idempotent (the first taker inserts the date and its rows in one transaction, any later
-- or concurrent one inserts nothing). The DSO/CEI period and the promise grace period the
-- figures were computed with are kept beside them.
CREATE TABLE dashboard_snapshots (
    as_of        TEXT PRIMARY KEY,          -- YYYY-MM-DD
    period_days  INTEGER NOT NULL,
    grace_days   INTEGER NOT NULL,
    taken_at     TEXT NOT NULL,
    taken_by     TEXT NOT NULL
);

-- dashboard_snapshot_rows: per date, currency and segment ('all' for the currency's total
-- row) the figures of `argent_core::analytics::SegmentRow`. Money is integer minor units of
-- `currency`; the ratios (days, percent) are REAL and NULL when undefined.
CREATE TABLE dashboard_snapshot_rows (
    as_of                  TEXT NOT NULL REFERENCES dashboard_snapshots(as_of),
    currency               TEXT NOT NULL,
    segment                TEXT NOT NULL CHECK (segment IN ('all', 'low', 'medium', 'high', 'in_review')),
    customers              INTEGER NOT NULL,
    bucket_current         INTEGER NOT NULL,
    bucket_1_30            INTEGER NOT NULL,
    bucket_31_60           INTEGER NOT NULL,
    bucket_61_90           INTEGER NOT NULL,
    bucket_over_90         INTEGER NOT NULL,
    open_total             INTEGER NOT NULL,
    overdue_total          INTEGER NOT NULL,
    receivables_begin      INTEGER NOT NULL,
    credit_sales           INTEGER NOT NULL,
    dso_days               REAL,
    best_dso_days          REAL,
    cei_percent            REAL,
    avg_days_delinquent    REAL,
    promises_kept          INTEGER NOT NULL,
    promises_broken        INTEGER NOT NULL,
    promises_open          INTEGER NOT NULL,
    promised_kept_amount   INTEGER NOT NULL,
    promised_broken_amount INTEGER NOT NULL,
    promised_open_amount   INTEGER NOT NULL,
    PRIMARY KEY (as_of, currency, segment)
);

-- A snapshot is a record of what the figures were: never changed, never removed.
CREATE TRIGGER dashboard_snapshots_no_update BEFORE UPDATE ON dashboard_snapshots
BEGIN
    SELECT RAISE(ABORT, 'dashboard_snapshots is append-only: UPDATE refused');
END;
CREATE TRIGGER dashboard_snapshots_no_delete BEFORE DELETE ON dashboard_snapshots
BEGIN
    SELECT RAISE(ABORT, 'dashboard_snapshots is append-only: DELETE refused');
END;
CREATE TRIGGER dashboard_snapshot_rows_no_update BEFORE UPDATE ON dashboard_snapshot_rows
BEGIN
    SELECT RAISE(ABORT, 'dashboard_snapshot_rows is append-only: UPDATE refused');
END;
CREATE TRIGGER dashboard_snapshot_rows_no_delete BEFORE DELETE ON dashboard_snapshot_rows
BEGIN
    SELECT RAISE(ABORT, 'dashboard_snapshot_rows is append-only: DELETE refused');
END;
