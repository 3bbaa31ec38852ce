-- An append becomes one SQL statement (EventStore::append) instead of a PL/pgSQL
-- function over three tables. The events table guards itself:
--
-- * the stream version: UNIQUE (stream_id, version) already refuses a second event at
--   a version, and the append computes each stream's version from its current maximum;
-- * the command id: UNIQUE (command_id, command_seq), where command_seq numbers a
--   command's events from 1, refuses a second commit of a command. Events are never
--   deleted, so idempotency stays permanent.
--
-- event_streams and event_commands were written on every append and duplicated what
-- the events table holds; profiling showed the function and those writes costing
-- twice the time of the event insert itself.

ALTER TABLE events ADD COLUMN command_seq integer;

ALTER TABLE events DISABLE TRIGGER events_no_update_or_delete;
UPDATE events e
SET command_seq = numbered.seq
FROM (
    SELECT position, row_number() OVER (PARTITION BY command_id ORDER BY position) AS seq
    FROM events
) AS numbered
WHERE numbered.position = e.position;
ALTER TABLE events ENABLE TRIGGER events_no_update_or_delete;

ALTER TABLE events
    ALTER COLUMN command_seq SET NOT NULL,
    ADD CONSTRAINT events_command_seq_positive CHECK (command_seq > 0),
    ADD CONSTRAINT events_command_once UNIQUE (command_id, command_seq);
DROP INDEX events_by_command;

DROP FUNCTION append_events(
    uuid, uuid, uuid, text, text, text[], bigint[], integer[], uuid[], text[], integer[],
    timestamptz[], bytea[]
);
DROP TABLE event_commands;
DROP TABLE event_streams;

-- Raised by an append whose expected version does not match: SQLSTATE NR409 with
-- DETAIL '<actual version> <stream id>', which rolls the whole append back. Called only
-- on that path, so the append itself stays plain SQL.
CREATE FUNCTION noroshi_wrong_expected_version(actual bigint, stream_id text)
RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wrong expected version'
        USING ERRCODE = 'NR409',
              DETAIL = format('%s %s', actual, stream_id);
END
$$;
