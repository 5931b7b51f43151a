-- argent eval runs, per case (SQLite): the documents a run used, and each case's trace.
--
-- `eval_runs.documents` is the JSON list of the exact prompt and policy versions a run
-- evaluated ({kind, name, version, sha256}); NULL for runs recorded before it was kept or
-- from files (their report's labels carry the set hashes).
-- `eval_run_cases` keeps one row per case of a finished run: the case's trace (JSON TEXT
-- written by argent-evals: inbound messages, tool calls with arguments, status, rules and
-- what the model was told, replies, drafted emails), written in the transaction that
-- finishes the run, so a drill-down page reads one case rather than the whole report.

ALTER TABLE eval_runs ADD COLUMN documents TEXT;

CREATE TABLE eval_run_cases (
    run_id  TEXT NOT NULL REFERENCES eval_runs(id) ON DELETE CASCADE,
    case_id TEXT NOT NULL,
    title   TEXT NOT NULL,
    passed  BOOLEAN NOT NULL,
    trace   TEXT NOT NULL,
    PRIMARY KEY (run_id, case_id)
);

-- The pass-rate trend reads finished runs newest first.
CREATE INDEX eval_runs_status_started ON eval_runs(status, started_at);
