-- `bed_reconciliation` (DESIGN.md §6, §12): per facility and category, the figures the
-- facility declared (as placements moved them since) against the patients and holds
-- noroshi knows of there, and since when they have disagreed.
CREATE TABLE bed_reconciliation (
    facility_id    text NOT NULL,
    category       text NOT NULL,
    -- The facility's figures: `occupied` as last declared and moved by arrivals and
    -- discharges since; `held` moved by acceptances only.
    occupied       integer NOT NULL DEFAULT 0,
    held           integer NOT NULL DEFAULT 0,
    -- What noroshi knows: patients placed there and present, beds held for accepted
    -- placements not yet arrived.
    patients       integer NOT NULL DEFAULT 0,
    holds          integer NOT NULL DEFAULT 0,
    -- When the figures stopped agreeing with what noroshi knows (NULL: they agree),
    -- the recording time of the event that made them disagree.
    mismatch_since timestamptz,
    PRIMARY KEY (facility_id, category)
);
CREATE INDEX bed_reconciliation_mismatches ON bed_reconciliation (mismatch_since)
    WHERE mismatch_since IS NOT NULL;

-- The placements behind `patients` and `holds`: HELD, then PRESENT; gone when released
-- or vacated.
CREATE TABLE bed_reconciliation_placements (
    placement_id uuid PRIMARY KEY,
    facility_id  text NOT NULL,
    category     text NOT NULL,
    state        text NOT NULL CHECK (state IN ('HELD', 'PRESENT'))
);
