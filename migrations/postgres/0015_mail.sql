-- argent real email, shared contract (issue #14) (postgres).
--
-- outbox.message_id: the stable Message-ID (without angle brackets) chosen for an email
-- before it is first sent, so a retry after a crash sends the same id and inbound replies
-- can be matched to it by thread. in_reply_to / references_hdr: the customer's message it
-- answers (message ids, references space-separated), NULL for a first contact.
ALTER TABLE outbox ADD COLUMN message_id TEXT;
ALTER TABLE outbox ADD COLUMN in_reply_to TEXT;
ALTER TABLE outbox ADD COLUMN references_hdr TEXT;
CREATE UNIQUE INDEX outbox_message_id ON outbox(message_id);

-- inbound_mail: every message received (IMAP, the /api/inbound webhook, the CLI), kept raw
-- and processed as a separate step, like the outbox. Receiving is exactly once:
-- dedupe_key is the Message-ID (without angle brackets) or, for a message without one,
-- 'sha256:' and the raw message's hash; an IMAP message is also unique by (mailbox,
-- uidvalidity, uid). status: new (received, not yet processed) -> processed (matched to a
-- customer and handled) | unmatched (waiting for a collector to assign it) | ignored
-- (recognised without the model and needing nothing more) | failed (error says why).
CREATE TABLE inbound_mail (
    id           TEXT PRIMARY KEY,
    dedupe_key   TEXT NOT NULL UNIQUE,
    message_id   TEXT,
    source       TEXT NOT NULL CHECK (source IN ('imap', 'webhook', 'cli')),
    mailbox      TEXT,
    uidvalidity  BIGINT,
    uid          BIGINT,
    raw          BYTEA NOT NULL,
    raw_sha256   TEXT NOT NULL,
    received_at  TIMESTAMPTZ NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('new', 'processed', 'unmatched', 'ignored', 'failed')),
    customer_id  TEXT,
    processed_at TIMESTAMPTZ,
    error        TEXT
);
CREATE UNIQUE INDEX inbound_mail_uid ON inbound_mail(mailbox, uidvalidity, uid);
CREATE INDEX inbound_mail_status ON inbound_mail(status, received_at);
CREATE INDEX inbound_mail_customer ON inbound_mail(customer_id, received_at);

-- mailbox_checkpoints: per IMAP mailbox, the UIDVALIDITY and the highest UID received
-- (advanced in the same transaction as the inbound_mail rows it covers).
CREATE TABLE mailbox_checkpoints (
    mailbox     TEXT PRIMARY KEY,
    uidvalidity BIGINT NOT NULL,
    last_uid    BIGINT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);
