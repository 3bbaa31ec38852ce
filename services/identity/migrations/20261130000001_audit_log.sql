-- The audit log: who read which patient's data, through which view, and when. It is
-- append-only: rows can be inserted, never changed or removed.
--
-- This migration belonged to the event store until the audit log moved to the identity
-- crate. Databases migrated before that already have these objects (and keep their
-- rows), so every statement here creates only what is missing.
CREATE TABLE IF NOT EXISTS audit_log (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind             text NOT NULL,
    principal_id     text NOT NULL,
    organisation_id  text NOT NULL,
    role             text NOT NULL,
    -- The view or endpoint through which it happened.
    via              text NOT NULL,
    case_id          uuid,
    detail           text
);
CREATE INDEX IF NOT EXISTS audit_log_by_case ON audit_log (case_id, at);
CREATE INDEX IF NOT EXISTS audit_log_by_principal ON audit_log (principal_id, at);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (at);

CREATE OR REPLACE FUNCTION noroshi_audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'P0403';
END;
$$;

DROP TRIGGER IF EXISTS audit_log_no_update_or_delete ON audit_log;
CREATE TRIGGER audit_log_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION noroshi_audit_log_is_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION noroshi_audit_log_is_append_only();
