-- Retention deletes, oldest first and in bounded batches, processed_events older than
-- PROCESSED_EVENTS_RETENTION and dead_letters older than DEAD_LETTERS_RETENTION
-- (dead_letters_received exists since V1): this index finds the former without
-- scanning the table. (The outbox's retention index, events_sent_at, was created here
-- too; it is the outbox crate's now, migrations/outbox/V1__outbox.sql.)
-- On a large existing table, build it beforehand without blocking writes
-- (CREATE INDEX CONCURRENTLY with the same definition); IF NOT EXISTS then makes
-- this migration a no-op.
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
