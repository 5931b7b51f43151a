-- argent dashboard snapshots (PostgreSQL): the manager dashboard's figures, taken once per
-- day (keyed by the date they are as of) by the scheduler's tick, `argent snapshot` and the
-- simulated days of `argent demo`, so the dashboard can draw trends.
--
-- dashboard_snapshots: one row per date; its primary key makes taking a snapshot
-- idempotent (the first taker inserts the date and its rows in one transaction, any later
-- or concurrent one inserts nothing). The DSO/CEI period and the promise grace period the
-- figures were computed with are kept beside them.
CREATE TABLE dashboard_snapshots (
    as_of        DATE PRIMARY KEY,
    period_days  BIGINT NOT NULL,
    grace_days   BIGINT NOT NULL,
    taken_at     TIMESTAMPTZ NOT NULL,
    taken_by     TEXT NOT NULL
);

-- dashboard_snapshot_rows: per date, currency and segment ('all' for the currency's total
-- row) the figures of `argent_core::analytics::SegmentRow`. Money is integer minor units of
-- `currency`; the ratios (days, percent) are DOUBLE PRECISION and NULL when undefined.
CREATE TABLE dashboard_snapshot_rows (
    as_of                  DATE NOT NULL REFERENCES dashboard_snapshots(as_of),
    currency               TEXT NOT NULL,
    segment                TEXT NOT NULL CHECK (segment IN ('all', 'low', 'medium', 'high', 'in_review')),
    customers              BIGINT NOT NULL,
    bucket_current         BIGINT NOT NULL,
    bucket_1_30            BIGINT NOT NULL,
    bucket_31_60           BIGINT NOT NULL,
    bucket_61_90           BIGINT NOT NULL,
    bucket_over_90         BIGINT NOT NULL,
    open_total             BIGINT NOT NULL,
    overdue_total          BIGINT NOT NULL,
    receivables_begin      BIGINT NOT NULL,
    credit_sales           BIGINT NOT NULL,
    dso_days               DOUBLE PRECISION,
    best_dso_days          DOUBLE PRECISION,
    cei_percent            DOUBLE PRECISION,
    avg_days_delinquent    DOUBLE PRECISION,
    promises_kept          BIGINT NOT NULL,
    promises_broken        BIGINT NOT NULL,
    promises_open          BIGINT NOT NULL,
    promised_kept_amount   BIGINT NOT NULL,
    promised_broken_amount BIGINT NOT NULL,
    promised_open_amount   BIGINT NOT NULL,
    PRIMARY KEY (as_of, currency, segment)
);

-- A snapshot is a record of what the figures were: never changed, never removed.
CREATE FUNCTION dashboard_snapshots_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
END;
$$;
CREATE TRIGGER dashboard_snapshots_no_update BEFORE UPDATE OR DELETE ON dashboard_snapshots
    FOR EACH ROW EXECUTE FUNCTION dashboard_snapshots_append_only();
CREATE TRIGGER dashboard_snapshots_no_truncate BEFORE TRUNCATE ON dashboard_snapshots
    FOR EACH STATEMENT EXECUTE FUNCTION dashboard_snapshots_append_only();
CREATE TRIGGER dashboard_snapshot_rows_no_update BEFORE UPDATE OR DELETE ON dashboard_snapshot_rows
    FOR EACH ROW EXECUTE FUNCTION dashboard_snapshots_append_only();
CREATE TRIGGER dashboard_snapshot_rows_no_truncate BEFORE TRUNCATE ON dashboard_snapshot_rows
    FOR EACH STATEMENT EXECUTE FUNCTION dashboard_snapshots_append_only();
