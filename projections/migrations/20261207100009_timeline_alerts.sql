-- A case's timeline includes the alerts about it or its placements (raised, escalated,
-- acknowledged, resolved; DESIGN.md §5.6): timeline_subjects keeps each such alert with
-- its case. Alerts are new, so there is nothing to replay.
ALTER TABLE timeline_subjects DROP CONSTRAINT timeline_subjects_kind_check;
ALTER TABLE timeline_subjects ADD CONSTRAINT timeline_subjects_kind_check
    CHECK (kind IN ('CASE', 'PLACEMENT', 'ALERT'));
CREATE INDEX timeline_subjects_alerts_by_case ON timeline_subjects (case_id)
    WHERE kind = 'ALERT';
