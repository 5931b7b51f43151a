-- The chaining of staged audit events (0026) as a function, linear in the number of staged
-- events. The statement it replaces computed the chain in a recursive query that read the
-- i-th prefix out of one array of all prefixes, which costs O(i) per element: quadratic in
-- the events staged at once, so a transaction staging 50,000 events (a bulk seed, a large
-- import) took many minutes to chain. The caller holds the chain's advisory lock (taken in
-- the same transaction, before this runs); under READ COMMITTED each statement here sees
-- every staged row committed before it started, and only rows this call chained are
-- deleted (by id), so a row staged while it runs is left for the next chaining.
-- hash = sha256(prev_hash || prefix || seq || '}'), as argent_store::audit computes it.
CREATE FUNCTION audit_chain_staged_rows() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    h_seq  bigint;
    h_hash text;
    r      record;
    nxt    text;
    ids    bigint[] := '{}';
    seqs   bigint[] := '{}';
    prevs  text[] := '{}';
    hashes text[] := '{}';
BEGIN
    SELECT seq, hash INTO h_seq, h_hash FROM audit_head WHERE id = 1;
    FOR r IN SELECT id, prefix FROM audit_staged ORDER BY grp, ord LOOP
        h_seq := h_seq + 1;
        nxt := encode(sha256(convert_to(h_hash || r.prefix || h_seq::text || '}', 'UTF8')), 'hex');
        ids := ids || r.id;
        seqs := seqs || h_seq;
        prevs := prevs || h_hash;
        hashes := hashes || nxt;
        h_hash := nxt;
    END LOOP;
    IF cardinality(ids) = 0 THEN
        RETURN 0;
    END IF;
    INSERT INTO audit_events (seq, at, run_id, customer_id, actor, kind, rule_ids,
                              canonical, prev_hash, hash, staged_id)
    SELECT c.seq, s.at, s.run_id, s.customer_id, s.actor, s.kind, s.rule_ids,
           s.prefix || c.seq::text || '}', c.prev_hash, c.hash, s.id
    FROM unnest(ids, seqs, prevs, hashes) AS c(id, seq, prev_hash, hash)
    JOIN audit_staged s ON s.id = c.id
    ORDER BY c.seq;
    DELETE FROM audit_staged WHERE id = ANY (ids);
    UPDATE audit_head SET seq = h_seq, hash = h_hash WHERE id = 1;
    RETURN cardinality(ids);
END
$$;
