-- Two views are replayed from the start of the stream by their runners:
-- - placement_queue, whose rows hold the priorities of their requests, not their cases'
--   current ones (see the migration before);
-- - case_board, which kept HQ's priority override through a later triage, where the case
--   itself (and so every placement requested after it) takes the recomputed priority.
-- Until a runner has caught up, reads of its view answer UNAVAILABLE ("being rebuilt")
-- rather than the old rows; the runner then clears the mark. A view that has applied
-- nothing yet has nothing to replay.
TRUNCATE placement_queue, placement_queue_cases, case_board, case_board_placements;
DELETE FROM projection_stream_versions
WHERE projection IN ('placement_queue', 'case_board');
UPDATE projection_checkpoints
SET stream_sequence = 0, position = 0, rebuilding = true
WHERE projection IN ('placement_queue', 'case_board') AND stream_sequence > 0;
