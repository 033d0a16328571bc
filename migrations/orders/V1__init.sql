-- Orders and their items. The transactional outbox the relay publishes from is the
-- outbox crate's (migrations/outbox); until that set existed it was created here, and
-- databases migrated then keep it (see pgsetup::Superseded).

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
