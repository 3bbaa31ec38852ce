-- The log as of a moment: the last event recorded at or before a time (time travel,
-- DESIGN.md §6) is found through this index rather than by scanning the log.
CREATE INDEX events_recorded_at ON events (recorded_at, position);
