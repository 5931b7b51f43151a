-- argent four eyes on documents (PostgreSQL): activating a prompt, policy or procedure version
-- is a request by one person and an approval by another (argent-store `doc_requests.rs`),
-- and a policy activation re-judges the pending approval items (`approval_rejudgements`).
--
-- document_requests: one request to make `version` the active version of (kind, name).
-- `from_version` is the version that was active when it was requested (approving refuses
-- when another version has become active since). `is_rollback`: the request is a rollback to
-- the previously active version. `requested_by` / `decided_by` are user names (not
-- `role:name`, so a user whose role changed is still the same person); the CHECK makes
-- an approval by the requester impossible even for a row written around the store. A
-- requester may withdraw their own request (status `withdrawn`). At most one pending
-- request per document (partial unique index).
CREATE TABLE document_requests (
    id             TEXT PRIMARY KEY,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    version        BIGINT NOT NULL,
    from_version   BIGINT,
    is_rollback    BOOLEAN NOT NULL DEFAULT FALSE,
    reason         TEXT NOT NULL CHECK (length(trim(reason)) > 0),
    requested_by   TEXT NOT NULL,
    requested_role TEXT NOT NULL,
    requested_at   TIMESTAMPTZ NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected', 'withdrawn')),
    decided_by     TEXT,
    decided_role   TEXT,
    decided_at     TIMESTAMPTZ,
    decision_note  TEXT,
    FOREIGN KEY (kind, name, version) REFERENCES documents(kind, name, version),
    CHECK (status <> 'approved' OR (decided_by IS NOT NULL AND decided_by <> requested_by))
);
CREATE UNIQUE INDEX document_requests_one_pending ON document_requests(kind, name)
    WHERE status = 'pending';
CREATE INDEX document_requests_status ON document_requests(status, requested_at);

-- approval_rejudgements: a pending approval item judged again when a new policy version
-- became active, where the outcome or the deciding rules changed: what it was queued
-- with, what the new version decides, the deciding rules (JSON [{id, message}]), and
-- whether the item was closed (a deny closes it; anything else leaves it pending).
CREATE TABLE approval_rejudgements (
    id             TEXT PRIMARY KEY,
    approval_id    TEXT NOT NULL REFERENCES approvals(id),
    policy         TEXT NOT NULL,
    policy_version BIGINT NOT NULL,
    was            TEXT NOT NULL,
    now_outcome    TEXT NOT NULL,
    rules          TEXT NOT NULL,
    closed         BOOLEAN NOT NULL,
    actor          TEXT NOT NULL,
    judged_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX approval_rejudgements_item ON approval_rejudgements(approval_id, judged_at);
