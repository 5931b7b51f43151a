-- argent approval queue facets (SQLite): what the collectors' workbench filters and
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
    segment = COALESCE(json_extract(context, '$.segment'), ''),
    jurisdiction = COALESCE(json_extract(context, '$.customer.jurisdiction'), ''),
    rule_ids = COALESCE((SELECT ' ' || group_concat(json_extract(r.value, '$.id'), ' ') || ' '
                         FROM json_each(decision, '$.rules') AS r), ''),
    search = lower(customer_id || ' ' || COALESCE(json_extract(context, '$.customer.name'), '') || ' ' ||
                   COALESCE((SELECT group_concat(json_extract(i.value, '$.number'), ' ')
                             FROM json_each(context, '$.invoices') AS i), '') || ' ' ||
                   COALESCE(json_extract(context, '$.trigger.from'), ''));
