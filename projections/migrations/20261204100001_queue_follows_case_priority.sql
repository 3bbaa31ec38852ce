-- placement_queue follows each case's priority as it changes (a new triage, an HQ
-- override), rather than keeping the priority the case had when the placement was
-- requested: a patient who deteriorates while waiting moves up the queue.
ALTER TABLE placement_queue_cases
    ADD COLUMN priority integer,
    ADD COLUMN priority_overridden boolean NOT NULL DEFAULT false;
ALTER TABLE placement_queue
    ADD COLUMN priority_overridden boolean NOT NULL DEFAULT false;
