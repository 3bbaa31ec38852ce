-- placement_queue shows whether an observation flagged a waiting patient's case as
-- deteriorating since its last triage, wherever the patient is (DESIGN.md §5.4).
ALTER TABLE placement_queue_cases ADD COLUMN deteriorated_at timestamptz;
-- The view is replayed from the start of the stream by its runner, so that flags raised
-- before this migration show too. Until the runner has caught up, reads answer UNAVAILABLE
-- ("being rebuilt") rather than the old rows; the runner then clears the mark. A view
-- that has applied nothing yet has nothing to replay. The baseline of an earlier rebuild
-- goes too: the replay applies every event again, and the baseline would skip them.
TRUNCATE placement_queue, placement_queue_cases;
DELETE FROM projection_stream_versions WHERE projection = 'placement_queue';
UPDATE projection_checkpoints
SET stream_sequence = 0, position = 0, rebuilding = true, baseline = NULL,
    baseline_sources = '{}'
WHERE projection = 'placement_queue' AND (stream_sequence > 0 OR baseline IS NOT NULL);
