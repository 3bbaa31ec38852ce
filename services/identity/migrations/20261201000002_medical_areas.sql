-- The deployment's secondary medical areas (二次医療圏) and which border which, from the
-- admin file's [[area]] entries: HQ's candidates for a placement list the patient's own
-- area first, then its neighbours.
CREATE TABLE medical_areas (
    code        text PRIMARY KEY,
    name        text NOT NULL,
    neighbours  text[] NOT NULL DEFAULT '{}'
);
