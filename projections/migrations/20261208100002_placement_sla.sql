-- `placement_sla` (DESIGN.md §6, §12): each placement's steps, the severity of its case
-- when it was requested, and every decline (an expired offer is one too).
CREATE TABLE placement_sla (
    placement_id     uuid PRIMARY KEY,
    case_id          uuid NOT NULL,
    requested_by     text NOT NULL,
    severity         text,
    requested_at     timestamptz NOT NULL,
    first_offered_at timestamptz,
    accepted_at      timestamptz,
    arrived_at       timestamptz,
    cancelled_at     timestamptz
);
CREATE INDEX placement_sla_requested_at ON placement_sla (requested_at);

CREATE TABLE placement_sla_declines (
    placement_id uuid NOT NULL,
    facility_id  text NOT NULL,
    reason       text NOT NULL,
    declined_at  timestamptz NOT NULL,
    PRIMARY KEY (placement_id, facility_id, declined_at)
);

-- Each case's current severity, copied onto its placements when they are requested.
CREATE TABLE placement_sla_cases (
    case_id  uuid PRIMARY KEY,
    severity text NOT NULL
);
