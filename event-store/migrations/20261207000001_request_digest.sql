-- The digest of the request a command came from, on each of its events. A command id
-- committed before answers a retry with the original result only when the retry's
-- digest is the same (or either is unknown: events appended before this column, or
-- appends that give none); another request under the same command id is refused.
ALTER TABLE events ADD COLUMN request_digest bytea;
