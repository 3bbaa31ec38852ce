-- Each case's status and owning health center, for public_stats. No patient data.
CREATE TABLE case_status (
    case_id           uuid PRIMARY KEY,
    health_center_id  text NOT NULL,
    status            text NOT NULL
);
CREATE INDEX case_status_by_owner ON case_status (health_center_id, status);
