-- Delta checkpoints: a run's conversation is saved as it grows, one row per message, in
-- the transaction of the step that produced it (with the step's tool calls, audit events
-- and side effects). `runs.state` then holds only what is not append-only: how many
-- messages the checkpoint has and the count of turns with only invalid calls. A tool
-- result's row carries what became of the call (`outcome`, the agent's CallOutcome), so a
-- resumed run rebuilds its outcomes too. Runs checkpointed whole before this migration
-- keep their state in `runs.state` and are resumed from it.
CREATE TABLE run_messages (
    run_id   TEXT NOT NULL,
    idx      INTEGER NOT NULL,
    message  TEXT NOT NULL,     -- JSON: the chat message
    outcome  TEXT,              -- JSON: the call's outcome, for a tool result
    PRIMARY KEY (run_id, idx)
) WITHOUT ROWID;
