-- Who may use noroshi, and how they prove it (docs/identity.md). Every change to these
-- rows is written to the append-only audit_log in the same transaction.

-- People who log in to the web UI. One organisation and one role each.
CREATE TABLE users (
    username         text PRIMARY KEY,
    display_name     text NOT NULL,
    organisation_id  text NOT NULL,
    role             text NOT NULL,
    -- PHC string of an argon2id hash; never the password.
    password_hash    text NOT NULL,
    disabled         boolean NOT NULL DEFAULT false,
    -- Consecutive failed logins; reset by a successful one.
    failed_logins    integer NOT NULL DEFAULT 0,
    locked_until     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Web sessions. The cookie carries a 256-bit random id; only its SHA-256 is stored, so
-- a copy of this table opens no session. The session's CSRF token is derived from the
-- id, so it is not stored either.
CREATE TABLE sessions (
    id_hash          bytea PRIMARY KEY,
    username         text NOT NULL REFERENCES users ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz NOT NULL DEFAULT now(),
    -- Absolute end, whatever the activity.
    expires_at       timestamptz NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (username);

-- Machine-to-machine clients. The token is shown once; only its SHA-256 is stored.
CREATE TABLE api_clients (
    client_id        uuid PRIMARY KEY,
    name             text NOT NULL,
    organisation_id  text NOT NULL,
    role             text NOT NULL,
    scopes           text[] NOT NULL,
    token_hash       bytea NOT NULL UNIQUE,
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL,
    revoked_at       timestamptz,
    revoked_by       text
);

-- Client certificates issued by the deployment's CA, by the SHA-256 of their DER.
CREATE TABLE client_certificates (
    fingerprint      bytea PRIMARY KEY,
    serial           text NOT NULL UNIQUE,
    organisation_id  text NOT NULL,
    role             text NOT NULL,
    subject          text NOT NULL,
    issued_by        text NOT NULL,
    issued_at        timestamptz NOT NULL DEFAULT now(),
    not_after        timestamptz NOT NULL,
    revoked_at       timestamptz
);
