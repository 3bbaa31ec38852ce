-- consult_queue (DESIGN.md §6): remote consultations by state and urgency, for consult
-- centers, their requesters and HQ. One row per consult, and the facts of its case the
-- queue shows (identified only to those who may read the patient).
CREATE TABLE consult_queue (
    consult_id      uuid PRIMARY KEY,
    case_id         uuid NOT NULL,
    requested_by    text NOT NULL,
    case_owner      text NOT NULL,
    patient_at      text,
    mode            text NOT NULL,
    urgency         text NOT NULL,
    question        text NOT NULL,
    contact         text NOT NULL,
    preferred_from  timestamptz,
    preferred_until timestamptz,
    addressed_to    text,
    status          text NOT NULL,
    center          text,
    scheduled_for   timestamptz,
    doctor          text,
    recommendation  text,
    findings        text,
    follow_up_at    timestamptz,
    escalated_to    uuid,
    requested_at    timestamptz NOT NULL,
    closed_at       timestamptz
);
CREATE INDEX consult_queue_open ON consult_queue (status, closed_at);
CREATE INDEX consult_queue_case ON consult_queue (case_id);

CREATE TABLE consult_queue_cases (
    case_id          uuid PRIMARY KEY,
    name             text NOT NULL,
    name_kana        text,
    birth_date       date NOT NULL,
    sex              text NOT NULL,
    severity         text NOT NULL,
    last_spo2        int,
    last_observed_at timestamptz,
    deteriorated_at  timestamptz
);
