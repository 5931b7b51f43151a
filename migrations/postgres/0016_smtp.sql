-- argent outbound mail over SMTP (postgres), issue #14.
--
-- 1. outbox.status gains 'failed' (the server refused the message for good: a 5xx, whose
--    answer is in last_error) and 'uncertain' (an attempt was recorded before DATA and
--    never concluded: the process died somewhere between handing the message to the
--    server and recording the answer, so whether the server took it is unknown; it is
--    not resent automatically, a collector decides). New columns: attempts (SMTP attempts
--    started), next_attempt_at (a temporary failure or a rate limit defers the next one),
--    last_error (the server's last answer or the connection error).
ALTER TABLE outbox DROP CONSTRAINT outbox_status_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_status_check
    CHECK (status IN ('pending', 'sent', 'failed', 'uncertain'));
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN next_attempt_at TIMESTAMPTZ;
ALTER TABLE outbox ADD COLUMN last_error TEXT;

-- 2. outbox_attempts: one row per SMTP attempt, written and committed before the message
--    is handed to the server (before MAIL FROM, so before DATA), concluded after the
--    server's answer. An attempt with no outcome is in flight, or its process died: at
--    most one per email (the partial unique index), which is also what keeps two
--    deliverers from sending the same email at once. Per-domain rate limits count the
--    attempts started to a recipient domain in the last minute, across processes.
--    outcome: sent (250) | retry (4xx or a connection error; next_attempt_at is set) |
--    failed (5xx) | uncertain (found unconcluded after its lease).
CREATE TABLE outbox_attempts (
    id          TEXT PRIMARY KEY,
    outbox_id   TEXT NOT NULL REFERENCES outbox(id),
    attempt     BIGINT NOT NULL CHECK (attempt >= 1),
    message_id  TEXT NOT NULL,
    domain      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    outcome     TEXT CHECK (outcome IN ('sent', 'retry', 'failed', 'uncertain')),
    response    TEXT,
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
);
CREATE UNIQUE INDEX outbox_attempts_open ON outbox_attempts(outbox_id) WHERE outcome IS NULL;
CREATE INDEX outbox_attempts_domain ON outbox_attempts(domain, started_at);
CREATE INDEX outbox_attempts_email ON outbox_attempts(outbox_id, attempt);
