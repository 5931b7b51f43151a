-- argent approval bundles: an email that confirms (or offers the terms of) an action still
-- waiting for a person is held with that action's approval item and decided with it, in one
-- transaction: rejecting the action rejects the email; approving it executes the action and
-- then the email, re-judged. `bundle_of` names the action's item; NULL for an item on its own.
ALTER TABLE approvals ADD COLUMN bundle_of TEXT REFERENCES approvals(id);
CREATE INDEX approvals_bundle ON approvals(bundle_of) WHERE bundle_of IS NOT NULL;
-- The account's refused calls are read when an email is judged (what it may not confirm).
CREATE INDEX tool_calls_customer ON tool_calls(customer_id, status);
