-- PostgreSQL only (the guard of a queued write that must change a row; see
-- migrations/postgres/0033_expect_changed.sql). SQLite's writer guards its queued writes
-- through a TEMP table of its own connection (argent_store::tx). Nothing changes here.
SELECT 1;
