-- The highest event-store position a projection has consumed, counting the events of
-- streams it does not read: its lag is measured against it. Committed with the
-- checkpoint.
ALTER TABLE projection_checkpoints ADD COLUMN position bigint NOT NULL DEFAULT 0 CHECK (position >= 0);

-- Lag is now measured against the checkpoint; nothing looks up versions by position.
DROP INDEX projection_stream_versions_position;
