-- placement_queue keeps when transport is to pick the patient up and the deadline of an
-- offer that expired unanswered (until the next offer): the scheduler raises
-- TRANSPORT_LATE and OFFER_EXPIRED from them (DESIGN.md §5.6). The view is replayed from
-- the start of the stream by its runner so that placements under way show them too;
-- until it has caught up, reads answer UNAVAILABLE ("being rebuilt").
ALTER TABLE placement_queue
    ADD COLUMN pickup_at timestamptz,
    ADD COLUMN offer_expired_at timestamptz;
TRUNCATE placement_queue, placement_queue_cases;
DELETE FROM projection_stream_versions WHERE projection = 'placement_queue';
UPDATE projection_checkpoints
SET stream_sequence = 0, position = 0, rebuilding = true, baseline = NULL,
    baseline_sources = '{}'
WHERE projection = 'placement_queue' AND (stream_sequence > 0 OR baseline IS NOT NULL);
