-- argent approval queue facets (PostgreSQL): what the collectors' workbench filters and
-- searches on, taken from the item's JSON when it is queued (argent-store `insert_approval`)
-- so the queue's filters are plain column comparisons. rule_ids is ' id1 id2 ' (spaces
-- around each id, so `LIKE '% id %'` matches a whole id); search is the lower-cased
-- customer id and name, the open invoice numbers and the sender of the message that
-- started the run.
ALTER TABLE approvals ADD COLUMN segment TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN jurisdiction TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN rule_ids TEXT NOT NULL DEFAULT '';
ALTER TABLE approvals ADD COLUMN search TEXT NOT NULL DEFAULT '';
UPDATE approvals SET
    segment = COALESCE(context::jsonb ->> 'segment', ''),
    jurisdiction = COALESCE(context::jsonb -> 'customer' ->> 'jurisdiction', ''),
    rule_ids = COALESCE((SELECT ' ' || string_agg(r ->> 'id', ' ') || ' '
                         FROM jsonb_array_elements(CASE WHEN jsonb_typeof(decision::jsonb -> 'rules') = 'array'
                                                        THEN decision::jsonb -> 'rules' ELSE '[]'::jsonb END) AS r), ''),
    search = lower(customer_id || ' ' || COALESCE(context::jsonb -> 'customer' ->> 'name', '') || ' ' ||
                   COALESCE((SELECT string_agg(i ->> 'number', ' ')
                             FROM jsonb_array_elements(CASE WHEN jsonb_typeof(context::jsonb -> 'invoices') = 'array'
                                                            THEN context::jsonb -> 'invoices' ELSE '[]'::jsonb END) AS i), '') || ' ' ||
                   COALESCE(context::jsonb -> 'trigger' ->> 'from', ''));
