-- Retention deletes sent outbox rows older than OUTBOX_RETENTION, oldest first, in
-- bounded batches: this index finds them without scanning the table. Unsent rows
-- (sent_at IS NULL) are never deleted and stay out of it.
-- On a large existing table, build it beforehand without blocking writes
-- (CREATE INDEX CONCURRENTLY events_sent_at ON events (sent_at) WHERE sent_at IS NOT NULL);
-- IF NOT EXISTS then makes this migration a no-op.
CREATE INDEX IF NOT EXISTS events_sent_at ON events (sent_at) WHERE sent_at IS NOT NULL;
