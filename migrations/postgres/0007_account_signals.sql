-- argent account signals (PostgreSQL): what the inbound classifier (argent_policy::inbound)
-- recognised in a customer's message (opt-out, cease contact, dispute, attorney,
-- bankruptcy, deceased, third-party writer). Recognising one sets its pending fact on the
-- customer in the same transaction; a person confirms or clears it (one conditional
-- UPDATE on `pending`). One signal per customer, kind and message: the same message
-- twice records nothing new.
CREATE TABLE account_signals (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL REFERENCES customers(id),
    kind           TEXT NOT NULL CHECK (kind IN ('opt_out', 'cease_contact', 'dispute',
                       'attorney', 'bankruptcy', 'deceased', 'third_party')),
    -- The address the message came from.
    contact        TEXT,
    -- The sentence that caused it (bounded by the classifier).
    excerpt        TEXT NOT NULL,
    -- SHA-256 (hex) of the message: sender, subject and body.
    message_sha256 TEXT NOT NULL,
    run_id         TEXT,
    -- JSON (argent_core::SignalDetail): what recognising it changed beyond the fact.
    detail         TEXT NOT NULL DEFAULT '{}',
    detected_at    TIMESTAMPTZ NOT NULL,
    status         TEXT NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'confirmed', 'cleared')),
    decided_by     TEXT,
    decided_role   TEXT,
    decided_at     TIMESTAMPTZ,
    note           TEXT,
    UNIQUE (customer_id, kind, message_sha256)
);
CREATE INDEX account_signals_status ON account_signals(status, detected_at, id);
CREATE INDEX account_signals_customer ON account_signals(customer_id, kind, status);
