-- Idempotency keys of CreateOrder: a client's key, scoped to the order's
-- user, with a fingerprint (SHA-256) of the request it came with and the order it
-- created. Written in the same statement as the order, so an order created under a
-- key always has its key row and vice versa. A row older than ORDERS_IDEMPOTENCY_TTL
-- is ignored by lookups (and replaced by the next order under the same key), and
-- deleted by retention in bounded batches, oldest first through the created_at index.
-- order_id is unique (one key per order) and is the key retention deletes by; it does
-- not reference orders so that the hot path has no extra foreign-key check.

CREATE TABLE idempotency_keys (
    user_id         BIGINT      NOT NULL,
    idempotency_key TEXT        NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    fingerprint     BYTEA       NOT NULL,
    order_id        BIGINT      NOT NULL UNIQUE,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, idempotency_key)
);

CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);
