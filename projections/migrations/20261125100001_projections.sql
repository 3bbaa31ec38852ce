-- Read models. Each projection owns its tables; a rebuild empties them and replays
-- the log. Everything here can be thrown away and rebuilt from the event store.

-- Where each projection is in the JetStream stream, committed with its effects.
CREATE TABLE projection_checkpoints (
    projection      text PRIMARY KEY,
    stream_sequence bigint NOT NULL CHECK (stream_sequence >= 0),
    -- Set while `noroshi rebuild` replays the log; views refuse to answer meanwhile.
    rebuilding      boolean NOT NULL DEFAULT false,
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- The last version of each source stream a projection applied: an event at or below it
-- is a redelivery or a duplicate and is skipped.
CREATE TABLE projection_stream_versions (
    projection text NOT NULL,
    stream_id  text NOT NULL,
    version    bigint NOT NULL CHECK (version > 0),
    position   bigint NOT NULL,
    PRIMARY KEY (projection, stream_id)
);
-- The highest position a projection reflects, for its lag.
CREATE INDEX projection_stream_versions_position ON projection_stream_versions (projection, position);

-- bed_board: one row per facility, one per (facility, category).
CREATE TABLE bed_board_facilities (
    facility_id   text PRIMARY KEY,
    name          text NOT NULL,
    name_en       text,
    kind          text NOT NULL,
    prefecture    text NOT NULL,
    medical_area  text,
    municipality  text NOT NULL,
    capabilities  text[] NOT NULL,
    active        boolean NOT NULL
);

CREATE TABLE bed_board_beds (
    facility_id  text NOT NULL REFERENCES bed_board_facilities ON DELETE CASCADE,
    category     text NOT NULL,
    secured      integer NOT NULL DEFAULT 0 CHECK (secured >= 0),
    ready        integer NOT NULL DEFAULT 0 CHECK (ready >= 0),
    occupied     integer NOT NULL DEFAULT 0 CHECK (occupied >= 0),
    held         integer NOT NULL DEFAULT 0 CHECK (held >= 0),
    acceptance   text NOT NULL DEFAULT 'ACCEPTING',
    constraints  text[] NOT NULL DEFAULT '{}',
    declared_at  timestamptz,
    -- The HQ organisation that entered the last figures on the facility's behalf.
    proxy_by     text,
    PRIMARY KEY (facility_id, category)
);

-- Open holds and system-placed occupants by placement, so that a release or a
-- discharge moves the figures exactly as the facility aggregate does.
CREATE TABLE bed_board_placements (
    facility_id  text NOT NULL,
    placement_id uuid NOT NULL,
    category     text NOT NULL,
    state        text NOT NULL CHECK (state IN ('HELD', 'OCCUPIED')),
    PRIMARY KEY (facility_id, placement_id)
);
