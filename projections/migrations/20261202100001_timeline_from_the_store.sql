-- timeline reads its entries from the event store itself, each of the subject's streams up
-- to the version the projection has applied (projection_stream_versions); its copy of every
-- event goes. The projection keeps who may read which timeline, and a case's placements
-- are found by their case.
DROP TABLE timeline_events;
CREATE INDEX timeline_subjects_placements_by_case ON timeline_subjects (case_id)
    WHERE kind = 'PLACEMENT';
