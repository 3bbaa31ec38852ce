-- placement_queue carries the reason HQ gave for overriding a case's priority, beside the
-- override itself, so that whoever works the queue sees why a patient was moved.
ALTER TABLE placement_queue_cases ADD COLUMN priority_reason text;
ALTER TABLE placement_queue ADD COLUMN priority_reason text;
-- The view is replayed from the start of the stream by its runner, so that overrides made
-- before this migration show their reasons too. Until the runner has caught up, reads
-- answer UNAVAILABLE ("being rebuilt") rather than the old rows; the runner then clears
-- the mark. A view that has applied nothing yet has nothing to replay.
TRUNCATE placement_queue, placement_queue_cases;
DELETE FROM projection_stream_versions WHERE projection = 'placement_queue';
UPDATE projection_checkpoints
SET stream_sequence = 0, position = 0, rebuilding = true
WHERE projection = 'placement_queue' AND stream_sequence > 0;
