-- The idempotent-consumer tables, owned by the `inbox` crate and applied by every
-- service that consumes Kafka into PostgreSQL (payments, orders), recorded in
-- inbox_schema_history.
--
-- Databases migrated before this set existed got the same tables and indexes from
-- payments' V1__init.sql and V2__retention_indexes.sql: every statement here adopts
-- what is already there (IF NOT EXISTS) instead of failing.

-- Every event_id handled, written in the same transaction as its effect: a
-- redelivered event finds its row and is skipped.
CREATE TABLE IF NOT EXISTS processed_events (
    event_id        BIGINT      PRIMARY KEY,
    order_id        BIGINT      NOT NULL,
    kafka_topic     TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    processed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Messages that could not be used (bad JSON, missing or invalid fields, an unknown
-- order), kept byte for byte with the reason, then committed so the partition moves on.
CREATE TABLE IF NOT EXISTS dead_letters (
    id              BIGSERIAL   PRIMARY KEY,
    kafka_topic     TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    message_key     BYTEA       NOT NULL,
    payload         BYTEA       NOT NULL,
    error           TEXT        NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Retention deletes processed_events older than PROCESSED_EVENTS_RETENTION and
-- dead_letters older than DEAD_LETTERS_RETENTION, oldest first, in bounded batches.
-- On large existing tables, build them beforehand without blocking writes
-- (CREATE INDEX CONCURRENTLY with the same definitions); these are then no-ops.
CREATE INDEX IF NOT EXISTS processed_events_processed_at ON processed_events (processed_at);
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_at);
