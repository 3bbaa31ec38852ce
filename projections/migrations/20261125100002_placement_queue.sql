-- placement_queue: one row per live placement (requested, offered, accepted, transport
-- arranged, in transit); a placement leaves the queue when the patient arrives or the
-- placement is cancelled.
CREATE TABLE placement_queue (
    placement_id   uuid PRIMARY KEY,
    case_id        uuid NOT NULL,
    -- The health center that owns the case, which sees the placement.
    case_owner     text,
    requested_by   text NOT NULL,
    category       text NOT NULL,
    needs          text[] NOT NULL,
    priority       integer NOT NULL,
    -- HOME with a municipality code, or FACILITY with the facility a transfer leaves.
    origin_kind    text NOT NULL,
    origin         text NOT NULL,
    requested_at   timestamptz NOT NULL,
    status         text NOT NULL,
    target         text,
    offered_at     timestamptz,
    offer_deadline timestamptz,
    hold_deadline  timestamptz,
    declined_by    text[] NOT NULL DEFAULT '{}',
    vehicle        text
);
CREATE INDEX placement_queue_order ON placement_queue (priority, requested_at);

-- Which health center owns each case, to scope the queue.
CREATE TABLE placement_queue_cases (
    case_id           uuid PRIMARY KEY,
    health_center_id  text NOT NULL
);
