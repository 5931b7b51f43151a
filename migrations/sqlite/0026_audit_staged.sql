-- PostgreSQL only (its audited transactions stage their events and chain them after the
-- commit; see migrations/postgres/0026_audit_staged.sql). SQLite's single writer chains
-- in the transaction itself; nothing changes here.
SELECT 1;
