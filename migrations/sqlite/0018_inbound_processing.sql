-- argent inbound mail processing (issue #14): what processing a received message found,
-- kept on its inbound_mail row next to the outcome the shared contract (0015) defines.
--
-- from_addr / subject: the sender (lowercased) and subject, for the unmatched-mail queue.
-- kind: human | auto_reply | out_of_office | hard_bounce | soft_bounce (argent_mail's
-- MailKind label). matched_by: thread | sender | assigned (how customer_id was found).
-- auth: the topmost Authentication-Results verdicts as JSON ({"spf":"pass",...}).
-- run_id: the agent run the message started, if any.
ALTER TABLE inbound_mail ADD COLUMN from_addr TEXT;
ALTER TABLE inbound_mail ADD COLUMN subject TEXT;
ALTER TABLE inbound_mail ADD COLUMN kind TEXT;
ALTER TABLE inbound_mail ADD COLUMN matched_by TEXT;
ALTER TABLE inbound_mail ADD COLUMN auth TEXT;
ALTER TABLE inbound_mail ADD COLUMN run_id TEXT;
