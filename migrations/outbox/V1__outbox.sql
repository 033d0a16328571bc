-- The transactional outbox, owned by the `outbox` crate and applied by every service
-- that has one (orders, payments), recorded in outbox_schema_history.
--
-- Databases migrated before this set existed got the same table, index and trigger
-- from their service's V1__init.sql: every statement here adopts what is already
-- there (IF NOT EXISTS, OR REPLACE) instead of failing.

-- event_id is the event's identity on the wire: consumers deduplicate on it.
-- payload is the exact JSON published (json, not jsonb, keeps its bytes).
CREATE TABLE IF NOT EXISTS events (
    event_id      BIGSERIAL   PRIMARY KEY,
    topic         TEXT        NOT NULL,
    message_key   TEXT        NOT NULL,
    payload       JSON        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until TIMESTAMPTZ,
    sent_at       TIMESTAMPTZ
);

-- The relay claims unsent rows oldest first.
CREATE INDEX IF NOT EXISTS events_unsent ON events (event_id) WHERE sent_at IS NULL;

-- Retention deletes sent rows older than OUTBOX_RETENTION, oldest first, in bounded
-- batches; unsent rows (sent_at IS NULL) are never deleted and stay out of it.
-- On a large existing table, build it beforehand without blocking writes
-- (CREATE INDEX CONCURRENTLY with the same definition); this is then a no-op.
CREATE INDEX IF NOT EXISTS events_sent_at ON events (sent_at) WHERE sent_at IS NOT NULL;

-- Wake the relay as soon as a transaction with new events commits (NOTIFY is
-- delivered at commit, and once per statement is enough).
CREATE OR REPLACE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_events', '');
    RETURN NULL;
END;
$$;

-- CREATE OR REPLACE TRIGGER needs PostgreSQL 14; this works from 12 on.
DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_trigger
        WHERE tgname = 'events_notify' AND tgrelid = 'events'::regclass
    ) THEN
        CREATE TRIGGER events_notify AFTER INSERT ON events
            FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
    END IF;
END;
$$;
