-- Payments, the events already handled, and poison messages kept for operators. The
-- transactional outbox the relay publishes PaymentStatus from is the outbox crate's
-- (migrations/outbox); until that set existed it was created here, and databases
-- migrated then keep it (see pgsetup::Superseded).

-- One payment per order: the first OrderCreated for an order decides it.
CREATE TABLE payments (
    order_id   BIGINT      PRIMARY KEY CHECK (order_id > 0),
    user_id    BIGINT      NOT NULL CHECK (user_id > 0),
    amount     BIGINT      NOT NULL CHECK (amount >= 0),
    status     TEXT        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Every OrderCreated event_id handled, written in the same transaction as its
-- payment: a redelivered event finds its row and is skipped.
CREATE TABLE processed_events (
    event_id        BIGINT      PRIMARY KEY,
    order_id        BIGINT      NOT NULL,
    kafka_topic     TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    processed_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Messages that could not be understood (bad JSON, missing or invalid fields), kept
-- byte for byte with the reason, then committed so the partition moves on.
CREATE TABLE dead_letters (
    id              BIGSERIAL   PRIMARY KEY,
    kafka_topic     TEXT        NOT NULL,
    kafka_partition INTEGER     NOT NULL,
    kafka_offset    BIGINT      NOT NULL,
    message_key     BYTEA       NOT NULL,
    payload         BYTEA       NOT NULL,
    error           TEXT        NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE INDEX dead_letters_received ON dead_letters (received_at);
