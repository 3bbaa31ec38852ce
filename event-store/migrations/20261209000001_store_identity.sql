-- The store's identity (DESIGN.md §13), made once at the first migrate. The relay stamps
-- every event it publishes with it and claims its JetStream stream by it; projections
-- refuse, without applying them, events stamped by another store met on their stream
-- (two deployments on one NATS port, a drill pointed at production's stream).
CREATE TABLE store_identity (
    -- Exactly one row.
    only_row   boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    store_id   uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO store_identity DEFAULT VALUES;
