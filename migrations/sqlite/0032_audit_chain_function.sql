-- PostgreSQL only (the chaining of staged audit events moves into a function; see
-- migrations/postgres/0032_audit_chain_function.sql). Nothing changes here.
SELECT 1;
