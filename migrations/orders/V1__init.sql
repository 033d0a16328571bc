-- Orders, their items, and the transactional outbox the relay publishes from.

CREATE TABLE orders (
    order_id     BIGSERIAL   PRIMARY KEY,
    user_id      BIGINT      NOT NULL CHECK (user_id > 0),
    status       TEXT        NOT NULL DEFAULT 'new',
    total_amount BIGINT      NOT NULL CHECK (total_amount >= 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE order_items (
    order_id   BIGINT  NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    product_id BIGINT  NOT NULL CHECK (product_id > 0),
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    price      BIGINT  NOT NULL CHECK (price >= 0),
    PRIMARY KEY (order_id, position)
);

-- The outbox. event_id is the event's identity on the wire: consumers deduplicate on it.
-- payload is the exact JSON published (json, not jsonb, keeps its bytes).
CREATE TABLE events (
    event_id      BIGSERIAL   PRIMARY KEY,
    topic         TEXT        NOT NULL,
    message_key   TEXT        NOT NULL,
    payload       JSON        NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    claimed_until TIMESTAMPTZ,
    sent_at       TIMESTAMPTZ
);

CREATE INDEX events_unsent ON events (event_id) WHERE sent_at IS NULL;

-- Wake the relay as soon as a transaction with new events commits (NOTIFY is
-- delivered at commit, and once per statement is enough).
CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox_events', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox();
