-- A drill tenant (DESIGN.md §12) is a database of its own beside production's. Its one
-- row says so: the server shows the 訓練 / DRILL banner on every page of such a database
-- and refuses to publish its events under a production subject prefix. Production's
-- databases leave it empty.
CREATE TABLE drill (
    -- Exactly one row.
    only_row            boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    name                text NOT NULL,
    title               text NOT NULL,
    title_en            text NOT NULL,
    -- The scenario file as it was when the drill started.
    scenario            text NOT NULL,
    -- The production database whose organisations and logins were copied.
    production_database text NOT NULL,
    nats_subject_prefix text NOT NULL,
    nats_stream         text NOT NULL,
    http_addr           text NOT NULL,
    grpc_addr           text NOT NULL,
    started_at          timestamptz NOT NULL DEFAULT now(),
    -- Set by `noroshi drill stop`; the running drill sees it and shuts down.
    stop_requested_at   timestamptz,
    stopped_at          timestamptz
);
