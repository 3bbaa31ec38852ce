-- Webhooks (DESIGN.md §5.6): endpoints an organisation registers to be POSTed the alerts
-- of its audience, signed with a secret of their own, and the log of every delivery.
CREATE TABLE webhooks (
    webhook_id       uuid PRIMARY KEY,
    organisation_id  text NOT NULL,
    -- The role its organisation's principals act in: the audience it is told of.
    role             text NOT NULL,
    url              text NOT NULL,
    -- Alert kinds to send; empty: every kind.
    kinds            text[] NOT NULL,
    -- The HMAC-SHA256 key: kept to sign with, shown once when registered.
    secret           text NOT NULL,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
CREATE INDEX webhooks_organisation ON webhooks (organisation_id) WHERE deleted_at IS NULL;

CREATE TABLE webhook_deliveries (
    webhook_id       uuid NOT NULL REFERENCES webhooks,
    alert_id         uuid NOT NULL,
    -- PENDING until a 2xx, then DELIVERED.
    status           text NOT NULL DEFAULT 'PENDING',
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_attempt_at  timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (webhook_id, alert_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'PENDING';
