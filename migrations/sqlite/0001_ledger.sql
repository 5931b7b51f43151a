-- argent ledger schema (SQLite). Dates are ISO-8601 TEXT, instants RFC 3339 TEXT in UTC,
-- money is INTEGER minor units beside a currency code.
CREATE TABLE customers (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    tier                 TEXT NOT NULL,
    jurisdiction         TEXT NOT NULL,
    time_zone            TEXT NOT NULL,
    contacts             TEXT NOT NULL,          -- JSON array of contacts
    cease_contact        BOOLEAN NOT NULL DEFAULT FALSE,
    disputed             BOOLEAN NOT NULL DEFAULT FALSE,
    bankrupt             BOOLEAN NOT NULL DEFAULT FALSE,
    attorney_represented BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at           TEXT NOT NULL
);

CREATE TABLE invoices (
    number       TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL REFERENCES customers(id),
    issue_date   TEXT NOT NULL,
    due_date     TEXT NOT NULL,
    currency     TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    disputed     BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX invoices_customer ON invoices(customer_id);

CREATE TABLE payments (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL REFERENCES customers(id),
    invoice_number TEXT NOT NULL REFERENCES invoices(number),
    currency       TEXT NOT NULL,
    amount_minor   INTEGER NOT NULL CHECK (amount_minor > 0),
    received_on    TEXT NOT NULL
);
CREATE INDEX payments_customer ON payments(customer_id);
CREATE INDEX payments_invoice ON payments(invoice_number);

CREATE TABLE promises (
    id              TEXT PRIMARY KEY,
    customer_id     TEXT NOT NULL REFERENCES customers(id),
    invoice_numbers TEXT NOT NULL,               -- JSON array
    currency        TEXT NOT NULL,
    amount_minor    INTEGER NOT NULL CHECK (amount_minor > 0),
    promised_date   TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    status          TEXT NOT NULL
);
CREATE INDEX promises_customer ON promises(customer_id);

CREATE TABLE cases (
    id                 TEXT PRIMARY KEY,
    customer_id        TEXT NOT NULL REFERENCES customers(id),
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    invoice_numbers    TEXT NOT NULL,            -- JSON array
    disputed_currency  TEXT,
    disputed_minor     INTEGER,
    summary            TEXT NOT NULL,
    opened_at          TEXT NOT NULL
);
CREATE INDEX cases_customer ON cases(customer_id);

CREATE TABLE payment_plans (
    id                 TEXT PRIMARY KEY,
    customer_id        TEXT NOT NULL REFERENCES customers(id),
    currency           TEXT NOT NULL,
    balance_minor      INTEGER NOT NULL,
    discount_minor     INTEGER NOT NULL,
    down_payment_minor INTEGER NOT NULL,
    start_date         TEXT NOT NULL,
    installments       TEXT NOT NULL,            -- JSON array of {due_date, amount_minor}
    status             TEXT NOT NULL
);
CREATE INDEX payment_plans_customer ON payment_plans(customer_id);

CREATE TABLE imports (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    source      TEXT NOT NULL,
    customers   INTEGER NOT NULL,
    invoices    INTEGER NOT NULL,
    payments    INTEGER NOT NULL,
    imported_at TEXT NOT NULL
);
