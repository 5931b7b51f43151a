-- Audited transactions no longer hold the chain's head through their own durable commit.
-- A transaction writes its events here, unchained, and commits (durably, in parallel with
-- every other transaction: PostgreSQL flushes concurrent commits together); then, under a
-- transaction-scoped advisory lock, one statement moves every staged event into
-- `audit_events`, chained in `id` order, and moves the head. Whoever takes the lock next
-- chains everything staged by then, so one chaining commit covers many transactions, and a
-- caller whose events another caller already chained writes nothing (no flush). A process
-- that dies between the two leaves its events here; the next chaining (any audited commit,
-- or `audit verify`) takes them. `audit_events.staged_id` says which staged row an event
-- came from, so a caller can read back its own events' seq and hashes.
-- A transaction's staged events share one `grp`, taken when it stages them (right before
-- its COMMIT), so the events of one transaction stay adjacent in the chain, and a
-- transaction that saw another's commit is chained after it.
CREATE SEQUENCE audit_staged_group;
CREATE TABLE audit_staged (
    id          BIGSERIAL PRIMARY KEY,
    grp         BIGINT NOT NULL,
    ord         INTEGER NOT NULL,
    prefix      TEXT NOT NULL,
    at          TIMESTAMPTZ NOT NULL,
    run_id      TEXT,
    customer_id TEXT,
    actor       TEXT NOT NULL,
    kind        TEXT NOT NULL,
    rule_ids    TEXT NOT NULL
);
ALTER TABLE audit_events ADD COLUMN staged_id BIGINT;
CREATE UNIQUE INDEX audit_events_staged_id ON audit_events (staged_id) WHERE staged_id IS NOT NULL;
-- Staged events are moved (deleted here, inserted chained there), never changed.
CREATE FUNCTION audit_staged_unchanged() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_staged: a staged audit event is never changed: UPDATE refused';
END
$$;
CREATE TRIGGER audit_staged_no_update BEFORE UPDATE ON audit_staged
    FOR EACH ROW EXECUTE FUNCTION audit_staged_unchanged();
