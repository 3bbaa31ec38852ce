-- Events of another store met on a projection's stream (DESIGN.md §13): refused, never
-- applied, and counted here for `/metrics` (`projection_foreign_events`).
ALTER TABLE projection_checkpoints ADD COLUMN foreign_events bigint NOT NULL DEFAULT 0;
-- Events a projection read back from the event store because its stream lacked them
-- (lost, deleted or purged by JetStream): `projection_healed_events` in `/metrics`.
ALTER TABLE projection_checkpoints ADD COLUMN healed_events bigint NOT NULL DEFAULT 0;
