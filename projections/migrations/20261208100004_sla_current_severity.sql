-- `placement_sla` groups placements by their case's current severity, read from
-- `placement_sla_cases` when the view is read: a severity copied onto the placement when it
-- was requested depended on the order in which the case's and the placement's streams
-- reached the projection, which live and a rebuild need not share.
ALTER TABLE placement_sla DROP COLUMN severity;
