-- argent procedures (SQLite): dunning procedures become a third kind of versioned document,
-- and each account's place in its procedure is stored.
--
-- 1. documents.kind accepts 'procedure'. SQLite cannot alter a CHECK constraint, so the
--    table is rebuilt: the rows are copied unchanged (the append-only triggers are dropped
--    first and recreated after, so the copy is not refused), and the partial unique index
--    and the triggers are recreated exactly as 0004 made them.
DROP TRIGGER documents_version_immutable;
DROP TRIGGER documents_never_back_to_draft;
DROP TRIGGER documents_no_delete;
DROP INDEX documents_one_active;
ALTER TABLE documents RENAME TO documents_0011;

CREATE TABLE documents (
    kind         TEXT NOT NULL CHECK (kind IN ('prompt', 'policy', 'procedure')),
    name         TEXT NOT NULL CHECK (length(name) > 0),
    version      INTEGER NOT NULL CHECK (version >= 1),
    body         TEXT NOT NULL,
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64),
    status       TEXT NOT NULL CHECK (status IN ('draft', 'active', 'retired')),
    author       TEXT NOT NULL,
    note         TEXT,
    created_at   TEXT NOT NULL,
    activated_at TEXT,
    activated_by TEXT,
    PRIMARY KEY (kind, name, version)
);
INSERT INTO documents (kind, name, version, body, sha256, status, author, note, created_at,
                       activated_at, activated_by)
SELECT kind, name, version, body, sha256, status, author, note, created_at, activated_at,
       activated_by
FROM documents_0011;
DROP TABLE documents_0011;

CREATE UNIQUE INDEX documents_one_active ON documents(kind, name) WHERE status = 'active';
CREATE TRIGGER documents_version_immutable
BEFORE UPDATE OF kind, name, version, body, sha256, author, note, created_at ON documents
BEGIN
    SELECT RAISE(ABORT, 'documents are append-only: a version''s text and authorship cannot change');
END;
CREATE TRIGGER documents_never_back_to_draft BEFORE UPDATE OF status ON documents
WHEN NEW.status = 'draft' AND OLD.status <> 'draft'
BEGIN
    SELECT RAISE(ABORT, 'a document version that was activated cannot become a draft again');
END;
CREATE TRIGGER documents_no_delete BEFORE DELETE ON documents
BEGIN
    SELECT RAISE(ABORT, 'documents are append-only: DELETE refused');
END;

-- 2. Where each account stands in its procedure (argent_procedure::State), written by the
--    scheduler (`argent tick`). One row per customer the scheduler has planned.
CREATE TABLE procedure_state (
    customer_id       TEXT PRIMARY KEY,
    status            TEXT NOT NULL CHECK (status IN ('idle', 'active', 'paused', 'finished', 'unassigned')),
    procedure         TEXT,
    version           INTEGER NOT NULL DEFAULT 0 CHECK (version >= 0),
    cycle             INTEGER NOT NULL DEFAULT 0 CHECK (cycle >= 0),
    anchor_due        TEXT,
    cycle_started     TEXT,
    current_step      TEXT,
    current_index     INTEGER,
    current_at        TEXT,
    last_step_at      TEXT,
    next_step         TEXT,
    next_at           TEXT,
    paused_reason     TEXT,
    detail            TEXT,
    followed_promises TEXT NOT NULL DEFAULT '[]',   -- JSON array of promise ids
    updated_at        TEXT NOT NULL
);
CREATE INDEX procedure_state_summary ON procedure_state(procedure, status, current_step);
