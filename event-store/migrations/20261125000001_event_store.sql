-- The event store: PostgreSQL is the source of truth.
--
-- One append is one transaction (one call of append_events): optimistic concurrency per
-- stream, permanent idempotency by command id, the events and their outbox rows.
-- All or nothing.

-- Every stream that has events, with its current version. Appends lock the row, which
-- serialises writers of one stream and makes `position` increase with `version` inside it.
CREATE TABLE event_streams (
    stream_id  text PRIMARY KEY
               CHECK (stream_id ~ '^[a-z][a-z0-9_]{0,31}-[A-Za-z0-9_-]{1,128}$'),
    version    bigint NOT NULL CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Every committed command id, forever: idempotency is permanent, not a time window.
CREATE TABLE event_commands (
    command_id  uuid PRIMARY KEY,
    recorded_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    -- Unique and increasing, but assigned before commit: NOT commit order.
    position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Writing transaction; (transaction_id, position) is the commit-safe reading order.
    transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id       uuid NOT NULL UNIQUE,
    stream_id      text NOT NULL,
    version        bigint NOT NULL CHECK (version > 0),
    event_type     text NOT NULL,
    schema_version integer NOT NULL CHECK (schema_version > 0),
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    command_id     uuid NOT NULL,
    correlation_id uuid NOT NULL,
    causation_id   uuid,
    actor          text NOT NULL,
    prefecture     text NOT NULL,
    payload        bytea NOT NULL,
    UNIQUE (stream_id, version)
);

CREATE INDEX events_commit_order ON events (transaction_id, position);
CREATE INDEX events_by_command ON events (command_id);

-- Events committed but not yet acknowledged by JetStream. The relay deletes a row only
-- after the JetStream ack of its event.
CREATE TABLE event_outbox (
    position bigint PRIMARY KEY
);

CREATE FUNCTION events_are_immutable() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are immutable' USING ERRCODE = 'NR001';
END
$$;

CREATE TRIGGER events_no_update_or_delete
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_are_immutable();

CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

-- Appends one batch atomically.
--
-- Streams are given in parallel arrays (the caller sorts them by stream id so that
-- concurrent multi-stream appends lock in one global order and cannot deadlock);
-- p_expected is -1 for "any", 0 for "no stream", n > 0 for "exactly version n".
-- Events are given in parallel arrays, p_counts[i] of them for stream i, in order.
--
-- A command id that was already committed returns that command's events with
-- replayed = true and writes nothing. A version mismatch raises SQLSTATE NR409 with
-- DETAIL '<actual version> <stream id>' (0 = the stream does not exist), which rolls
-- back the whole batch.
CREATE FUNCTION append_events(
    p_command_id      uuid,
    p_correlation_id  uuid,
    p_causation_id    uuid,
    p_actor           text,
    p_prefecture      text,
    p_stream_ids      text[],
    p_expected        bigint[],
    p_counts          integer[],
    p_event_ids       uuid[],
    p_event_types     text[],
    p_schema_versions integer[],
    p_occurred_at     timestamptz[],
    p_payloads        bytea[]
) RETURNS TABLE (
    event_id       uuid,
    stream_id      text,
    version        bigint,
    event_position bigint,
    replayed       boolean
)
LANGUAGE plpgsql AS $$
DECLARE
    i           integer;
    first_event integer := 0;
    new_version bigint;
    actual      bigint;
BEGIN
    INSERT INTO event_commands (command_id) VALUES (p_command_id)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY
            SELECT e.event_id, e.stream_id, e.version, e.position, true
            FROM events e
            WHERE e.command_id = p_command_id
            ORDER BY e.position;
        RETURN;
    END IF;

    FOR i IN 1 .. coalesce(array_length(p_stream_ids, 1), 0) LOOP
        new_version := NULL;
        IF p_expected[i] = -1 THEN
            INSERT INTO event_streams AS s (stream_id, version)
            VALUES (p_stream_ids[i], p_counts[i])
            ON CONFLICT ON CONSTRAINT event_streams_pkey
            DO UPDATE SET version = s.version + p_counts[i], updated_at = now()
            RETURNING s.version INTO new_version;
        ELSIF p_expected[i] = 0 THEN
            INSERT INTO event_streams AS s (stream_id, version)
            VALUES (p_stream_ids[i], p_counts[i])
            ON CONFLICT ON CONSTRAINT event_streams_pkey DO NOTHING
            RETURNING s.version INTO new_version;
        ELSE
            UPDATE event_streams AS s
            SET version = s.version + p_counts[i], updated_at = now()
            WHERE s.stream_id = p_stream_ids[i] AND s.version = p_expected[i]
            RETURNING s.version INTO new_version;
        END IF;

        IF new_version IS NULL THEN
            SELECT s.version INTO actual FROM event_streams s WHERE s.stream_id = p_stream_ids[i];
            RAISE EXCEPTION 'wrong expected version'
                USING ERRCODE = 'NR409',
                      DETAIL = format('%s %s', coalesce(actual, 0), p_stream_ids[i]);
        END IF;

        RETURN QUERY
            WITH inserted AS (
                INSERT INTO events AS e (
                    event_id, stream_id, version, event_type, schema_version, occurred_at,
                    command_id, correlation_id, causation_id, actor, prefecture, payload
                )
                SELECT p_event_ids[first_event + n],
                       p_stream_ids[i],
                       new_version - p_counts[i] + n,
                       p_event_types[first_event + n],
                       p_schema_versions[first_event + n],
                       p_occurred_at[first_event + n],
                       p_command_id, p_correlation_id, p_causation_id, p_actor, p_prefecture,
                       p_payloads[first_event + n]
                FROM generate_series(1, p_counts[i]) AS n
                ORDER BY n
                RETURNING e.event_id, e.stream_id, e.version, e.position
            ), outboxed AS (
                INSERT INTO event_outbox (position) SELECT inserted.position FROM inserted
            )
            SELECT inserted.event_id, inserted.stream_id, inserted.version, inserted.position, false
            FROM inserted;

        first_event := first_event + p_counts[i];
    END LOOP;
    -- No NOTIFY here: NOTIFY holds a cluster-wide lock through commit and would serialise
    -- every append. The store wakes the relay after commit instead (EventStore::append).
END
$$;
