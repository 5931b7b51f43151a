-- The guard of a queued write that must change a row (argent_store::tx::PgTx): a
-- transaction's writes go to the server together, with the values as literals, and one
-- that must change a row (else the operation's own error, such as NotFound or Conflict) is
-- sent as `WITH argent_w AS (<write> RETURNING 1) SELECT 1 FROM (SELECT count(*) AS n FROM
-- argent_w) c WHERE NOT argent_expect_changed(<k>, c.n)`. Changing no row raises SQLSTATE
-- AR001 with the write's number k, which stops the query before its COMMIT; the client
-- reports the operation's error for k.
CREATE FUNCTION argent_expect_changed(k integer, n bigint) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    IF n = 0 THEN
        RAISE EXCEPTION 'argent: queued write %', k USING ERRCODE = 'AR001';
    END IF;
    RETURN true;
END
$$;
