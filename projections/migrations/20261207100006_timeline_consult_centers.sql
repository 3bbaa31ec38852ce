-- A consult center that took a consult reads the timeline of the patient's case
-- (DESIGN.md §5.5: the consult panel shows the patient's observations and history).
-- `timeline_subjects` gains the center from `ConsultOpened`, so the view is replayed from
-- the start of the stream by its runner for consults taken before this migration; until
-- it has caught up, reads answer UNAVAILABLE ("being rebuilt"). A view that has applied
-- nothing yet has nothing to replay. The baseline of an earlier rebuild goes too.
TRUNCATE timeline_subjects;
DELETE FROM projection_stream_versions WHERE projection = 'timeline';
UPDATE projection_checkpoints
SET stream_sequence = 0, position = 0, rebuilding = true, baseline = NULL,
    baseline_sources = '{}'
WHERE projection = 'timeline' AND (stream_sequence > 0 OR baseline IS NOT NULL);
