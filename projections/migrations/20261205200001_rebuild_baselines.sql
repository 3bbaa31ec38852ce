-- A rebuild writes the versions it applied once, for every view it rebuilt together,
-- instead of one copy per view: for a long log they were the largest write of a rebuild.
-- A projection's applied version of a stream is then its own row in
-- projection_stream_versions (what it applied since) or else its baseline's, for a stream
-- of an aggregate type it reads. Read versions through projection_applied_version() (one
-- stream) or projection_applied_versions (listings).

CREATE TABLE projection_baseline_sets (
    baseline   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- No foreign key: a check per row would cost the rebuild more than the rows themselves.
-- A set's rows go with it (see the sweep in rebuild.rs).
CREATE TABLE projection_baselines (
    baseline  bigint NOT NULL,
    stream_id text NOT NULL,
    version   bigint NOT NULL CHECK (version > 0),
    position  bigint NOT NULL,
    PRIMARY KEY (baseline, stream_id)
);

ALTER TABLE projection_checkpoints
    ADD COLUMN baseline bigint REFERENCES projection_baseline_sets,
    -- The aggregate types of the baseline's streams that the projection read.
    ADD COLUMN baseline_sources text[] NOT NULL DEFAULT '{}';

-- A projection's own row, when it has one, is never older than its baseline's: the
-- runner writes one only for an event it applied after the rebuild.
CREATE FUNCTION projection_applied_version(projection text, stream_id text) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT coalesce(
        (SELECT v.version FROM projection_stream_versions v
         WHERE v.projection = $1 AND v.stream_id = $2),
        (SELECT b.version FROM projection_checkpoints c
         JOIN projection_baselines b ON b.baseline = c.baseline AND b.stream_id = $2
         WHERE c.projection = $1 AND split_part($2, '-', 1) = ANY (c.baseline_sources)))
$$;

-- Every applied version, for listings; joined to other tables, it is planned as a whole
-- scan, so look single streams up with the function.
CREATE VIEW projection_applied_versions AS
SELECT v.projection, v.stream_id, v.version, v.position
FROM projection_stream_versions v
UNION ALL
SELECT c.projection, b.stream_id, b.version, b.position
FROM projection_checkpoints c
JOIN projection_baselines b ON b.baseline = c.baseline
WHERE split_part(b.stream_id, '-', 1) = ANY (c.baseline_sources)
  AND NOT EXISTS (
    SELECT 1 FROM projection_stream_versions v
    WHERE v.projection = c.projection AND v.stream_id = b.stream_id);

-- A migration makes a projection start again from the beginning by emptying its tables and
-- versions and marking it as being rebuilt at stream sequence 0 (as
-- 20261205100001_queue_priority_reason.sql does). Its baseline goes with its versions, or
-- the replay would pass over every event the baseline holds. A rebuild never marks a
-- checkpoint so: it commits each view whole.
CREATE FUNCTION projection_restart_drops_baseline() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.baseline := NULL;
    NEW.baseline_sources := '{}';
    RETURN NEW;
END
$$;

CREATE TRIGGER projection_restart_drops_baseline
BEFORE INSERT OR UPDATE ON projection_checkpoints
FOR EACH ROW
WHEN (NEW.rebuilding AND NEW.stream_sequence = 0 AND NEW.baseline IS NOT NULL)
EXECUTE FUNCTION projection_restart_drops_baseline();
