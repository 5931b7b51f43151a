-- argent documents (PostgreSQL): prompts and policies as versioned documents. Each
-- (kind, name) has versions 1, 2, 3, …; a version's text never changes once written (a new
-- text is a new version), and at most one version per (kind, name) is active — the one
-- the agent uses.

CREATE TABLE documents (
    kind         TEXT NOT NULL CHECK (kind IN ('prompt', 'policy')),
    name         TEXT NOT NULL CHECK (length(name) > 0),
    version      BIGINT NOT NULL CHECK (version >= 1),
    body         TEXT NOT NULL,
    sha256       TEXT NOT NULL CHECK (length(sha256) = 64),
    status       TEXT NOT NULL CHECK (status IN ('draft', 'active', 'retired')),
    author       TEXT NOT NULL,
    note         TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    activated_at TIMESTAMPTZ,
    activated_by TEXT,
    PRIMARY KEY (kind, name, version)
);

-- At most one active version per document.
CREATE UNIQUE INDEX documents_one_active ON documents(kind, name) WHERE status = 'active';

-- Versions are append-only: only the status and its activation stamp may change.
CREATE FUNCTION documents_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'documents are append-only: % refused', TG_OP;
    END IF;
    IF NEW.kind IS DISTINCT FROM OLD.kind OR NEW.name IS DISTINCT FROM OLD.name
       OR NEW.version IS DISTINCT FROM OLD.version OR NEW.body IS DISTINCT FROM OLD.body
       OR NEW.sha256 IS DISTINCT FROM OLD.sha256 OR NEW.author IS DISTINCT FROM OLD.author
       OR NEW.note IS DISTINCT FROM OLD.note OR NEW.created_at IS DISTINCT FROM OLD.created_at THEN
        RAISE EXCEPTION 'documents are append-only: a version''s text and authorship cannot change';
    END IF;
    IF NEW.status = 'draft' AND OLD.status <> 'draft' THEN
        RAISE EXCEPTION 'a document version that was activated cannot become a draft again';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER documents_guard BEFORE UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION documents_guard();
CREATE TRIGGER documents_no_truncate BEFORE TRUNCATE ON documents
    FOR EACH STATEMENT EXECUTE FUNCTION documents_guard();
