-- argent documents (SQLite): prompts and policies as versioned documents. Each (kind, name)
-- has versions 1, 2, 3, …; a version's text never changes once written (a new text is a
-- new version), and at most one version per (kind, name) is active — the one the agent
-- uses. Instants are RFC 3339 TEXT in UTC.

CREATE TABLE documents (
    kind         TEXT NOT NULL CHECK (kind IN ('prompt', 'policy')),
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

-- At most one active version per document.
CREATE UNIQUE INDEX documents_one_active ON documents(kind, name) WHERE status = 'active';

-- Versions are append-only: only the status and its activation stamp may change.
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
