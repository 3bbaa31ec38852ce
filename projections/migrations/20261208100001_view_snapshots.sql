-- Snapshots of the read models at positions of the log, for reading the views as of a
-- past moment (DESIGN.md §6, time travel): the nearest snapshot at or before the moment
-- is restored into a private session's temporary tables and the events after it are
-- replayed, never touching the live tables.
--
-- A snapshot holds exactly the state after every event up to and including `position`,
-- computed by replaying the log (never copied from the live tables, whose batches follow
-- commit order). `schema` fingerprints the columns of the view's tables: a snapshot taken
-- before a migration changed them is not used.
CREATE TABLE view_snapshots (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    view           text NOT NULL,
    position       bigint NOT NULL CHECK (position >= 0),
    -- When the event at `position` was recorded (NULL for the empty log).
    recorded_until timestamptz,
    schema         text NOT NULL,
    row_count      bigint NOT NULL CHECK (row_count >= 0),
    taken_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (view, schema, position)
);

-- A snapshot's rows, per table, in chunks of JSON objects (one per row), which
-- `jsonb_populate_recordset` turns back into rows of the same table.
CREATE TABLE view_snapshot_chunks (
    snapshot_id bigint NOT NULL REFERENCES view_snapshots (id) ON DELETE CASCADE,
    table_name  text NOT NULL,
    chunk       integer NOT NULL CHECK (chunk >= 0),
    rows        jsonb NOT NULL,
    PRIMARY KEY (snapshot_id, table_name, chunk)
);
