-- Retention deletes, oldest first and in bounded batches, sent outbox rows older than
-- OUTBOX_RETENTION, processed_events older than PROCESSED_EVENTS_RETENTION and
-- dead_letters older than DEAD_LETTERS_RETENTION (dead_letters_received exists
-- since V1): these indexes find them without scanning the tables. Unsent outbox rows
-- (sent_at IS NULL) are never deleted and stay out of the index.
-- On large existing tables, build them beforehand without blocking writes
-- (CREATE INDEX CONCURRENTLY with the same definitions); IF NOT EXISTS then makes
-- this migration a no-op.
CREATE INDEX IF NOT EXISTS events_sent_at ON events (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
