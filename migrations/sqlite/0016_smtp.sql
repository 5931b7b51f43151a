-- argent outbound mail over SMTP (sqlite), issue #14.
--
-- 1. outbox.status gains 'failed' (the server refused the message for good: a 5xx, whose
--    answer is in last_error) and 'uncertain' (an attempt was recorded before DATA and
--    never concluded: the process died somewhere between handing the message to the
--    server and recording the answer, so whether the server took it is unknown; it is
--    not resent automatically, a collector decides). SQLite cannot alter a CHECK
--    constraint, so the table is rebuilt with the rows copied unchanged (nothing else
--    refers to it: no foreign key, trigger or view), and its indexes recreated as 0002
--    and 0015 made them. New columns: attempts (SMTP attempts started), next_attempt_at
--    (a temporary failure or a rate limit defers the next one), last_error (the server's
--    last answer or the connection error).
DROP INDEX outbox_pending;
DROP INDEX outbox_customer;
DROP INDEX outbox_message_id;
ALTER TABLE outbox RENAME TO outbox_0015;

CREATE TABLE outbox (
    id              TEXT PRIMARY KEY,
    call_id         TEXT NOT NULL UNIQUE,
    customer_id     TEXT NOT NULL,
    to_addr         TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed', 'uncertain')),
    sent_at         TEXT,
    message_id      TEXT,
    in_reply_to     TEXT,
    references_hdr  TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error      TEXT
);
INSERT INTO outbox (id, call_id, customer_id, to_addr, subject, body, created_at, status,
                    sent_at, message_id, in_reply_to, references_hdr)
SELECT id, call_id, customer_id, to_addr, subject, body, created_at, status, sent_at,
       message_id, in_reply_to, references_hdr
FROM outbox_0015;
DROP TABLE outbox_0015;
CREATE INDEX outbox_pending ON outbox(status, created_at, id);
CREATE INDEX outbox_customer ON outbox(customer_id);
CREATE UNIQUE INDEX outbox_message_id ON outbox(message_id);

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
    attempt     INTEGER NOT NULL CHECK (attempt >= 1),
    message_id  TEXT NOT NULL,
    domain      TEXT NOT NULL,
    owner       TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    finished_at TEXT,
    outcome     TEXT CHECK (outcome IN ('sent', 'retry', 'failed', 'uncertain')),
    response    TEXT,
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
);
CREATE UNIQUE INDEX outbox_attempts_open ON outbox_attempts(outbox_id) WHERE outcome IS NULL;
CREATE INDEX outbox_attempts_domain ON outbox_attempts(domain, started_at);
CREATE INDEX outbox_attempts_email ON outbox_attempts(outbox_id, attempt);
