-- Payments. The events already handled (processed_events) and the poison messages
-- kept for operators (dead_letters) are the inbox crate's tables (migrations/inbox),
-- the transactional outbox the relay publishes PaymentStatus from is the outbox
-- crate's (migrations/outbox); until those sets existed they were created here, and
-- databases migrated then keep them (see pgsetup::Superseded).

-- One payment per order: the first OrderCreated for an order decides it.
CREATE TABLE payments (
    order_id   BIGINT      PRIMARY KEY CHECK (order_id > 0),
    user_id    BIGINT      NOT NULL CHECK (user_id > 0),
    amount     BIGINT      NOT NULL CHECK (amount >= 0),
    status     TEXT        NOT NULL CHECK (status IN ('succeeded', 'failed')),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
