-- alerts (DESIGN.md §5.6, §6): one row per alert, with its audience (roles and
-- organisations; HQ joins an escalated alert's), its life cycle and who acknowledged it.
-- No patient data: subjects are named by id.
CREATE TABLE alerts (
    alert_id                  uuid PRIMARY KEY,
    kind                      text NOT NULL,
    severity                  text NOT NULL,
    subject_kind              text NOT NULL,
    subject_id                text NOT NULL,
    case_id                   uuid,
    audience_roles            text[] NOT NULL,
    audience_organisations    text[] NOT NULL,
    cause                     text NOT NULL,
    episode                   integer NOT NULL,
    message                   text NOT NULL,
    raised_at                 timestamptz NOT NULL,
    status                    text NOT NULL,
    escalated_at              timestamptz,
    acknowledged_by           text,
    acknowledged_organisation text,
    acknowledgement_note      text,
    acknowledged_at           timestamptz,
    resolved_at               timestamptz,
    resolution                text
);
-- A reader's alerts: open ones, and resolved ones of the last day.
CREATE INDEX alerts_live ON alerts (resolved_at, raised_at);
CREATE INDEX alerts_roles ON alerts USING gin (audience_roles);
CREATE INDEX alerts_organisations ON alerts USING gin (audience_organisations);
-- The scheduler's look at the open alerts of a kind and cause.
CREATE INDEX alerts_cause ON alerts (kind, cause, episode);
