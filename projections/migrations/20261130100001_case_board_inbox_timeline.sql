-- case_board: one row per case, for the health center that owns it (and HQ). Holds the
-- patient's identity; every read of it is audited.
CREATE TABLE case_board (
    case_id             uuid PRIMARY KEY,
    health_center_id    text NOT NULL,
    external_ref        text,
    name                text NOT NULL,
    name_kana           text,
    birth_date          date NOT NULL,
    sex                 text NOT NULL,
    municipality        text NOT NULL,
    risk_factors        text[] NOT NULL,
    severity            text NOT NULL,
    needs               text[] NOT NULL,
    priority            integer NOT NULL,
    priority_overridden boolean NOT NULL DEFAULT false,
    status              text NOT NULL,
    reported_at         timestamptz NOT NULL,
    last_observed_at    timestamptz,
    last_spo2           integer,
    -- Tenths of a degree Celsius.
    last_temperature    integer,
    last_on_oxygen      boolean,
    -- Set by DeteriorationFlagged, cleared by the next triage.
    deteriorated_at     timestamptz,
    outcome             text,
    closed_at           timestamptz
);
CREATE INDEX case_board_by_owner ON case_board (health_center_id, status, priority, reported_at);

-- Every placement of a case and where it stands; the board shows the latest. Kept apart
-- from the case's row because the two streams reach the projection each in its own
-- order.
CREATE TABLE case_board_placements (
    placement_id  uuid PRIMARY KEY,
    case_id       uuid NOT NULL,
    requested_at  timestamptz NOT NULL,
    status        text NOT NULL,
    target        text
);
CREATE INDEX case_board_placements_by_case ON case_board_placements (case_id, requested_at DESC);

CREATE INDEX placement_queue_by_case ON placement_queue (case_id);

-- facility_inbox: one row per placement, from its request until it leaves the facility
-- it was placed in. A facility sees the rows where it is the target: offers
-- (de-identified), accepted inbound patients, and patients placed through the system.
CREATE TABLE facility_inbox (
    placement_id   uuid PRIMARY KEY,
    case_id        uuid NOT NULL,
    category       text NOT NULL,
    needs          text[] NOT NULL,
    priority       integer NOT NULL,
    origin_kind    text NOT NULL,
    origin         text NOT NULL,
    requested_at   timestamptz NOT NULL,
    status         text NOT NULL,
    target         text,
    offered_at     timestamptz,
    offer_deadline timestamptz,
    accepted_at    timestamptz,
    hold_deadline  timestamptz,
    vehicle        text,
    pickup_at      timestamptz,
    arrived_at     timestamptz
);
CREATE INDEX facility_inbox_by_target ON facility_inbox (target, status);

-- The case facts the inbox shows: de-identified ones with every offer, identity only to
-- the facility that accepted the patient.
CREATE TABLE facility_inbox_cases (
    case_id          uuid PRIMARY KEY,
    health_center_id text NOT NULL,
    name             text NOT NULL,
    name_kana        text,
    birth_date       date NOT NULL,
    sex              text NOT NULL,
    phone            text,
    severity         text NOT NULL
);

-- Each facility's medical area, for the origin area of an offer.
CREATE TABLE facility_inbox_areas (
    facility_id  text PRIMARY KEY,
    medical_area text
);

-- timeline: every event of every case and placement stream, with its actor.
CREATE TABLE timeline_events (
    position      bigint PRIMARY KEY,
    stream_id     text NOT NULL,
    version       bigint NOT NULL,
    -- The case the event concerns: its own stream, or the case of a placement (known
    -- from the placement's own first event).
    case_id       uuid,
    placement_id  uuid,
    event_type    text NOT NULL,
    actor         text NOT NULL,
    correlation_id uuid NOT NULL,
    occurred_at   timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL,
    -- A facility the event names (target, decliner, arrival), never patient data.
    facility_id   text,
    -- A status the event moves to, where it has one.
    status        text
);
CREATE INDEX timeline_by_case ON timeline_events (case_id, position);
CREATE INDEX timeline_by_placement ON timeline_events (placement_id, position);

-- Who may see a timeline: the case's owner (on the case's row) and the facilities
-- involved. A case's row may be created by a placement event before the case's own.
CREATE TABLE timeline_subjects (
    subject_id   uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('CASE', 'PLACEMENT')),
    case_id      uuid NOT NULL,
    case_owner   text,
    -- Facilities that accepted the patient (case) or were offered it (placement).
    facilities   text[] NOT NULL DEFAULT '{}'
);
