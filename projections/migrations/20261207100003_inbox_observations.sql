-- facility_inbox shows a placed patient's last observation and deterioration (recorded by
-- the facility itself, DESIGN.md §5.4), so the nurse with the patient sees the trend.
ALTER TABLE facility_inbox_cases
    ADD COLUMN last_spo2 int,
    ADD COLUMN last_observed_at timestamptz,
    ADD COLUMN deteriorated_at timestamptz;
-- The view is replayed from the start of the stream by its runner, so that observations
-- recorded before this migration show too; until it has caught up, reads answer
-- UNAVAILABLE ("being rebuilt"). A view that has applied nothing yet has nothing to
-- replay. The baseline of an earlier rebuild goes too: the replay applies every event.
TRUNCATE facility_inbox, facility_inbox_cases;
DELETE FROM projection_stream_versions WHERE projection = 'facility_inbox';
UPDATE projection_checkpoints
SET stream_sequence = 0, position = 0, rebuilding = true, baseline = NULL,
    baseline_sources = '{}'
WHERE projection = 'facility_inbox' AND (stream_sequence > 0 OR baseline IS NOT NULL);
